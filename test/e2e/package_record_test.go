package e2e

// An upgrade of the package keeps a provision run by hand, and leaves a
// reverted host reverted.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// pfStart boots a test host named pf-NAME-HEX (this file's prefix), shut
// down when t ends.
func pfStart(t *testing.T, name string) *testhost.Host {
	t.Helper()
	testhost.SkipUnlessEnabled(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := testhost.Boot(ctx, testhost.Options{Name: "pf-" + name + "-" + hex.EncodeToString(b), Logf: t.Logf})
	if h != nil {
		t.Cleanup(func() {
			if err := h.Close(); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPackageUpgradeKeepsTheProvisionByHand: the .deb provisions a host
// from a set preseeded in /etc/tlsdock/certs; the operator then
// provisions by hand, in dropin mode, from /srv/pki under step's file
// names, while tlsdock.service runs, which re-reads its settings and
// serves a renewal there. Upgrading the package keeps that:
// its postinstall provisions what the record holds (no changes, docker
// not restarted), the served certificate is the source's, the restarted
// daemon serves a renewal written there and keeps dropin mode. After
// `tlsdock revert`, the next upgrade provisions nothing: the port stays
// closed and the host stays reverted.
func TestPackageUpgradeKeepsTheProvisionByHand(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	v1 := pkgPackages(t, "")
	v2 := pkgPackages(t, v1.Version+"+e2e.upgrade")
	h := pfStart(t, "pkgrecord")
	ctx := ctxFor(t, 10*time.Minute)
	ca := pkgNewCA(t)
	setA, setB, setC := pkgIssueSet(t, ca), pkgIssueSet(t, ca), pkgIssueSet(t, ca)
	pkgWriteSet(t, h, "/etc/tlsdock/certs", setA)
	for _, d := range []struct{ src, dst string }{{v1.Deb, "/root/tlsdock-v1.deb"}, {v2.Deb, "/root/tlsdock-v2.deb"}} {
		if err := h.CopyIn(d.src, d.dst, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock-v1.deb")
	t.Logf("dpkg -i v1:\n%s", out)
	pkgAssertServes(t, h, setA)
	if active, _ := pkgUnitState(ctx, h, "tlsdock.service"); active != "active" {
		t.Fatalf("tlsdock.service is %s after the install", active)
	}

	const src = "/srv/pki"
	writeStepSet(t, h, src, setB)
	out = pkgMustExec(t, ctx, h, "tlsdock", "provision", "--mode", "dropin", "--certs", src,
		"--ca-file", "root_ca.crt", "--cert-file", "server.crt", "--key-file", "server.key")
	t.Logf("provision by hand:\n%s", out)
	pkgAssertServes(t, h, setB)
	if !strings.Contains(out, "tlsdock.service re-reads its settings (SIGHUP)") {
		t.Errorf("the provision by hand did not reload the running tlsdock.service")
	}
	// The running daemon (started by the install, from /etc/tlsdock/certs)
	// now watches the recorded source: it serves a renewal there.
	setB2 := pkgIssueSet(t, ca)
	writeStepSet(t, h, src, setB2)
	took := waitServes(t, ctx, h, setB2, "the renewal in "+src+" by the daemon running since the install")
	t.Logf("the running daemon served the renewal in %s %v after it was written", src, took.Round(100*time.Millisecond))
	setB = setB2

	wantStatus := func(t *testing.T, what string) {
		t.Helper()
		status := pkgMustExec(t, ctx, h, "tlsdock", "status")
		for _, want := range []string{
			"mode:        dropin\n",
			"source:      " + src + " (from tlsdock provision (/var/lib/tlsdock/state.json)), files root_ca.crt, server.crt, server.key",
		} {
			if !strings.Contains(status, want) {
				t.Errorf("%s: status does not say %q:\n%s", what, want, status)
			}
		}
	}

	if !t.Run("upgrade keeps the provision by hand", func(t *testing.T) {
		dockerBefore := dockerPID(t, ctx, h)
		start := time.Now()
		out := pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock-v2.deb")
		t.Logf("dpkg -i v2 (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
		if !strings.Contains(out, "provisioning with the source and settings recorded by the last 'tlsdock provision' run by hand") {
			t.Errorf("the postinstall did not provision from the record")
		}
		if !strings.Contains(out, "No changes") {
			t.Errorf("the postinstall's provision changed the host (want \"No changes\")")
		}
		if got := dockerPID(t, ctx, h); got != dockerBefore {
			t.Errorf("docker.service MainPID %s -> %s: the upgrade restarted docker", dockerBefore, got)
		}
		pkgAssertServes(t, h, setB)
		if err := h.WaitActive(ctx, "tlsdock.service"); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "after the upgrade")
		if out, code := pkgExec(ctx, h, "tlsdock", "config"); code != 7 {
			t.Errorf("tlsdock config: exit %d, want 7 (the record)\n%s", code, out)
		}
	}) {
		return
	}

	t.Run("the upgraded daemon serves the source", func(t *testing.T) {
		writeStepSet(t, h, src, setC)
		took := waitServes(t, ctx, h, setC, "the renewal in "+src)
		t.Logf("renewal served %v after it was written", took.Round(100*time.Millisecond))
		pkgAssertServes(t, h, setC)
		wantStatus(t, "after the renewal")
	})

	t.Run("an upgrade leaves a reverted host reverted", func(t *testing.T) {
		out := pkgMustExec(t, ctx, h, "tlsdock", "revert")
		t.Logf("revert:\n%s", out)
		if _, err := pkgPing(h, setC.Pool, &setC.Client); err == nil {
			t.Fatal("127.0.0.1:2376 still answers after revert")
		}
		dockerBefore := dockerPID(t, ctx, h)
		out = pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock-v2.deb")
		t.Logf("dpkg -i v2 again:\n%s", out)
		if !strings.Contains(out, "'tlsdock revert' put this host back: not provisioning it again") {
			t.Errorf("the postinstall does not say that the host stays reverted")
		}
		if strings.Contains(out, "provisioning with") {
			t.Errorf("the postinstall provisioned a reverted host")
		}
		if _, err := pkgPing(h, setC.Pool, &setC.Client); err == nil {
			t.Error("127.0.0.1:2376 answers after the upgrade of a reverted host")
		}
		if got := dockerPID(t, ctx, h); got != dockerBefore {
			t.Errorf("docker.service MainPID %s -> %s: the upgrade of a reverted host restarted docker", dockerBefore, got)
		}
		data, err := h.ReadFile("/var/lib/tlsdock/state.json")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			RevertedAt time.Time `json:"reverted_at"`
		}
		if err := json.Unmarshal(data, &st); err != nil || st.RevertedAt.IsZero() {
			t.Errorf("state.json no longer records the revert (%v):\n%s", err, data)
		}
		if out, code := pkgExec(ctx, h, "tlsdock", "config"); code != 8 {
			t.Errorf("tlsdock config: exit %d, want 8 (reverted)\n%s", code, out)
		}
		if pkgExists(h, "/etc/docker/ssl/server-cert.pem") {
			t.Error("/etc/docker/ssl/server-cert.pem is back after the upgrade")
		}
	})
}
