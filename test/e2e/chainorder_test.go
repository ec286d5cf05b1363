package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore/certtest"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// cfStart boots a test host named cf-NAME-HEX (this file's prefix) with
// the tlsdock binary in /usr/local/bin, shut down when t ends.
func cfStart(t *testing.T, name string) *testhost.Host {
	t.Helper()
	testhost.SkipUnlessEnabled(t)
	bin := tlsdockBinary(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := testhost.Boot(ctx, testhost.Options{Name: "cf-" + name + "-" + hex.EncodeToString(b), Logf: t.Logf})
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
	if err := h.CopyIn(bin, "/usr/local/bin/tlsdock", 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// cfChain is one server certificate of pki written intermediate first.
type cfChain struct {
	source, leafFirst []byte
	leaf              *x509.Certificate
}

func cfWriteIntermediateFirst(t *testing.T, h *testhost.Host, dir string, pki *certtest.PKI) cfChain {
	t.Helper()
	chain, key := pki.Server(t) // leaf, then the intermediate
	leafPEM, interPEM, leaf := pfSplitLeaf(t, chain)
	c := cfChain{source: append(append([]byte{}, interPEM...), leafPEM...), leafFirst: chain, leaf: leaf}
	for name, f := range map[string]struct {
		data []byte
		mode os.FileMode
	}{"ca.pem": {pki.Root.PEM, 0o644}, "server-cert.pem": {c.source, 0o644}, "server-key.pem": {key, 0o600}} {
		if err := h.WriteFile(dir+"/"+name, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestChainfixIntermediateFirst: a server certificate file with the
// intermediate first and the leaf after it. dockerd takes the first
// certificate of tlscert as its own, so in the native modes docker.service
// did not start ("private key does not match public key") and provision
// rolled back (exit 3). tlsdock installs the chain leaf first into
// /etc/docker/ssl and leaves the source as it is: in daemon-json and
// dropin mode dockerd serves the leaf to a client of the CA, a second
// provision changes nothing and does not restart docker, and tlsdock run
// serves a renewal written the same way once, then sees nothing new on a
// SIGHUP.
func TestChainfixIntermediateFirst(t *testing.T) {
	h := cfStart(t, "chain")
	ctx := ctxFor(t, 8*time.Minute)
	pki := certtest.New(t)
	pool := x509.NewCertPool()
	pool.AddCert(pki.Root.Cert)
	alice, _ := certtest.Client(t, pki.Root, "alice", nil)
	const src = "/etc/tlsdock/cf"

	for _, mode := range []string{"daemon-json", "dropin"} {
		t.Run(mode, func(t *testing.T) {
			c := cfWriteIntermediateFirst(t, h, src, pki)
			out := mustTlsdock(t, ctx, h, "provision", "--mode", mode, "--certs", src)
			t.Logf("provision --mode %s:\n%s", mode, out)
			if !strings.Contains(out, "starts with an intermediate, not the server certificate: installed leaf first into /etc/docker/ssl") {
				t.Errorf("provision does not say the chain was installed leaf first")
			}
			serial, err := pkgPing(h, pool, &alice)
			if err != nil || serial.Cmp(c.leaf.SerialNumber) != 0 {
				t.Fatalf("dockerd serves serial %v (%v), want the leaf's %v", serial, err, c.leaf.SerialNumber)
			}
			if got, err := h.ReadFile("/etc/docker/ssl/..data/server-cert.pem"); err != nil || !bytes.Equal(got, c.leafFirst) {
				t.Errorf("installed server-cert.pem is not the chain leaf first (%v):\n%s", err, got)
			}
			if got, err := h.ReadFile(src + "/server-cert.pem"); err != nil || !bytes.Equal(got, c.source) {
				t.Errorf("the source file was changed (%v)", err)
			}
			pid := dockerPID(t, ctx, h)
			out = mustTlsdock(t, ctx, h, "provision", "--mode", mode, "--certs", src)
			if got := dockerPID(t, ctx, h); got != pid {
				t.Errorf("the second provision restarted docker (MainPID %s -> %s):\n%s", pid, got, out)
			}
			t.Logf("second provision:\n%s", out)
			if strings.Contains(out, "certificates: install") {
				t.Errorf("the second provision installs the set again")
			}
		})
	}

	t.Run("tlsdock run serves a renewal written intermediate first", func(t *testing.T) {
		const unit = "cf-tlsdock-run"
		run(t, ctx, h, "systemd-run", "--unit="+unit, "/usr/local/bin/tlsdock", "run", "--mode", "dropin", "--certs", src)
		t.Cleanup(func() { _, _, _ = h.Exec(context.Background(), nil, "systemctl", "stop", unit) })
		cfWaitActive(t, ctx, h, unit)
		c := cfWriteIntermediateFirst(t, h, src, pki)
		took := waitServes(t, ctx, h, &pkgSet{Pool: pool, Client: alice, Serial: c.leaf.SerialNumber}, "the renewal written intermediate first")
		t.Logf("renewal served %v after it was written", took.Round(100*time.Millisecond))
		pid := dockerPID(t, ctx, h)
		// A rescan (SIGHUP) reads the source again: it is the installed set.
		run(t, ctx, h, "systemctl", "kill", "-s", "HUP", unit)
		time.Sleep(5 * time.Second) // the daemon's rescan runs at once; a bound for it to act
		if got := dockerPID(t, ctx, h); got != pid {
			t.Errorf("the daemon restarted docker again after the renewal (MainPID %s -> %s)", pid, got)
		}
		j := run(t, ctx, h, "journalctl", "-u", unit, "--no-pager", "-o", "cat")
		t.Logf("%s:\n%s", unit, j)
		if n := strings.Count(j, `msg=rotating`); n != 1 {
			t.Errorf("the daemon rotated %d times for one renewal, want once", n)
		}
		for _, bad := range []string{"rolled back", "level=ERROR"} {
			if strings.Contains(j, bad) {
				t.Errorf("the daemon's journal has %q", bad)
			}
		}
	})
}

// cfWaitActive waits until unit is active inside h.
func cfWaitActive(t *testing.T, ctx context.Context, h *testhost.Host, unit string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a bound only
	for {
		state := strings.TrimSpace(run(t, ctx, h, "systemctl", "show", "-p", "ActiveState", "--value", unit))
		if state == "active" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s:\n%s", unit, state, h.Journal(ctx, unit, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
