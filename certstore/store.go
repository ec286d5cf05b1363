package certstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Store is the installed set in Dir (on a host, /etc/docker/ssl).
//
// Layout, as written by Install (the Kubernetes atomic-writer layout):
//
//	Dir/..tlsdock-<random>/ca.pem            0444 root:root
//	Dir/..tlsdock-<random>/server-cert.pem   0444 root:root
//	Dir/..tlsdock-<random>/server-key.pem    0400 root:root
//	Dir/..data -> ..tlsdock-<random>
//	Dir/ca.pem -> ..data/ca.pem              (and the same for the others)
//
// dockerd is configured with Paths, Dir/..data/NAME: the last component is
// the generation's regular file, so `stat` (without -L, as the CIS Docker
// Benchmark's checks 3.9 to 3.14 run it) reads its own owner and mode,
// while the set still changes as one unit with the rename of ..data.
// LinkPaths, Dir/NAME, are kept for clients and older configurations that
// name them.
type Store struct{ Dir string }

const (
	dataLink    = "..data"
	dataTmpLink = "..data_tmp"
	// GenerationPrefix starts the name of every generation directory that
	// tlsdock creates; only those are ever removed.
	GenerationPrefix = "..tlsdock-"
	linkTmpInfix     = ".tlsdock-link-"
)

// afterStep is called after every change Install makes to Dir. Tests use it
// to check what a reader would see if the process crashed at that moment.
var afterStep = func(step string) {}

var storeFiles = [3]struct {
	name string
	mode os.FileMode
}{{CAFile, 0o444}, {CertFile, 0o444}, {KeyFile, 0o400}}

// Paths returns the paths dockerd is configured with: Dir/..data/ca.pem,
// Dir/..data/server-cert.pem and Dir/..data/server-key.pem. Each is a
// regular file (0444, 0444 and 0400, root:root) reached through the ..data
// symlink, which Install swaps in one rename.
func (st Store) Paths() (ca, cert, key string) {
	d := filepath.Join(st.Dir, dataLink)
	return filepath.Join(d, CAFile), filepath.Join(d, CertFile), filepath.Join(d, KeyFile)
}

// LinkPaths returns the stable links Dir/ca.pem, Dir/server-cert.pem and
// Dir/server-key.pem (symlinks to ..data/NAME), which tlsdock configured
// dockerd with before Paths. Install keeps them, so that what names them
// keeps working; a provision moves dockerd's configuration to Paths.
func (st Store) LinkPaths() (ca, cert, key string) {
	return filepath.Join(st.Dir, CAFile), filepath.Join(st.Dir, CertFile), filepath.Join(st.Dir, KeyFile)
}

// Load parses the installed set. It returns nil, nil when nothing is
// installed (ca.pem is missing). It reads LinkPaths, which also show a
// set of regular files that tlsdock has not installed yet.
func (st Store) Load() (*Set, error) {
	ca, _, _ := st.LinkPaths()
	if _, err := os.Stat(ca); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return LoadDir(st.Dir)
}

// Fingerprint returns the installed set's Fingerprint without parsing it, or
// "" when nothing is installed (ca.pem is missing). It reads LinkPaths,
// as Load does.
func (st Store) Fingerprint() (string, error) {
	ca, cert, key := st.LinkPaths()
	caPEM, err := readBounded(ca)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	certPEM, err := readBounded(cert)
	if err != nil {
		return "", err
	}
	keyPEM, err := readBounded(key)
	if err != nil {
		return "", err
	}
	return fingerprint(caPEM, certPEM, keyPEM), nil
}

