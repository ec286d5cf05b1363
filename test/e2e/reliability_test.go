package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// The reliability and security suite on real hosts: bad input that needs
// the real systemd and docker.service, a full disk, a dockerd that does not
// come back, a systemd that does not answer, and the modes of key files at
// the moment the real binary creates them. The in-process part is
// cmd/tlsdock/badinput_test.go and agent/reliability_test.go; crashes are
// crash_test.go.

// watched are the paths whose every byte, mode and link a refused run must
// leave alone.
const watched = "/etc/docker /etc/systemd/system /etc/tlsdock /var/lib/tlsdock /etc/default/docker /lib/systemd/system/docker.service"

// hostTree lists every file, link and directory of watched with its type,
// mode, owner, link target and content hash.
func hostTree(t *testing.T, ctx context.Context, h *testhost.Host) string {
	t.Helper()
	out, _, err := h.Exec(ctx, nil, "sh", "-c",
		"{ find "+watched+" -printf '%y %m %U:%G %p %l\\n'; find "+watched+" -type f -exec sha256sum {} +; } 2>/dev/null | sort")
	if err != nil && len(out) == 0 {
		t.Fatalf("hashing the host's files: %v", err)
	}
	return string(out)
}

func lineDiff(a, b string) string {
	as, bs := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		as[l] = true
	}
	for _, l := range strings.Split(b, "\n") {
		bs[l] = true
	}
	var d []string
	for l := range as {
		if !bs[l] {
			d = append(d, "- "+l)
		}
	}
	for l := range bs {
		if !as[l] {
			d = append(d, "+ "+l)
		}
	}
	return strings.Join(d, "\n")
}

