package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"testing"
)

// The benchmarks compare, on GET /_ping against the fake dockerd, at
// concurrency 4 (as the benchmark):
//
//   - direct-unix: straight to the unix socket, no TLS (the ceiling);
//   - direct-tls: the fake dockerd serving mutual TLS itself, as dockerd's
//     native TLS mode does (the "native");
//   - proxy: through Server (audit records discarded by the handler);
//   - proxy-audit: through Server, JSON audit records written to io.Discard;
//   - reverseproxy: a plain httputil.ReverseProxy behind net/http's TLS
//     server, for comparison.
//
// Compare req/s within one run: go test -run XXX -bench . ./proxy/

type benchTarget struct {
	name   string
	client *http.Client
}

func benchTargets(b *testing.B, keepAlive bool) []benchTarget {
	e := newEnv(b, Options{Logger: slog.New(slog.DiscardHandler)})
	admin, _ := e.pki.client(b, "admin")
	tcpClient := func(addr string) *http.Client {
		tr := &http.Transport{
			TLSClientConfig: e.tlsConfig(admin),
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			},
			MaxIdleConnsPerHost: 16,
			DisableKeepAlives:   !keepAlive,
		}
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	serveTLS := func(h http.Handler) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h, TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: e.pki.pool,
			Certificates: []tls.Certificate{{Certificate: [][]byte{e.set.Cert.Raw}, PrivateKey: e.set.Key}},
			NextProtos:   []string{"http/1.1"},
		}}
		go srv.ServeTLS(l, "", "")
		b.Cleanup(func() { srv.Close() })
		return l.Addr().String()
	}

	// The audited proxy: a second Server on the same fake dockerd.
	audited, err := New(e.set, Options{Socket: e.fake.sock, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	al, _ := net.Listen("tcp", "127.0.0.1:0")
	go audited.Serve(al)
	b.Cleanup(func() { audited.Close() })

	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", e.fake.sock)
	}, MaxIdleConnsPerHost: 16}

	targets := []benchTarget{
		{"direct-tls", tcpClient(serveTLS(e.fake))},
		{"proxy", tcpClient(e.addr)},
		{"proxy-audit", tcpClient(al.Addr().String())},
		{"reverseproxy", tcpClient(serveTLS(rp))},
	}
	if keepAlive {
		unix := unixClient(e.fake.sock)
		unix.Transport.(*http.Transport).MaxIdleConnsPerHost = 16
		targets = append([]benchTarget{{"direct-unix", unix}}, targets...)
	}
	return targets
}

func runPing(b *testing.B, c *http.Client, url string) {
	// Four client goroutines in all, whatever GOMAXPROCS is.
	b.SetParallelism(max(1, (4+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkKeepAlive measures requests per second on keep-alive
// connections.
func BenchmarkKeepAlive(b *testing.B) {
	for _, tg := range benchTargets(b, true) {
		b.Run(tg.name, func(b *testing.B) {
			scheme := "https"
			if tg.name == "direct-unix" {
				scheme = "http"
			}
			runPing(b, tg.client, scheme+"://localhost/_ping")
		})
	}
}

// BenchmarkHandshake measures requests per second with a fresh TLS
// connection (full ECDSA P-256 handshake with a client certificate) for
// every request, as the docker CLI makes.
func BenchmarkHandshake(b *testing.B) {
	for _, tg := range benchTargets(b, false) {
		b.Run(tg.name, func(b *testing.B) {
			runPing(b, tg.client, "https://localhost/_ping")
		})
	}
}
