package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// waitLimit guards every blocking wait in the tests: it is a deadlock
// detector, never a timed assertion.
const waitLimit = 30 * time.Second

// pki is a local CA for tests.
type pki struct {
	ca   *certstore.CA
	pool *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, err := certstore.NewCA(certstore.ECDSAP256, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &pki{ca: ca, pool: pool}
}

// serverSet issues a server certificate for localhost and 127.0.0.1 and
// returns it as a set whose CA bundle is caPEM (default: this CA).
func (p *pki) serverSet(t testing.TB, caPEM ...[]byte) *certstore.Set {
	t.Helper()
	certPEM, keyPEM, err := p.ca.Issue(certstore.IssueRequest{
		CommonName: "docker", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")},
		KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 24 * time.Hour, Server: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bundle := p.ca.CertPEM
	if len(caPEM) > 0 {
		bundle = bytes.Join(caPEM, nil)
	}
	set, err := certstore.ParseSet(bundle, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// client issues a client certificate.
func (p *pki) client(t testing.TB, name string, groups ...string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	certPEM, keyPEM, err := p.ca.Issue(certstore.IssueRequest{
		CommonName: name, Groups: groups, KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 24 * time.Hour,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, c.Leaf
}

// writeBundle writes a client bundle directory.
func (p *pki) writeBundle(t testing.TB, name string, groups ...string) string {
	t.Helper()
	certPEM, keyPEM, err := p.ca.Issue(certstore.IssueRequest{
		CommonName: name, Groups: groups, KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 24 * time.Hour,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for f, b := range map[string][]byte{ClientCAFile: p.ca.CertPEM, ClientCertFile: certPEM, ClientKeyFile: keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fakeDockerd is an HTTP server on a unix socket that behaves like the
// parts of dockerd the proxy must carry.
type fakeDockerd struct {
	sock string
	srv  *http.Server
	l    net.Listener

	uploaded   atomic.Int64
	firstMB    chan struct{} // closed once an upload has passed 1 MiB
	firstOnce  sync.Once
	streamGate chan struct{} // /stream-gated writes its second line after this closes
	slowGate   chan struct{} // /slow answers after this closes
	slowIn     chan struct{} // a /slow request arrived
	requests   atomic.Int64
	conns      atomic.Int64 // connections accepted
}

func newFakeDockerd(t testing.TB) *fakeDockerd {
	t.Helper()
	dir, err := os.MkdirTemp("", "tlsdock-fake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeDockerd{
		sock:       filepath.Join(dir, "docker.sock"),
		firstMB:    make(chan struct{}),
		streamGate: make(chan struct{}),
		slowGate:   make(chan struct{}),
		slowIn:     make(chan struct{}, 16),
	}
	f.start(t)
	return f
}

func (f *fakeDockerd) start(t testing.TB) {
	t.Helper()
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	f.l = l
	f.srv = &http.Server{Handler: f, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			f.conns.Add(1)
		}
	}}
	go f.srv.Serve(l)
	t.Cleanup(func() { f.srv.Close() })
}

// restart closes every connection and serves again on the same socket.
func (f *fakeDockerd) restart(t testing.TB) {
	t.Helper()
	f.srv.Close()
	os.Remove(f.sock)
	f.start(t)
}

func (f *fakeDockerd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	_, p := SplitVersion(r.URL.Path)
	h := w.Header()
	h.Set("Api-Version", "1.41")
	h.Set("Server", "Docker/20.10.24 (linux)")
	h.Set("X-Got-Path", r.URL.Path)
	h.Set("X-Got-Query", r.URL.RawQuery)
	switch {
	case p == "/_ping":
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Pragma", "no-cache")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", "2")
		if r.Method == "HEAD" {
			return
		}
		io.WriteString(w, "OK")
	case p == "/containers/create" || p == "/volumes/create" || strings.HasSuffix(p, "/exec"):
		body, _ := io.ReadAll(r.Body)
		h.Set("Content-Type", "application/json")
		h.Set("X-Got-Length", fmt.Sprint(r.ContentLength))
		h.Set("X-Got-Path", r.URL.Path)
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	case p == "/echo-request":
		h.Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"path": r.URL.Path, "rawpath": r.URL.RawPath, "query": r.URL.RawQuery, "host": r.Host,
			"header": r.Header, "te": r.TransferEncoding, "method": r.Method,
		})
	case p == "/events":
		n := 5
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		h.Set("Content-Type", "application/json")
		for i := range n {
			fmt.Fprintf(w, "{\"line\":%d}\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	case p == "/stream-gated":
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-f.streamGate:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	case strings.HasSuffix(p, "/attach"):
		f.hijack(w, r)
	case p == "/upload":
		buf := make([]byte, 32<<10)
		var n int64
		for {
			m, err := r.Body.Read(buf)
			n += int64(m)
			f.uploaded.Store(n)
			if n >= 1<<20 {
				f.firstOnce.Do(func() { close(f.firstMB) })
			}
			if err != nil {
				break
			}
		}
		h.Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"bytes\":%d,\"te\":%q}\n", n, r.TransferEncoding)
	case p == "/slow":
		f.slowIn <- struct{}{}
		<-f.slowGate
		io.WriteString(w, "slow done")
	case p == "/large":
		h.Set("Content-Type", "application/octet-stream")
		b := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for range 64 {
			w.Write(b)
		}
	default:
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"page not found"}`)
	}
}

// hijack answers like dockerd's attach: 101 UPGRADED when the client asked
// to upgrade, otherwise 200 with a raw stream; then it echoes until the
// client half-closes, writes "bye" and closes.
func (f *fakeDockerd) hijack(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	conn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if r.Header.Get("Upgrade") != "" {
		io.WriteString(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	} else {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
	}
	io.Copy(conn, brw.Reader)
	io.WriteString(conn, "bye")
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the JSON log records with msg.
func (b *syncBuffer) records(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitRecords waits until the log holds at least n records with msg (the
// audit record of a request is written just after its response) and
// returns them.
func (b *syncBuffer) waitRecords(t testing.TB, msg string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		recs := b.records(t, msg)
		if len(recs) >= n || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// env is a proxy in front of a fake dockerd.
type env struct {
	pki  *pki
	fake *fakeDockerd
	srv  *Server
	addr string
	logs *syncBuffer
	set  *certstore.Set
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	e := &env{pki: newPKI(t), fake: newFakeDockerd(t), logs: &syncBuffer{}}
	e.set = e.pki.serverSet(t)
	opts.Socket = e.fake.sock
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(e.set, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) tlsConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: e.pki.pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// httpClient returns a keep-alive client for the proxy with cert.
func (e *env) httpClient(t testing.TB, cert tls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig: e.tlsConfig(cert),
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", e.addr)
		},
		MaxIdleConnsPerHost: 8,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitLimit}
}

// dial opens a raw TLS connection to the proxy.
func (e *env) dial(t testing.TB, cert tls.Certificate) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.addr, e.tlsConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitLimit))
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes raw request bytes on c and reads one response.
func roundTrip(t testing.TB, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func get(t testing.TB, c *http.Client, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "https://localhost"+url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// dockerMessage decodes Docker's JSON error body.
func dockerMessage(t testing.TB, body string) string {
	t.Helper()
	var m struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Message == "" {
		t.Fatalf("body %q is not Docker's {\"message\": ...}: %v", body, err)
	}
	return m.Message
}

type x509Cert = x509.Certificate

func readResponse(br *bufio.Reader) (*http.Response, error) {
	return http.ReadResponse(br, &http.Request{Method: "POST"})
}

type certstoreSet = certstore.Set

func runtimeGosched() { runtime.Gosched() }