// e2eSet issues a server set for localhost and 127.0.0.1 from ca at now.
func e2eSet(t *testing.T, ca *certstore.CA, now time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{
		CommonName: "dockerhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyType: certstore.ECDSAP256, Now: now, Validity: 90 * 24 * time.Hour, Server: true,
	}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func e2eCA(t *testing.T, now time.Time) *certstore.CA {
	t.Helper()
	ca, err := certstore.NewCA(certstore.ECDSAP256, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func writeSet(t *testing.T, h *testhost.Host, dir string, ca, cert, key []byte) {
	t.Helper()
	for name, data := range map[string][]byte{"ca.pem": ca, "server-cert.pem": cert, "server-key.pem": key} {
		if err := h.WriteFile(dir+"/"+name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBadInputRealHost runs the bad-input cases that need the real systemd
// and docker.service, one after the other on one host. Each must exit 2
// with a message that names the file or flag and says what to do, leave
// every watched file byte-identical, and leave dockerd running with the
// same main PID.
func TestBadInputRealHost(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	write := func(p, body string) {
		t.Helper()
		if err := h.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reload := func() { run(t, ctx, h, "systemctl", "daemon-reload") }
	const override = "/etc/systemd/system/docker.service.d/override.conf"
	const late = "/etc/systemd/system/docker.service.d/zzz-late.conf"
	const dockerd = "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"

	now := time.Now()
	old := e2eCA(t, now.AddDate(0, -8, 0))
	cert, key := e2eSet(t, old, now.AddDate(0, -8, 0))
	writeSet(t, h, "/root/sets/expired", old.CertPEM, cert, key)
	ca1, ca2 := e2eCA(t, now), e2eCA(t, now)
	cert, key = e2eSet(t, ca1, now)
	writeSet(t, h, "/root/sets/foreign", ca2.CertPEM, cert, key)
	_, key2 := e2eSet(t, ca1, now)
	writeSet(t, h, "/root/sets/mismatch", ca1.CertPEM, cert, key2)

	cases := []struct {
		name        string
		setup       func()
		args        []string
		field, hint string
		cleanup     func()
	}{
		{
			name:  "ExecStart missing (systemd refuses the unit)",
			setup: func() { write(override, "[Service]\nExecStart=\n"); reload() },
			field: "docker.service", hint: "see why with `systemctl status docker.service`",
		},
		{
			name:  "two ExecStart lines (systemd refuses the unit)",
			setup: func() { write(override, "[Service]\nExecStart="+dockerd+" --debug\n"); reload() },
			field: "docker.service", hint: "fix them and run systemctl daemon-reload",
		},
		{
			name: "ExecStart runs a wrapper",
			setup: func() {
				// A wrapper that exists: a missing program is refused
				// earlier, as a docker that cannot start.
				if err := h.WriteFile("/usr/local/bin/start-docker", []byte("#!/bin/sh\nexec /usr/sbin/dockerd \"$@\"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				write(override, "[Service]\nExecStart=\nExecStart=/usr/local/bin/start-docker -H fd://\n")
				reload()
			},
			field: override, hint: "remove -H and --tls flags from it yourself",
		},
		{
			name:  "a drop-in after tlsdock's overrides ExecStart",
			setup: func() { write(late, "[Service]\nExecStart=\nExecStart="+dockerd+"\n"); reload() },
			field: late, hint: "merge it into an override.conf",
		},
		{
			// systemd has not loaded it yet, but will at tlsdock's
			// daemon-reload.
			name:  "the same drop-in, without a daemon-reload",
			setup: func() { write(late, "[Service]\nExecStart=\nExecStart="+dockerd+"\n") },
			field: late, hint: "merge it into an override.conf",
		},
		{
			// dockerd read daemon.json when it started; the conflict is
			// only on disk and would keep dockerd from starting again.
			name: "daemon.json and ExecStart both set log-level",
			setup: func() {
				write(override, "[Service]\nExecStart=\nExecStart="+dockerd+" --log-level=warn\n")
				reload()
				write("/etc/docker/daemon.json", "{\"log-level\": \"info\"}\n")
			},
			field: "/etc/docker/daemon.json", hint: "remove one of them",
		},
		{
			name:  "daemon.json hosts is a string",
			setup: func() { write("/etc/docker/daemon.json", `{"hosts": "tcp://0.0.0.0:2375"}`) },
			field: "/etc/docker/daemon.json", hint: "fix it or remove the key",
		},
		{
			name:  "daemon.json invalid",
			setup: func() { write("/etc/docker/daemon.json", "{\n  \"debug\": true,\n}\n") },
			field: "/etc/docker/daemon.json", hint: "fix the file or move it away",
		},
		{
			name: "daemon.json is a symlink",
			setup: func() {
				write("/srv/daemon.json", "{\"debug\": false}\n")
				run(t, ctx, h, "ln", "-s", "/srv/daemon.json", "/etc/docker/daemon.json")
			},
			field: "/etc/docker/daemon.json", hint: "replace the link with a copy of the file it points to",
		},
		{name: "expired certificate", args: []string{"--certs", "/root/sets/expired"}, field: "server-cert.pem", hint: "issue a new certificate"},
		{name: "foreign CA", args: []string{"--certs", "/root/sets/foreign"}, field: "ca.pem", hint: "put the CA that issued it in"},
		{name: "key does not match", args: []string{"--certs", "/root/sets/mismatch"}, field: "server-key.pem", hint: "install the key that was issued together"},
		{name: "host is not a URL", args: []string{"--generate", "--host", "0.0.0.0:2376"}, field: "--host", hint: "use tcp://ADDRESS:PORT"},
		{name: "port out of range", args: []string{"--generate", "--host", "tcp://0.0.0.0:65536"}, field: "--host", hint: "use 1-65535"},
		{name: "unknown key type", args: []string{"--generate", "--key-type", "ed448"}, field: "--key-type", hint: "use one of"},
		{name: "--client-out without the local CA", args: []string{"--certs", "/root/sets/foreign", "--client-out", "/root/client"}, field: "--client-out", hint: "add --generate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			defer func() {
				run(t, ctx, h, "rm", "-f", override, late, "/etc/docker/daemon.json", "/srv/daemon.json")
				reload()
			}()
			before := hostTree(t, ctx, h)
			pid := dockerPID(t, ctx, h)
			args := tc.args
			if args == nil {
				args = []string{"--generate"}
			}
			out, errb, code := tlsdock(ctx, h, append([]string{"provision"}, args...)...)
			t.Logf("stderr: %s", strings.TrimSpace(errb))
			if code != 2 {
				t.Errorf("exit %d, want 2\nstdout:\n%s", code, out)
			}
			for _, want := range []string{tc.field, tc.hint} {
				if !strings.Contains(errb, want) {
					t.Errorf("stderr does not contain %q", want)
				}
			}
			if d := lineDiff(before, hostTree(t, ctx, h)); d != "" {
				t.Errorf("bad input changed the host's files:\n%s", d)
			}
			if got := dockerPID(t, ctx, h); got != pid || got == "0" {
				t.Errorf("docker's MainPID %s -> %s", pid, got)
			}
		})
	}
	if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "docker.service")); got != "active" {
		t.Fatalf("docker.service is %s after the bad input", got)
	}
	// And the host is still good for a real provision.
	mustTlsdock(t, ctx, h, "provision", "--generate")
}

// fillDockerDir mounts a 128 KiB tmpfs over /etc/docker holding what
// /etc/docker held, and fills it up.
func fillDockerDir(t *testing.T, ctx context.Context, h *testhost.Host) {
	t.Helper()
	run(t, ctx, h, "sh", "-c", `set -e
if ! mountpoint -q /etc/docker; then
	rm -rf /run/docker-etc && cp -a /etc/docker /run/docker-etc
	mount -t tmpfs -o size=128k,mode=0755 tmpfs /etc/docker
	cp -a /run/docker-etc/. /etc/docker/
fi
dd if=/dev/zero of=/etc/docker/.filler bs=4k 2>/dev/null || true
[ "$(df --output=avail /etc/docker | tail -1 | tr -d ' ')" = 0 ]`)
}

// TestDiskFull: with /etc/docker full, provision fails cleanly: it exits 3
// (rolled back) naming the full disk, nothing under /etc/docker is
// half-written (not even a temporary file), and docker keeps running on
// its previous configuration without a restart. Before the fix in
// agent/snapshot.go, the rollback rewrote the unchanged daemon.json, failed
// on the full disk too and exited 4 ("rollback failed"). Once there is
// space, the same command converges.
func TestDiskFull(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	for _, tc := range []struct{ name, daemonJSON, failsAt string }{
		// Fresh host: the live-restore step writes daemon.json first.
		{name: "live-restore step", failsAt: "writing /etc/docker/daemon.json"},
		// live-restore already on: installing the certificates fails.
		{name: "certificate install", daemonJSON: "{\"live-restore\": true}\n", failsAt: "installing certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(t, ctx, h, "rm", "-f", "/etc/docker/.filler")
			if tc.daemonJSON != "" {
				if err := h.WriteFile("/etc/docker/daemon.json", []byte(tc.daemonJSON), 0o644); err != nil {
					t.Fatal(err)
				}
				run(t, ctx, h, "systemctl", "restart", "docker.service")
			}
			fillDockerDir(t, ctx, h)
			before := hostTree(t, ctx, h)
			pid := dockerPID(t, ctx, h)
			out, errb, code := tlsdock(ctx, h, "provision", "--generate")
			t.Logf("stderr: %s", strings.TrimSpace(errb))
			if code != 3 || !strings.Contains(errb, "no space left on device") || !strings.Contains(errb, tc.failsAt) {
				t.Fatalf("exit %d, want 3 with %q and the full disk\nstdout:\n%s\nstderr:\n%s", code, tc.failsAt, out, errb)
			}
			after := hostTree(t, ctx, h)
			// tlsdock's backups and the local CA are on another disk;
			// everything in /etc/docker and the unit files is unchanged.
			keep := func(s string) string {
				var out []string
				for _, l := range strings.Split(s, "\n") {
					if !strings.Contains(l, "/var/lib/tlsdock") && !strings.Contains(l, "/etc/tlsdock") {
						out = append(out, l)
					}
				}
				return strings.Join(out, "\n")
			}
			if d := lineDiff(keep(before), keep(after)); d != "" {
				t.Errorf("the failed run left changes:\n%s", d)
			}
			if _, err := h.ReadFile("/var/lib/tlsdock/journal.json"); err == nil {
				t.Error("journal.json kept: the rollback did not complete")
			}
			if got := dockerPID(t, ctx, h); got != pid {
				t.Errorf("docker restarted (MainPID %s -> %s) though nothing was changed", pid, got)
			}
			rotDockerActive(t, ctx, h)
		})
	}
	run(t, ctx, h, "rm", "-f", "/etc/docker/.filler")
	mustTlsdock(t, ctx, h, "provision", "--generate")
	if out := mustTlsdock(t, ctx, h, "provision", "--generate"); !strings.Contains(out, "No changes") {
		t.Errorf("not converged:\n%s", out)
	}
}

// TestDockerdDoesNotComeBack: containerd is stopped and masked, so the
// dockerd that tlsdock restarts hangs dialing it (dockerd 20.10 gives up
// after 60 s, within the first half of the default --timeout 3m that the
// steps have) and the restart fails. tlsdock rolls back. While it does,
// containerd comes back (an operator, or its own Restart=), so the
// rollback's restart succeeds within what is left: exit 3, and docker runs its
// previous configuration (no TLS listener, no drop-in, daemon.json as
// before plus live-restore). Had containerd stayed masked, the rollback's
// restart would fail too and exit 4 ("rollback failed", journal kept)
// would be the right answer; TestFailureExitCodes in cmd/tlsdock covers
// that path.
func TestDockerdDoesNotComeBack(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 6*time.Minute)
	run(t, ctx, h, "systemctl", "stop", "containerd.service")
	run(t, ctx, h, "systemctl", "mask", "containerd.service")
	start := time.Now()
	run(t, ctx, h, "systemd-run", "--unit=tlsdock-prov", "/usr/local/bin/tlsdock", "provision", "--generate")
	for !strings.Contains(h.Journal(ctx, "tlsdock-prov", 20), "rolling back") {
		select {
		case <-ctx.Done():
			t.Fatalf("tlsdock never rolled back:\n%s", h.Journal(ctx, "tlsdock-prov", 40))
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("the restart failed after %v; containerd comes back", time.Since(start).Round(100*time.Millisecond))
	run(t, ctx, h, "systemctl", "unmask", "containerd.service")
	run(t, ctx, h, "systemctl", "start", "containerd.service")
	waitUnitGone(t, ctx, h, "tlsdock-prov")
	status := strings.TrimSpace(run(t, ctx, h, "systemctl", "show", "-p", "ExecMainStatus", "--value", "tlsdock-prov"))
	j := h.Journal(ctx, "tlsdock-prov", 60)
	t.Logf("tlsdock exited %s after %v", status, time.Since(start).Round(time.Second))
	if status != "3" || !strings.Contains(j, "Rolled back: docker is active on its previous configuration.") {
		t.Fatalf("tlsdock exited %s, want 3 (rolled back):\n%s", status, j)
	}
	rotDockerActive(t, ctx, h)
	if got := string(mustRead(t, h, "/etc/docker/daemon.json")); got != "{\n  \"live-restore\": true\n}\n" {
		t.Errorf("daemon.json after the rollback:\n%s", got)
	}
	if _, err := h.ReadFile("/etc/systemd/system/docker.service.d/zz-tlsdock.conf"); err == nil {
		t.Error("tlsdock's drop-in left after the rollback")
	}
	if out := run(t, ctx, h, "ss", "-Hltn", "sport = :2376"); strings.TrimSpace(out) != "" {
		t.Errorf("something listens on 2376 after the rollback: %s", out)
	}
	run(t, ctx, h, "docker", "info")
	// Now that containerd is back, the same command converges.
	mustTlsdock(t, ctx, h, "provision", "--generate")
	if out := mustTlsdock(t, ctx, h, "provision", "--generate"); !strings.Contains(out, "No changes") {
		t.Errorf("not converged:\n%s", out)
	}
}

// TestSlowRestartIsBounded: docker.service takes 8 s to start (a slow
// ExecStartPre), longer than the steps' half of --timeout 10s. tlsdock
// stops waiting at 5 s, rolls back and queues the restart back, which
// needs 8 s more than the 5 s left: exit 4 within --timeout, saying that
// docker.service is still activating. systemd carries the queued restart
// on, and docker comes back by itself on its previous configuration.
func TestSlowRestartIsBounded(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 3*time.Minute)
	const slow = "/etc/systemd/system/docker.service.d/slow.conf"
	if err := h.WriteFile(slow, []byte("[Service]\nExecStartPre=/bin/sleep 8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "daemon-reload")
	start := time.Now()
	out, errb, code := tlsdock(ctx, h, "provision", "--generate", "--timeout", "10s")
	took := time.Since(start)
	t.Logf("exit %d after %v: %s", code, took.Round(100*time.Millisecond), strings.TrimSpace(errb))
	if code != 4 || !strings.Contains(errb, "no job result") || !strings.Contains(errb, "docker.service is still activating") {
		t.Fatalf("exit %d, want 4 after a restart back that is still queued\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	waitActive(t, ctx, h, time.Minute)
	checkBackOnOriginal(t, ctx, h)
	run(t, ctx, h, "rm", slow)
	run(t, ctx, h, "systemctl", "daemon-reload")
	mustTlsdock(t, ctx, h, "provision", "--generate")
}

// TestSystemdDoesNotAnswer: the host's systemd (PID 1) is stopped with
// SIGSTOP, so D-Bus calls get no answer. provision gives up after
// --timeout with a clear error (exit 1) and changes nothing; status
// answers too. Before the fix in agent/plan.go, provision waited forever.
func TestSystemdDoesNotAnswer(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 3*time.Minute)
	before := hostTree(t, ctx, h)
	pid := dockerPID(t, ctx, h)
	if err := syscall.Kill(h.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	cont := func() {
		if stopped {
			stopped = false
			if err := syscall.Kill(h.PID, syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	defer cont()

	start := time.Now()
	out, errb, code := tlsdock(ctx, h, "provision", "--generate", "--timeout", "3s")
	took := time.Since(start)
	t.Logf("provision: exit %d after %v: %s", code, took.Round(100*time.Millisecond), strings.TrimSpace(errb))
	if code != 1 || took > 20*time.Second || !strings.Contains(errb, "asking systemd about docker.service") || !strings.Contains(errb, "check that systemd answers") {
		t.Errorf("provision with systemd stopped: exit %d after %v\nstdout:\n%s\nstderr:\n%s", code, took, out, errb)
	}
	start = time.Now()
	out, errb, code = tlsdock(ctx, h, "status")
	t.Logf("status: exit %d after %v", code, time.Since(start).Round(100*time.Millisecond))
	if code != 0 || time.Since(start) > 20*time.Second || !strings.Contains(out, "deadline exceeded") {
		t.Errorf("status with systemd stopped: exit %d\n%s\n%s", code, out, errb)
	}
	cont()
	if d := lineDiff(before, hostTree(t, ctx, h)); d != "" {
		t.Errorf("changed files:\n%s", d)
	}
	if got := dockerPID(t, ctx, h); got != pid {
		t.Errorf("docker's MainPID %s -> %s", pid, got)
	}
	mustTlsdock(t, ctx, h, "provision", "--generate")
}

var (
	straceOpenRE    = regexp.MustCompile(`^(\d+)\s+openat\((AT_FDCWD|\d+), "([^"]+)", ([A-Z_|]+)(?:, (0\d+))?(?:\) = (\d+)| <unfinished)`)
	straceResumedRE = regexp.MustCompile(`^(\d+)\s+<\.\.\. openat resumed>.*\) = (\d+)`)
	straceChmodRE   = regexp.MustCompile(`^(\d+)\s+(fchmod|fchmodat|chmod)\((?:AT_FDCWD, )?(?:"([^"]+)"|(\d+)), (0\d+)`)
	straceCloseRE   = regexp.MustCompile(`^(\d+)\s+close\((\d+)\)`)
	straceMkdirRE   = regexp.MustCompile(`^(\d+)\s+mkdirat\(AT_FDCWD, "([^"]+)", (0\d+)\)`)
)

// keyPath reports whether tlsdock writes key material to a file of this
// name: a private key (or its temporary file) or a backup in
// /var/lib/tlsdock, which holds the previous server key.
func keyPath(p string) bool {
	base := filepath.Base(p)
	return strings.Contains(base, "key.pem") || strings.HasPrefix(p, "/var/lib/tlsdock/")
}

// traceModes runs tlsdock args inside h under strace (from this machine,
// through nsenter, with umask 000 so that the mode given to the kernel is
// the mode the file gets) and fails for every file holding key material
// that is created, or later chmod-ed, with a mode that lets anyone but its
// owner read it. It returns how many such files were created.
func traceModes(t *testing.T, ctx context.Context, h *testhost.Host, args ...string) int {
	t.Helper()
	trace := filepath.Join(t.TempDir(), "trace")
	if d := os.Getenv("TLSDOCK_TRACE_DIR"); d != "" {
		trace = filepath.Join(d, fmt.Sprintf("trace-%d", time.Now().UnixNano()))
	}
	cmd := exec.CommandContext(ctx, "strace", append([]string{"-f", "-qq", "-o", trace, "-e", "trace=openat,close,fchmod,fchmodat,chmod,mkdirat",
		"nsenter", "-t", strconv.Itoa(h.PID), "-a", "--", "sh", "-c", `umask 000; exec "$@"`, "sh", "/usr/local/bin/tlsdock"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	out, err := cmd.CombinedOutput()
	t.Logf("tlsdock %s under strace: %v", strings.Join(args, " "), err)
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() == 1 || ee.ExitCode() == 2) {
		t.Fatalf("tlsdock %s under strace: %v\n%s", strings.Join(args, " "), err, out)
	}
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds := map[string]string{}     // fd -> path; tlsdock's threads share one table
	pending := map[string]string{} // thread -> path of an unfinished openat
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := straceResumedRE.FindStringSubmatch(line); m != nil {
			fds[m[2]] = pending[m[1]]
			continue
		}
		if m := straceOpenRE.FindStringSubmatch(line); m != nil {
			path, flags, mode, fd := m[3], m[4], m[5], m[6]
			if m[2] != "AT_FDCWD" && !filepath.IsAbs(path) {
				// Relative to a directory tlsdock opened (its atomic
				// writes create the file inside the open directory).
				path = filepath.Join(fds[m[2]], path)
			}
			if fd == "" {
				pending[m[1]] = path
			} else {
				fds[fd] = path
			}
			if !strings.Contains(flags, "O_CREAT") || !keyPath(path) {
				continue
			}
			n++
			perm, _ := strconv.ParseUint(mode, 8, 32)
			if perm&0o077 != 0 {
				t.Errorf("%s created with mode %s: readable by others from the start", path, mode)
			}
			continue
		}
		if m := straceCloseRE.FindStringSubmatch(line); m != nil {
			delete(fds, m[2])
			continue
		}
		if m := straceChmodRE.FindStringSubmatch(line); m != nil {
			path := m[3]
			if path == "" {
				path = fds[m[4]]
			}
			perm, _ := strconv.ParseUint(m[5], 8, 32)
			if keyPath(path) && perm&0o077 != 0 {
				t.Errorf("%s chmod-ed to %s", path, m[5])
			}
			continue
		}
		if m := straceMkdirRE.FindStringSubmatch(line); m != nil && (strings.HasPrefix(m[2], "/var/lib/tlsdock") || strings.HasPrefix(m[2], "/etc/tlsdock/ca")) {
			if perm, _ := strconv.ParseUint(m[3], 8, 32); perm&0o077 != 0 {
				t.Errorf("private directory %s created with mode %s", m[2], m[3])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKeysOnRealHost checks the key-handling promises on the real binary:
// every file that holds key material (server keys, the CA key, client
// keys, the backups in /var/lib/tlsdock) is created private, at the
// open(2) that creates it and in every later chmod, even with umask 000;
// and the local CA key stays 0400 in a 0700 /etc/tlsdock/ca, the only file
// on the host that holds it, after provision, client bundles, a rotation,
// a rollback and revert.
func TestKeysOnRealHost(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed")
	}
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	created := traceModes(t, ctx, h, "provision", "--generate", "--client-out", "/root/client")
	created += traceModes(t, ctx, h, "certs", "client", "alice", "--out", "/home/alice/.docker")
	created += traceModes(t, ctx, h, "provision", "--generate", "--key-type", "rsa-2048")
	// A rollback: dockerd cannot bind 2377, which is taken.
	run(t, ctx, h, "sh", "-c", "cd /root && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=squatter -keyout sq.key -out sq.pem 2>/dev/null")
	run(t, ctx, h, "systemd-run", "--unit=squatter", "openssl", "s_server", "-quiet", "-accept", "0.0.0.0:2377", "-cert", "/root/sq.pem", "-key", "/root/sq.key")
	run(t, ctx, h, "bash", "-c", "for i in $(seq 50); do (echo > /dev/tcp/127.0.0.1/2377) 2>/dev/null && exit 0; sleep 0.1; done; exit 1")
	created += traceModes(t, ctx, h, "provision", "--generate", "--host", "tcp://0.0.0.0:2377", "--key-type", "rsa-2048")
	run(t, ctx, h, "systemctl", "stop", "squatter")
	created += traceModes(t, ctx, h, "revert", "--keep-live-restore")
	t.Logf("%d files with key material created, all private", created)
	if created < 8 {
		t.Errorf("only %d key files were created: the trace missed them", created)
	}

	// The CA key: where it is, its mode, and nowhere else. Every file the
	// guest wrote is in the overlay's upper directory; /run and /tmp are
	// tmpfs inside and read through /proc/PID/root.
	keyPEM := mustRead(t, h, "/etc/tlsdock/ca/ca-key.pem")
	modes := run(t, ctx, h, "stat", "-c", "%a %U:%G", "/etc/tlsdock/ca", "/etc/tlsdock/ca/ca-key.pem")
	if modes != "700 root:root\n400 root:root\n" {
		t.Errorf("CA directory and key modes:\n%s", modes)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		t.Fatal("the CA key is not PEM")
	}
	needles := map[string][]byte{
		"PEM body":      []byte(strings.Split(string(keyPEM), "\n")[1]),
		"DER":           blk.Bytes,
		"base64 of PEM": []byte(base64.StdEncoding.EncodeToString(keyPEM)[:40]),
	}
	searched := 0
	for _, dir := range []string{filepath.Join(h.WorkDir, "upper"), fmt.Sprintf("/proc/%d/root/run", h.PID), fmt.Sprintf("/proc/%d/root/tmp", h.PID)} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || strings.HasSuffix(p, "/etc/tlsdock/ca/ca-key.pem") {
				return nil
			}
			if fi, err := d.Info(); err != nil || fi.Size() > 64<<20 {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			searched++
			for name, n := range needles {
				if bytes.Contains(data, n) {
					t.Errorf("%s holds the local CA key (%s)", p, name)
				}
			}
			return nil
		})
	}
	t.Logf("searched %d files written on the host for the CA key", searched)
	if searched < 20 {
		t.Errorf("searched only %d files", searched)
	}
}