// Install installs set into Dir as one unit and reports whether anything
// changed.
//
// The three files are written into a new generation directory
// Dir/..tlsdock-<random> (0755; certificates 0444, key 0400, root:root when
// running as root), then the Dir/..data symlink is swapped to it with one
// rename (Paths, what dockerd is configured with, are in it), and
// Dir/ca.pem, Dir/server-cert.pem and Dir/server-key.pem (LinkPaths) are
// relative symlinks through ..data. A crash at any moment leaves the old set
// or the new set, never a mix. Where the stable paths are not yet those
// symlinks (first install over regular files), their current contents are
// first moved into a generation of their own, so that replacing them one by
// one never pairs a certificate with another generation's key. The caller is
// expected to have backed up those files.
//
// When the installed set already has set's Fingerprint and the layout, modes
// and owners are right, Install returns false and touches nothing. Dir is
// created (0755) if missing; Install refuses a Dir that is a symlink or is
// writable by group or others. Old generation directories are removed after
// the swap, best effort (a leftover is removed by the next Install).
func (st Store) Install(set *Set) (changed bool, err error) {
	if set == nil || len(set.CAPEM) == 0 || len(set.CertPEM) == 0 || len(set.KeyPEM) == 0 {
		return false, errors.New("installing certificates: the set is incomplete: it needs a CA bundle, a server certificate and a key")
	}
	if err := st.ensureDir(); err != nil {
		return false, err
	}
	cur := st.inspect()
	if cur.layoutOK && cur.fingerprint == set.Fingerprint() {
		return false, nil
	}
	if err := st.preflight(); err != nil {
		return false, err
	}
	if !cur.linksOK {
		// Snapshot what the stable paths hold now into a generation, point
		// ..data at it and turn the stable paths into symlinks. Each step
		// keeps what a reader sees unchanged.
		snap, err := st.snapshot()
		if err != nil {
			return false, err
		}
		gen, err := st.writeGeneration(snap)
		if err != nil {
			return false, err
		}
		if err := st.pointData(gen); err != nil {
			os.RemoveAll(filepath.Join(st.Dir, gen))
			return false, err
		}
		if err := st.ensureLinks(); err != nil {
			return false, err
		}
	}
	gen, err := st.writeGeneration([3][]byte{set.CAPEM, set.CertPEM, set.KeyPEM})
	if err != nil {
		return false, err
	}
	if err := st.pointData(gen); err != nil {
		os.RemoveAll(filepath.Join(st.Dir, gen))
		return false, err
	}
	st.removeOld(gen)
	return true, nil
}

// ensureDir creates Dir or checks that it is a real, private-enough directory.
func (st Store) ensureDir() error {
	if st.Dir == "" {
		return errors.New("installing certificates: no directory given")
	}
	fi, err := os.Lstat(st.Dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(st.Dir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", st.Dir, err)
		}
		if err := os.Chmod(st.Dir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", st.Dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("installing certificates into %s: %w", st.Dir, err)
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("refusing to install certificates into %s: it is a symlink; tlsdock installs into a real directory: replace the symlink with a directory or configure its target instead", st.Dir)
	case !fi.IsDir():
		return fmt.Errorf("refusing to install certificates into %s: it is not a directory (mode %v): remove it", st.Dir, fi.Mode())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("refusing to install certificates into %s: it is writable by group or others (mode %v): chmod 0755 %s", st.Dir, fi.Mode().Perm(), st.Dir)
	}
	return nil
}

// preflight refuses, before anything is written, entries that Install
// cannot replace.
func (st Store) preflight() error {
	for _, name := range []string{dataLink, dataTmpLink} {
		p := filepath.Join(st.Dir, name)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("refusing to install certificates: %s exists and is not a symlink: remove it", p)
		}
	}
	for _, f := range storeFiles {
		p := filepath.Join(st.Dir, f.name)
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			return fmt.Errorf("refusing to install certificates: %s is a directory: remove it", p)
		}
	}
	return nil
}

type installState struct {
	fingerprint string
	linksOK     bool // ..data points at a generation dir and the stable paths link through it
	layoutOK    bool // linksOK, and every file has its mode and owner
}

