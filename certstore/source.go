package certstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrUnsafeSource marks a certificate source that someone other than root
// can change. Whoever can write a source decides which CA dockerd trusts,
// so LoadSource refuses it.
var ErrUnsafeSource = errors.New("unsafe certificate source")

// SourceTrust says who may control a certificate source. Root always may,
// and so may the account tlsdock runs as (a process cannot defend itself
// against its own uid; on a host that is root). Owner, when set, allows one
// more account: a PKI agent's service user that writes the source itself.
type SourceTrust struct {
	Owner *Account
}

// Account is a user and group allowed to own and write a source.
type Account struct {
	Spec     string // as given, for messages
	UID, GID uint32
}

// ParseAccount resolves USER, USER:GROUP, UID or UID:GID for
// --allow-source-owner. The group defaults to the user's primary group.
func ParseAccount(spec string) (*Account, error) {
	u, g, hasGroup := strings.Cut(spec, ":")
	if u == "" || hasGroup && g == "" {
		return nil, fmt.Errorf("%q is not USER or USER:GROUP: give the account of the PKI agent that writes the source, for example vault", spec)
	}
	acc := &Account{Spec: spec}
	usr, err := lookupUser(u)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w: give an existing account (see getent passwd; tlsdock reads /etc/passwd, so for an account only in LDAP or sssd give its numeric UID:GID)", u, err)
	}
	uid, _ := strconv.ParseUint(usr.Uid, 10, 32)
	gid, _ := strconv.ParseUint(usr.Gid, 10, 32)
	acc.UID, acc.GID = uint32(uid), uint32(gid)
	if hasGroup {
		grp, err := lookupGroup(g)
		if err != nil {
			return nil, fmt.Errorf("group %q: %w: give an existing group (see getent group; tlsdock reads /etc/group, so for a group only in LDAP or sssd give its numeric GID)", g, err)
		}
		gid, _ := strconv.ParseUint(grp.Gid, 10, 32)
		acc.GID = uint32(gid)
	}
	if acc.UID == 0 {
		return nil, fmt.Errorf("%q is root, which may always write a source: remove allow-source-owner", spec)
	}
	if acc.GID == 0 {
		return nil, fmt.Errorf("%q: group root (gid 0) cannot be allowed to write a source: name the PKI agent's own group, as in USER:GROUP", spec)
	}
	return acc, nil
}

func lookupUser(s string) (*user.User, error) {
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		if u, err := user.LookupId(s); err == nil {
			return u, nil
		}
		// A uid without a passwd entry (a container's user, say).
		return &user.User{Uid: s, Gid: s, Username: s}, nil
	}
	return user.Lookup(s)
}

func lookupGroup(s string) (*user.Group, error) {
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return &user.Group{Gid: s, Name: s}, nil
	}
	return user.LookupGroup(s)
}

func (t SourceTrust) ownerOK(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid() || t.Owner != nil && uid == t.Owner.UID
}

// groupWriteOK: a group-writable entry is safe only when that group is the
// allowed account's.
func (t SourceTrust) groupWriteOK(gid uint32) bool {
	return t.Owner != nil && gid == t.Owner.GID
}

// UnsafeSourceError is a file or directory of a source that someone other
// than root (or the allowed account) can change, or a key that others can
// read. It wraps ErrUnsafeSource.
type UnsafeSourceError struct {
	Path    string // the file or directory at fault
	Via     string // the source file whose resolution reached Path
	What    string // "directory", "file" or "key"
	UID     uint32
	GID     uint32
	Mode    os.FileMode
	Problem string
	Fix     string
}

func (e *UnsafeSourceError) Error() string {
	via := ""
	if e.Via != "" && e.Via != e.Path && filepath.Dir(e.Via) != e.Path {
		via = fmt.Sprintf(" (on the way to %s)", e.Via)
	}
	return fmt.Sprintf("%s%s: %s %s, owner %s, group %s, mode %04o (%v): %s",
		e.Path, via, e.What, e.Problem, userName(e.UID), groupName(e.GID), e.Mode.Perm()|stickyBits(e.Mode), e.Mode, e.Fix)
}

func (e *UnsafeSourceError) Unwrap() error { return ErrUnsafeSource }

func stickyBits(m os.FileMode) os.FileMode {
	if m&os.ModeSticky != 0 {
		return 0o1000
	}
	return 0
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return fmt.Sprintf("%s (gid %d)", g.Name, gid)
	}
	return fmt.Sprintf("gid %d", gid)
}

func ownerOf(fi os.FileInfo) (uid, gid uint32) {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return sys.Uid, sys.Gid
	}
	return ^uint32(0), ^uint32(0)
}

