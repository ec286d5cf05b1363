package agent

import (
	"bufio"
	"context"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/tlsdock/tlsdock/certstore/certtest"
)

// TestCRLFetchErrorPrintable: what a CRL server puts in its answer (the
// reason phrase of the status line; over https the names of its
// certificate) reaches `tlsdock status`, the journal and the problems as
// the fetch's error: no control character may come through (a carriage
// return or an escape sequence would draw a fake status line).
func TestCRLFetchErrorPrintable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			c.Write([]byte("HTTP/1.1 503 down\r  crl-url:   http://ca/crl: fetched 1s ago\x1b[K\u202e\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			c.Close()
		}
	}()
	_, err = fetchCRL(context.Background(), "http://"+l.Addr().String()+"/crl", nil, 5*time.Second)
	if err == nil {
		t.Fatal("a 503 is a failed fetch")
	}
	if i := strings.IndexFunc(err.Error(), func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
		t.Fatalf("the fetch error carries the server's control characters: %q", err.Error())
	}
	if !strings.Contains(err.Error(), "503") {
		t.Fatalf("the fetch error %q does not name the status", err)
	}
}

// TestCRLFetchTrickle: a server that answers at once, then sends its body
// a byte at a time, each well within any read timeout, is a failed fetch
// once the fetch's total bound passes.
func TestCRLFetchTrickle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for range 1000 {
			if _, err := w.Write([]byte{'0'}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	if data, err := fetchCRL(context.Background(), srv.URL+"/crl", nil, 200*time.Millisecond); err == nil {
		t.Fatalf("a trickled body of %d bytes is a successful fetch", len(data))
	}
}

// TestCRLURLIssuerSwap: whoever is on a plain http path cannot forge a
// CRL, but can serve another genuine one: the root's, which verifies too.
// It must not take the place of the intermediate's CRL from that URL (the
// intermediate's clients would then have no CRL in force and be refused,
// more than blocking the fetches ever does) while the intermediate's
// still verifies.
func TestCRLURLIssuerSwap(t *testing.T) {
	p := certtest.New(t)
	alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
	bob, _ := certtest.Client(t, p.Inter, "bob", nil)
	now := time.Now()
	srv := newCRLServer(t, p, false)
	srv.set(p.Inter.CRL(t, big.NewInt(5), now, now.Add(time.Hour), aliceLeaf.SerialNumber), 0, "")
	cd := startCRLDaemonWith(t, t.TempDir(), p, func(o *ProxyDaemonOptions) {
		o.Config.CRLURLs = []string{srv.URL + "/crl"}
		o.Config.CRLRefresh = 50 * time.Millisecond
	})
	if fs := cd.fetchStatus(t); !fs.InForce || fs.Number != "5" {
		t.Fatalf("fetch status %+v", fs)
	}
	srv.set(p.Root.CRL(t, big.NewInt(9), now, now.Add(time.Hour)), 0, "")
	waitFor(t, "a fetch of the root's CRL", func() bool { return cd.fetchStatus(t).Failures > 0 || cd.fetchStatus(t).Number != "5" })
	if fs := cd.fetchStatus(t); !fs.InForce || fs.Number != "5" || !strings.Contains(fs.LastError, "Test Root CA") {
		t.Fatalf("fetch status %+v: want the intermediate's number 5 kept and the root's CRL refused", fs)
	}
	if err := cd.ping(p, bob); err != nil {
		t.Fatalf("bob is refused once the URL serves the root's CRL: %v", err)
	}
	if err := cd.ping(p, alice); err == nil {
		t.Fatal("alice gets in")
	}
}

// TestCRLURLNotPrinting: a --crl-url, or a distribution point of the set,
// is shown raw in `tlsdock status`: one with a character that does not
// print (a right-to-left override, a C1 control) is refused, as url.Parse
// already refuses the ASCII controls.
func TestCRLURLNotPrinting(t *testing.T) {
	for _, u := range []string{"http://ca/crl\u202e.pem", "http://ca/\u0085crl", "http://ca/crl\x1b[2J"} {
		if err := checkCRLURL(u); err == nil {
			t.Errorf("--crl-url %q is accepted", u)
		}
	}
	for _, u := range []string{"http://ca/crl", "https://ca.example:9000/1.0/crl?x=\"y\"", "http://ca/%E2%80%AE"} {
		if err := checkCRLURL(u); err != nil {
			t.Errorf("--crl-url %q: %v", u, err)
		}
	}
}

// TestCRLURLFromCDPFirstSet: `tlsdock run --crl-url cdp` started before
// any set is installed gets its first set later (Reload): the distribution
// points are those of that set. Expanded at the start, from no set, they
// were none, and the proxy served every client with no CRL checked.
func TestCRLURLFromCDPFirstSet(t *testing.T) {
	p := certtest.New(t)
	alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
	bob, _ := certtest.Client(t, p.Inter, "bob", nil)
	now := time.Now()
	srv := newCRLServer(t, p, false)
	srv.set(p.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour), aliceLeaf.SerialNumber), 0, "")
	set := serverSet(t, p)
	root := *set.CAs[0]
	root.CRLDistributionPoints = []string{srv.URL + "/crl"}
	set.CAs[0] = &root
	cd := startCRLDaemonSet(t, t.TempDir(), set, func(o *ProxyDaemonOptions) {
		o.Config.CRLURLs = []string{CRLURLFromCDP}
	})
	if err := cd.ping(p, alice); err == nil {
		t.Fatal("alice, revoked by the CRL at the set's distribution point, gets in")
	}
	if err := cd.ping(p, bob); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if fs := cd.fetchStatus(t); fs.URL != srv.URL+"/crl" || !fs.InForce {
		t.Fatalf("fetch status %+v", fs)
	}
}