// inspect reads the installed state without changing anything.
func (st Store) inspect() installState {
	var s installState
	gen, err := os.Readlink(filepath.Join(st.Dir, dataLink))
	if err != nil || !strings.HasPrefix(gen, GenerationPrefix) || strings.ContainsRune(gen, '/') {
		return s
	}
	gfi, err := os.Lstat(filepath.Join(st.Dir, gen))
	if err != nil || !gfi.IsDir() {
		return s
	}
	s.linksOK = true
	s.layoutOK = gfi.Mode().Perm() == 0o755 && rootOwned(gfi)
	var data [3][]byte
	for i, f := range storeFiles {
		if t, err := os.Readlink(filepath.Join(st.Dir, f.name)); err != nil || t != dataLink+"/"+f.name {
			s.linksOK, s.layoutOK = false, false
			return s
		}
		p := filepath.Join(st.Dir, gen, f.name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != f.mode || !rootOwned(fi) {
			s.layoutOK = false
			continue
		}
		if data[i], err = readBounded(p); err != nil {
			s.layoutOK = false
		}
	}
	if s.layoutOK {
		s.fingerprint = fingerprint(data[0], data[1], data[2])
	}
	return s
}

// rootOwned is true when fi is owned by root:root, or when not running as
// root (then files are owned by the current user and that is all we can do).
func rootOwned(fi os.FileInfo) bool {
	if os.Geteuid() != 0 {
		return true
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	return ok && sys.Uid == 0 && sys.Gid == 0
}

// snapshot reads what each stable path shows now; nil for a path that shows
// nothing (missing, dangling or looping symlink).
func (st Store) snapshot() ([3][]byte, error) {
	var snap [3][]byte
	for i, f := range storeFiles {
		p := filepath.Join(st.Dir, f.name)
		if lfi, err := os.Lstat(p); err == nil && lfi.IsDir() {
			return snap, fmt.Errorf("refusing to install certificates: %s is a directory: remove it", p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
				continue
			}
			return snap, fmt.Errorf("reading %s: %w", p, err)
		}
		if err := checkRegular(label(p), fi); err != nil {
			return snap, err
		}
		b, err := ReadFileBounded(p)
		if err != nil {
			return snap, err
		}
		snap[i] = b
	}
	return snap, nil
}

// ReadFileBounded reads a file of at most MaxFileSize bytes without
// blocking on a FIFO. It is the bounded read for every file tlsdock backs up.
func ReadFileBounded(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: file is larger than %d bytes: move it away and install again", label(p), MaxFileSize)
	}
	b = append([]byte{}, b...)
	return b, nil
}

// writeGeneration writes the files that are non-nil into a new generation
// directory and returns its name (relative to Dir).
func (st Store) writeGeneration(files [3][]byte) (string, error) {
	suffix, err := randomSuffix()
	if err != nil {
		return "", fmt.Errorf("installing certificates: %w", err)
	}
	name := GenerationPrefix + suffix
	dir := filepath.Join(st.Dir, name)
	// Mkdir fails on anything already there, symlinks included, so a planted
	// symlink is never followed.
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating generation directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("opening generation directory: %w", err)
	}
	defer d.Close()
	if err := d.Chmod(0o755); err != nil {
		return "", fmt.Errorf("setting mode of %s: %w", dir, err)
	}
	if os.Geteuid() == 0 {
		if err := d.Chown(0, 0); err != nil {
			return "", fmt.Errorf("setting owner of %s: %w", dir, err)
		}
	}
	for i, f := range storeFiles {
		if files[i] == nil {
			continue
		}
		if err := WriteFileAtomic(filepath.Join(dir, f.name), files[i], f.mode); err != nil {
			return "", fmt.Errorf("installing certificates: %w", err)
		}
	}
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return "", fmt.Errorf("syncing %s: %w", dir, err)
	}
	if err := syncDir(st.Dir); err != nil {
		return "", err
	}
	ok = true
	afterStep("write " + name)
	return name, nil
}

// pointData atomically points Dir/..data at the generation gen.
func (st Store) pointData(gen string) error {
	data := filepath.Join(st.Dir, dataLink)
	if fi, err := os.Lstat(data); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("refusing to install certificates: %s exists and is not a symlink: remove it", data)
	}
	tmp := filepath.Join(st.Dir, dataTmpLink)
	if fi, err := os.Lstat(tmp); err == nil {
		if fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("refusing to install certificates: %s exists and is not a symlink: remove it", tmp)
		}
		if err := os.Remove(tmp); err != nil {
			return fmt.Errorf("installing certificates: %w", err)
		}
	}
	if err := os.Symlink(gen, tmp); err != nil {
		return fmt.Errorf("installing certificates: %w", err)
	}
	if err := os.Rename(tmp, data); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("installing certificates: swapping %s: %w", data, err)
	}
	afterStep("swap " + gen)
	return syncDir(st.Dir)
}