// check refuses fi when someone untrusted can change it. strict is for a
// directory that holds a source file or a symlink tlsdock follows, and for
// the files: there, the sticky bit is no excuse for o+w, because others
// could add the name before the issuer writes it. A directory only passed
// through (/tmp on the way to /tmp/x/certs) may be sticky and o+w: its
// trusted entry cannot be renamed or removed by others.
func (t SourceTrust) check(path, via, what string, fi os.FileInfo, strict bool) error {
	uid, gid := ownerOf(fi)
	mode := fi.Mode()
	e := &UnsafeSourceError{Path: path, Via: via, What: what, UID: uid, GID: gid, Mode: mode}
	allow := ""
	if t.Owner == nil {
		allow = ", or, if a PKI agent's service user must write it, allow that one account with --allow-source-owner USER"
	}
	if !t.ownerOK(uid) {
		e.Problem = "is not owned by root"
		if t.Owner != nil {
			e.Problem = fmt.Sprintf("is owned neither by root nor by %s", t.Owner.Spec)
		}
		e.Fix = fmt.Sprintf("whoever owns it can install their own CA and take over dockerd: chown root:root %s && chmod go-w %s%s", path, path, allow)
		return e
	}
	otherW := mode&0o002 != 0
	groupW := mode&0o020 != 0 && !t.groupWriteOK(gid)
	if (otherW || groupW) && (strict || mode&os.ModeSticky == 0) {
		who := "others"
		if groupW && !otherW {
			who = "its group"
		} else if groupW {
			who = "its group and others"
		}
		e.Problem = "is writable by " + who
		if mode&os.ModeSticky != 0 {
			e.Problem += " (the sticky bit does not protect a source)"
		}
		e.Fix = fmt.Sprintf("whoever can write it can install their own CA and take over dockerd: chown root:root %s && chmod go-w %s%s", path, path, allow)
		return e
	}
	return nil
}

// checkKey refuses a key that group or others can read.
func (t SourceTrust) checkKey(path, via string, fi os.FileInfo) error {
	if fi.Mode()&0o044 == 0 {
		return nil
	}
	uid, gid := ownerOf(fi)
	return &UnsafeSourceError{Path: path, Via: via, What: "key", UID: uid, GID: gid, Mode: fi.Mode(),
		Problem: "is readable by group or others",
		Fix:     fmt.Sprintf("the server's private key must be readable only by its owner: chmod 0600 %s", path)}
}

// maxHops is the kernel's limit on symlinks in one resolution.
const maxHops = 40

// resolve follows path the way the kernel does, one component at a time
// with Lstat, and checks every directory on the way: those it passes
// through, and strictly the ones holding a symlink it follows or the final
// entry. It returns the final entry's path and Lstat. Resolution errors
// (missing, loop, not a directory) are returned as they are, for
// readBounded to word.
func (t SourceTrust) resolve(path string) (string, os.FileInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, err
	}
	cur := "/"
	fi, err := os.Lstat(cur)
	if err != nil {
		return "", nil, err
	}
	if err := t.check(cur, abs, "directory", fi, false); err != nil {
		return "", nil, err
	}
	rest := splitPath(abs)
	hops := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			if len(rest) == 0 {
				// Missing for now: the directory it will appear in must
				// be safe already.
				if serr := t.strictDir(cur, abs); serr != nil {
					return "", nil, serr
				}
			}
			return "", nil, err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			if err := t.strictDir(cur, abs); err != nil {
				return "", nil, err
			}
			if hops++; hops > maxHops {
				return "", nil, &os.PathError{Op: "resolve", Path: abs, Err: syscall.ELOOP}
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", nil, err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(splitPath(target), rest...)
		case len(rest) == 0:
			if err := t.strictDir(cur, abs); err != nil {
				return "", nil, err
			}
			return next, fi, nil
		case fi.IsDir():
			if err := t.check(next, abs, "directory", fi, false); err != nil {
				return "", nil, err
			}
			cur = next
		default:
			return "", nil, &os.PathError{Op: "resolve", Path: next, Err: syscall.ENOTDIR}
		}
	}
	// The path ended in "." or "..": it names a directory.
	fi, err = os.Lstat(cur)
	if err != nil {
		return "", nil, err
	}
	return cur, fi, nil
}

