package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestUnsafeSourceRealHost: a certificate source that a PKI agent's
// service user owns is refused on a real host: provision exits 2 and
// changes nothing (docker keeps its main PID), `tlsdock run` does not
// start on it, and --allow-source-owner installs it with a warning that
// `tlsdock status` repeats.
func TestUnsafeSourceRealHost(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	ca := e2eCA(t, time.Now())
	cert, key := e2eSet(t, ca, time.Now())
	const src = "/srv/pki/certs"
	writeSet(t, h, src, ca.CertPEM, cert, key)
	run(t, ctx, h, "chown", "-R", "nobody:nogroup", src)
	pid := dockerPID(t, ctx, h)

	stdout, stderr, code := tlsdock(ctx, h, "provision", "--certs", src)
	if code != 2 {
		t.Fatalf("provision of nobody's source: exit %d, want 2\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{src + ": directory is not owned by root", "owner nobody (uid 65534)", "chown root:root " + src + " && chmod go-w " + src, "--allow-source-owner USER"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
	if _, err := h.ReadFile("/etc/docker/ssl/ca.pem"); err == nil {
		t.Error("the refused set was installed")
	}
	if got := dockerPID(t, ctx, h); got != pid {
		t.Errorf("docker restarted (main PID %s -> %s)", pid, got)
	}

	// The daemon fails fast on it.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, stderr, code = tlsdock(rctx, h, "run", "--certs", src)
	cancel()
	if code != 2 || !strings.Contains(stderr, "tlsdock run does not start on a source others can change") {
		t.Fatalf("tlsdock run on nobody's source: exit %d, want 2 at once\n%s", code, stderr)
	}

	// Opted in: installed, with a warning on every run and in status.
	out := mustTlsdock(t, ctx, h, "provision", "--certs", src, "--allow-source-owner", "nobody")
	if !strings.Contains(out, "WARNING: allow-source-owner nobody: account uid 65534") || !strings.Contains(out, "Done: dockerd serves mutual TLS") {
		t.Errorf("provision --allow-source-owner nobody:\n%s", out)
	}
	if out := mustTlsdock(t, ctx, h, "status"); !strings.Contains(out, "WARNING:     allow-source-owner nobody") {
		t.Errorf("status does not warn:\n%s", out)
	}
	// Still refused: a key others can read.
	run(t, ctx, h, "chmod", "0644", src+"/server-key.pem")
	stdout, stderr, code = tlsdock(ctx, h, "provision", "--certs", src, "--allow-source-owner", "nobody")
	if code != 2 || !strings.Contains(stderr, "key is readable by group or others") || !strings.Contains(stderr, "chmod 0600 "+src+"/server-key.pem") {
		t.Errorf("a world-readable key with the opt-in: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
