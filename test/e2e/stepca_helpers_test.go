package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	stepPath   = "/etc/step-ca" // STEPPATH of the CA: its config, keys and database
	stepPW     = stepPath + "/password"
	stepSource = "/etc/tlsdock/step"        // the source directory, step's file names
	stepProbe  = "/etc/tlsdock/probe"       // a client of the CA for --probe-client
	stepCRL    = "/etc/tlsdock/step-ca.crl" // step-ca's CRL, fetched from /crl
	// stepClientPath is the STEPPATH of a host that is only a client of
	// the CA (`step ca bootstrap` writes its ca-url and root there).
	stepClientPath = "/etc/step"
)

// stepNames are the file-name flags of a source with step's names.
var stepNames = []string{"--ca-file", "root_ca.crt", "--cert-file", "server.crt", "--key-file", "server.key"}

// copyStep copies the named binaries of stepBinDir (step, step-ca) into
// /usr/local/bin of h.
func copyStep(t *testing.T, h *testhost.Host, names ...string) {
	t.Helper()
	for _, b := range names {
		p := filepath.Join(stepBinDir, b)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s %s is not built: run test/e2e/install-pki-tools.sh (setup-host.sh does) as root: %v", b, stepVersion, err)
		}
		if err := h.CopyIn(p, "/usr/local/bin/"+b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// installUnit puts tlsdock's packaged unit, sandbox included, on h, running
// the binary where it points (no .deb: nothing else of the package matters
// to the callers).
func installUnit(t *testing.T, ctx context.Context, h *testhost.Host) {
	t.Helper()
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
}

// stepCA is a step-ca running inside a test host, as a transient unit.
type stepCA struct {
	h *testhost.Host
	// URL is its address for clients (https://NAME:PORT, NAME its first
	// DNS name).
	URL string
}

// startStepCA copies step and step-ca into h, initialises a standalone CA
// (root and intermediate, a JWK provisioner "admin", the CRL enabled)
// listening on listen (host:port; ":9000" is every address of h), its TLS
// certificate naming dns (the first one in its URL), and starts it.
func startStepCA(t *testing.T, ctx context.Context, h *testhost.Host, listen string, dns ...string) *stepCA {
	t.Helper()
	copyStep(t, h, "step", "step-ca")
	if err := h.WriteFile(stepPW, []byte("e2e-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || len(dns) == 0 {
		t.Fatalf("startStepCA(%q, %q): want host:port and a DNS name (%v)", listen, dns, err)
	}
	ca := &stepCA{h: h, URL: "https://" + net.JoinHostPort(dns[0], port)}
	ca.step(t, ctx, "ca", "init", "--name", "pd e2e", "--dns", strings.Join(dns, ","), "--address", listen,
		"--provisioner", "admin", "--password-file", stepPW, "--provisioner-password-file", stepPW,
		"--deployment-type", "standalone")
	// step-ca publishes a CRL (signed by its intermediate) at /crl, and a
	// new one at once on each revocation.
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

// stepIn runs the step CLI inside h with STEPPATH=steppath.
func stepIn(t *testing.T, ctx context.Context, h *testhost.Host, steppath string, args ...string) string {
	t.Helper()
	out, errb, err := h.Exec(ctx, nil, append([]string{"env", "STEPPATH=" + steppath, "step"}, args...)...)
	if err != nil {
		t.Fatalf("step %s (in %s): %v\n%s%s", strings.Join(args, " "), h.Name, err, out, errb)
	}
	return string(out)
}

// step runs the step CLI inside the CA's host with the CA's STEPPATH.
func (ca *stepCA) step(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	return stepIn(t, ctx, ca.h, stepPath, args...)
}

// issue has step-ca issue a certificate for name into certPath and
// keyPath inside the CA's host (the chain: leaf, then the intermediate).
func (ca *stepCA) issue(t *testing.T, ctx context.Context, name, certPath, keyPath, validity string, sans ...string) {
	t.Helper()
	args := []string{"ca", "certificate", name, certPath, keyPath, "--not-after", validity,
		"--provisioner", "admin", "--provisioner-password-file", stepPW, "--force"}
	for _, s := range sans {
		args = append(args, "--san", s)
	}
	ca.step(t, ctx, args...)
}

// token is a one-time token of the provisioner "admin" for a certificate
// of subject name with sans (the subject alone if none), for `step ca
// certificate --token` on another host: the key is made there and never
// leaves it, and the provisioner's password stays on the CA's host.
func (ca *stepCA) token(t *testing.T, ctx context.Context, name string, sans ...string) string {
	t.Helper()
	args := []string{"ca", "token", name, "--provisioner", "admin", "--provisioner-password-file", stepPW}
	for _, s := range sans {
		args = append(args, "--san", s)
	}
	return strings.TrimSpace(ca.step(t, ctx, args...))
}

// fingerprint is the SHA-256 fingerprint of the CA's root, for `step ca
// bootstrap`.
func (ca *stepCA) fingerprint(t *testing.T, ctx context.Context) string {
	t.Helper()
	return strings.TrimSpace(ca.step(t, ctx, "certificate", "fingerprint", stepPath+"/certs/root_ca.crt"))
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
	root, err := ca.h.ReadFile(stepPath + "/certs/root_ca.crt")
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

// renewing is a host whose server certificate `step ca renew --daemon`
// renews in place in stepSource, and how to ask what it serves.
type renewing struct {
	h *testhost.Host
	// serves returns the serial the host serves to a valid client.
	serves func() (*big.Int, error)
	// serial is the serial it served last.
	serial *big.Int
}

// renewal is what waitRenewals saw of one host's renewal.
type renewal struct {
	serial  *big.Int
	written time.Time // server.crt with the new serial first seen
	served  time.Time // the new serial first served
}

// waitRenewals waits until step's daemon has rewritten server.crt of every
// host with a serial other than the one it served, and until each host
// serves its new serial; it moves each host's serial on. Each host is
// polled on its own, so that a slow answer of one (a dockerd restarting)
// does not delay what the others are seen doing.
func waitRenewals(t *testing.T, ctx context.Context, hs []*renewing) []renewal {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a bound only
	got := make([]renewal, len(hs))
	lastErr := make([]error, len(hs))
	var wg sync.WaitGroup
	for i, r := range hs {
		wg.Go(func() {
			g := &got[i]
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if g.serial == nil {
					if s := leafSerial(r.h, stepSource+"/server.crt"); s != nil && s.Cmp(r.serial) != 0 {
						g.serial, g.written = s, time.Now()
					}
				}
				if g.serial != nil {
					s, err := r.serves()
					if err == nil && s.Cmp(g.serial) == 0 {
						g.served = time.Now()
						return
					}
					if err == nil {
						err = fmt.Errorf("serves serial %x", s)
					}
					lastErr[i] = err
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	for i, r := range hs {
		switch g := got[i]; {
		case g.serial == nil:
			t.Fatalf("step did not renew %s/server.crt in %s (serial %x):\n%s", stepSource, r.h.Name, r.serial, r.h.Journal(ctx, stepRenewer, 20))
		case g.served.IsZero():
			t.Fatalf("%s did not serve its renewal (serial %x; last: %v); tlsdock.service:\n%s", r.h.Name, g.serial, lastErr[i], r.h.Journal(ctx, "tlsdock.service", 40))
		}
		r.serial = got[i].serial
	}
	return got
}

// waitRenewal waits until step's daemon rewrites server.crt of h with a
// serial other than old, then until 127.0.0.1:2376 inside h serves it, and
// returns the new serial and how long the host took from the renewal on
// disk to serving it.
func waitRenewal(t *testing.T, ctx context.Context, h *testhost.Host, pool *x509.CertPool, client *tls.Certificate, old *big.Int) (*big.Int, time.Duration) {
	t.Helper()
	r := &renewing{h: h, serial: old, serves: func() (*big.Int, error) { return pkgPing(h, pool, client) }}
	g := waitRenewals(t, ctx, []*renewing{r})[0]
	return g.serial, g.served.Sub(g.written)
}

// stepRenewer is the transient unit of `step ca renew --daemon`.
const stepRenewer = "pd-step-renew"

// startRenewer runs step's renewal daemon on the source of h, with
// STEPPATH=steppath (where its ca-url and root are), renewing every period
// (the default, two thirds of the lifetime with jitter, would make the test
// wait minutes), in place, with the key it has. SIGHUP (kickRenewer) makes
// it renew at once.
func startRenewer(t *testing.T, ctx context.Context, h *testhost.Host, steppath, period string) {
	t.Helper()
	run(t, ctx, h, "systemd-run", "--unit="+stepRenewer, "--setenv=STEPPATH="+steppath,
		"/usr/local/bin/step", "ca", "renew", "--daemon", "--renew-period", period,
		stepSource+"/server.crt", stepSource+"/server.key")
}

// kickRenewer has step's renewal daemon in h renew now (its SIGHUP).
func kickRenewer(t *testing.T, ctx context.Context, h *testhost.Host) {
	t.Helper()
	run(t, ctx, h, "systemctl", "kill", "--signal=HUP", stepRenewer)
}

// pingAt does GET /_ping over mutual TLS at addr (host:port, the host its
// server name) from the network namespace of from, as a client of pool
// (without a client certificate when client is nil). It returns the serial
// of the certificate the server presented.
func pingAt(from *testhost.Host, addr string, pool *x509.CertPool, client *tls.Certificate) (*big.Int, error) {
	name, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	conn, err := pkgDial(from, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	cfg := &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	serial := tc.ConnectionState().PeerCertificates[0].SerialNumber
	if _, err := tc.Write([]byte("GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")); err != nil {
		return serial, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return serial, fmt.Errorf("GET /_ping: %w", err)
	}
	defer resp.Body.Close()
	body := make([]byte, 16)
	n, _ := resp.Body.Read(body)
	if resp.StatusCode != 200 || string(body[:n]) != "OK" {
		return serial, fmt.Errorf("GET /_ping: %s %q", resp.Status, body[:n])
	}
	return serial, nil
}
