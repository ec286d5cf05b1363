package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// stepCRLURL is step-ca's CRL inside the test host (startStepCA).
const stepCRLURL = "https://localhost:9000/crl"

// openPing is a client connection to 127.0.0.1:2376 inside h that got
// /_ping = OK and stays open (keep-alive).
func openPing(t *testing.T, h *testhost.Host, pool *x509.CertPool, client tls.Certificate) *tls.Conn {
	t.Helper()
	conn, err := pkgDial(h, "127.0.0.1:2376")
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{client}})
	t.Cleanup(func() { tc.Close() })
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.Write([]byte("GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatalf("GET /_ping on a kept-alive connection: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /_ping: %s", resp.Status)
	}
	return tc
}

// closedByServer reports whether the server closed tc: a read ends in
// anything but a timeout.
func closedByServer(tc *tls.Conn) bool {
	_ = tc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := tc.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestStepCACRLURL: a proxy-mode host fetches step-ca's CRL from its URL
// (https, signed by the intermediate, served from step-ca's own root)
// every 10 s. A client revoked with `step ca revoke` is refused at the
// next fetch with no push to the host, its open connection closed too;
// with step-ca down the last good CRL stays in force, also across a
// restart of tlsdock.service, and status shows the fetch's age and error.
func TestStepCACRLURL(t *testing.T) {
	h := bootPD(t, "crlurl")
	ctx := ctxFor(t, 10*time.Minute)
	installUnit(t, ctx, h)
	ca := startStepCA(t, ctx, h, "127.0.0.1:9000", "localhost")
	run(t, ctx, h, "mkdir", "-p", stepSource, stepProbe)
	ca.issue(t, ctx, "localhost", stepSource+"/server.crt", stepSource+"/server.key", "1h", "localhost", "127.0.0.1", "::1")
	ca.step(t, ctx, "ca", "root", stepSource+"/root_ca.crt", "--force")
	pool, client := stepClient(t, ctx, ca)
	ca.issue(t, ctx, "tlsdock-probe", stepProbe+"/cert.pem", stepProbe+"/key.pem", "1h")
	ca.issue(t, ctx, "mallory", "/root/mallory.crt", "/root/mallory.key", "1h")
	mallory := readClient(t, h, "/root/mallory.crt", "/root/mallory.key")

	out := mustTlsdock(t, ctx, h, append([]string{"provision", "--mode", "proxy", "--certs", stepSource, "--probe-client", stepProbe,
		"--crl-url", stepCRLURL, "--crl-refresh", "10s"}, stepNames...)...)
	t.Logf("provision --mode proxy --crl-url:\n%s", out)
	if err := h.WaitActive(ctx, "tlsdock.service"); err != nil {
		t.Fatal(err)
	}
	if dropIn := run(t, ctx, h, "cat", "/etc/systemd/system/tlsdock.service.d/zz-proxy.conf"); !strings.Contains(dropIn, "--crl-url "+stepCRLURL+" --crl-refresh 10s") {
		t.Fatalf("the unit does not carry the URL:\n%s", dropIn)
	}
	for name, c := range map[string]*tls.Certificate{"the client": &client, "mallory (not revoked yet)": &mallory} {
		if _, err := pkgPing(h, pool, c); err != nil {
			t.Fatalf("%s through the proxy: %v", name, err)
		}
	}
	open := openPing(t, h, pool, mallory)

	ca.step(t, ctx, "ca", "revoke", "--cert", "/root/mallory.crt", "--key", "/root/mallory.key")
	revoked := time.Now()
	deadline := revoked.Add(2 * time.Minute) // a failure bound, not a target
	for {
		_, err := pkgPing(h, pool, &mallory)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mallory still gets in %v after `step ca revoke`:\n%s", time.Since(revoked), h.Journal(ctx, "tlsdock.service", 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("mallory refused %v after `step ca revoke` (--crl-refresh 10s)", time.Since(revoked).Round(100*time.Millisecond))
	for !closedByServer(open) {
		if time.Now().After(deadline) {
			t.Fatal("mallory's open connection stays open after her revocation is in force")
		}
	}
	if _, err := pkgPing(h, pool, &client); err != nil {
		t.Fatalf("the client after mallory's revocation: %v", err)
	}
	status := mustTlsdock(t, ctx, h, "status")
	t.Logf("status:\n%s", status)
	if !regexp.MustCompile(`crl-url:   ` + regexp.QuoteMeta(stepCRLURL) + `: fetched \S+ ago \(every 10s\), number \d+, next update `).MatchString(status) {
		t.Errorf("status does not show the fetch of %s", stepCRLURL)
	}
	if !strings.Contains(status, "crl:       "+stepCRLURL+" number") || !strings.Contains(status, "by CN=pd e2e Intermediate CA") {
		t.Errorf("status does not show step-ca's CRL in force")
	}

	// step-ca goes down: the fetches fail, the last good CRL stays.
	run(t, ctx, h, "systemctl", "stop", "pd-step-ca")
	deadline = time.Now().Add(2 * time.Minute)
	for {
		status = mustTlsdock(t, ctx, h, "status")
		if strings.Contains(status, "fetch failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed fetch shown with step-ca down:\n%s", status)
		}
		time.Sleep(time.Second)
	}
	t.Logf("status with step-ca down:\n%s", status)
	if !strings.Contains(status, "rejected: fetch failed") || !strings.Contains(status, "; keeping number") {
		t.Errorf("status does not say the last good CRL is kept")
	}
	check := func(when string) {
		t.Helper()
		if _, err := pkgPing(h, pool, &mallory); err == nil {
			t.Errorf("mallory gets in %s", when)
		}
		if _, err := pkgPing(h, pool, &client); err != nil {
			t.Errorf("the client %s: %v", when, err)
		}
	}
	check("with step-ca down")
	run(t, ctx, h, "systemctl", "restart", "tlsdock.service")
	if err := h.WaitActive(ctx, "tlsdock.service"); err != nil {
		t.Fatal(err)
	}
	check("after a restart of tlsdock.service with step-ca down")
	if j := run(t, ctx, h, "journalctl", "-u", "tlsdock.service", "--no-pager", "-o", "cat"); !strings.Contains(j, "loaded the last good CRL") {
		t.Errorf("tlsdock.service did not load the saved CRL at its restart:\n%s", j)
	}
	t.Logf("saved CRLs: %s", run(t, ctx, h, "ls", "-l", "/var/lib/tlsdock/crl"))
}
