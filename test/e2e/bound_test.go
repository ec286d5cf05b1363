package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// waitActive waits until docker.service is active (a failure bound, not a
// timed assertion).
func waitActive(t *testing.T, ctx context.Context, h *testhost.Host, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, _, _ := h.Exec(ctx, nil, "systemctl", "is-active", "docker.service")
		if strings.TrimSpace(string(out)) == "active" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker.service is %s after %v; journal:\n%s", strings.TrimSpace(string(out)), within, h.Journal(ctx, "docker.service", 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkBackOnOriginal checks that docker runs its configuration from
// before provision: no TLS listener, no drop-in of tlsdock's.
func checkBackOnOriginal(t *testing.T, ctx context.Context, h *testhost.Host) {
	t.Helper()
	if _, err := h.ReadFile("/etc/systemd/system/docker.service.d/zz-tlsdock.conf"); err == nil {
		t.Error("tlsdock's drop-in left after the rollback")
	}
	if _, err := h.ReadFile("/etc/systemd/system/docker.socket.d/zz-tlsdock.conf"); err == nil {
		t.Error("tlsdock's docker.socket drop-in left after the rollback")
	}
	if out := run(t, ctx, h, "ss", "-Hltn", "sport = :2376"); strings.TrimSpace(out) != "" {
		t.Errorf("something listens on 2376 after the rollback: %s", out)
	}
	run(t, ctx, h, "docker", "info")
}

// TestHungRestartIsBounded: docker.service's start hangs (an ExecStartPre
// that never ends; TimeoutStartSec=0 lets it). With --timeout 10s the
// whole provision, its rollback included, ends within --timeout plus a few
// seconds (before: 131 s, the rollback waited two minutes more) with exit
// 4, and says what is still running and where the backup is. Once the
// operator removes the hang, docker restarts on the restored files and the
// same provision converges.
func TestHungRestartIsBounded(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 4*time.Minute)
	const hang = "/etc/systemd/system/docker.service.d/hang.conf"
	if err := h.WriteFile(hang, []byte("[Service]\nExecStartPre=/bin/sleep 600\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "daemon-reload")
	start := time.Now()
	out, errb, code := tlsdock(ctx, h, "provision", "--generate", "--timeout", "10s")
	took := time.Since(start)
	t.Logf("exit %d after %v: %s", code, took.Round(100*time.Millisecond), strings.TrimSpace(errb))
	if code != 4 {
		t.Fatalf("exit %d, want 4 (the restart back never finishes)\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	// A bound, not a timing: before, it took 131 s.
	if took > 40*time.Second {
		t.Errorf("provision --timeout 10s took %v", took)
	}
	for _, want := range []string{"docker.service is still activating", "restart job was queued", "systemctl status docker.service", "the files are restored", "/var/lib/tlsdock/journal.json"} {
		if !strings.Contains(errb, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb)
		}
	}
	run(t, ctx, h, "rm", hang)
	run(t, ctx, h, "systemctl", "daemon-reload")
	run(t, ctx, h, "systemctl", "restart", "docker.service")
	rotDockerActive(t, ctx, h)
	checkBackOnOriginal(t, ctx, h)
	mustTlsdock(t, ctx, h, "provision", "--generate")
	if out := mustTlsdock(t, ctx, h, "provision", "--generate"); !strings.Contains(out, "No changes") {
		t.Errorf("not converged:\n%s", out)
	}
}

// TestProxyRevertKeepsContainers: proxy mode on a fresh host never
// changes dockerd's files, so its revert only stops tlsdock.service:
// dockerd keeps its PID and a running container keeps running with the
// same start time.
func TestProxyRevertKeepsContainers(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 4*time.Minute)
	id := startSleeper(t, ctx, h)
	started := containerStarted(t, ctx, h, id)
	pid := dockerPID(t, ctx, h)
	mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--generate")
	out := mustTlsdock(t, ctx, h, "revert")
	t.Logf("revert:\n%s", out)
	if got := dockerPID(t, ctx, h); got != pid {
		t.Errorf("dockerd's MainPID changed %s -> %s, though nothing of dockerd's changed", pid, got)
	}
	if got := containerStarted(t, ctx, h, id); got != started {
		t.Errorf("the container was restarted or stopped: %q -> %q", started, got)
	}
	if !strings.Contains(out, "kept running") {
		t.Errorf("revert does not say dockerd kept running:\n%s", out)
	}
}

// TestProxyRevertLiveRestoreFirst: dockerd had a plaintext TCP listener,
// which proxy mode removed with --live-restore=false (so the running
// dockerd has no live-restore). The revert puts the listener back, which
// restarts dockerd: with --keep-live-restore it turns live-restore on
// first (SIGHUP), and the running container survives the restart.
func TestProxyRevertLiveRestoreFirst(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 4*time.Minute)
	const override = "/etc/systemd/system/docker.service.d/override.conf"
	if err := h.WriteFile(override, []byte("[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -H tcp://127.0.0.1:2375 --tls=false --containerd=/run/containerd/containerd.sock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "daemon-reload")
	run(t, ctx, h, "systemctl", "restart", "docker.service")
	mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--generate", "--live-restore=false")
	if out := run(t, ctx, h, "docker", "info", "--format", "{{.LiveRestoreEnabled}}"); strings.TrimSpace(out) != "false" {
		t.Fatalf("live-restore after provision --live-restore=false: %s", out)
	}
	id := startSleeper(t, ctx, h)
	started := containerStarted(t, ctx, h, id)
	pid := dockerPID(t, ctx, h)
	out := mustTlsdock(t, ctx, h, "revert", "--keep-live-restore")
	t.Logf("revert:\n%s", out)
	if got := dockerPID(t, ctx, h); got == pid {
		t.Fatal("dockerd was not restarted: its TCP listener is not back")
	}
	if out := run(t, ctx, h, "ss", "-Hltn", "sport = :2375"); strings.TrimSpace(out) == "" {
		t.Error("dockerd's own listener on 2375 is not back")
	}
	if got := containerStarted(t, ctx, h, id); got != started {
		t.Errorf("the container did not survive the revert's restart: %q -> %q", started, got)
	}
	if !strings.Contains(out, "turning it on and reloading dockerd first") {
		t.Errorf("revert does not say it turns live-restore on first:\n%s", out)
	}
}

// TestMaskedSocketIsRefused: with docker.socket masked, Debian's
// docker.service (Requires=docker.socket, -H fd://) cannot start, so
// provision refuses at the start with exit 2 and a message naming
// docker.socket and what to do, and changes nothing: the files are
// byte-identical and dockerd keeps its PID. Before, it restarted docker,
// failed, and its rollback failed too (exit 4). Once unmasked, the same
// provision goes through.
func TestMaskedSocketIsRefused(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 3*time.Minute)
	run(t, ctx, h, "systemctl", "mask", "docker.socket")
	t.Logf("docker.socket: %s", strings.TrimSpace(run(t, ctx, h, "systemctl", "show", "-p", "LoadState", "-p", "ActiveState", "-p", "FragmentPath", "docker.socket")))
	before := hostTree(t, ctx, h)
	pid := dockerPID(t, ctx, h)
	out, errb, code := tlsdock(ctx, h, "provision", "--generate")
	t.Logf("exit %d: %s", code, strings.TrimSpace(errb))
	if code != 2 || !strings.Contains(errb, "docker.socket") || !strings.Contains(errb, "systemctl unmask docker.socket") {
		t.Fatalf("exit %d, want 2 naming docker.socket and how to unmask it\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	if d := lineDiff(before, hostTree(t, ctx, h)); d != "" {
		t.Errorf("the refused provision changed files:\n%s", d)
	}
	if got := dockerPID(t, ctx, h); got != pid {
		t.Errorf("docker restarted (MainPID %s -> %s) though provision was refused", pid, got)
	}
	run(t, ctx, h, "systemctl", "unmask", "docker.socket")
	mustTlsdock(t, ctx, h, "provision", "--generate")
}
