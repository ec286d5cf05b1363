package agent

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ClientOwner is the account a client bundle is written for: the bundle
// directory (0700), ca.pem and cert.pem (0444) and key.pem (0400) belong
// to it, so that the person who ran `sudo tlsdock ...` can use them.
type ClientOwner struct {
	Spec     string // USER or USER:GROUP, as given or defaulted
	UID, GID int
}

// bundleFiles are a client bundle's files and modes.
var bundleFiles = []struct {
	name string
	mode os.FileMode
}{{"ca.pem", 0o444}, {"cert.pem", 0o444}, {"key.pem", 0o400}}

// DefaultClientOwner is the owner of a client bundle when no flag names
// one: SUDO_USER when tlsdock runs as root under sudo, else root (or the
// account tlsdock runs as).
func DefaultClientOwner(getenv func(string) string, euid int) string {
	if euid == 0 {
		if u := getenv("SUDO_USER"); u != "" {
			return u
		}
		return "root"
	}
	if u, err := user.LookupId(strconv.Itoa(euid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(euid)
}

// ParseClientOwner resolves USER or USER:GROUP (names or numeric IDs) for
// field, the flag that gave it (as the message names it). The group
// defaults to the user's primary group. An unknown user or group, or
// another account than tlsdock's own when it does not run as root, is an
// InputError; nothing has been written then.
func ParseClientOwner(field, spec string) (*ClientOwner, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || hasGroup && group == "" {
		return nil, inputErr(field, "%q is not USER or USER:GROUP: give the account that uses the client bundle, for example --client-owner alice", spec)
	}
	u, err := lookupAccount(name)
	if err != nil {
		return nil, inputErr(field, "user %q: %v: give an existing account (see getent passwd)", name, err)
	}
	o := &ClientOwner{Spec: spec}
	o.UID, _ = strconv.Atoi(u.Uid)
	o.GID, _ = strconv.Atoi(u.Gid)
	if hasGroup {
		g, err := lookupGroupName(group)
		if err != nil {
			return nil, inputErr(field, "group %q: %v: give an existing group (see getent group)", group, err)
		}
		o.GID, _ = strconv.Atoi(g.Gid)
	}
	if euid := os.Geteuid(); euid != 0 && o.UID != euid {
		return nil, inputErr(field, "%s (uid %d) is another account, and only root can write a bundle for it: run tlsdock with sudo, or leave the flag out", spec, o.UID)
	}
	return o, nil
}

func lookupAccount(s string) (*user.User, error) {
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return user.LookupId(s)
	}
	return user.Lookup(s)
}

func lookupGroupName(s string) (*user.Group, error) {
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return user.LookupGroupId(s)
	}
	return user.LookupGroup(s)
}

// currentOwner is the account tlsdock runs as.
func currentOwner() *ClientOwner {
	uid, gid := os.Geteuid(), os.Getegid()
	spec := strconv.Itoa(uid)
	if u, err := user.LookupId(spec); err == nil {
		spec = u.Username
	}
	return &ClientOwner{Spec: spec, UID: uid, GID: gid}
}

