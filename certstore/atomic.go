package certstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFileAtomic replaces path with data, atomically, with exactly mode.
//
// It creates a temporary file next to path directly with mode (O_CREATE|O_EXCL
// and O_NOFOLLOW, so a private key is never readable by others, not even for
// a moment), sets exactly mode with fchmod (whatever the umask), changes the
// owner to root:root when running as root, writes and fsyncs the data, renames
// the file over path and fsyncs the directory. Only the permission bits of
// mode are used.
//
// It refuses, with an error naming path, when path exists and is a symlink or
// not a regular file. It creates no parent directories. This is the one
// atomic-write helper of the whole project.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	mode = mode.Perm()
	if fi, lerr := os.Lstat(path); lerr == nil {
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("refusing to write %s: it is a symlink and tlsdock writes regular files only: remove it and try again", path)
		case !fi.Mode().IsRegular():
			return fmt.Errorf("refusing to write %s: it is not a regular file (mode %v): remove it and try again", path, fi.Mode())
		}
	} else if !errors.Is(lerr, os.ErrNotExist) {
		return fmt.Errorf("writing %s: %w", path, lerr)
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	suffix, err := randomSuffix()
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := filepath.Join(dir, "."+base+".tmp-"+suffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	afterTempCreate(tmp)
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		if err = f.Chown(0, 0); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
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
