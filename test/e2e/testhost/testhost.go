package testhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultRootFS is the rootfs that test/e2e/setup-host.sh builds. The
// environment variable TLSDOCK_E2E_ROOTFS overrides it.
const DefaultRootFS = "/var/cache/tlsdock-e2e/rootfs"

// rootFSMarker exists in the rootfs once setup-host.sh has finished it.
const rootFSMarker = ".tlsdock-complete"

// Options configures Boot. The zero value is usable.
type Options struct {
	// RootFS is the lower, read-only layer of the overlay. Default:
	// $TLSDOCK_E2E_ROOTFS, else DefaultRootFS.
	RootFS string
	// Name names the host: its machine name, its cgroups (tlsdock-e2e-NAME)
	// and its lock file. Lower-case letters, digits and dashes; at most 48.
	// Default: "h-" and random hex.
	Name string
	// Logf receives progress messages. Default: discard.
	Logf func(format string, args ...any)
	// WorkDir holds the overlay's upper, work and merged directories and the
	// console log. Default: WorkRoot/NAME. Close removes it.
	WorkDir string
	// Network, if set, puts the host on that test network too: eth0 inside,
	// with the network's next address (Host.Addr), besides its own
	// loopback. Close the hosts before the network.
	Network *Network
}

// Host is one booted test host.
type Host struct {
	// Name is the host's name (see Options.Name).
	Name string
	// PID is the guest's systemd (PID 1 inside) as seen from this machine.
	PID int
	// Root is the merged overlay directory, the guest's / before its own
	// mounts. WriteFile and ReadFile go through /proc/PID/root instead, so
	// that they also see the guest's tmpfs mounts (/run, /tmp).
	Root string
	// WorkDir is the host's work directory (see Options.WorkDir).
	WorkDir string
	// ConsoleLog is the file that receives the guest's console.
	ConsoleLog string
	// BootTime is how long Boot took until docker.service was active.
	BootTime time.Duration
	// Suite is the Debian release of the host's rootfs (see SuiteOf).
	Suite Suite
	// Addr is the host's IPv4 address on Options.Network (on its eth0),
	// or empty without one.
	Addr string

	logf   func(format string, args ...any)
	hier   []hierarchy // the cgroup hierarchies, one cgroup of the host's in each
	lock   *os.File
	st     state
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for

	net      *Network
	netIndex int // the host's number on net, from 2; 0 before attach

	closeOnce sync.Once
	closeErr  error
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$`)

// rootFS is the rootfs to boot: root if set, else $TLSDOCK_E2E_ROOTFS, else
// DefaultRootFS.
func rootFS(root string) string {
	if root == "" {
		root = os.Getenv("TLSDOCK_E2E_ROOTFS")
	}
	if root == "" {
		root = DefaultRootFS
	}
	return root
}

// Boot starts a fresh test host and waits until docker.service is active in
// it. On error nothing is left behind.
func Boot(ctx context.Context, opt Options) (*Host, error) {
	start := time.Now()
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	opt.RootFS = rootFS(opt.RootFS)
	if opt.Name == "" {
		opt.Name = "h-" + randomHex(4)
	}
	if !nameRE.MatchString(opt.Name) {
		return nil, fmt.Errorf("test host name %q: use 1 to 48 lower-case letters, digits and inner dashes", opt.Name)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("booting a test host needs root")
	}
	if strings.ContainsAny(opt.RootFS, ",:") {
		return nil, fmt.Errorf("rootfs path %q: overlayfs cannot take a path with ',' or ':'", opt.RootFS)
	}
	if _, err := os.Stat(filepath.Join(opt.RootFS, rootFSMarker)); err != nil {
		return nil, fmt.Errorf("rootfs %s is not ready (no %s): run test/e2e/setup-host.sh as root first", opt.RootFS, rootFSMarker)
	}
	for _, bin := range []string{"systemd-nspawn", "script", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not found: run test/e2e/setup-host.sh as root first", bin)
		}
	}
	if err := CleanupStale(); err != nil {
		opt.Logf("testhost: cleaning up stale hosts: %v", err)
	}

	h := &Host{Name: opt.Name, logf: opt.Logf, Suite: SuiteOf(opt.RootFS), net: opt.Network}
	lock, err := acquireLock(opt.Name)
	if err != nil {
		return nil, err
	}
	h.lock = lock
	h.st = state{Name: opt.Name, Owner: os.Getpid()}
	if err := h.boot(ctx, opt); err != nil {
		err = fmt.Errorf("booting test host %s: %w%s", h.Name, err, h.consoleTail(20))
		if cerr := h.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	h.BootTime = time.Since(start)
	h.logf("testhost: %s booted in %v (systemd pid %d, root %s)", h.Name, h.BootTime.Round(time.Millisecond), h.PID, h.Root)
	return h, nil
}

func (h *Host) boot(ctx context.Context, opt Options) error {
	// Plan the work directory and the cgroups (one per hierarchy, below this
	// process's own), and record them in the lock file before creating
	// anything, so that a crash from here on leaves a state CleanupStale can
	// undo, and CleanupStale in other processes knows they are alive.
	h.WorkDir = opt.WorkDir
	if h.WorkDir == "" {
		h.WorkDir = filepath.Join(WorkRoot, h.Name)
	}
	h.WorkDir = filepath.Clean(h.WorkDir)
	if !filepath.IsAbs(h.WorkDir) || strings.ContainsAny(h.WorkDir, ",:") {
		return fmt.Errorf("work dir %q: want an absolute path without ',' or ':' (overlayfs options)", h.WorkDir)
	}
	h.Root = filepath.Join(h.WorkDir, "merged")
	h.ConsoleLog = filepath.Join(h.WorkDir, "console.log")
	upper, work := filepath.Join(h.WorkDir, "upper"), filepath.Join(h.WorkDir, "work")
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, hy := range hs {
		h.st.Cgroups = append(h.st.Cgroups, filepath.Join(hy.current, cgroupPrefix+h.Name))
	}
	h.st.WorkDir, h.st.Merged = h.WorkDir, h.Root
	if err := writeState(h.lock, h.st); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}

	if err := os.MkdirAll(h.WorkDir, 0o700); err != nil {
		return err
	}
	for _, d := range []string{upper, work, h.Root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	data := "lowerdir=" + opt.RootFS + ",upperdir=" + upper + ",workdir=" + work
	if err := syscall.Mount("overlay", h.Root, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount -t overlay -o %s overlay %s: %w", data, h.Root, err)
	}
	h.hier = hs
	return h.start(ctx)
}

// start creates the host's cgroups, starts nspawn on the mounted overlay and
// waits until docker.service is active. Boot and PowerOn call it.
func (h *Host) start(ctx context.Context) error {
	var procs []string
	for i, hy := range h.hier {
		if err := createCgroup(hy.current, h.st.Cgroups[i], hy.cpuset); err != nil {
			return fmt.Errorf("creating cgroup: %w", err)
		}
		procs = append(procs, filepath.Join(h.st.Cgroups[i], "cgroup.procs"))
	}

	// The wrapper moves itself into the new cgroups, then becomes script,
	// which runs nspawn on a pseudo-terminal.
	nspawn := []string{
		"systemd-nspawn", "-q", "-D", h.Root, "-b",
		"--register=no", "--keep-unit", "--capability=all",
		"--system-call-filter=@keyring", "--private-network",
		"--machine=" + h.Name,
	}
	out, err := os.OpenFile(filepath.Join(h.WorkDir, "script.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	const wrapper = `for f in "$@"; do echo $$ >"$f" || exit 97; done; exec script -aqfc "$NSPAWN" "$CONSOLE_LOG"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", wrapper, "sh"}, procs...)...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SHELL=/bin/sh", "TERM=dumb",
		"NSPAWN=exec " + shellJoin(nspawn),
		"CONSOLE_LOG=" + h.ConsoleLog,
	}
	// Debian sid's systemd boots on this machine's cgroup v1 only with
	// the unified hierarchy (DESIGN.md): its suite sets the switch, and
	// one set in this process's environment is passed through.
	if v := os.Getenv("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"); v != "" {
		cmd.Env = append(cmd.Env, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="+v)
	} else if h.Suite.UnifiedHierarchy {
		cmd.Env = append(cmd.Env, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own session: a ^C for the test binary does not kill the host
	// half-way; Close or CleanupStale does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	h.logf("testhost: %s: starting %s", h.Name, strings.Join(nspawn, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting nspawn: %w", err)
	}
	h.cmd = cmd
	h.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(h.exited)
	}()

	if err := h.findGuest(ctx); err != nil {
		return err
	}
	if err := h.remountCgroupsRW(ctx); err != nil {
		return err
	}
	if err := h.loopbackUp(ctx); err != nil {
		return err
	}
	if err := h.attach(ctx); err != nil {
		return err
	}
	return h.WaitActive(ctx, "docker.service")
}

