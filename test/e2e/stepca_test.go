package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// The real PKI of these tests: smallstep's step and step-ca, built into
// stepBinDir by install-pki-tools.sh (setup-host.sh runs it).
const (
	stepBinDir  = "/var/cache/tlsdock-e2e/bin"
	stepVersion = "v0.30.2"
	// Inside the test host.
	stepPath   = "/etc/step-ca" // STEPPATH: the CA's config, keys and database
	stepPW     = stepPath + "/password"
	stepSource = "/etc/tlsdock/step"        // the source directory, step's file names
	stepProbe  = "/etc/tlsdock/probe"       // a client of the CA for --probe-client
	stepCRL    = "/etc/tlsdock/step-ca.crl" // step-ca's CRL, fetched from /crl
)

// stepNames are the file-name flags of a source with step's names.
var stepNames = []string{"--ca-file", "root_ca.crt", "--cert-file", "server.crt", "--key-file", "server.key"}

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

// stepCA is a step-ca running inside a test host, as a transient unit.
type stepCA struct {
	h *testhost.Host
}

// startStepCA copies step and step-ca into h, initialises a standalone CA
// (root and intermediate, a JWK provisioner "admin") listening on
// 127.0.0.1:9000 and starts it.
func startStepCA(t *testing.T, ctx context.Context, h *testhost.Host) *stepCA {
	t.Helper()
	for _, b := range []string{"step", "step-ca"} {
		p := filepath.Join(stepBinDir, b)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s %s is not built: run test/e2e/install-pki-tools.sh (setup-host.sh does) as root: %v", b, stepVersion, err)
		}
		if err := h.CopyIn(p, "/usr/local/bin/"+b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.WriteFile(stepPW, []byte("e2e-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := &stepCA{h: h}
	ca.step(t, ctx, "ca", "init", "--name", "pd e2e", "--dns", "localhost", "--address", "127.0.0.1:9000",
		"--provisioner", "admin", "--password-file", stepPW, "--provisioner-password-file", stepPW,
		"--deployment-type", "standalone")
	// step-ca publishes a CRL (signed by its intermediate) at /crl.
	cfgPath := stepPath + "/config/ca.json"
	raw, err := h.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", cfgPath, err)
	}
	cfg["crl"] = map[string]any{"enabled": true, "generateOnRevoke": true, "cacheDuration": "24h"}
	if raw, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemd-run", "--unit=pd-step-ca", "--setenv=STEPPATH="+stepPath,
		"/usr/local/bin/step-ca", "--password-file", stepPW, stepPath+"/config/ca.json")
	deadline := time.Now().Add(time.Minute) // a bound only
	for {
		if _, _, err := h.Exec(ctx, nil, "env", "STEPPATH="+stepPath, "step", "ca", "health"); err == nil {
			return ca
		}
		if time.Now().After(deadline) {
			t.Fatalf("step-ca does not answer:\n%s", h.Journal(ctx, "pd-step-ca", 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// step runs the step CLI inside the host with the CA's STEPPATH.
func (ca *stepCA) step(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, errb, err := ca.h.Exec(ctx, nil, append([]string{"env", "STEPPATH=" + stepPath, "step"}, args...)...)
	if err != nil {
		t.Fatalf("step %s: %v\n%s%s", strings.Join(args, " "), err, out, errb)
	}
	return string(out)
}

// issue has step-ca issue a certificate for name into certPath and
// keyPath inside the host (the chain: leaf, then the intermediate).
func (ca *stepCA) issue(t *testing.T, ctx context.Context, name, certPath, keyPath, validity string, sans ...string) {
	t.Helper()
	args := []string{"ca", "certificate", name, certPath, keyPath, "--not-after", validity,
		"--provisioner", "admin", "--provisioner-password-file", stepPW, "--force"}
	for _, s := range sans {
		args = append(args, "--san", s)
	}
	ca.step(t, ctx, args...)
}

// leafSerial reads the first certificate of path inside h; nil while the
// file is missing or partly written (step writes it in place).
func leafSerial(h *testhost.Host, path string) *big.Int {
	data, err := h.ReadFile(path)
	if err != nil {
		return nil
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return c.SerialNumber
}

// stepClient is a client of the step CA, for pkgPing: a pool with the
// root and a client certificate step-ca issued.
func stepClient(t *testing.T, ctx context.Context, ca *stepCA) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	ca.issue(t, ctx, "e2e-cli", "/root/cli.crt", "/root/cli.key", "1h")
	root, err := ca.h.ReadFile(stepSource + "/root_ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		t.Fatal("root_ca.crt holds no certificate")
	}
	return pool, readClient(t, ca.h, "/root/cli.crt", "/root/cli.key")
}

// readClient loads a client certificate (its chain) and key from h.
func readClient(t *testing.T, h *testhost.Host, certPath, keyPath string) tls.Certificate {
	t.Helper()
	certPEM, err := h.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := h.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// waitRenewal waits until step's daemon rewrites server.crt with a serial
// other than old, then until 127.0.0.1:2376 serves it, and returns the
// new serial and how long the host took from the renewal on disk to
// serving it.
func waitRenewal(t *testing.T, ctx context.Context, h *testhost.Host, pool *x509.CertPool, client *tls.Certificate, old *big.Int) (*big.Int, time.Duration) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a bound only
	var renewed *big.Int
	for {
		if s := leafSerial(h, stepSource+"/server.crt"); s != nil && s.Cmp(old) != 0 {
			renewed = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("step did not renew %s/server.crt (serial %x):\n%s", stepSource, old, h.Journal(ctx, stepRenewer, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := time.Now()
	var last *big.Int
	var lastErr error
	for {
		last, lastErr = pkgPing(h, pool, client)
		if lastErr == nil && last.Cmp(renewed) == 0 {
			return renewed, time.Since(seen)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewal (serial %x) was not served (last: serial %x, %v); tlsdock.service:\n%s", renewed, last, lastErr, h.Journal(ctx, "tlsdock.service", 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stepRenewer is the transient unit of `step ca renew --daemon`.
const stepRenewer = "pd-step-renew"

// startRenewer runs step's renewal daemon on the source, renewing every
// 30 s (the default, two thirds of the lifetime with jitter, would make
// the test wait minutes), in place, with the key it has.
func startRenewer(t *testing.T, ctx context.Context, h *testhost.Host) {
	t.Helper()
	run(t, ctx, h, "systemd-run", "--unit="+stepRenewer, "--setenv=STEPPATH="+stepPath,
		"/usr/local/bin/step", "ca", "renew", "--daemon", "--renew-period", "30s",
		stepSource+"/server.crt", stepSource+"/server.key")
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
	// The packaged unit, sandbox included, running the binary where it
	// points (no .deb: nothing else of the package matters here).
	if err := h.CopyIn(tlsdockBinary(t), "/usr/bin/tlsdock", 0o755); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(pkgRepoRoot(t), "packaging", "tlsdock.service"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile("/lib/systemd/system/tlsdock.service", unit, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "daemon-reload")

	ca := startStepCA(t, ctx, h)
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
	startRenewer(t, ctx, h)

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
		startRenewer(t, ctx, h)
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
		startRenewer(t, ctx, h)
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
