package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/certstore/certtest"
)

// chainEnv is a proxy whose server certificate and clients come from an
// intermediate, while ca.pem holds only the root (step-ca's layout).
type chainEnv struct {
	pki  *certtest.PKI
	srv  *Server
	addr string
	logs *syncBuffer
	pool *x509.CertPool
	dir  string
}

func newChainEnv(t *testing.T) *chainEnv {
	t.Helper()
	p := certtest.New(t)
	return newBundleEnv(t, p, p.Root.PEM)
}

func (e *chainEnv) cfg(c tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: e.pool, Certificates: []tls.Certificate{c}, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

func (e *chainEnv) ping(c tls.Certificate) error { return pingWith(e.addr, e.cfg(c)) }

func (e *chainEnv) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// open makes a connection that has served one request.
func (e *chainEnv) open(t *testing.T, c tls.Certificate) *bufio.Reader {
	t.Helper()
	conn, err := tls.Dial("tcp", e.addr, e.cfg(c))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(waitLimit))
	t.Cleanup(func() { conn.Close() })
	br := bufio.NewReader(conn)
	roundTrip(t, conn, br, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
	return br
}

func assertClosed(t *testing.T, what string, br *bufio.Reader) {
	t.Helper()
	// A timeout is no close: the connection stayed open (isReset takes
	// any net.Error).
	if b, err := io.ReadAll(br); len(b) != 0 || (err != nil && (isTimeout(err) || !isReset(err))) {
		t.Errorf("%s: read %q, %v; want it closed", what, b, err)
	}
}

func TestCRLIssuersIncludeTheServersIntermediate(t *testing.T) {
	e := newChainEnv(t)
	got := e.srv.CRLIssuers()
	if len(got) != 2 || !got[0].Equal(e.pki.Root.Cert) || !got[1].Equal(e.pki.Inter.Cert) {
		t.Fatalf("CRL issuers %v, want the root and the intermediate", got)
	}
	// An intermediate of the server chain that does not chain to a client
	// CA is not an issuer.
	other := certtest.New(t)
	certPEM, keyPEM := other.Server(t)
	set, err := certstore.ParseSet(append(other.Root.PEM, e.pki.Root.PEM...), certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	set.CAs = set.CAs[1:] // only e's root is a client CA
	if is := CRLIssuers(set, time.Now()); len(is) != 1 || !is[0].Equal(e.pki.Root.Cert) {
		t.Fatalf("CRL issuers %v, want only the client CA", is)
	}
}

// TestIntermediateCRLRevokesLeaf: a CRL signed by the intermediate (not in
// ca.pem) revokes its leaf at the handshake and closes its open connection.
func TestIntermediateCRLRevokesLeaf(t *testing.T) {
	e := newChainEnv(t)
	alice, aliceLeaf := certtest.Client(t, e.pki.Inter, "alice", nil)
	bob, _ := certtest.Client(t, e.pki.Inter, "bob", nil)
	if err := e.ping(alice); err != nil {
		t.Fatalf("alice before revocation: %v", err)
	}
	open := e.open(t, alice)
	now := time.Now()
	crl := e.write(t, "inter.crl", e.pki.Inter.CRL(t, big.NewInt(5), now, now.Add(time.Hour), aliceLeaf.SerialNumber))
	if err := e.srv.LoadCRLFiles(crl); err != nil {
		t.Fatal(err)
	}
	assertClosed(t, "alice's open connection", open)
	if err := e.ping(alice); err == nil {
		t.Fatal("alice, revoked by the intermediate's CRL, still gets in")
	}
	if err := e.ping(bob); err != nil {
		t.Fatalf("bob: %v", err)
	}

	t.Run("kept on a bad update", func(t *testing.T) {
		foreign := certtest.New(t)
		for name, data := range map[string][]byte{
			"older":   e.pki.Inter.CRL(t, big.NewInt(3), now, now.Add(time.Hour)),
			"expired": e.pki.Inter.CRL(t, big.NewInt(6), now.Add(-2*time.Hour), now.Add(-time.Hour)),
			"foreign": foreign.Inter.CRL(t, big.NewInt(9), now, now.Add(time.Hour)),
			"garbage": []byte("garbage"),
		} {
			if err := os.WriteFile(crl, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := e.srv.LoadCRLFiles(crl); err == nil {
				t.Errorf("%s CRL accepted", name)
			}
			if err := e.ping(alice); err == nil {
				t.Fatalf("alice gets in after an %s CRL", name)
			}
		}
	})
}

// TestIssuerWithoutCRLIsRefused: with CRLs in force, a client whose issuer
// has none is refused (and its open connection closed) until that CA's CRL
// is in force too.
func TestIssuerWithoutCRLIsRefused(t *testing.T) {
	e := newChainEnv(t)
	bob, _ := certtest.Client(t, e.pki.Inter, "bob", nil)
	open := e.open(t, bob)
	now := time.Now()
	rootCRL, err := ParseCRL(e.pki.Root.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), "root.crl", e.srv.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetCRLs(rootCRL)
	assertClosed(t, "bob's open connection", open)
	if err := e.ping(bob); err == nil {
		t.Fatal("bob gets in while his issuer has no CRL in force")
	}
	recs := e.logs.records(t, "refused a revoked client certificate")
	if len(recs) == 0 || recs[len(recs)-1]["issuer_needs_crl"] != e.pki.Inter.Cert.Subject.String() {
		t.Fatalf("no log naming the issuer that needs a CRL: %v", recs)
	}
	interCRL, err := ParseCRL(e.pki.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), "inter.crl", e.srv.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetCRLs(rootCRL, interCRL)
	if err := e.ping(bob); err != nil {
		t.Fatalf("bob with both CRLs in force: %v", err)
	}

	// The root revokes the intermediate: its clients are refused.
	rootCRL2, err := ParseCRL(e.pki.Root.CRL(t, big.NewInt(2), now, now.Add(time.Hour), e.pki.Inter.Cert.SerialNumber), "root.crl", e.srv.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	open = e.open(t, bob)
	e.srv.SetCRLs(rootCRL2, interCRL)
	assertClosed(t, "bob's connection after the intermediate was revoked", open)
	if err := e.ping(bob); err == nil || !strings.Contains(e.logs.String(), "revoked_ca") {
		t.Fatalf("a client of a revoked intermediate: %v", err)
	}
}

// TestNoGoodCRLFailsClosed: while a configured source never had a good
// CRL, every client is refused, and status says why.
func TestNoGoodCRLFailsClosed(t *testing.T) {
	e := newChainEnv(t)
	bob, _ := certtest.Client(t, e.pki.Inter, "bob", nil)
	open := e.open(t, bob)
	e.srv.SetRevocation(Revocation{Problems: []CRLProblem{{Source: "/etc/pki/crl.pem", Reason: "missing"}}})
	assertClosed(t, "bob's open connection", open)
	if err := e.ping(bob); err == nil {
		t.Fatal("a client gets in while a CRL source has no good CRL")
	}
	st := e.srv.Status()
	if len(st.CRLProblems) != 1 || st.CRLProblems[0].Source != "/etc/pki/crl.pem" || st.CRLProblems[0].Keeping != "" {
		t.Fatalf("status problems %+v", st.CRLProblems)
	}
	// A problem that keeps a CRL in force does not close the proxy.
	now := time.Now()
	interCRL, err := ParseCRL(e.pki.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), "/etc/pki/crl.pem", e.srv.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetRevocation(Revocation{CRLs: []*CRL{interCRL}, Problems: []CRLProblem{{Source: "/etc/pki/crl.pem", Reason: "missing", Keeping: "number 1"}}})
	if err := e.ping(bob); err != nil {
		t.Fatalf("bob with the last good CRL in force: %v", err)
	}
}

func TestClientCertificateRules(t *testing.T) {
	e := newChainEnv(t)
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	for _, tc := range []struct {
		name string
		edit func(*x509.Certificate)
		ok   bool
	}{
		{"clientAuth", nil, true},
		{"clientAuth among others", func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		}, true},
		{"no extended key usage", func(c *x509.Certificate) { c.ExtKeyUsage = nil }, false},
		{"anyExtendedKeyUsage", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny} }, false},
		{"two CNs", func(c *x509.Certificate) {
			c.Subject = pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: cn, Value: "alice"}, {Type: cn, Value: "admin"}}}
		}, false},
		{"no CN", func(c *x509.Certificate) { c.Subject = pkix.Name{Organization: []string{"ops"}} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := certtest.Client(t, e.pki.Inter, "alice", tc.edit)
			err := e.ping(c)
			if (err == nil) != tc.ok {
				t.Fatalf("ping: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestCheckUpdate(t *testing.T) {
	p := certtest.New(t)
	issuers := []*x509.Certificate{p.Root.Cert, p.Inter.Cert}
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	parse := func(ca *certtest.CA, n int64, this, next time.Time) *CRL {
		c, err := ParseCRL(ca.CRL(t, big.NewInt(n), this, next), "crl.pem", issuers)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cur := parse(p.Inter, 5, now, now.Add(time.Hour))
	noNum := func(c *CRL) *CRL { d := *c; d.Number = nil; return &d }
	for _, tc := range []struct {
		name     string
		cur, new *CRL
		want     string
	}{
		{"first", nil, cur, ""},
		{"newer", cur, parse(p.Inter, 6, now, now.Add(time.Hour)), ""},
		{"same", cur, cur, ""},
		{"lower number", cur, parse(p.Inter, 3, now.Add(time.Minute), now.Add(time.Hour)), "number 3 < 5"},
		{"same number issued earlier", cur, parse(p.Inter, 5, now.Add(-time.Minute), now.Add(time.Hour)), "issued before"},
		{"expired", nil, parse(p.Inter, 6, now.Add(-2*time.Hour), now.Add(-time.Minute)), "expired"},
		{"no numbers, earlier", noNum(cur), noNum(parse(p.Inter, 1, now.Add(-time.Minute), now.Add(time.Hour))), "this update"},
		{"no numbers, later", noNum(cur), noNum(parse(p.Inter, 1, now.Add(time.Minute), now.Add(time.Hour))), ""},
		{"another CA", cur, parse(p.Root, 1, now, now.Add(time.Hour)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckUpdate(tc.cur, tc.new, now)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckUpdate = %v, want %q", err, tc.want)
			}
		})
	}
}
