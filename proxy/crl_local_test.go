package proxy

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// TestLocalCAsCRLIsEnforced takes a CRL of the local CA from
// certstore.CA.IssueCRL through the file the daemon loads to the check
// each handshake runs (verifyConnection, given the verified chains as
// crypto/tls would): the revoked serial is refused, the CA's other clients
// get in, a client of another CA with the same serial is not taken for the
// revoked one, and the next CRL revokes one more. It runs at a fixed time
// and opens no connection.
func TestLocalCAsCRLIsEnforced(t *testing.T) {
	clock := func() time.Time { return crlNow }
	newCA := func() *certstore.CA {
		t.Helper()
		ca, err := certstore.NewCA(certstore.ECDSAP256, crlNow, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	issue := func(ca *certstore.CA, req certstore.IssueRequest) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
		t.Helper()
		req.KeyType, req.Now, req.Validity = certstore.ECDSAP256, crlNow, 24*time.Hour
		certPEM, keyPEM, err := ca.Issue(req, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return certPEM, keyPEM, c.Leaf
	}
	local, other := newCA(), newCA()
	certPEM, keyPEM, _ := issue(local, certstore.IssueRequest{CommonName: "docker", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true})
	// The server trusts clients of both CAs (ca.pem holds both).
	set, err := certstore.ParseSet(append(slices.Clone(local.CertPEM), other.CertPEM...), certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	t.Cleanup(func() { t.Logf("proxy log:\n%s", logs.String()) })
	srv, err := New(set, Options{Now: clock, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, _, alice := issue(local, certstore.IssueRequest{CommonName: "alice"})
	_, _, bob := issue(local, certstore.IssueRequest{CommonName: "bob"})
	// A client of another trusted CA that happens to carry alice's serial.
	_, _, carol := issue(other, certstore.IssueRequest{CommonName: "carol"})
	carol.SerialNumber = alice.SerialNumber
	trusted := x509.NewCertPool()
	trusted.AddCert(local.Cert)
	trusted.AddCert(other.Cert)
	handshake := func(leaf *x509.Certificate) error {
		t.Helper()
		chains, err := leaf.Verify(x509.VerifyOptions{Roots: trusted, CurrentTime: crlNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			t.Fatalf("verifying %s: %v", leaf.Subject.CommonName, err)
		}
		return srv.verifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: chains})
	}

	dir := t.TempDir()
	crlPath, otherPath := filepath.Join(dir, "crl.pem"), filepath.Join(dir, "other.pem")
	otherCRL, err := other.IssueCRL(certstore.CRLRequest{Number: big.NewInt(1), Now: crlNow, NextUpdate: crlNow.Add(time.Hour)}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherPath, otherCRL, 0o644); err != nil {
		t.Fatal(err)
	}
	publish := func(number int64, revoked ...*x509.Certificate) {
		t.Helper()
		req := certstore.CRLRequest{Number: big.NewInt(number), Now: crlNow, NextUpdate: crlNow.Add(30 * 24 * time.Hour)}
		for _, c := range revoked {
			req.Revoked = append(req.Revoked, certstore.RevokedCert{Serial: c.SerialNumber, Name: c.Subject.CommonName, RevokedAt: crlNow})
		}
		crl, err := local.IssueCRL(req, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crlPath, crl, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := srv.LoadCRLFiles(crlPath, otherPath); err != nil {
			t.Fatal(err)
		}
	}

	publish(1, alice)
	if err := handshake(alice); err == nil || !strings.Contains(err.Error(), "is revoked") || !strings.Contains(err.Error(), certstore.FormatSerial(alice.SerialNumber)) {
		t.Errorf("alice after her revoke: %v, want refused as revoked, naming her serial", err)
	}
	if err := handshake(bob); err != nil {
		t.Errorf("bob, not revoked: %v", err)
	}
	// The other CA's (empty) CRL is in force too: a serial is revoked
	// only for its issuer.
	if err := handshake(carol); err != nil {
		t.Errorf("carol (another CA, alice's serial): %v", err)
	}
	st := srv.Status()
	if len(st.Revoked) != 1 || st.Revoked[0].Serial != certstore.FormatSerial(alice.SerialNumber) || !st.Revoked[0].RevokedAt.Equal(crlNow) {
		t.Errorf("status lists %+v, want alice's serial", st.Revoked)
	}

	publish(2, alice, bob)
	for _, c := range []*x509.Certificate{alice, bob} {
		if err := handshake(c); err == nil || !strings.Contains(err.Error(), "is revoked") {
			t.Errorf("%s after CRL 2: %v, want refused as revoked", c.Subject.CommonName, err)
		}
	}
}
