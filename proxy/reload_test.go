package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// TestHotReload swaps certificate sets while clients keep making fresh
// handshakes and keep-alive requests: not one may fail, and the last set
// is the one served. The second CA's set trusts both CAs, as during a CA
// rotation, so clients of both CAs get in throughout.
func TestHotReload(t *testing.T) {
	e := newEnv(t, Options{})
	ca2 := newPKI(t)
	both := [][]byte{e.pki.ca.CertPEM, ca2.ca.CertPEM}
	sets := []*certstoreSet{e.pki.serverSet(t, both...), ca2.serverSet(t, both...)}
	if err := e.srv.SetCertificates(sets[0]); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.pki.ca.Cert)
	roots.AddCert(ca2.ca.Cert)
	cert1, _ := e.pki.client(t, "one")
	cert2, _ := ca2.client(t, "two")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var requests, failures, dials atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	for i := range 4 {
		cert := []tls.Certificate{cert1, cert2}[i%2]
		cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "localhost"}
		wg.Add(1)
		go func() { // fresh handshakes
			defer wg.Done()
			for ctx.Err() == nil {
				if err := pingWith(e.addr, cfg); err != nil {
					fail(err)
				}
				requests.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() { // one keep-alive connection across every swap
		defer wg.Done()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert1}, ServerName: "localhost"},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				dials.Add(1)
				var d net.Dialer
				return d.DialContext(ctx, "tcp", e.addr)
			}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: waitLimit}
		for ctx.Err() == nil {
			resp, err := c.Get("https://localhost/_ping")
			if err != nil {
				fail(err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				fail(err)
			}
			requests.Add(1)
		}
	}()
	const swaps = 200
	for i := range swaps {
		// Wait for some traffic between swaps, so that they overlap with
		// handshakes in progress.
		for requests.Load() < int64(i*3) && failures.Load() == 0 {
			runtimeGosched()
		}
		if err := e.srv.SetCertificates(sets[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	last := sets[(swaps-1)%2]
	cancel()
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during %d swaps; first: %v", n, requests.Load(), swaps, firstErr.Load())
	}
	t.Logf("%d requests during %d swaps, none failed", requests.Load(), swaps)
	if n := dials.Load(); n != 1 {
		t.Errorf("the keep-alive client connected %d times, want 1: a connection was dropped", n)
	}
	if got := e.srv.Status().Serial; got != last.Serial() {
		t.Fatalf("status serves %s, want the last set %s", got, last.Serial())
	}
	var served *x509.Certificate
	cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert1}, ServerName: "localhost",
		VerifyConnection: func(cs tls.ConnectionState) error { served = cs.PeerCertificates[0]; return nil }}
	if err := pingWith(e.addr, cfg); err != nil {
		t.Fatal(err)
	}
	if served.SerialNumber.Text(16) != last.Serial() {
		t.Fatalf("the endpoint serves %x, want the last set %s", served.SerialNumber, last.Serial())
	}
}

func TestSetCertificatesRefusesBadSet(t *testing.T) {
	e := newEnv(t, Options{})
	before := e.srv.Status().Serial
	bad := *e.pki.serverSet(t)
	bad.Key = e.set.Key // another certificate's key
	if err := e.srv.SetCertificates(&bad); err == nil {
		t.Fatal("a mismatched key was accepted")
	}
	if err := e.srv.SetCertificates(nil); err == nil {
		t.Fatal("nil was accepted")
	}
	if got := e.srv.Status().Serial; got != before {
		t.Fatalf("serial changed to %s", got)
	}
}
