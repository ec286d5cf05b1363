package certstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// WriteFileAtomic replaces path with data, atomically, with exactly mode.
//
// It creates a temporary file next to path (named with TempPrefix, so
// that RemoveTemps can take out what a kill leaves) directly with mode (O_CREATE|O_EXCL
// and O_NOFOLLOW, so a private key is never readable by others, not even for
// a moment), sets exactly mode with fchmod (whatever the umask), changes the
// owner to root:root when running as root, writes and fsyncs the data, renames
// the file over path and fsyncs the directory. Only the permission bits of
// mode are used.
//
// It refuses, with an error naming path, when path exists and is a symlink or
// not a regular file. It creates no parent directories. This, with
// WriteFileAtomicAt (the same body inside an open directory), is the one
// atomic-write helper of the whole project.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dirName, base := filepath.Split(path)
	if dirName == "" {
		dirName = "."
	}
	dir, err := os.Open(dirName)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer dir.Close()
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		uid, gid = 0, 0
	}
	return writeFileAtomicAt(dir, path, base, data, mode, uid, gid)
}

// TempPrefix starts the name of every temporary file WriteFileAtomic
// creates (TempPrefix + the target's name + "." + a random suffix), so
// that RemoveTemps recognises tlsdock's leftovers and only those.
const TempPrefix = ".tlsdock-tmp."

// RemoveTemps removes the temporary files of WriteFileAtomic that a killed
// tlsdock left in dir: regular files named with TempPrefix, and those of
// an older tlsdock (".NAME.tmp-" and 16 hex digits) when NAME is one of
// legacy, the names tlsdock writes in dir. Anything else, symlinks and
// directories included, is left alone. A missing dir is not an error. It
// returns the paths it removed. The caller must hold tlsdock's lock: a
// temporary file of a write in progress looks the same.
func RemoveTemps(dir string, legacy ...string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking for leftover temporary files in %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !isTemp(e.Name(), legacy) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing leftover temporary file %s: %w", p, err))
			continue
		}
		removed = append(removed, p)
	}
	if len(removed) > 0 {
		if err := syncDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// isTemp reports whether name is a temporary file of WriteFileAtomic, of
// this tlsdock or (for a target in legacy) of an older one.
func isTemp(name string, legacy []string) bool {
	if strings.HasPrefix(name, TempPrefix) && len(name) > len(TempPrefix) {
		return true
	}
	for _, base := range legacy {
		if suffix, ok := strings.CutPrefix(name, "."+base+".tmp-"); ok && len(suffix) == 16 {
			if _, err := hex.DecodeString(suffix); err == nil {
				return true
			}
		}
	}
	return false
}

// afterTempCreate lets tests look at the temporary file right after it is
// created.
var afterTempCreate = func(tmp string) {}

// syncDir fsyncs a directory so that renames and new entries in it are
// durable. Filesystems that cannot fsync a directory (EINVAL) are tolerated.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// randomSuffix names temporary files and generation directories. It is not a
// decision, so it uses crypto/rand directly.
// Tests replace it to plant files at a known name.
var randomSuffix = func() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
