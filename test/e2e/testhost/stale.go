package testhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// WorkRoot holds one lock file (NAME.lock) per host and, unless
// Options.WorkDir says otherwise, its work directory (NAME).
const WorkRoot = "/var/tmp/tlsdock-e2e"

// state is what a host records in its lock file, so that CleanupStale can undo
// everything once the owning process is gone.
type state struct {
	Name    string   `json:"name"`
	Owner   int      `json:"owner"`
	WorkDir string   `json:"work_dir"`
	Merged  string   `json:"merged"`
	Cgroups []string `json:"cgroups"`
}

func lockPath(name string) string { return filepath.Join(WorkRoot, name+".lock") }

// acquireLock creates and locks NAME.lock. The lock is an flock, so it goes
// away with the process however that ends; a lock file that can be locked
// belongs to a dead owner.
func acquireLock(name string) (*os.File, error) {
	return acquireLockAt(lockPath(name), "test host name "+strconv.Quote(name))
}

// acquireLockAt creates and locks the lock file p; what names the thing it
// locks in errors.
func acquireLockAt(p, what string) (*os.File, error) {
	if err := os.MkdirAll(WorkRoot, 0o700); err != nil {
		return nil, err
	}
	for range 10 {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s is in use (%s is locked by a live process)", what, p)
			}
			return nil, fmt.Errorf("locking %s: %w", p, err)
		}
		// CleanupStale may have removed the file between our open and our
		// flock; then our lock is on an orphan inode. Retry.
		var a, b syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &a) == nil && syscall.Stat(p, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("could not lock %s", p)
}

func writeState(f *os.File, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// lockHeld reports whether a live process holds NAME.lock.
func lockHeld(name string) bool {
	f, err := os.Open(lockPath(name))
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}

// CleanupStale removes what earlier runs that crashed left behind: running
// hosts (their processes are killed), overlay mounts under WorkRoot, cgroup
// directories named tlsdock-e2e-*, work directories, lock files and the
// network namespaces of test networks (tlsdock-e2e-net-*). It recognizes
// hosts and networks of live processes by their locks and leaves them alone,
// so it is safe while other tests run. Boot and NewNetwork call it.
func CleanupStale() error {
	var errs []error

	// 1. Lock files nobody holds: their state says what to undo.
	locks, _ := filepath.Glob(filepath.Join(WorkRoot, "*.lock"))
	for _, p := range locks {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // live, or being cleaned by someone else
			continue
		}
		var st state
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			if err := json.Unmarshal(b, &st); err != nil {
				errs = append(errs, fmt.Errorf("reading %s: %w", p, err))
			}
		}
		if err := teardown(st); err != nil {
			errs = append(errs, fmt.Errorf("cleaning up stale host %q: %w", st.Name, err))
		} else {
			os.Remove(p)
		}
		f.Close()
	}

	// 2. Cgroups named tlsdock-e2e-NAME without a live lock (for example from
	// a crash before the state was written, or made by hand).
	var orphans []string
	for _, d := range findCgroups() {
		if !lockHeld(strings.TrimPrefix(filepath.Base(d), cgroupPrefix)) {
			orphans = append(orphans, d)
		}
	}
	if len(orphans) > 0 {
		if err := killCgroups(orphans, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
		if err := removeCgroups(orphans, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}

	// 3. Mounts and directories under WorkRoot without a live lock, neither
	// by their name nor as the recorded work directory of a live host.
	live := func(dir string) bool {
		if lockHeld(filepath.Base(dir)) {
			return true
		}
		locks, _ := filepath.Glob(filepath.Join(WorkRoot, "*.lock"))
		for _, p := range locks {
			var st state
			if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &st) == nil &&
				st.WorkDir != "" && (dir == st.WorkDir || strings.HasPrefix(st.WorkDir, dir+"/")) &&
				lockHeld(strings.TrimSuffix(filepath.Base(p), ".lock")) {
				return true
			}
		}
		return false
	}
	mounts, _ := readMountInfo("/proc/self/mountinfo")
	for i := len(mounts) - 1; i >= 0; i-- {
		rel, ok := strings.CutPrefix(mounts[i].mountPoint, WorkRoot+"/")
		if !ok || live(filepath.Join(WorkRoot, strings.SplitN(rel, "/", 2)[0])) {
			continue
		}
		if err := unmount(mounts[i].mountPoint); err != nil {
			errs = append(errs, err)
		}
	}
	entries, _ := os.ReadDir(WorkRoot)
	for _, e := range entries {
		if !e.IsDir() || live(filepath.Join(WorkRoot, e.Name())) {
			continue
		}
		if err := removeWorkDir(filepath.Join(WorkRoot, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}

	// 4. Test networks: a network's namespace goes once its lock is free.
	// Hosts go first (above): their veth pairs go with their namespaces.
	if err := cleanupStaleNetworks(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// teardown undoes a host from its recorded state: kill its processes, unmount
// its overlay, remove its cgroups and its work directory.
func teardown(st state) error {
	var errs []error
	if len(st.Cgroups) > 0 {
		if err := killCgroups(st.Cgroups, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if st.Merged != "" {
		if err := unmount(st.Merged); err != nil {
			errs = append(errs, err)
		}
	}
	if len(st.Cgroups) > 0 {
		if err := removeCgroups(st.Cgroups, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if st.WorkDir != "" {
		if err := removeWorkDir(st.WorkDir); err != nil {
			errs = append(errs, err)
		}
	}
	if st.Name != "" {
		// nspawn leaves these behind when /run is not a tmpfs ("Attempted to
		// remove disk file system under ..., and we can't allow that").
		for _, d := range []string{"/run/systemd/nspawn/propagate/", "/run/systemd/nspawn/unix-export/"} {
			os.Remove(d + st.Name)
		}
	}
	return errors.Join(errs...)
}

// isMounted reports whether path is a mount point in this mount namespace.
func isMounted(path string) bool {
	mounts, _ := readMountInfo("/proc/self/mountinfo")
	for _, m := range mounts {
		if m.mountPoint == path {
			return true
		}
	}
	return false
}

// unmount unmounts path (every mount stacked on it), lazily if it stays busy.
func unmount(path string) error {
	deadline := time.Now().Add(5 * time.Second)
	for isMounted(path) {
		err := syscall.Unmount(path, 0)
		if err == nil {
			continue // another mount may be stacked below
		}
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if time.Now().After(deadline) {
			if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("unmounting %s: %w", path, err)
			}
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// removeWorkDir deletes a work directory, but never while anything is still
// mounted inside it.
func removeWorkDir(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	mounts, _ := readMountInfo("/proc/self/mountinfo")
	for _, m := range mounts {
		if m.mountPoint == dir || strings.HasPrefix(m.mountPoint, dir+"/") {
			return fmt.Errorf("not removing %s: %s is still mounted", dir, m.mountPoint)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
