package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/certstore/certtest"
	"github.com/tlsdock/tlsdock/proxy"
)

// crlServer serves whatever body is current at /crl; sleep stalls the
// answer, redirect sends a 302 there instead.
type crlServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     []byte
	sleep    time.Duration
	redirect string
}

func (s *crlServer) set(body []byte, sleep time.Duration, redirect string) {
	s.mu.Lock()
	s.body, s.sleep, s.redirect = body, sleep, redirect
	s.mu.Unlock()
}

func (s *crlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body, sleep, redirect := s.body, s.sleep, s.redirect
	s.mu.Unlock()
	if r.URL.Path != "/crl" {
		http.NotFound(w, r)
		return
	}
	if redirect != "" {
		http.Redirect(w, r, redirect, http.StatusFound)
		return
	}
	if sleep > 0 {
		select {
		case <-time.After(sleep):
		case <-r.Context().Done():
			return
		}
	}
	w.Write(body)
}

// newCRLServer serves over http, or over https with a certificate of p's
// intermediate (as step-ca does, trusted through ca.pem's root).
func newCRLServer(t *testing.T, p *certtest.PKI, https bool) *crlServer {
	t.Helper()
	s := &crlServer{}
	s.Server = httptest.NewUnstartedServer(s)
	if https {
		certPEM, keyPEM := p.Server(t)
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		s.TLS = &tls.Config{Certificates: []tls.Certificate{c}}
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// fetchStatus is the status of the one URL source.
func (cd *crlDaemon) fetchStatus(t *testing.T) CRLFetchStatus {
	t.Helper()
	st, err := New(Options{Paths: cd.d.o.Paths}).ProxyStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.CRLFetches) != 1 {
		t.Fatalf("crl fetches %+v", st.CRLFetches)
	}
	return st.CRLFetches[0]
}

// waitFor polls cond until it holds; the bound only fails the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openConn is a client connection that completed its handshake.
func openConn(t *testing.T, addr string, root *x509.Certificate, c tls.Certificate) *tls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(root)
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{c}, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	// TLS 1.3: the server decides on the client certificate after the
	// client's handshake ends; a request makes sure it accepted it.
	if _, err := tc.Write([]byte("GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := tc.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
		t.Fatalf("ping on the open connection: %q %v", buf[:n], err)
	}
	return tc
}

// closedByServer reports whether the server closed tc (a read that ends in
// anything but a timeout).
func closedByServer(tc *tls.Conn) bool {
	tc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := tc.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestCRLURL fetches the CRL of the intermediate from a URL, over http and
// https, through every kind of bad answer: the last good CRL stays in
// force, also across a restart with the server down, and a revocation
// closes an open connection within the refresh.
func TestCRLURL(t *testing.T) {
	for _, https := range []bool{false, true} {
		name := "http"
		if https {
			name = "https"
		}
		t.Run(name, func(t *testing.T) { testCRLURL(t, https) })
	}
}

func testCRLURL(t *testing.T, https bool) {
	root := t.TempDir()
	p := certtest.New(t)
	alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
	bob, _ := certtest.Client(t, p.Inter, "bob", nil)
	carol, carolLeaf := certtest.Client(t, p.Inter, "carol", nil)
	now := time.Now()
	srv := newCRLServer(t, p, https)
	url := srv.URL + "/crl"
	metrics := NewMetrics()
	start := func(root string) *crlDaemon {
		return startCRLDaemonWith(t, root, p, func(o *ProxyDaemonOptions) {
			o.Config.CRLURLs = []string{url}
			o.Config.CRLRefresh = 50 * time.Millisecond
			o.CRLFetchTimeout = 500 * time.Millisecond
			o.Metrics = metrics
		})
	}

	// The first fetch happens before anything listens: alice is refused
	// from the first handshake.
	srv.set(p.Inter.CRL(t, big.NewInt(5), now, now.Add(time.Hour), aliceLeaf.SerialNumber), 0, "")
	cd := start(root)
	if err := cd.ping(p, alice); err == nil {
		t.Fatal("alice, revoked by the CRL at the URL, gets in")
	}
	if err := cd.ping(p, bob); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if fs := cd.fetchStatus(t); !fs.InForce || fs.Number != "5" || fs.LastSuccess.IsZero() || fs.LastError != "" || fs.URL != url {
		t.Fatalf("fetch status %+v", fs)
	}
	if _, err := os.Stat(CRLURLStatePath(Paths{Root: root}, url)); err != nil {
		t.Fatalf("the last good CRL is not saved: %v", err)
	}

	// carol's connection is open when her revocation is published: it is
	// closed at the next fetch.
	tc := openConn(t, cd.addr, p.Root.Cert, carol)
	if closedByServer(tc) {
		t.Fatal("carol's connection is closed before her revocation")
	}
	srv.set(p.Inter.CRL(t, big.NewInt(6), now, now.Add(time.Hour), aliceLeaf.SerialNumber, carolLeaf.SerialNumber), 0, "")
	waitFor(t, "carol's open connection to be closed", func() bool { return closedByServer(tc) })
	if err := cd.ping(p, carol); err == nil {
		t.Fatal("carol gets in after her revocation")
	}

	foreign := certtest.New(t)
	big16 := bytes.Repeat([]byte{'0'}, proxy.MaxCRLSize+1)
	for _, tc := range []struct {
		name, reason string
		body         []byte
		sleep        time.Duration
		redirect     string
	}{
		{name: "lower number", reason: "older than the CRL in force (number 3 < 6)", body: p.Inter.CRL(t, big.NewInt(3), now, now.Add(time.Hour))},
		{name: "same name, another key", reason: "signature does not verify", body: foreign.Inter.CRL(t, big.NewInt(9), now, now.Add(time.Hour))},
		{name: "foreign CA", reason: "neither a client CA", body: certtest.NewCA(t, "Other CA", nil).CRL(t, big.NewInt(9), now, now.Add(time.Hour))},
		{name: "expired", reason: "expired", body: p.Inter.CRL(t, big.NewInt(7), now.Add(-2*time.Hour), now.Add(-time.Hour))},
		{name: "oversize", reason: "larger than", body: big16},
		{name: "stalls", reason: "Timeout", body: p.Inter.CRL(t, big.NewInt(8), now, now.Add(time.Hour)), sleep: 5 * time.Second},
		{name: "redirect to another scheme", reason: "another scheme", redirect: "ftp://example.invalid/crl"},
		{name: "garbage", reason: "cannot be parsed", body: []byte("<html>maintenance</html>")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := cd.fetchStatus(t).Failures
			srv.set(tc.body, tc.sleep, tc.redirect)
			waitFor(t, "the refusal", func() bool {
				fs := cd.fetchStatus(t)
				return strings.Contains(fs.LastError, tc.reason) && fs.Failures > before
			})
			for _, c := range []tls.Certificate{alice, carol} {
				if err := cd.ping(p, c); err == nil {
					t.Fatal("a revoked client gets in")
				}
			}
			if err := cd.ping(p, bob); err != nil {
				t.Fatalf("bob: %v", err)
			}
			fs := cd.fetchStatus(t)
			if !fs.InForce || fs.Number != "6" {
				t.Fatalf("fetch status %+v, want number 6 in force", fs)
			}
			if ps := cd.problems(t); len(ps) != 1 || ps[0].Keeping != "number 6" {
				t.Fatalf("problems %+v", ps)
			}
		})
	}
	var out bytes.Buffer
	if _, err := metrics.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`tlsdock_crl_fetch_age_seconds{url="` + url + `"} `, `tlsdock_crl_fetch_failures_total{url="` + url + `"} `, `tlsdock_crl_next_update_timestamp_seconds{url="` + url + `"} `} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
	if mf := scrape(t, metrics)["tlsdock_crl_fetch_failures_total"]; mf == nil || mf.Metric[0].GetCounter().GetValue() < 8 {
		t.Errorf("failures %v, want at least one per bad answer", mf)
	}

	// A restart with the server down still enforces number 6.
	srv.set(p.Inter.CRL(t, big.NewInt(10), now, now.Add(time.Hour)), 0, "") // would un-revoke both
	srv.Close()
	cd = start(root)
	for _, c := range []tls.Certificate{alice, carol} {
		if err := cd.ping(p, c); err == nil {
			t.Fatal("a revoked client gets in after a restart with the CRL server down")
		}
	}
	if err := cd.ping(p, bob); err != nil {
		t.Fatalf("bob after the restart: %v", err)
	}
	fs := cd.fetchStatus(t)
	if !fs.InForce || fs.Number != "6" || !strings.Contains(fs.LastError, "fetch failed") || fs.LastSuccess.IsZero() {
		t.Fatalf("fetch status after the restart %+v", fs)
	}

	// A fresh state directory with the server down: fail closed.
	cd = start(t.TempDir())
	if err := cd.ping(p, bob); err == nil {
		t.Fatal("bob gets in although no CRL of the URL was ever good")
	}
	if fs := cd.fetchStatus(t); fs.InForce || !fs.LastSuccess.IsZero() {
		t.Fatalf("fetch status on a fresh host %+v", fs)
	}
}

