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
