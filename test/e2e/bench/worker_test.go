package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testServer is a local mutual-TLS endpoint with tlsdock's default
// certificate setup: GET /_ping answers OK. curves restricts the server's
// key exchanges (nil: Go's defaults). It returns the address and the
// directory with ca.pem, cert.pem and key.pem for the client.
func testServer(t *testing.T, curves []tls.CurveID) (addr, dir string) {
	t.Helper()
	ca, sc, sk, cc, ck, err := tlsdockCertSetup(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for n, data := range map[string][]byte{"ca.pem": ca.CertPEM, "cert.pem": cc, "key.pem": ck} {
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pair, err := tls.X509KeyPair(sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM) {
		t.Fatal("no CA certificate")
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		MinVersion: tls.VersionTLS12, CurvePreferences: curves,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("OK"))
		}),
		ErrorLog: log.New(io.Discard, "", 0), // the refused handshakes
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), dir
}

func runWorkerLoad(t *testing.T, addr, dir string, extra ...string) loadResult {
	t.Helper()
	args := append([]string{
		"-addr", addr, "-ca", filepath.Join(dir, "ca.pem"), "-cert", filepath.Join(dir, "cert.pem"), "-key", filepath.Join(dir, "key.pem"),
		"-c", "2", "-d", "300ms", "-n", "50",
	}, extra...)
	var out bytes.Buffer
	if err := workerLoad(args, &out); err != nil {
		t.Fatalf("workerLoad %q: %v", args, err)
	}
	var r loadResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("workerLoad printed %q: %v", out.String(), err)
	}
	return r
}

// TestWorkerLoadReportsKeyExchange checks that the load worker reports
// what its connections negotiated: Go's default hybrid, or what -curves
// restricts the client to.
func TestWorkerLoadReportsKeyExchange(t *testing.T) {
	addr, dir := testServer(t, nil)
	for _, tc := range []struct {
		mode, curves, want string
	}{
		{"handshake", "", "X25519MLKEM768"},
		{"handshake", "X25519", "X25519"},
		{"handshake", "p-256", "P-256"},
		{"newconn", "X25519", "X25519"},
		{"keepalive", "", "X25519MLKEM768"},
		{"keepalive", "X25519", "X25519"},
	} {
		t.Run(tc.mode+"/"+tc.curves, func(t *testing.T) {
			var extra []string
			if tc.curves != "" {
				extra = []string{"-curves", tc.curves}
			}
			r := runWorkerLoad(t, addr, dir, append([]string{"-mode", tc.mode}, extra...)...)
			if r.Errors != 0 || r.Count == 0 {
				t.Fatalf("%d operations, %d errors (first: %s)", r.Count, r.Errors, r.FirstErr)
			}
			if r.KeyExchange != tc.want {
				t.Errorf("key exchange %q, want %q", r.KeyExchange, tc.want)
			}
			if !strings.HasPrefix(r.Cipher, "TLS_") {
				t.Errorf("cipher suite %q, want a TLS_ name", r.Cipher)
			}
			if !strings.Contains(r.TLS, " "+tc.want+",") || !strings.Contains(r.TLS, r.Cipher) {
				t.Errorf("TLS description %q lacks %s or %s", r.TLS, tc.want, r.Cipher)
			}
		})
	}
}

// TestWorkerLoadRefused checks what a run looks like when the server does
// not offer the client's key exchange (socat 1.7.4 offers P-256 alone): no
// operation completes, every one fails with the server's alert, and the
// run is classified as a refusal.
func TestWorkerLoadRefused(t *testing.T) {
	addr, dir := testServer(t, []tls.CurveID{tls.CurveP256})
	r := runWorkerLoad(t, addr, dir, "-mode", "handshake", "-curves", "X25519")
	if r.Count != 0 || r.Errors == 0 {
		t.Fatalf("%d operations, %d errors, want none and some", r.Count, r.Errors)
	}
	if !strings.Contains(r.FirstErr, "handshake failure") {
		t.Errorf("first error %q, want the server's handshake failure alert", r.FirstErr)
	}
	if r.KeyExchange != "" {
		t.Errorf("key exchange %q reported without a handshake", r.KeyExchange)
	}
	err := checkLoad(&r, "socat", "handshake")
	var ref *refusedError
	if !errors.As(err, &ref) || ref.first != r.FirstErr {
		t.Errorf("checkLoad: %v, want a refusedError with the first error", err)
	}
	// The default client negotiates P-256 with the same server.
	r = runWorkerLoad(t, addr, dir, "-mode", "handshake")
	if r.Errors != 0 || r.KeyExchange != "P-256" {
		t.Errorf("default client: %d errors (%s), key exchange %q, want 0 and P-256", r.Errors, r.FirstErr, r.KeyExchange)
	}
	if err := checkLoad(&r, "socat", "handshake"); err != nil {
		t.Errorf("checkLoad of a good run: %v", err)
	}
}

func TestCheckLoad(t *testing.T) {
	var ref *refusedError
	if err := checkLoad(&loadResult{Count: 3, Errors: 1, FirstErr: "EOF"}, "x", "keepalive"); err == nil || errors.As(err, &ref) {
		t.Errorf("some failed: %v, want an error that is not a refusal", err)
	}
	if err := checkLoad(&loadResult{}, "x", "keepalive"); err == nil || errors.As(err, &ref) {
		t.Errorf("nothing done: %v, want an error that is not a refusal", err)
	}
}

func TestParseCurves(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []tls.CurveID
		err  bool
	}{
		{"", nil, false},
		{"X25519", []tls.CurveID{tls.X25519}, false},
		{"x25519mlkem768, X25519", []tls.CurveID{tls.X25519MLKEM768, tls.X25519}, false},
		{"P-256,CurveP384", []tls.CurveID{tls.CurveP256, tls.CurveP384}, false},
		{"X448", nil, true},
		{"X25519,", nil, true},
	} {
		got, err := parseCurves(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("parseCurves(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	for _, id := range keyExchanges {
		if got, err := parseCurves(kxName(id)); err != nil || !slices.Equal(got, []tls.CurveID{id}) {
			t.Errorf("parseCurves(kxName(%v)) = %v, %v", id, got, err)
		}
	}
}