// TestCRLURLHTTPSTrust: over https, the CRL server must present a
// certificate of the system's roots or the client CAs; a self-signed one
// is a failed fetch, whatever CRL it serves.
func TestCRLURLHTTPSTrust(t *testing.T) {
	p := certtest.New(t)
	now := time.Now()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(p.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour)))
	}))
	defer srv.Close()
	_, err := fetchCRL(context.Background(), srv.URL, crlFetchRoots([]*x509.Certificate{p.Root.Cert}), time.Second)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("fetch from an untrusted server: %v", err)
	}
	// An https URL redirected to plain http is refused.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	redir := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/crl", http.StatusFound))
	defer redir.Close()
	pool := x509.NewCertPool()
	pool.AddCert(redir.Certificate())
	if _, err := fetchCRL(context.Background(), redir.URL, pool, time.Second); err == nil || !strings.Contains(err.Error(), "another scheme") {
		t.Fatalf("https redirected to http: %v", err)
	}
}

// TestCRLURLIdle: without a URL no fetch loop runs, and the status lists
// no fetch.
func TestCRLURLIdle(t *testing.T) {
	p := certtest.New(t)
	cd := startCRLDaemonWith(t, t.TempDir(), p, func(*ProxyDaemonOptions) {})
	if n := len(cd.d.urlSources()); n != 0 {
		t.Fatalf("%d URL sources without --crl-url", n)
	}
	st, err := New(Options{Paths: cd.d.o.Paths}).ProxyStatus(context.Background())
	if err != nil || len(st.CRLFetches) != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestCRLURLSettings checks the flags before anything changes.
func TestCRLURLSettings(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags Flags
		want  string // "" valid
	}{
		{"valid", Flags{"mode": {"proxy"}, "crl-url": {"https://ca:9000/crl", "http://ca/crl.der"}, "crl-refresh": {"30s"}}, ""},
		{"not proxy mode", Flags{"crl-url": {"https://ca:9000/crl"}}, "--crl-url: a CRL applies only in proxy mode"},
		{"ftp", Flags{"mode": {"proxy"}, "crl-url": {"ftp://ca/crl"}}, `--crl-url: "ftp://ca/crl": the scheme must be http or https`},
		{"relative", Flags{"mode": {"proxy"}, "crl-url": {"/etc/crl.pem"}}, "the scheme must be http or https"},
		{"no host", Flags{"mode": {"proxy"}, "crl-url": {"https:///crl"}}, "has no host"},
		{"credentials", Flags{"mode": {"proxy"}, "crl-url": {"https://u:p@ca/crl"}}, "carries credentials"},
		{"twice", Flags{"mode": {"proxy"}, "crl-url": {"https://ca/crl", "https://ca/crl"}}, "given twice"},
		{"refresh too short", Flags{"mode": {"proxy"}, "crl-url": {"https://ca/crl"}, "crl-refresh": {"1s"}}, "--crl-refresh: 1s is out of bounds: give 10s to 24h0m0s"},
		{"refresh zero", Flags{"mode": {"proxy"}, "crl-refresh": {"0s"}}, "--crl-refresh: 0s is out of bounds"},
		{"refresh too long", Flags{"mode": {"proxy"}, "crl-refresh": {"48h"}}, "--crl-refresh: 48h0m0s is out of bounds"},
		{"refresh not a duration", Flags{"mode": {"proxy"}, "crl-refresh": {"often"}}, `--crl-refresh: "often" is not a duration`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.flags["generate"] = []string{"true"}
			cfg, _, err := MergeProvision(Settings{Root: t.TempDir(), Flags: tt.flags})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(cfg.CRLURLs) != 2 || cfg.CRLRefresh != 30*time.Second {
					t.Fatalf("config %+v", cfg)
				}
				args := strings.Join(ProxyArgs(cfg), " ")
				if !strings.Contains(args, "--crl-url https://ca:9000/crl --crl-url http://ca/crl.der --crl-refresh 30s") {
					t.Fatalf("the unit's arguments lack the URLs: %s", args)
				}
				return
			}
			var ie *InputError
			if err == nil || !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want an input error with %q", err, tt.want)
			}
		})
	}
	// The file's key, with its line.
	file, err := ParseConfigFile(confPath, []byte("generate = true\nmode = proxy\ncrl-url = gopher://x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := MergeRun(Settings{Root: t.TempDir(), File: file}); err == nil || !strings.Contains(err.Error(), confPath+":3: crl-url:") {
		t.Fatalf("err = %v", err)
	}
}

