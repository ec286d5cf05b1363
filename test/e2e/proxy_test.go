package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// Proxy mode on a real host, with one host shared by the steps (each step
// builds on the previous one): provision --mode proxy with the local CA,
// the real Docker CLI from outside, a read-only client, a revoke, five
// hot-swapped sets under a fresh-handshake load, the tunnel, and revert.
func TestProxy(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	h := startWithTlsdock(t)
	if err := h.ImportTinyImage(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tlsdock.service's journal:\n%s", h.Journal(context.Background(), "tlsdock.service", 80))
		}
	})
	pid0 := dockerPID(t, ctx, h)

	var admin string
	t.Run("provision", func(t *testing.T) {
		out := mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--generate", "--client-out", "/root/admin", "--json")
		r := parseResult(t, out)
		if r.Restarted {
			t.Fatal("dockerd was restarted though it had no TCP listener")
		}
		// The provision's own verification is the attacker: plain HTTP, no
		// certificate, a foreign CA and TLS 1.1 are refused.
		want := map[string]bool{
			"plain HTTP is refused": false, "a client without a certificate is refused": false,
			"a client certificate from a foreign CA is refused": false, "TLS 1.1 is refused": false,
			"the installed certificate is served": false, "a valid client gets /_ping = OK": false,
		}
		for _, c := range r.Checks {
			if !c.OK {
				t.Errorf("check %q failed: %s", c.Name, c.Detail)
			}
			if _, ok := want[c.Name]; ok && strings.HasPrefix(c.Endpoint, "127.0.0.1:2376") {
				want[c.Name] = true
			}
		}
		for name, seen := range want {
			if !seen {
				t.Errorf("verification did not check %q on 127.0.0.1:2376: %+v", name, r.Checks)
			}
		}
		if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "tlsdock.service")); got != "active" {
			t.Fatalf("tlsdock.service is %s", got)
		}
		if got := dockerPID(t, ctx, h); got != pid0 {
			t.Fatalf("dockerd's MainPID changed %s -> %s", pid0, got)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	admin = fetchBundle(t, h, "/root/admin") // in t's TempDir: it outlives the subtests

	t.Run("docker CLI", func(t *testing.T) {
		if out, err := remoteDocker(ctx, t, h, admin, "", "version", "--format", "{{.Server.Version}}"); err != nil || !strings.HasPrefix(out, h.Suite.Docker) {
			t.Fatalf("docker version: %q %v", out, err)
		}
		if _, err := remoteDocker(ctx, t, h, admin, "", "ps"); err != nil {
			t.Fatalf("docker ps: %v", err)
		}
		out, err := remoteDocker(ctx, t, h, admin, "hi\n", "run", "-i", "--rm", "--name", "proxy-run-i", "tiny", "cat")
		if err != nil || strings.TrimSpace(out) != "hi" {
			t.Fatalf("echo hi | docker run -i tiny cat: %q %v", out, err)
		}
		if out, err := remoteDocker(ctx, t, h, "", "", "ps"); err == nil {
			t.Fatalf("docker ps without TLS got in: %q", out)
		}
	})

	t.Run("read-only client and revoke", func(t *testing.T) {
		mustTlsdock(t, ctx, h, "certs", "client", "ro", "--group", "read-only", "--out", "/root/ro")
		ro := fetchBundle(t, h, "/root/ro")
		if _, err := remoteDocker(ctx, t, h, ro, "", "ps"); err != nil {
			t.Fatalf("read-only docker ps: %v", err)
		}
		_, err := remoteDocker(ctx, t, h, ro, "", "create", "--name", "ro-create", "tiny", "sleep")
		if err == nil || !strings.Contains(err.Error(), `policy rule "read-only"`) {
			t.Fatalf("read-only docker create: %v; want a refusal naming the rule", err)
		}
		status := mustTlsdock(t, ctx, h, "status")
		for _, want := range []string{"mode:        proxy", "proxy:       serving serial", "client:    ro [read-only]", "read-only-get"} {
			if !strings.Contains(status, want) {
				t.Errorf("status lacks %q:\n%s", want, status)
			}
		}

		// Revoke: refused within 2 s, while the admin still gets in.
		mustTlsdock(t, ctx, h, "certs", "revoke", "ro")
		revoked := time.Now()
		roCert := loadPair(t, ro)
		pool := poolOf(t, ro)
		for {
			if _, err := pkgPing(h, pool, &roCert); err != nil {
				break
			}
			if time.Since(revoked) > 2*time.Second {
				t.Fatal("the revoked client still gets in 2 s after the revoke")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := remoteDocker(ctx, t, h, ro, "", "ps"); err == nil {
			t.Fatal("revoked client: docker ps got in")
		}
		if _, err := remoteDocker(ctx, t, h, admin, "", "ps"); err != nil {
			t.Fatalf("admin after the revoke: %v", err)
		}
		if status := mustTlsdock(t, ctx, h, "status"); !strings.Contains(status, "revoked:   serial") {
			t.Errorf("status does not list the revoked serial:\n%s", status)
		}
	})

	t.Run("five sets under load", func(t *testing.T) {
		// Move to a certificate source with the test's own CA, watched
		// with a short debounce (a run-only setting from the config file).
		iss := newRotIssuer(t)
		certPEM, keyPEM, err := iss.ca.Issue(certstore.IssueRequest{CommonName: "probe", KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 24 * time.Hour}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{"/root/probe/cert.pem": certPEM, "/root/probe/key.pem": keyPEM, "/root/probe/ca.pem": iss.ca.CertPEM} {
			if err := h.WriteFile(name, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.WriteFile("/etc/tlsdock/tlsdock.conf", []byte("debounce = 300ms\nmax-wait = 2s\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s0 := iss.issue()
		s0.write(t, h)
		mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--certs", rotSource, "--probe-client", "/root/probe")
		pid := dockerPID(t, ctx, h)
		client, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(iss.ca.CertPEM)

		var ok, failed atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := pkgPing(h, pool, &client); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					} else {
						ok.Add(1)
					}
				}
			}()
		}
		var last rotSet
		for i := range 5 {
			last = iss.issue()
			last.write(t, h)
			wctx, cancel := context.WithTimeout(ctx, 60*time.Second) // a failure bound
			waitServed(t, wctx, h, pool, &client, last)
			cancel()
			t.Logf("set %d served", i+1)
		}
		close(stop)
		wg.Wait()
		t.Logf("%d requests with a fresh handshake each, %d failed", ok.Load(), failed.Load())
		if failed.Load() != 0 {
			t.Fatalf("%d of %d requests failed during the rotations; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
		}
		if ok.Load() < 50 {
			t.Fatalf("only %d requests: the load did not run", ok.Load())
		}
		if got := dockerPID(t, ctx, h); got != pid {
			t.Fatalf("dockerd's MainPID changed %s -> %s during the rotations", pid, got)
		}
		if serial, err := pkgPing(h, pool, &client); err != nil || serial.Cmp(last.serial) != 0 {
			t.Fatalf("serves %x (%v), want the last set %x", serial, err, last.serial)
		}
	})

	t.Run("tunnel", func(t *testing.T) {
		if _, errb, err := h.Exec(ctx, nil, "systemd-run", "--unit=tlsdock-tunnel", "/usr/local/bin/tlsdock", "tunnel",
			"--listen", "tcp://127.0.0.1:23750", "--to", "tcp://127.0.0.1:2376", "--certs", "/root/probe"); err != nil {
			t.Fatalf("starting the tunnel: %v %s", err, errb)
		}
		deadline := time.Now().Add(30 * time.Second) // a failure bound
		for {
			out, _, err := h.Exec(ctx, nil, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:23750/_ping")
			if err == nil && string(out) == "OK" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("curl through the tunnel: %q %v\n%s", out, err, h.Journal(ctx, "tlsdock-tunnel", 20))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, _, code := tlsdock(ctx, h, "tunnel", "--listen", "tcp://0.0.0.0:23751", "--to", "tcp://127.0.0.1:2376", "--certs", "/root/probe"); code != 2 {
			t.Fatalf("a tunnel on 0.0.0.0 without --allow-remote: exit %d, want 2", code)
		}
	})

	t.Run("revert", func(t *testing.T) {
		mustTlsdock(t, ctx, h, "revert")
		if got := strings.TrimSpace(run(t, ctx, h, "sh", "-c", "systemctl is-active tlsdock.service || true")); got == "active" {
			t.Fatal("tlsdock.service still serves after revert")
		}
		for _, p := range []string{"/etc/systemd/system/tlsdock.service", "/etc/systemd/system/tlsdock.service.d/zz-proxy.conf"} {
			if _, err := h.ReadFile(p); err == nil {
				t.Errorf("%s left after revert", p)
			}
		}
		rotDockerActive(t, ctx, h)
	})
}

// waitServed waits until 127.0.0.1:2376 presents s's certificate.
func waitServed(t *testing.T, ctx context.Context, h *testhost.Host, pool *x509.CertPool, client *tls.Certificate, s rotSet) {
	t.Helper()
	for {
		serial, err := pkgPing(h, pool, client)
		if err == nil && serial.Cmp(s.serial) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never served serial %x (last %x, %v)\n%s", s.serial, serial, err, h.Journal(context.Background(), "tlsdock.service", 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func loadPair(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(dir+"/cert.pem", dir+"/key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func poolOf(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(dir + "/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("%s/ca.pem holds no certificate", dir)
	}
	return pool
}
