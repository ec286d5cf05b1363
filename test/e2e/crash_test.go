package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// crashSteps are the named steps of the provision sequence at which the
// test-only hook (TLSDOCK_TEST_PAUSE_AT, cmd/tlsdock/testhooks.go, built in
// with -tags tlsdock_testhooks) stops tlsdock.
var crashSteps = []string{"backed-up", "live-restore", "certs-installed", "written", "restarted"}

// TestCrashAtEveryStep SIGKILLs `tlsdock provision --generate` at every
// step of the sequence on a real host. After each kill: the installed
// certificate and key always match (also while tlsdock was stopped), a
// plain `systemctl restart docker` brings docker up, and the next
// provision restores the interrupted apply and converges (a third run
// changes nothing). Each step starts from the host as it was before the
// first provision (revert), so the live-restore step runs every time.
// Killing `tlsdock run` mid-rotation is TestRunKilledMidRotationConverges.
func TestCrashAtEveryStep(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 8*time.Minute)
	for _, step := range crashSteps {
		t.Run(step, func(t *testing.T) {
			if _, err := h.ReadFile("/var/lib/tlsdock/original.json"); err == nil {
				// Back to the host before the first provision: no
				// daemon.json, no drop-in, no /etc/docker/ssl.
				mustTlsdock(t, ctx, h, "revert")
			}
			start := time.Now()
			unit := "tlsdock-crash-" + step
			run(t, ctx, h, "systemd-run", "--unit="+unit, "--setenv=TLSDOCK_TEST_PAUSE_AT="+step,
				"/usr/local/bin/tlsdock", "provision", "--generate")
			waitFile(t, ctx, h, "/run/tlsdock/paused-"+step)
			assertPairMatches(t, ctx, h, "paused at "+step)
			run(t, ctx, h, "systemctl", "kill", "-s", "KILL", unit)
			waitUnitGone(t, ctx, h, unit)
			run(t, ctx, h, "rm", "-f", "/run/tlsdock/paused-"+step)
			if _, err := h.ReadFile("/var/lib/tlsdock/journal.json"); err != nil {
				t.Errorf("no rollback journal after a kill at %s: %v", step, err)
			}
			assertPairMatches(t, ctx, h, "killed at "+step)

			// docker still starts on what the killed run left.
			if _, errb, err := h.Exec(ctx, nil, "systemctl", "restart", "docker.service"); err != nil {
				t.Fatalf("systemctl restart docker after a kill at %s: %v\n%s\n%s", step, err, errb, h.Journal(ctx, "docker.service", 20))
			}
			if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "docker.service")); got != "active" {
				t.Fatalf("docker.service is %s after a kill at %s", got, step)
			}

			// The next provision undoes the interrupted apply and converges.
			out := mustTlsdock(t, ctx, h, "provision", "--generate")
			if !strings.Contains(out, "an earlier run was interrupted") || !strings.Contains(out, "Done: dockerd serves mutual TLS") {
				t.Errorf("recovery run after a kill at %s:\n%s", step, out)
			}
			assertPairMatches(t, ctx, h, "after recovery")
			if out := mustTlsdock(t, ctx, h, "provision", "--generate"); !strings.Contains(out, "No changes") {
				t.Errorf("not converged after a kill at %s: a third run still changes things:\n%s", step, out)
			}
			if _, err := h.ReadFile("/var/lib/tlsdock/journal.json"); err == nil {
				t.Errorf("journal left after convergence")
			}
			t.Logf("kill at %s: recovered and converged in %v", step, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// waitFile waits until path exists inside h.
func waitFile(t *testing.T, ctx context.Context, h *testhost.Host, path string) {
	t.Helper()
	for {
		if _, err := h.ReadFile(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never appeared", path)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitUnitGone waits until a transient unit is no longer running. A unit
// that failed stays loaded, with its exit status, until reset-failed.
func waitUnitGone(t *testing.T, ctx context.Context, h *testhost.Host, unit string) {
	t.Helper()
	for {
		out, _, _ := h.Exec(ctx, nil, "systemctl", "is-active", unit)
		if st := strings.TrimSpace(string(out)); st != "active" && st != "activating" && st != "deactivating" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not stop", unit)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// assertPairMatches fails if /etc/docker/ssl holds a certificate and a key
// that do not belong together (it may hold no set at all).
func assertPairMatches(t *testing.T, ctx context.Context, h *testhost.Host, when string) {
	t.Helper()
	out, errb, err := h.Exec(ctx, nil, "sh", "-c", `
d=/etc/docker/ssl
if [ ! -e $d/server-cert.pem ] && [ ! -e $d/server-key.pem ]; then echo none; exit 0; fi
c=$(openssl x509 -in $d/server-cert.pem -noout -pubkey) || exit 1
k=$(openssl pkey -in $d/server-key.pem -pubout) || exit 1
openssl verify -CAfile $d/ca.pem $d/server-cert.pem >/dev/null || exit 1
[ "$c" = "$k" ] && echo match || echo MISMATCH`)
	if err != nil || strings.TrimSpace(string(out)) == "MISMATCH" {
		t.Fatalf("%s: /etc/docker/ssl does not hold a matching set: %q %v %s", when, out, err, errb)
	}
}
