package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run runs args inside h and returns stdout; any error fails the test.
func run(t *testing.T, ctx context.Context, h *testhost.Host, args ...string) string {
	t.Helper()
	out, _, err := h.Exec(ctx, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestHostRecipe proves the recipe of DESIGN.md on this machine: real
// systemd, real dockerd that can run containers, a private network.
func TestHostRecipe(t *testing.T) {
	h := testhost.Start(t)
	ctx := ctxFor(t, 3*time.Minute)
	t.Logf("boot took %v", h.BootTime)

	if got := strings.TrimSpace(run(t, ctx, h, "cat", "/proc/1/comm")); got != "systemd" {
		t.Errorf("PID 1 inside is %q, want systemd", got)
	}
	if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "docker.service")); got != "active" {
		t.Errorf("docker.service is %q, want active", got)
	}
	if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-system-running")); got != "running" {
		t.Errorf("systemctl is-system-running = %q, want running; failed units:\n%s",
			got, run(t, ctx, h, "systemctl", "--failed", "--no-legend"))
	}
	info := strings.Fields(run(t, ctx, h, "docker", "info", "--format", "{{.ServerVersion}} {{.Driver}} {{.CgroupVersion}} {{.CgroupDriver}}"))
	if len(info) != 4 || !strings.HasPrefix(info[0], h.Suite.Docker) || info[1] != "vfs" || info[2] != "1" || info[3] != "cgroupfs" {
		t.Errorf("docker info = %q, want dockerd %sx, vfs, cgroup v1, cgroupfs", info, h.Suite.Docker)
	}
	if v := strings.Fields(run(t, ctx, h, "systemctl", "--version")); len(v) < 2 || v[1] != h.Suite.Systemd {
		t.Errorf("systemctl --version = %q, want systemd %s", v, h.Suite.Systemd)
	}
	if j := h.Journal(ctx, "docker.service", 50); !strings.Contains(j, "API listen on /run/docker.sock") {
		t.Errorf("docker.service journal lacks %q:\n%s", "API listen on /run/docker.sock", j)
	}

	// Every cgroup of the guest is below its own tlsdock-e2e-NAME.
	cg, err := os.ReadFile("/proc/" + strconv.Itoa(h.PID) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		if !strings.Contains(line, "/tlsdock-e2e-"+h.Name+"/") && !strings.HasSuffix(line, "/tlsdock-e2e-"+h.Name) {
			t.Errorf("guest systemd cgroup %q is not below tlsdock-e2e-%s", line, h.Name)
		}
	}

	t.Run("containers", func(t *testing.T) {
		if err := h.ImportTinyImage(ctx, "tiny"); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(run(t, ctx, h, "docker", "image", "inspect", "-f", "{{json .Config.Entrypoint}}", "tiny")); got != `["/tiny"]` {
			t.Errorf("tiny entrypoint = %s, want [\"/tiny\"]", got)
		}
		if got := run(t, ctx, h, "docker", "run", "--rm", "tiny", "echo", "hello", "world"); got != "hello world\n" {
			t.Errorf("docker run tiny echo = %q, want %q", got, "hello world\n")
		}
		out, _, err := h.Exec(ctx, strings.NewReader("hi\n"), "docker", "run", "-i", "--rm", "tiny", "cat")
		if err != nil || string(out) != "hi\n" {
			t.Errorf("echo hi | docker run -i --rm tiny cat = %q, %v; want %q", out, err, "hi\n")
		}

		// dockerd 20.10 refuses one-character names ("Invalid container
		// name (s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed").
		id := strings.TrimSpace(run(t, ctx, h, "docker", "run", "-d", "--name", "sleeper", "tiny", "sleep"))
		if len(id) != 64 {
			t.Fatalf("docker run -d printed %q, want a container id", id)
		}
		time.Sleep(2 * time.Second)
		st := strings.Fields(run(t, ctx, h, "docker", "inspect", "-f", "{{.State.Running}} {{.State.Pid}} {{.RestartCount}}", "sleeper"))
		if len(st) != 3 || st[0] != "true" || st[1] == "0" || st[2] != "0" {
			t.Fatalf("sleeper state = %q, want running with a pid and no restarts", st)
		}
		if got := strings.TrimSpace(run(t, ctx, h, "docker", "ps", "-q", "--no-trunc", "--filter", "name=sleeper")); got != id {
			t.Errorf("docker ps = %q, want %q", got, id)
		}
		// The container's process is real: inside the guest's pid namespace
		// its pid is alive and runs /tiny.
		if got := strings.TrimSpace(run(t, ctx, h, "cat", "/proc/"+st[1]+"/cmdline")); got != "/tiny\x00sleep\x00" && got != "/tiny\x00sleep" {
			t.Errorf("container pid %s runs %q, want /tiny sleep", st[1], got)
		}
		start := time.Now()
		run(t, ctx, h, "docker", "stop", "sleeper")
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("docker stop took %v: tiny sleep should exit on SIGTERM", d)
		}
	})

	t.Run("private network", func(t *testing.T) {
		out, _, err := h.ExecNet(ctx, nil, nil, "ip", "-o", "addr", "show")
		if err != nil {
			t.Fatal(err)
		}
		machine := map[string]bool{}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
					machine[ipn.IP.String()] = true
				}
			}
		}
		loV4 := false
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 4 {
				continue
			}
			ifname, addr := f[1], strings.Split(f[3], "/")[0]
			switch {
			case ifname == "lo":
				loV4 = loV4 || addr == "127.0.0.1"
			case ifname == "docker0" || strings.HasPrefix(ifname, "veth"):
				// made by the guest's dockerd
			default:
				t.Errorf("guest has interface %s (%s); want only lo (and docker's own)", ifname, addr)
			}
			if machine[addr] {
				t.Errorf("guest network namespace shows the machine's address %s", addr)
			}
		}
		if !loV4 {
			t.Errorf("lo has no 127.0.0.1 inside:\n%s", out)
		}
		if len(machine) == 0 {
			t.Log("this machine has no non-loopback address to compare with")
		}
		// Nothing of the machine listens in there: the machine's docker CLI
		// finds no daemon on the usual TLS port.
		if _, _, err := h.ExecNet(ctx, []string{"DOCKER_HOST=tcp://127.0.0.1:2376"}, nil, "/usr/local/bin/docker", "version"); err == nil ||
			!strings.Contains(err.Error(), "Cannot connect to the Docker daemon at tcp://127.0.0.1:2376") {
			t.Errorf("docker version against tcp://127.0.0.1:2376 inside: err = %v, want cannot connect", err)
		}
	})

	t.Run("files", func(t *testing.T) {
		// /etc is the overlay; /run is a tmpfs inside the guest.
		for _, p := range []string{"/etc/tlsdock-e2e/probe.conf", "/run/tlsdock-e2e/probe"} {
			want := "written from outside to " + p + "\n"
			if err := h.WriteFile(p, []byte(want), 0o640); err != nil {
				t.Fatal(err)
			}
			if got := run(t, ctx, h, "cat", p); got != want {
				t.Errorf("cat %s inside = %q, want %q", p, got, want)
			}
			if got := strings.TrimSpace(run(t, ctx, h, "stat", "-c", "%a %U", p)); got != "640 root" {
				t.Errorf("stat %s = %q, want 640 root", p, got)
			}
		}
		if _, err := os.Stat(filepath.Join(h.Root, "etc/tlsdock-e2e/probe.conf")); err != nil {
			t.Errorf("file written to /etc is not in the overlay: %v", err)
		}
		src := filepath.Join(t.TempDir(), "src")
		if err := os.WriteFile(src, []byte("copied"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := h.CopyIn(src, "/var/run/copied", 0o400); err != nil { // /var/run -> /run inside
			t.Fatal(err)
		}
		if got := run(t, ctx, h, "stat", "-c", "%a %s", "/run/copied"); strings.TrimSpace(got) != "400 6" {
			t.Errorf("stat /run/copied = %q, want 400 6", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, stderr, err := h.Exec(ctx, nil, "sh", "-c", "echo oops >&2; exit 3")
		if err == nil || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "oops") || string(stderr) != "oops\n" {
			t.Errorf("Exec of a failing command: err = %v, stderr = %q; want exit code 3 and oops", err, stderr)
		}
		// Type=oneshot: activating until the command exits, then failed. A
		// simple service is active from the fork on, and WaitActive could
		// see that before the shell exits (it did on trixie).
		unit := "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo e2e-broken-unit >&2; exit 7'\n"
		if err := h.WriteFile("/etc/systemd/system/e2e-broken.service", []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, h, "systemctl", "daemon-reload")
		run(t, ctx, h, "systemctl", "start", "--no-block", "e2e-broken.service")
		err = h.WaitActive(ctx, "e2e-broken.service")
		if err == nil || !strings.Contains(err.Error(), "failed") || !strings.Contains(err.Error(), "e2e-broken-unit") {
			t.Errorf("WaitActive on a failing unit = %v, want failed with its journal", err)
		}
	})
}

// TestTwoHostsInParallel boots two hosts at once and checks that they share
// nothing: cgroups, namespaces, files, docker.
func TestTwoHostsInParallel(t *testing.T) {
	hs := testhost.StartN(t, 2)
	a, b := hs[0], hs[1]
	ctx := ctxFor(t, 3*time.Minute)
	t.Logf("boot took %v and %v", a.BootTime, b.BootTime)

	if a.Name == b.Name || a.PID == b.PID || a.Root == b.Root {
		t.Fatalf("hosts share a name, pid or root: %+v %+v", a, b)
	}
	for _, ns := range []string{"net", "mnt", "pid", "uts", "ipc", "cgroup"} {
		la, _ := os.Readlink("/proc/" + strconv.Itoa(a.PID) + "/ns/" + ns)
		lb, _ := os.Readlink("/proc/" + strconv.Itoa(b.PID) + "/ns/" + ns)
		self, _ := os.Readlink("/proc/self/ns/" + ns)
		if la == lb || la == self || lb == self {
			t.Errorf("%s namespaces: a=%s b=%s self=%s; want three different ones", ns, la, lb, self)
		}
	}
	for _, h := range hs {
		if err := h.WriteFile("/etc/whoami", []byte(h.Name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := h.ImportTinyImage(ctx, "tiny"); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, h, "docker", "run", "-d", "--name", "sleeper", "tiny", "sleep")
	}
	for _, h := range hs {
		if got := run(t, ctx, h, "cat", "/etc/whoami"); got != h.Name {
			t.Errorf("%s: /etc/whoami = %q", h.Name, got)
		}
	}

	// Killing a's docker.service must not reach b. With both hosts in one
	// cgroup of the named systemd hierarchy, a's systemd saw b's dockerd in
	// its docker.service cgroup and failed: "Failed to send signal SIGKILL to
	// auxiliary processes: Input/output error".
	run(t, ctx, a, "systemctl", "kill", "-s", "KILL", "docker.service")
	time.Sleep(time.Second)
	if got := strings.TrimSpace(run(t, ctx, b, "systemctl", "is-active", "docker.service")); got != "active" {
		t.Errorf("b's docker.service = %q after a's was killed, want active", got)
	}
	if got := strings.TrimSpace(run(t, ctx, b, "docker", "inspect", "-f", "{{.State.Running}}", "sleeper")); got != "true" {
		t.Errorf("b's sleeper running = %q after a's docker was killed, want true", got)
	}
}

// crashChild is the environment variable that makes TestCrashChild boot a
// host and exit without closing it, as a crashed test binary would.
const crashChild = "TLSDOCK_E2E_CRASH_CHILD"

type crashed struct {
	Name, Root, WorkDir string
	PID                 int
}

func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChild) != "1" {
		t.Skip("helper for TestCleanupStale")
	}
	h, err := testhost.Boot(context.Background(), testhost.Options{Name: "crash-" + strconv.Itoa(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(crashed{h.Name, h.Root, h.WorkDir, h.PID})
	os.Stdout.Write(append([]byte("CRASHED "), append(b, '\n')...))
	os.Exit(3) // no Close, no cleanup: the host keeps running
}

// TestCleanupStale crashes a process that owns a host, then checks that
// CleanupStale removes every trace of it and leaves a live host alone.
func TestCleanupStale(t *testing.T) {
	live := testhost.Start(t)
	ctx := ctxFor(t, 3*time.Minute)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChild+"=1")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("crash child: %v\n%s", err, out)
	}
	var c crashed
	for _, line := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(line, "CRASHED "); ok {
			if err := json.Unmarshal([]byte(s), &c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if c.PID == 0 {
		t.Fatalf("crash child printed no host:\n%s", out)
	}
	// The leftovers are real: the guest runs and its overlay is mounted.
	if !alive(c.PID) {
		t.Fatalf("crashed host's systemd (pid %d) is not running", c.PID)
	}
	if !mounted(c.Root) || len(cgroupsNamed("tlsdock-e2e-"+c.Name)) == 0 {
		t.Fatalf("crashed host left no mount or cgroups to clean up")
	}

	if err := testhost.CleanupStale(); err != nil {
		t.Fatal(err)
	}

	if alive(c.PID) {
		t.Errorf("crashed host's systemd (pid %d) still runs", c.PID)
	}
	if mounted(c.Root) {
		t.Errorf("%s is still mounted", c.Root)
	}
	if left := cgroupsNamed("tlsdock-e2e-" + c.Name); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	for _, p := range []string{c.WorkDir, filepath.Join(testhost.WorkRoot, c.Name+".lock")} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists (err %v)", p, err)
		}
	}

	// The live host was not touched.
	if got := strings.TrimSpace(run(t, ctx, live, "systemctl", "is-active", "docker.service")); got != "active" {
		t.Errorf("live host's docker.service = %q after CleanupStale, want active", got)
	}
	if !mounted(live.Root) {
		t.Errorf("live host's root %s was unmounted", live.Root)
	}
}

// alive reports whether pid still runs systemd (not merely a zombie that
// nobody has reaped yet).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && strings.Contains(s[:i], "(systemd") && !strings.HasPrefix(s[i+1:], " Z")
}

func mounted(path string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// cgroupsNamed finds cgroup directories called name, at most five levels
// below /sys/fs/cgroup.
func cgroupsNamed(name string) []string {
	var out []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == name {
			out = append(out, p)
			return filepath.SkipDir
		}
		if strings.Count(p, "/") > 8 {
			return filepath.SkipDir
		}
		return nil
	})
	return out
}