// findGuest waits for nspawn's child to become systemd and records its PID.
func (h *Host) findGuest(ctx context.Context) error {
	selfNS, _ := os.Readlink("/proc/self/ns/pid")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		// script runs nspawn through $SHELL -c, which may or may not fork.
		for _, nspawn := range descendantsOf(h.cmd.Process.Pid, 3) {
			if comm(nspawn) != "systemd-nspawn" {
				continue
			}
			for _, c := range childrenOf(nspawn) {
				ns, _ := os.Readlink("/proc/" + strconv.Itoa(c) + "/ns/pid")
				if comm(c) == "systemd" && ns != "" && ns != selfNS {
					h.PID = c
					return nil
				}
			}
		}
		select {
		case <-h.exited:
			return fmt.Errorf("nspawn exited before systemd started (%s)", h.scriptOutput())
		case <-ctx.Done():
			return fmt.Errorf("waiting for the guest's systemd: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// parents maps every process to its parent (this kernel has no
// /proc/PID/task/TID/children).
func parents() map[int]int {
	entries, _ := os.ReadDir("/proc")
	out := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parens.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				out[pid] = ppid
			}
		}
	}
	return out
}

func childrenOf(pid int) []int {
	var out []int
	for c, p := range parents() {
		if p == pid {
			out = append(out, c)
		}
	}
	return out
}

