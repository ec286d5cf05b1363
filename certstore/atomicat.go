package certstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFileAtomicAt is WriteFileAtomic inside an open directory, for a
// file that belongs to an account other than root: a client bundle that
// root writes into a user's directory. Every step names the file relative
// to dir's descriptor and follows no symlink (O_NOFOLLOW, O_EXCL, fstatat
// without following), so that a directory its owner can change cannot
// send the write elsewhere. The temporary file is created with mode,
// fchmod'ed and fchown'ed to uid:gid before any data is written, fsynced
// and renamed over name, and dir is fsynced. It refuses a name that is a
// symlink or not a regular file.
func WriteFileAtomicAt(dir *os.File, name string, data []byte, mode os.FileMode, uid, gid int) error {
	return writeFileAtomicAt(dir, filepath.Join(dir.Name(), name), name, data, mode, uid, gid)
}

// writeFileAtomicAt is the one body of WriteFileAtomic and
// WriteFileAtomicAt: path names the file in messages. uid and gid -1
// leave the owner as created.
func writeFileAtomicAt(dir *os.File, path, name string, data []byte, mode os.FileMode, uid, gid int) (err error) {
	mode = mode.Perm()
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return fmt.Errorf("writing %s: %q is not a file name", path, name)
	}
	dfd := int(dir.Fd())
	var st unix.Stat_t
	switch serr := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case serr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("refusing to write %s: it is a symlink and tlsdock writes regular files only: remove it and try again", path)
	case serr == nil && st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("refusing to write %s: it is not a regular file: remove it and try again", path)
	case serr != nil && !errors.Is(serr, unix.ENOENT):
		return fmt.Errorf("writing %s: %w", path, serr)
	}
	suffix, err := randomSuffix()
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := TempPrefix + name + "." + suffix
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode))
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), tmp))
	afterTempCreate(f.Name())
	defer func() {
		if err != nil {
			f.Close()
			_ = unix.Unlinkat(dfd, tmp, 0)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if uid != -1 && (os.Geteuid() == 0 || uid == os.Geteuid()) {
		if err = f.Chown(uid, gid); err != nil {
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
	if err = unix.Renameat(dfd, tmp, dfd, name); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := dir.Sync(); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("writing %s: syncing directory %s: %w", path, dir.Name(), err)
	}
	return nil
}