// bundleOwnedBy reports whether dir and its files already have owner's
// ownership and the bundle's modes, so that an unchanged bundle is kept.
func bundleOwnedBy(dir string, owner *ClientOwner) bool {
	check := func(p string, mode os.FileMode, isDir bool) bool {
		fi, err := os.Lstat(p)
		if err != nil || fi.IsDir() != isDir || (!isDir && !fi.Mode().IsRegular()) || fi.Mode().Perm() != mode {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		return ok && int(st.Uid) == owner.UID && int(st.Gid) == owner.GID
	}
	if !check(dir, 0o700, true) {
		return false
	}
	for _, f := range bundleFiles {
		if !check(filepath.Join(dir, f.name), f.mode, false) {
			return false
		}
	}
	return true
}

// openBundleDir opens the bundle directory abs (an absolute path), making
// it and any missing parent 0700 and owner's, and returns it open. The
// walk follows no symlink that someone other than root could have put
// there: every component is opened relative to its parent with
// O_NOFOLLOW, and a symlink is followed only when it and the directory
// holding it are root's and that directory is writable by root alone.
// So a user's directory cannot send root's writes, chmod or chown
// elsewhere. An existing bundle directory must be the owner's already
// (or root's, when the owner is root).
func openBundleDir(abs string, owner *ClientOwner) (*os.File, error) {
	return walkBundleDir(abs, owner, true)
}

// CheckClientOut checks, before anything is written, that a client bundle
// for owner can go to dir (given with field): the walk of openBundleDir
// without creating anything. Its refusals are InputErrors naming field.
func CheckClientOut(field, dir string, owner *ClientOwner) error {
	if owner == nil {
		owner = currentOwner()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return &InputError{Field: field, Err: err}
	}
	d, err := walkBundleDir(abs, owner, false)
	if err != nil {
		return &InputError{Field: field, Err: err}
	}
	if d != nil {
		d.Close()
	}
	return nil
}

// walkBundleDir is openBundleDir; without create it changes nothing and
// returns nil, nil where a component is missing (openBundleDir creates it).
func walkBundleDir(abs string, owner *ClientOwner, create bool) (*os.File, error) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /: %w", err)
	}
	closeFD := func() { unix.Close(fd) }
	cur := "/"
	rest := splitPath(abs)
	created := false
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		next := filepath.Join(cur, c)
		nfd, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case errors.Is(err, unix.ENOENT) && !create:
			closeFD()
			return nil, nil
		case errors.Is(err, unix.ENOENT):
			if err := unix.Mkdirat(fd, c, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				closeFD()
				return nil, fmt.Errorf("creating %s: %w", next, err)
			}
			nfd, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				closeFD()
				return nil, fmt.Errorf("creating %s: %w", next, err)
			}
			if err := ownDir(nfd, owner); err != nil {
				unix.Close(nfd)
				closeFD()
				return nil, fmt.Errorf("creating %s: %w", next, err)
			}
			created = true
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
			target, terr := trustedLink(fd, c, next)
			if terr != nil {
				closeFD()
				return nil, terr
			}
			if hops++; hops > 40 {
				closeFD()
				return nil, fmt.Errorf("client bundle directory %s: too many symlinks on the way", abs)
			}
			if filepath.IsAbs(target) {
				nfd, err = unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					closeFD()
					return nil, fmt.Errorf("opening /: %w", err)
				}
				closeFD()
				fd, cur = nfd, "/"
			}
			rest = append(splitPath(target), rest...)
			continue
		case err != nil:
			closeFD()
			return nil, fmt.Errorf("opening %s: %w", next, err)
		}
		closeFD()
		fd, cur = nfd, next
	}
	if !created {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			closeFD()
			return nil, fmt.Errorf("client bundle directory %s: %w", cur, err)
		}
		if int(st.Uid) != owner.UID && !(st.Uid == 0 && owner.UID == 0) {
			closeFD()
			return nil, fmt.Errorf("client bundle directory %s exists and belongs to uid %d, not to %s (uid %d): give a new directory, or chown it to %s first", cur, st.Uid, owner.Spec, owner.UID, owner.Spec)
		}
		if err := foreignBundle(fd, cur); err != nil {
			closeFD()
			return nil, err
		}
	}
	if !create {
		return os.NewFile(uintptr(fd), cur), nil
	}
	if err := ownDir(fd, owner); err != nil {
		closeFD()
		return nil, fmt.Errorf("client bundle directory %s: %w", cur, err)
	}
	return os.NewFile(uintptr(fd), cur), nil
}