func (t SourceTrust) strictDir(dir, via string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	return t.check(dir, via, "directory", fi, true)
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// SourceNames are the file names of a certificate source: the CA bundle,
// the server certificate (leaf first, then intermediates) and the server
// key. Each is a bare name inside the source directory; the CA may also be
// an absolute path, for a source that holds no client CA (certbot's live
// directory). An empty name is the default (CAFile, CertFile, KeyFile).
type SourceNames struct{ CA, Cert, Key string }

// WithDefaults fills the empty names with the defaults.
func (n SourceNames) WithDefaults() SourceNames {
	if n.CA == "" {
		n.CA = CAFile
	}
	if n.Cert == "" {
		n.Cert = CertFile
	}
	if n.Key == "" {
		n.Key = KeyFile
	}
	return n
}

// Paths are the files of the source dir under these names.
func (n SourceNames) Paths(dir string) SetNames {
	n = n.WithDefaults()
	at := func(name string) string {
		if filepath.IsAbs(name) {
			return filepath.Clean(name)
		}
		return filepath.Join(dir, name)
	}
	return SetNames{CA: at(n.CA), Cert: at(n.Cert), Key: at(n.Key)}
}

// CheckSourceName checks one file name of a source: a bare name (no
// slash, not . or ..), or with absOK an absolute path as well.
func CheckSourceName(name string, absOK bool) error {
	switch {
	case name == "":
		return nil
	case absOK && filepath.IsAbs(name):
		if filepath.Clean(name) == "/" {
			return fmt.Errorf("%q is not a file: give the path of the CA bundle, such as /etc/tlsdock/client-ca.pem", name)
		}
		return nil
	case strings.ContainsRune(name, '/') || name == "." || name == "..":
		if absOK {
			return fmt.Errorf("%q is neither a file name inside --certs nor an absolute path: give a bare name such as root_ca.crt, or an absolute path such as /etc/tlsdock/client-ca.pem", name)
		}
		return fmt.Errorf("%q is not a file name inside --certs: give a bare name such as tls.crt (the file must be in the source directory; a symlink there may point elsewhere)", name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%q starts or ends with white space: give the file name without it", name)
	}
	return nil
}

// CheckSource checks the trust of dir and of what its ca.pem,
// server-cert.pem and server-key.pem resolve to, without reading them. It
// returns an error wrapping ErrUnsafeSource, or nil (a missing file is not
// its business: LoadSource reports it).
func CheckSource(dir string, t SourceTrust) error {
	return CheckSourceFiles(SourceNames{}.Paths(dir), t)
}

// CheckSourceFiles is CheckSource for the files of names (SourceNames.Paths).
func CheckSourceFiles(names SetNames, t SourceTrust) error {
	for i, p := range []string{names.CA, names.Cert, names.Key} {
		final, fi, err := t.resolve(p)
		if err != nil {
			if errors.Is(err, ErrUnsafeSource) {
				return err
			}
			continue
		}
		if fi.Mode().IsRegular() {
			if err := t.checkFile(final, p, fi, i == 2); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t SourceTrust) checkFile(final, via string, fi os.FileInfo, key bool) error {
	what := "file"
	if key {
		what = "key"
	}
	if err := t.check(final, via, what, fi, true); err != nil {
		return err
	}
	if key {
		return t.checkKey(final, via, fi)
	}
	return nil
}

// LoadSource reads a certificate source the way LoadDir does, and refuses
// it (with an error wrapping ErrUnsafeSource that names the path, its owner
// and mode, and says what to do) when anyone but root, the account tlsdock
// runs as, or t.Owner can change it:
//
//   - every directory the three paths resolve through must be owned by a
//     trusted account and not writable by group or others; a directory that
//     is only passed through may be sticky and world-writable (/tmp);
//   - the directories holding a file or a symlink that is followed (the
//     source directory, certbot's live and archive, Kubernetes' ..data
//     target) and the files themselves must be owned by a trusted account
//     and writable by nobody else, sticky or not;
//   - the key must not be readable by group or others.
//
// t.Owner's group may write where it owns the group. The files are checked
// on the descriptors actually read (fstat), and must be the files the
// checked resolution reached, so a swap between check and read is refused.
func LoadSource(dir string, t SourceTrust) (*Set, error) {
	return LoadSourceFiles(SourceNames{}.Paths(dir), t)
}

// LoadSourceFiles is LoadSource for the files of names
// (SourceNames.Paths), with the same checks.
func LoadSourceFiles(names SetNames, t SourceTrust) (*Set, error) {
	var data [3][]byte
	for i, p := range []string{names.CA, names.Cert, names.Key} {
		b, err := t.read(p, i == 2)
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	return ParseSet(data[0], data[1], data[2], names)
}

func (t SourceTrust) read(path string, key bool) ([]byte, error) {
	final, lfi, err := t.resolve(path)
	if err != nil {
		if errors.Is(err, ErrUnsafeSource) {
			return nil, err
		}
		// Not resolvable: readBounded says why in its words.
		if _, rerr := readBounded(path); rerr != nil {
			return nil, rerr
		}
		return nil, fmt.Errorf("%s: %w", label(path), err)
	}
	l := label(path)
	if err := checkRegular(l, lfi); err != nil {
		return nil, err
	}
	f, fi, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !os.SameFile(fi, lfi) {
		return nil, fmt.Errorf("%s: changed while tlsdock read it (it resolves to %s no more): the issuer may be writing it; tlsdock reads it again", l, final)
	}
	if err := t.checkFile(final, path, fi, key); err != nil {
		return nil, err
	}
	return readAllBounded(f, l)
}

// openRegular opens path for reading without blocking on a FIFO and
// returns the descriptor's own Stat, which must be a regular file.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	l := label(path)
	// O_NONBLOCK: if the file was swapped for a FIFO since a Stat, opening
	// it must not hang; the Stat of the open file catches it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, nil, fmt.Errorf("%s: symlink loop: fix the symlink so that it points at a PEM file", l)
		}
		return nil, nil, fmt.Errorf("%s: %w", l, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", l, err)
	}
	if err := checkRegular(l, fi); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func readAllBounded(f *os.File, l string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", l, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: file is larger than %d bytes: a PEM certificate set is much smaller; check that the path points at the right file", l, MaxFileSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%s: file is empty: the issuer may still be writing it; wait for it to finish or fix the issuer", l)
	}
	return b, nil
}
