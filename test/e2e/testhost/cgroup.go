package testhost

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupPrefix names every cgroup directory a test host creates:
// tlsdock-e2e-NAME, one per hierarchy.
const cgroupPrefix = "tlsdock-e2e-"

// Filesystem magic numbers from linux/magic.h.
const (
	cgroupSuperMagic  = 0x27e0eb
	cgroup2SuperMagic = 0x63677270
)

// hierarchy is one mounted cgroup hierarchy as this process sees it.
type hierarchy struct {
	mountPoint string // for example /sys/fs/cgroup/memory
	current    string // this process's cgroup directory in it
	cpuset     bool
}

// mountEntry is one line of /proc/PID/mountinfo.
type mountEntry struct {
	root, mountPoint, options, fsType, superOptions string
}

func readMountInfo(path string) ([]mountEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 6 || sep < 6 || len(f) < sep+4 {
			continue
		}
		out = append(out, mountEntry{
			root:         unescapeMount(f[3]),
			mountPoint:   unescapeMount(f[4]),
			options:      f[5],
			fsType:       f[sep+1],
			superOptions: f[sep+3],
		})
	}
	return out, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// hierarchies lists every cgroup hierarchy (v1 controllers, the named systemd
// hierarchy and the unified v2 one) mounted under /sys/fs/cgroup, with this
// process's current cgroup in each. All of them matter: with only the v1
// controllers moved, nspawn --keep-unit puts every host into the same
// /payload and /supervisor cgroups of the named systemd hierarchy, and one
// host's systemd then sees (and fails to signal) another host's dockerd.
func hierarchies() ([]hierarchy, error) {
	mounts, err := readMountInfo("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("reading /proc/self/cgroup: %w", err)
	}
	type membership struct {
		ctrls []string
		path  string
	}
	var members []membership
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var ctrls []string
		if parts[1] != "" {
			ctrls = strings.Split(parts[1], ",")
		}
		members = append(members, membership{ctrls, parts[2]})
	}

	var out []hierarchy
	seen := map[string]bool{}
	for _, m := range mounts {
		if (m.fsType != "cgroup" && m.fsType != "cgroup2") || !strings.HasPrefix(m.mountPoint, "/sys/fs/cgroup/") {
			continue
		}
		opts := strings.Split(m.superOptions, ",")
		var path string
		var ctrls []string
		found := false
		for _, mem := range members {
			if m.fsType == "cgroup2" && len(mem.ctrls) == 0 ||
				m.fsType == "cgroup" && len(mem.ctrls) > 0 && allIn(mem.ctrls, opts) {
				path, ctrls, found = mem.path, mem.ctrls, true
				break
			}
		}
		key := m.fsType + ":" + strings.Join(ctrls, ",")
		if !found || seen[key] {
			continue
		}
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.root, "/"))
		if !ok {
			continue // our cgroup is outside what this mount shows
		}
		seen[key] = true
		out = append(out, hierarchy{
			mountPoint: m.mountPoint,
			current:    filepath.Join(m.mountPoint, rel),
			cpuset:     slices.Contains(ctrls, "cpuset"),
		})
	}
	if len(out) == 0 {
		return nil, errors.New("no cgroup hierarchies mounted under /sys/fs/cgroup")
	}
	return out, nil
}

func allIn(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func isCgroupFS(path string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == cgroupSuperMagic || st.Type == cgroup2SuperMagic
}

// createCgroup makes dir (a new cgroup below parent). A cpuset cgroup gets its
// parent's cpus and mems first: a v1 cpuset with empty ones takes no tasks.
func createCgroup(parent, dir string, cpuset bool) error {
	if !isCgroupFS(parent) {
		return fmt.Errorf("%s is not on a cgroup filesystem; refusing to create %s", parent, dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if cpuset {
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join(parent, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
				return fmt.Errorf("copying %s into %s: %w", f, dir, err)
			}
		}
	}
	return nil
}

// cgroupTree returns dir and every cgroup below it, deepest first.
func cgroupTree(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	return dirs
}

// cgroupPIDs lists the processes in dir and below.
func cgroupPIDs(dir string) []int {
	var pids []int
	for _, d := range cgroupTree(dir) {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// killCgroups SIGKILLs every process in dirs (and below) until they are all
// empty or the timeout passes.
func killCgroups(dirs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, d := range dirs {
			if !isCgroupFS(d) {
				continue
			}
			for _, pid := range cgroupPIDs(d) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still alive in %v after %v", left, dirs, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeCgroups removes dirs and every cgroup below them, children first. A
// cgroup stays busy for a moment after its last process died, so it retries.
func removeCgroups(dirs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var errs []error
	for _, top := range dirs {
		if _, err := os.Stat(top); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if !isCgroupFS(top) {
			errs = append(errs, fmt.Errorf("%s is not on a cgroup filesystem; not removing it", top))
			continue
		}
		for _, d := range cgroupTree(top) {
			for {
				err := syscall.Rmdir(d)
				if err == nil || errors.Is(err, syscall.ENOENT) {
					break
				}
				if time.Now().After(deadline) {
					errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return errors.Join(errs...)
}

// findCgroups returns the directories named tlsdock-e2e-* in every cgroup
// hierarchy, at most four levels below its mount point. It does not descend
// into them.
func findCgroups() []string {
	var out []string
	mounts, _ := readMountInfo("/proc/self/mountinfo")
	seen := map[string]bool{}
	for _, m := range mounts {
		if (m.fsType != "cgroup" && m.fsType != "cgroup2") || !strings.HasPrefix(m.mountPoint, "/sys/fs/cgroup/") || seen[m.mountPoint] {
			continue
		}
		seen[m.mountPoint] = true
		base := strings.Count(m.mountPoint, "/")
		_ = filepath.WalkDir(m.mountPoint, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.HasPrefix(d.Name(), cgroupPrefix) {
				out = append(out, p)
				return filepath.SkipDir
			}
			if strings.Count(p, "/")-base >= 4 {
				return filepath.SkipDir
			}
			return nil
		})
	}
	return out
}