// foreignBundle refuses a bundle directory (open as dirFD, at p) whose
// ca.pem, cert.pem or key.pem tlsdock would replace but did not write:
// ~/.docker, DOCKER_CERT_PATH's default, often holds another daemon's
// bundle, and its key would be lost. A bundle is tlsdock's when cert.pem
// was issued by a tlsdock local CA (of this host or an earlier one: a
// renewal replaces it). Files are read without following a symlink or
// waiting on a FIFO: the directory is its owner's.
func foreignBundle(dirFD int, p string) error {
	present := []string{}
	for _, f := range bundleFiles {
		var st unix.Stat_t
		err := unix.Fstatat(dirFD, f.name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("client bundle directory %s: %w", p, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return fmt.Errorf("refusing to write %s: it is a symlink and tlsdock writes regular files only: remove it and try again", filepath.Join(p, f.name))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("refusing to write %s: it is not a regular file (tlsdock writes regular files only): remove it and try again", filepath.Join(p, f.name))
		}
		present = append(present, f.name)
	}
	if len(present) == 0 {
		return nil
	}
	certPath := filepath.Join(p, "cert.pem")
	var c *x509.Certificate
	if fd, err := unix.Openat(dirFD, "cert.pem", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
		f := os.NewFile(uintptr(fd), certPath)
		data, rerr := io.ReadAll(io.LimitReader(f, maxClientCertSize+1))
		f.Close()
		if rerr == nil && len(data) <= maxClientCertSize {
			c = parseCertPEM(data)
		}
	}
	switch {
	case c != nil && strings.HasPrefix(c.Issuer.CommonName, tlsdockCAPrefix):
		return nil
	case c != nil:
		return fmt.Errorf("%s holds a client certificate issued by %q, not by tlsdock: tlsdock would replace it and the key.pem next to it; give another directory (for example %s/%s) or move %s away", certPath, c.Issuer.CommonName, p, "HOST", strings.Join(present, ", "))
	default:
		return fmt.Errorf("%s holds %s, which tlsdock did not write (no cert.pem of a tlsdock CA): tlsdock would replace them; give another directory or move them away", p, strings.Join(present, ", "))
	}
}

// tlsdockCAPrefix starts the subject of every local CA tlsdock creates
// (certstore.NewCA).
const tlsdockCAPrefix = "tlsdock local CA "

// ownDir makes the open directory 0700 and owner's.
func ownDir(fd int, owner *ClientOwner) error {
	if os.Geteuid() == 0 {
		if err := unix.Fchown(fd, owner.UID, owner.GID); err != nil {
			return err
		}
	}
	return unix.Fchmod(fd, 0o700)
}

// trustedLink reads the symlink name in the directory dirFD (at path p),
// refusing one that anybody but root could have made or changed.
func trustedLink(dirFD int, name, p string) (string, error) {
	var st, dst unix.Stat_t
	if err := unix.Fstatat(dirFD, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", fmt.Errorf("opening %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", fmt.Errorf("client bundle directory: %s is not a directory: give another --client-out / --out", p)
	}
	if err := unix.Fstat(dirFD, &dst); err != nil {
		return "", fmt.Errorf("opening %s: %w", filepath.Dir(p), err)
	}
	if st.Uid != 0 || dst.Uid != 0 || dst.Mode&0o022 != 0 {
		return "", fmt.Errorf("client bundle directory: %s is a symlink that someone other than root can change, and root does not follow it: give the real path", p)
	}
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirFD, name, buf)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return string(buf[:n]), nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// ClientHint is what a person runs to use a client bundle against this
// host.
type ClientHint struct {
	// Host is tcp://ADDR:PORT of the first TCP listener, with the
	// machine's hostname for a wildcard address (0.0.0.0, ::).
	Host string
	// Env sets DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
	Env string
	// Context is a `docker context create` line for the bundle.
	Context string
}

// contextNameRE is what the docker CLI accepts as a context name.
var contextNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`)

// NewClientHint builds the hint for the bundle in dir (absolute) and the
// first TCP listener among hosts. hostname names the machine when that
// listener is a wildcard address.
func NewClientHint(hosts []string, dir string, hostname func() (string, error)) ClientHint {
	addr, port := "HOST", "2376"
	for _, h := range hosts {
		l, err := ParseHost(h)
		if err != nil {
			continue
		}
		addr, port = l.Host, strconv.Itoa(l.Port)
		if l.Wildcard() {
			addr = "HOST"
			if n, err := hostname(); err == nil && n != "" {
				addr = n
			}
		}
		break
	}
	host := "tcp://" + net.JoinHostPort(addr, port)
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '-'
	}, strings.Trim(addr, "[]"))
	if !contextNameRE.MatchString(name) || name == "default" {
		name = "tlsdock-" + strings.Trim(name, "-.")
	}
	if !contextNameRE.MatchString(name) {
		name = "tlsdock"
	}
	return ClientHint{
		Host: host,
		Env:  "export DOCKER_HOST=" + shellWord(host) + " DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=" + shellWord(dir),
		Context: "docker context create " + name + " --docker " +
			shellQuoted("host="+host+",ca="+filepath.Join(dir, "ca.pem")+",cert="+filepath.Join(dir, "cert.pem")+",key="+filepath.Join(dir, "key.pem")),
	}
}

// shellWord is s as one POSIX shell word: as it is when it needs no
// quoting, else in single quotes.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:=,@+%", r))
	}) < 0 {
		return s
	}
	return singleQuoted(s)
}

// shellQuoted is s in double quotes (as Docker's docs write the --docker
// value), or in single quotes when it holds a character that double
// quotes do not protect.
func shellQuoted(s string) string {
	if strings.ContainsAny(s, "\"$`\\!\n") {
		return singleQuoted(s)
	}
	return `"` + s + `"`
}

func singleQuoted(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// InstalledTCPHosts returns the TCP listeners the last provision
// configured (state.json), or nil.
func (a *Agent) InstalledTCPHosts() []string {
	st, err := a.loadState()
	if err != nil || st == nil {
		return nil
	}
	return st.TCPHosts
}