// TestProvisionFetchesCRLURL: provision fetches each URL and refuses one
// that serves no CRL it can use, while no good one was ever saved.
func TestProvisionChecksCRLURL(t *testing.T) {
	p := certtest.New(t)
	certPEM, keyPEM := p.Server(t)
	set, err := certstore.ParseSet(p.Root.PEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	srv := newCRLServer(t, p, true)
	paths := Paths{Root: t.TempDir()}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	srv.set(p.Inter.CRL(t, big.NewInt(2), now, now.Add(time.Hour)), 0, "")
	if err := checkCRLURLs(context.Background(), paths, logger, []string{srv.URL + "/crl"}, set, now); err != nil {
		t.Fatalf("a good CRL: %v", err)
	}
	srv.set(certtest.NewCA(t, "Other CA", nil).CRL(t, big.NewInt(9), now, now.Add(time.Hour)), 0, "")
	if err := checkCRLURLs(context.Background(), paths, logger, []string{srv.URL + "/crl"}, set, now); err == nil || !strings.Contains(err.Error(), "--crl-url: CRL "+srv.URL+"/crl: issued by") {
		t.Fatalf("a foreign CRL: %v", err)
	}
	down := srv.URL + "/crl"
	srv.Close()
	if err := checkCRLURLs(context.Background(), paths, logger, []string{down}, set, now); err == nil || !strings.Contains(err.Error(), "no CRL of it was ever good") {
		t.Fatalf("a server down: %v", err)
	}
	// With a saved last good CRL, a server down is only a warning.
	if err := persistCRL(CRLURLStatePath(paths, down), mustDER(t, p.Inter.CRL(t, big.NewInt(2), now, now.Add(time.Hour)))); err != nil {
		t.Fatal(err)
	}
	if err := checkCRLURLs(context.Background(), paths, logger, []string{down}, set, now); err != nil {
		t.Fatalf("a server down with a last good CRL: %v", err)
	}
	if !strings.Contains(logs.String(), "keeps its last good CRL") {
		t.Fatalf("no warning:\n%s", logs)
	}
}

func mustDER(t *testing.T, pemCRL []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(pemCRL)
	if b == nil {
		t.Fatal("not PEM")
	}
	return b.Bytes
}

// TestCRLURLFromCDP: --crl-url cdp stands for the distribution points of
// the set's own certificates (CA bundle, CA intermediates, server
// certificate), http and https only, each once; provision fetches them
// and refuses a set that names none.
func TestCRLURLFromCDP(t *testing.T) {
	p := certtest.New(t)
	now := time.Now()
	srv := newCRLServer(t, p, true)
	srv.set(p.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), 0, "")
	withDP := func(c *x509.Certificate, dps ...string) *x509.Certificate {
		cc := *c
		cc.CRLDistributionPoints = dps
		return &cc
	}
	set := &certstore.Set{
		CAs:           []*x509.Certificate{withDP(p.Root.Cert, "ldap://ldap.example/cn=Root", "http://root.example/root.crl")},
		Intermediates: []*x509.Certificate{withDP(p.Inter.Cert, "http://root.example/root.crl")},
		Cert:          withDP(p.Inter.Cert, srv.URL+"/crl", "ftp://x/crl"),
	}
	set.Cert.IsCA = false // stands for the server certificate
	if got := DistributionPointURLs(set); strings.Join(got, " ") != "http://root.example/root.crl "+srv.URL+"/crl" {
		t.Fatalf("distribution points %q", got)
	}
	if got, cdp := ExpandCRLURLs([]string{srv.URL + "/crl", CRLURLFromCDP}, set); !cdp || strings.Join(got, " ") != srv.URL+"/crl http://root.example/root.crl" {
		t.Fatalf("expanded %q %v", got, cdp)
	}
	logger := slog.New(slog.NewTextHandler(&lockedBuffer{}, nil))
	// Only the server certificate's point: it serves the intermediate's CRL.
	set.CAs[0], set.Intermediates[0] = p.Root.Cert, p.Inter.Cert
	if err := checkCRLURLs(context.Background(), Paths{Root: t.TempDir()}, logger, []string{CRLURLFromCDP}, set, now); err != nil {
		t.Fatalf("cdp: %v", err)
	}
	srv.set(certtest.NewCA(t, "Other CA", nil).CRL(t, big.NewInt(1), now, now.Add(time.Hour)), 0, "")
	if err := checkCRLURLs(context.Background(), Paths{Root: t.TempDir()}, logger, []string{CRLURLFromCDP}, set, now); err == nil || !strings.Contains(err.Error(), srv.URL+"/crl") {
		t.Fatalf("cdp serving a foreign CRL: %v", err)
	}
	set.Cert = p.Inter.Cert
	if err := checkCRLURLs(context.Background(), Paths{Root: t.TempDir()}, logger, []string{CRLURLFromCDP}, set, now); err == nil || !strings.Contains(err.Error(), "--crl-url: cdp: no certificate") {
		t.Fatalf("cdp without any distribution point: %v", err)
	}
	if _, _, err := MergeProvision(Settings{Root: t.TempDir(), Flags: Flags{"generate": {"true"}, "mode": {"proxy"}, "crl-url": {CRLURLFromCDP}}}); err != nil {
		t.Fatalf("--crl-url cdp: %v", err)
	}
}

// TestCRLURLHangupFetches: SIGHUP (Hangup) fetches at once, long before
// the refresh.
func TestCRLURLHangupFetches(t *testing.T) {
	p := certtest.New(t)
	alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
	now := time.Now()
	srv := newCRLServer(t, p, false)
	srv.set(p.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), 0, "")
	cd := startCRLDaemonWith(t, t.TempDir(), p, func(o *ProxyDaemonOptions) {
		o.Config.CRLURLs = []string{srv.URL + "/crl"}
		o.Config.CRLRefresh = time.Hour
	})
	if err := cd.ping(p, alice); err != nil {
		t.Fatalf("alice before her revocation: %v", err)
	}
	srv.set(p.Inter.CRL(t, big.NewInt(2), now, now.Add(time.Hour), aliceLeaf.SerialNumber), 0, "")
	cd.d.Hangup()
	waitFor(t, "CRL number 2 after SIGHUP", func() bool { return cd.fetchStatus(t).Number == "2" })
	if err := cd.ping(p, alice); err == nil {
		t.Fatal("alice gets in after her revocation was fetched")
	}
}
