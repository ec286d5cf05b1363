package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/certstore/certtest"
)

// newBundleEnv is newChainEnv with caPEM as the CA bundle (ca.pem).
func newBundleEnv(t *testing.T, p *certtest.PKI, caPEM []byte) *chainEnv {
	t.Helper()
	certPEM, keyPEM := p.Server(t)
	set, err := certstore.ParseSet(caPEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	e := &chainEnv{pki: p, logs: &syncBuffer{}, pool: x509.NewCertPool(), dir: t.TempDir()}
	e.pool.AddCert(p.Root.Cert)
	fake := newFakeDockerd(t)
	e.srv, err = New(set, Options{Socket: fake.sock, Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	go e.srv.Serve(l)
	t.Cleanup(func() {
		e.srv.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", e.logs.String())
		}
	})
	return e
}

func mustParseCRL(t *testing.T, e *chainEnv, data []byte, src string) *CRL {
	t.Helper()
	c, err := ParseCRL(data, src, e.srv.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRevokedIntermediateInCABundle: ca.pem holds the root and the
// intermediate, so the intermediate anchors its clients' chains. A client
// that sends only its leaf gets the chain leaf → intermediate, with the
// intermediate as trust anchor; the root's CRL revoking the intermediate
// must still refuse it.
func TestRevokedIntermediateInCABundle(t *testing.T) {
	p := certtest.New(t)
	e := newBundleEnv(t, p, append(append([]byte{}, p.Root.PEM...), p.Inter.PEM...))
	bob, _ := certtest.Client(t, p.Inter, "bob", nil)
	leafOnly := tls.Certificate{Certificate: bob.Certificate[:1], PrivateKey: bob.PrivateKey, Leaf: bob.Leaf}
	now := time.Now()
	root := mustParseCRL(t, e, p.Root.CRL(t, big.NewInt(2), now, now.Add(time.Hour), p.Inter.Cert.SerialNumber), "root.crl")
	inter := mustParseCRL(t, e, p.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), "inter.crl")
	e.srv.SetCRLs(root, inter)
	for name, c := range map[string]tls.Certificate{"with the intermediate": bob, "leaf only": leafOnly} {
		if err := e.ping(c); err == nil {
			t.Errorf("%s: a client of a revoked intermediate gets in", name)
		}
	}
}