// ensureLinks makes each stable path a relative symlink to ..data/<name>,
// replacing whatever is there with one rename.
func (st Store) ensureLinks() error {
	for _, f := range storeFiles {
		p := filepath.Join(st.Dir, f.name)
		target := dataLink + "/" + f.name
		if t, err := os.Readlink(p); err == nil && t == target {
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			return fmt.Errorf("refusing to install certificates: %s is a directory: remove it", p)
		}
		suffix, err := randomSuffix()
		if err != nil {
			return fmt.Errorf("installing certificates: %w", err)
		}
		tmp := filepath.Join(st.Dir, "."+f.name+linkTmpInfix+suffix)
		if err := os.Symlink(target, tmp); err != nil {
			return fmt.Errorf("installing certificates: %w", err)
		}
		if err := os.Rename(tmp, p); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("installing certificates: replacing %s with a symlink: %w", p, err)
		}
		afterStep("link " + f.name)
	}
	return syncDir(st.Dir)
}

// removeOld removes generation directories other than current and leftover
// temporary links, best effort: what remains is retried on the next Install.
func (st Store) removeOld(current string) {
	entries, err := os.ReadDir(st.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(st.Dir, name)
		switch {
		case strings.HasPrefix(name, GenerationPrefix) && name != current:
			// Only real directories; a symlink with that name is left alone.
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				os.RemoveAll(p)
			}
		case name == dataTmpLink || (strings.HasPrefix(name, ".") && strings.Contains(name, linkTmpInfix)):
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				os.Remove(p)
			}
		}
	}
	_ = syncDir(st.Dir) // best effort, as the removals above
	afterStep("cleanup")
}

// Remove takes out what Install put in Dir: the stable links (only where
// they are tlsdock's symlinks into ..data), ..data and every generation
// directory. Files tlsdock did not create are left alone. The caller
// restores whatever was there before.
func (st Store) Remove() error {
	if fi, err := os.Lstat(st.Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("removing the installed set: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("removing the installed set: %s is not a directory", st.Dir)
	}
	for _, f := range storeFiles {
		p := filepath.Join(st.Dir, f.name)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dataLink+"/") {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("removing %s: %w", p, err)
			}
		}
	}
	for _, name := range []string{dataLink, dataTmpLink} {
		p := filepath.Join(st.Dir, name)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("removing %s: %w", p, err)
			}
		}
	}
	st.removeOld("")
	return syncDir(st.Dir)
}

// Cleanup removes what a killed Install or WriteFileAtomic left in Dir:
// generation directories that ..data does not point at (half-written
// ones hold a key), temporary links, and temporary files in Dir and in
// the current generation. The set in use is never touched, nor anything
// tlsdock did not create. It returns the paths it removed. The caller
// must hold tlsdock's lock.
func (st Store) Cleanup() ([]string, error) {
	if fi, err := os.Lstat(st.Dir); err != nil || !fi.IsDir() {
		return nil, nil
	}
	current := ""
	if t, err := os.Readlink(filepath.Join(st.Dir, dataLink)); err == nil && strings.HasPrefix(t, GenerationPrefix) && !strings.Contains(t, "/") {
		current = t
	}
	var removed []string
	if entries, err := os.ReadDir(st.Dir); err == nil {
		for _, e := range entries {
			name := e.Name()
			stale := strings.HasPrefix(name, GenerationPrefix) && name != current && e.IsDir() ||
				(name == dataTmpLink || strings.HasPrefix(name, ".") && strings.Contains(name, linkTmpInfix)) && e.Type()&os.ModeSymlink != 0
			if stale {
				removed = append(removed, filepath.Join(st.Dir, name))
			}
		}
	}
	st.removeOld(current)
	var errs []error
	names := []string{CAFile, CertFile, KeyFile}
	for _, dir := range []string{st.Dir, filepath.Join(st.Dir, current)} {
		r, err := RemoveTemps(dir, names...)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
		if current == "" {
			break
		}
	}
	return removed, errors.Join(errs...)
}
