package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// bootPD boots a test host named pd-WHAT-<hex>, closed by t.Cleanup, as
// testhost.Start does.
func bootPD(t *testing.T, what string) *testhost.Host {
	t.Helper()
	testhost.SkipUnlessEnabled(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := testhost.Boot(ctx, testhost.Options{Name: "pd-" + what + "-" + hex.EncodeToString(b), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return h
}

// TestStepCARenewDaemon: a real step-ca issues 5-minute certificates into
// a source directory under step's file names, and `step ca renew --daemon`
// renews them in place every 30 s. A native provision (daemon-json) from
// that source is what the packaged tlsdock.service watches: each renewal
// is served, docker restarted by the rotation; `status` names the source
// and stands in no attention for certificates that short. A one-shot
// `step ca rekey` (certificate, then the new key) is served too. Then the same
// host moves to proxy mode with step-ca's CRL (signed by its intermediate,
// while root_ca.crt holds the root only): a client step-ca revoked is
// refused, and the renewals are hot-swapped with dockerd not restarted.
func TestStepCARenewDaemon(t *testing.T) {
	h := bootPD(t, "stepca")
	ctx := ctxFor(t, 12*time.Minute)
	installUnit(t, ctx, h)
	ca := startStepCA(t, ctx, h, "127.0.0.1:9000", "localhost")
	run(t, ctx, h, "mkdir", "-p", stepSource)
	ca.issue(t, ctx, "localhost", stepSource+"/server.crt", stepSource+"/server.key", "5m", "localhost", "127.0.0.1", "::1")
	ca.step(t, ctx, "ca", "root", stepSource+"/root_ca.crt", "--force")
	pool, client := stepClient(t, ctx, ca)
	t.Logf("source:\n%s", run(t, ctx, h, "ls", "-l", stepSource))
	// A client of the same CA lets provision's verification (and every
	// rotation's) check that a valid client gets in.
	run(t, ctx, h, "mkdir", "-p", stepProbe)
	ca.issue(t, ctx, "tlsdock-probe", stepProbe+"/cert.pem", stepProbe+"/key.pem", "1h")

	out := mustTlsdock(t, ctx, h, append([]string{"provision", "--certs", stepSource, "--probe-client", stepProbe}, stepNames...)...)
	t.Logf("provision:\n%s", out)
	if !strings.Contains(out, "ok   127.0.0.1:2376: a valid client gets /_ping = OK\n") {
		t.Errorf("provision did not probe with the step-ca client")
	}
	serial, err := pkgPing(h, pool, &client)
	if err != nil {
		t.Fatalf("mutual TLS with the step-ca client after provision: %v", err)
	}
	if want := leafSerial(h, stepSource+"/server.crt"); serial.Cmp(want) != 0 {
		t.Fatalf("serves serial %x, want the source's %x", serial, want)
	}
	run(t, ctx, h, "systemctl", "start", "tlsdock.service")
	if err := h.WaitActive(ctx, "tlsdock.service"); err != nil {
		t.Fatal(err)
	}
	startRenewer(t, ctx, h, stepPath, "30s")

	t.Run("native", func(t *testing.T) {
		for i := 1; i <= 2; i++ {
			pid := dockerPID(t, ctx, h)
			var took time.Duration
			serial, took = waitRenewal(t, ctx, h, pool, &client, serial)
			t.Logf("renewal %d (serial %x) served %v after step wrote it", i, serial, took.Round(100*time.Millisecond))
			if dockerPID(t, ctx, h) == pid {
				t.Errorf("renewal %d is served but docker.service kept PID %s: in daemon-json mode the rotation restarts it", i, pid)
			}
		}
		status := mustTlsdock(t, ctx, h, "status")
		t.Logf("status:\n%s", status)
		if want := "source:      " + stepSource + " (from tlsdock provision (/var/lib/tlsdock/state.json)), files root_ca.crt, server.crt, server.key"; !strings.Contains(status, want) {
			t.Errorf("status does not say %q", want)
		}
		if strings.Contains(status, "attention:") {
			t.Errorf("status stands in attention for a 5-minute certificate renewed on time")
		}
		pkgAssertCleanJournal(t, ctx, h)
	})

	// step ca rekey writes the certificate, then the new key, each in
	// place: until the key is written the set does not match, and tlsdock
	// waits for it instead of installing a set dockerd cannot load. (In
	// step v0.30.2 `step ca rekey --daemon` runs the renewal loop and keeps
	// the key, so this is the one-shot command, as a timer would run it.)
	t.Run("native rekey", func(t *testing.T) {
		run(t, ctx, h, "systemctl", "stop", stepRenewer)
		oldKey, err := h.ReadFile(stepSource + "/server.key")
		if err != nil {
			t.Fatal(err)
		}
		ca.step(t, ctx, "ca", "rekey", "--force", stepSource+"/server.crt", stepSource+"/server.key")
		var took time.Duration
		serial, took = waitRenewal(t, ctx, h, pool, &client, serial)
		t.Logf("rekeyed certificate (serial %x) served %v after step wrote it (rotations are at least --min-restart-interval, 20 s, apart)", serial, took.Round(100*time.Millisecond))
		if newKey, err := h.ReadFile(stepSource + "/server.key"); err != nil || bytes.Equal(newKey, oldKey) {
			t.Errorf("step ca rekey did not write a new key (%v)", err)
		}
		if j := run(t, ctx, h, "journalctl", "-u", "tlsdock.service", "--no-pager", "-o", "cat"); strings.Contains(j, "rolling back") {
			t.Errorf("a rotation rolled back while step rekeyed:\n%s", j)
		}
		startRenewer(t, ctx, h, stepPath, "30s")
	})

	t.Run("proxy", func(t *testing.T) {
		// A client step-ca revoked, and the CRL step-ca signs with its
		// intermediate (root_ca.crt holds the root only): the proxy takes
		// it and refuses that client.
		ca.issue(t, ctx, "mallory", "/root/mallory.crt", "/root/mallory.key", "1h")
		ca.step(t, ctx, "ca", "revoke", "--cert", "/root/mallory.crt", "--key", "/root/mallory.key")
		run(t, ctx, h, "curl", "-sSf", "--cacert", stepSource+"/root_ca.crt", "-o", stepCRL, "https://localhost:9000/crl")
		mallory := readClient(t, h, "/root/mallory.crt", "/root/mallory.key")
		// The provision by hand must not read the source while step
		// rewrites it in place (that is exit 2, run it again): the
		// renewer pauses.
		run(t, ctx, h, "systemctl", "stop", stepRenewer)
		out := mustTlsdock(t, ctx, h, append([]string{"provision", "--mode", "proxy", "--certs", stepSource, "--probe-client", stepProbe, "--crl", stepCRL}, stepNames...)...)
		t.Logf("provision --mode proxy:\n%s", out)
		startRenewer(t, ctx, h, stepPath, "30s")
		if err := h.WaitActive(ctx, "tlsdock.service"); err != nil {
			t.Fatal(err)
		}
		if s, err := pkgPing(h, pool, &client); err != nil {
			t.Fatalf("mutual TLS through the proxy: %v", err)
		} else {
			serial = s
		}
		if _, err := pkgPing(h, pool, &mallory); err == nil {
			t.Errorf("the proxy let in mallory, whom step-ca revoked")
		} else {
			t.Logf("mallory (revoked by step-ca) is refused: %v", err)
		}
		if j := run(t, ctx, h, "journalctl", "-u", "tlsdock.service", "--no-pager", "-o", "cat"); !strings.Contains(j, "refused a revoked client certificate") || !strings.Contains(j, "user=mallory") {
			t.Errorf("tlsdock.service did not log mallory refused as revoked:\n%s", j)
		}
		pid := dockerPID(t, ctx, h)
		for i := 1; i <= 2; i++ {
			var took time.Duration
			serial, took = waitRenewal(t, ctx, h, pool, &client, serial)
			t.Logf("renewal %d (serial %x) hot-swapped %v after step wrote it", i, serial, took.Round(100*time.Millisecond))
		}
		if got := dockerPID(t, ctx, h); got != pid {
			t.Errorf("dockerd restarted in proxy mode (MainPID %s -> %s)", pid, got)
		}
		status := mustTlsdock(t, ctx, h, "status")
		t.Logf("status:\n%s", status)
		if strings.Contains(status, "attention:") {
			t.Errorf("status stands in attention for a 5-minute certificate renewed on time")
		}
		if want := "crl:       " + stepCRL + " number 1 by CN=pd e2e Intermediate CA"; !strings.Contains(status, want) {
			t.Errorf("status does not show step-ca's CRL, signed by its intermediate, in force (%q)", want)
		}
	})
}