// descendantsOf lists the processes below pid, at most depth levels down.
func descendantsOf(pid, depth int) []int {
	ps := parents()
	var out []int
	level := []int{pid}
	for range depth {
		var next []int
		for c, p := range ps {
			if slices.Contains(level, p) {
				next = append(next, c)
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// remountCgroupsRW makes the cgroup controllers that nspawn mounted
// read-only writable inside, so that runc can create container cgroups.
func (h *Host) remountCgroupsRW(ctx context.Context) error {
	mounts, err := readMountInfo("/proc/" + strconv.Itoa(h.PID) + "/mountinfo")
	if err != nil {
		return fmt.Errorf("reading the guest's mountinfo: %w", err)
	}
	for _, m := range mounts {
		if m.fsType != "cgroup" || !strings.HasPrefix(m.mountPoint, "/sys/fs/cgroup/") ||
			!slices.Contains(strings.Split(m.options, ","), "ro") {
			continue
		}
		cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(h.PID), "-m", "--",
			"mount", "-o", "remount,bind,rw", m.mountPoint)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("remounting %s read-write inside: %w: %s", m.mountPoint, err, out)
		}
	}
	return nil
}

// loopbackUp brings lo up inside if it is down.
func (h *Host) loopbackUp(ctx context.Context) error {
	out, _, err := h.ExecNet(ctx, nil, nil, "ip", "-o", "link", "show", "lo")
	if err != nil {
		return err
	}
	s := string(out)
	if i, j := strings.IndexByte(s, '<'), strings.IndexByte(s, '>'); i >= 0 && j > i &&
		slices.Contains(strings.Split(s[i+1:j], ","), "UP") {
		return nil
	}
	h.logf("testhost: %s: lo is down; bringing it up", h.Name)
	_, _, err = h.ExecNet(ctx, nil, nil, "ip", "link", "set", "lo", "up")
	return err
}

// Close stops the host (poweroff, then SIGKILL), unmounts its overlay and
// removes its veth pair on a test network, its cgroups, its work directory
// and its lock. It is safe to call more than once and on a host that failed
// to boot.
func (h *Host) Close() error {
	h.closeOnce.Do(func() { h.closeErr = h.close() })
	return h.closeErr
}

func (h *Host) close() error {
	start := time.Now()
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := h.detach(ctx); err != nil {
		errs = append(errs, err)
	}
	cancel()
	if h.cmd != nil {
		if h.PID > 0 && !h.hasExited() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _, err := h.Exec(ctx, nil, "systemctl", "poweroff", "--no-block")
			cancel()
			if err != nil {
				h.logf("testhost: %s: poweroff: %v", h.Name, err)
			}
			if !h.waitExit(15 * time.Second) {
				h.logf("testhost: %s: no poweroff after 15s; killing it", h.Name)
			}
		}
		if !h.hasExited() {
			if h.PID > 0 {
				// SIGKILL for PID 1 of a pid namespace ends the namespace.
				_ = syscall.Kill(h.PID, syscall.SIGKILL)
			}
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	// Whatever is left in the host's cgroups (the wrapper if it died before
	// exec, nspawn, stray guest processes) goes now.
	if err := killCgroups(h.st.Cgroups, 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	if h.cmd != nil && !h.waitExit(10*time.Second) {
		errs = append(errs, fmt.Errorf("script (pid %d) did not exit", h.cmd.Process.Pid))
	}
	if err := teardown(h.st); err != nil {
		errs = append(errs, err)
	}
	if h.lock != nil {
		if len(errs) == 0 {
			os.Remove(h.lock.Name())
		}
		h.lock.Close() // a lock file left behind lets CleanupStale retry later
	}
	h.PID = 0
	h.logf("testhost: %s closed in %v", h.Name, time.Since(start).Round(time.Millisecond))
	if len(errs) > 0 {
		return fmt.Errorf("closing test host %s: %w", h.Name, errors.Join(errs...))
	}
	return nil
}

func (h *Host) hasExited() bool {
	select {
	case <-h.exited:
		return true
	default:
		return false
	}
}

func (h *Host) waitExit(d time.Duration) bool {
	select {
	case <-h.exited:
		return true
	case <-time.After(d):
		return false
	}
}

func (h *Host) scriptOutput() string {
	b, _ := os.ReadFile(filepath.Join(h.WorkDir, "script.out"))
	return strings.TrimSpace(tail(b, 1000))
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]|\r|\x00`)

// consoleTail returns the last n lines of the guest's console, for errors.
func (h *Host) consoleTail(n int) string {
	b, err := os.ReadFile(h.ConsoleLog)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(ansiRE.ReplaceAllString(string(b), "")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\nconsole (last lines):\n" + strings.Join(lines, "\n")
}
