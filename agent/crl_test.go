package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/certstore/certtest"
	"github.com/tlsdock/tlsdock/proxy"
)

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// crlDaemon is a proxy daemon of a root → intermediate PKI (ca.pem holds
// only the root) with one external CRL source.
type crlDaemon struct {
	d    *ProxyDaemon
	addr string
	logs *lockedBuffer
}

func startCRLDaemon(t *testing.T, root string, p *certtest.PKI, crl string) *crlDaemon {
	t.Helper()
	return startCRLDaemonWith(t, root, p, func(o *ProxyDaemonOptions) { o.Config.CRLs = []string{crl} })
}

// startCRLDaemonWith starts a proxy daemon of p's PKI in root, its options
// edited by edit (the CRL sources).
func startCRLDaemonWith(t *testing.T, root string, p *certtest.PKI, edit func(*ProxyDaemonOptions)) *crlDaemon {
	t.Helper()
	return startCRLDaemonSet(t, root, serverSet(t, p), edit)
}

// serverSet is a set of p's server certificate, ca.pem p's root.
func serverSet(t *testing.T, p *certtest.PKI) *certstore.Set {
	t.Helper()
	certPEM, keyPEM := p.Server(t)
	set, err := certstore.ParseSet(p.Root.PEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// startCRLDaemonSet is startCRLDaemonWith serving set first.
func startCRLDaemonSet(t *testing.T, root string, set *certstore.Set, edit func(*ProxyDaemonOptions)) *crlDaemon {
	t.Helper()
	var err error
	cfg := Defaults()
	cfg.Mode = ModeProxy
	cd := &crlDaemon{logs: &lockedBuffer{}}
	o := ProxyDaemonOptions{
		Paths: Paths{Root: root}, Config: cfg,
		Logger: slog.New(slog.NewTextHandler(cd.logs, nil)),
		Proxy:  proxy.Options{Socket: fakeDockerd(t)},
		Listen: func() ([]net.Listener, error) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			cd.addr = l.Addr().String()
			return []net.Listener{l}, nil
		},
	}
	edit(&o)
	cd.d, err = NewProxyDaemon(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cd.d.Shutdown(context.Background())
		if t.Failed() {
			t.Logf("daemon log:\n%s", cd.logs)
		}
	})
	if err := cd.d.Reload(set); err != nil {
		t.Fatal(err)
	}
	return cd
}

func (cd *crlDaemon) ping(p *certtest.PKI, c tls.Certificate) error {
	return pingWith(cd.addr, p.Root.Cert, c)
}

// pingWith sends GET /_ping to addr over mutual TLS as client c, trusting
// root, and fails unless the answer is 200.
func pingWith(addr string, root *x509.Certificate, c tls.Certificate) error {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{c}, ServerName: "localhost"}, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := hc.Get("https://" + addr + "/_ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return errors.New(resp.Status)
	}
	return nil
}

// problems asks the status socket, as `tlsdock status` does.
func (cd *crlDaemon) problems(t *testing.T) []proxy.CRLProblem {
	t.Helper()
	st, err := New(Options{Paths: cd.d.o.Paths}).ProxyStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.CRLProblems
}

// TestProxyDaemonCRLNeverFailsOpen walks one CRL source through every kind
// of bad update, a restart on the same state directory, and a first start
// without any good CRL.
func TestProxyDaemonCRLNeverFailsOpen(t *testing.T) {
	root := t.TempDir()
	p := certtest.New(t)
	alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
	bob, _ := certtest.Client(t, p.Inter, "bob", nil)
	crl := filepath.Join(t.TempDir(), "crl.pem")
	now := time.Now()

	// No CRL was ever good: every client is refused.
	cd := startCRLDaemon(t, root, p, crl)
	if err := cd.ping(p, bob); err == nil {
		t.Fatal("bob gets in while the configured CRL never loaded")
	}
	if ps := cd.problems(t); len(ps) != 1 || ps[0].Source != crl || !strings.Contains(ps[0].Reason, "missing") || ps[0].Keeping != "" {
		t.Fatalf("problems %+v", ps)
	}

	// A good CRL of the intermediate, number 5, revokes alice.
	write := func(data []byte) {
		t.Helper()
		if err := os.WriteFile(crl, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cd.d.Hangup()
	}
	write(p.Inter.CRL(t, big.NewInt(5), now, now.Add(time.Hour), aliceLeaf.SerialNumber))
	if err := cd.ping(p, bob); err != nil {
		t.Fatalf("bob with a good CRL: %v", err)
	}
	if err := cd.ping(p, alice); err == nil {
		t.Fatal("alice, revoked by the intermediate's CRL, gets in")
	}
	state := CRLStatePath(Paths{Root: root}, crl)
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("persisted CRL %s: %v %v", state, fi, err)
	}
	if ps := cd.problems(t); len(ps) != 0 {
		t.Fatalf("problems after a good CRL: %+v", ps)
	}

	foreign := certtest.New(t)
	for _, tc := range []struct {
		name, reason string
		data         []byte // nil: remove the file
	}{
		{"lower number", "older than the CRL in force (number 3 < 5)", p.Inter.CRL(t, big.NewInt(3), now, now.Add(time.Hour))},
		{"expired", "expired", p.Inter.CRL(t, big.NewInt(6), now.Add(-2*time.Hour), now.Add(-time.Hour))},
		{"signed by another key of the same name", "signature does not verify", foreign.Inter.CRL(t, big.NewInt(9), now, now.Add(time.Hour))},
		{"foreign-signed", "neither a client CA", certtest.NewCA(t, "Other CA", nil).CRL(t, big.NewInt(9), now, now.Add(time.Hour))},
		{"garbage", "cannot be parsed", []byte("garbage")},
		{"missing", "missing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == nil {
				os.Remove(crl)
				cd.d.Hangup()
			} else {
				write(tc.data)
			}
			if err := cd.ping(p, alice); err == nil {
				t.Fatal("alice gets in")
			}
			if err := cd.ping(p, bob); err != nil {
				t.Fatalf("bob: %v", err)
			}
			ps := cd.problems(t)
			if len(ps) != 1 || !strings.Contains(ps[0].Reason, tc.reason) || ps[0].Keeping != "number 5" {
				t.Fatalf("problems %+v, want %q keeping number 5", ps, tc.reason)
			}
			if !strings.Contains(cd.logs.String(), "a CRL was rejected; the last good one stays in force") {
				t.Fatal("no warning logged")
			}
		})
	}

	// A restart on the same state directory, with a broken file, still
	// enforces number 5.
	write([]byte("garbage"))
	cd = startCRLDaemon(t, root, p, crl)
	if err := cd.ping(p, alice); err == nil {
		t.Fatal("alice gets in after a restart with a broken CRL file")
	}
	if err := cd.ping(p, bob); err != nil {
		t.Fatalf("bob after the restart: %v", err)
	}
	if ps := cd.problems(t); len(ps) != 1 || ps[0].Keeping != "number 5" {
		t.Fatalf("problems after the restart %+v", ps)
	}

	// The same broken file on a fresh state directory: fail closed.
	cd = startCRLDaemon(t, t.TempDir(), p, crl)
	if err := cd.ping(p, bob); err == nil {
		t.Fatal("bob gets in on a fresh host whose CRL never loaded")
	}
}
