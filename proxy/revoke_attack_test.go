package proxy

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// signCRL signs tmpl with ca as DER.
func signCRL(t *testing.T, ca *certtest.CA, tmpl *x509.RevocationList) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestParseCRLRefusesPartialCRLs: a delta CRL (it lists only what changed
// since a base CRL), a CRL whose issuing distribution point limits its
// scope (some reasons, CA certificates only, attribute certificates, an
// indirect CRL), an entry for another issuer's certificate
// (certificateIssuer) and an unknown critical extension are not a complete
// CRL of their issuer. Taken as one, a delta CRL with a higher number would
// replace the complete CRL and un-revoke every certificate it does not
// repeat.
func TestParseCRLRefusesPartialCRLs(t *testing.T) {
	p := certtest.New(t)
	issuers := []*x509.Certificate{p.Root.Cert, p.Inter.Cert}
	now := time.Now()
	ext := func(oid asn1.ObjectIdentifier, critical bool, value []byte) []pkix.Extension {
		return []pkix.Extension{{Id: oid, Critical: critical, Value: value}}
	}
	idp := func(inner ...byte) []byte { return append([]byte{0x30, byte(len(inner))}, inner...) }
	base := func() *x509.RevocationList {
		return &x509.RevocationList{Number: big.NewInt(7), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(42), RevocationTime: now}}}
	}
	for _, tc := range []struct {
		name string
		edit func(*x509.RevocationList)
		ok   bool
	}{
		{"complete", func(*x509.RevocationList) {}, true},
		{"idp with a distribution point only", func(rl *x509.RevocationList) {
			// [0] { [0] { [6] "http://c/x.crl" } }
			uri := []byte("http://c/x.crl")
			gn := append([]byte{0x86, byte(len(uri))}, uri...)
			full := append([]byte{0xa0, byte(len(gn))}, gn...)
			rl.ExtraExtensions = ext(oidIssuingDistributionPoint, true, idp(append([]byte{0xa0, byte(len(full))}, full...)...))
		}, true},
		{"idp user certificates only", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(oidIssuingDistributionPoint, true, idp(0x81, 1, 0xff))
		}, true},
		{"delta CRL", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(oidDeltaCRLIndicator, true, []byte{0x02, 0x01, 0x05})
		}, false},
		{"idp CA certificates only", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(oidIssuingDistributionPoint, true, idp(0x82, 1, 0xff))
		}, true},
		{"idp some reasons", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(oidIssuingDistributionPoint, true, idp(0x83, 2, 0x07, 0x80))
		}, false},
		{"idp indirect", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(oidIssuingDistributionPoint, true, idp(0x84, 1, 0xff))
		}, false},
		{"idp attribute certificates", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(oidIssuingDistributionPoint, true, idp(0x85, 1, 0xff))
		}, false},
		{"idp garbage", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(oidIssuingDistributionPoint, true, []byte{0x04, 0x00})
		}, false},
		{"unknown critical extension", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, true, []byte{0x05, 0x00})
		}, false},
		{"unknown non-critical extension", func(rl *x509.RevocationList) {
			rl.ExtraExtensions = ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, false, []byte{0x05, 0x00})
		}, true},
		{"entry of another issuer", func(rl *x509.RevocationList) {
			name, _ := asn1.Marshal([]asn1.RawValue{{Class: 2, Tag: 4, IsCompound: true, Bytes: p.Root.Cert.RawSubject}})
			rl.RevokedCertificateEntries[0].ExtraExtensions = ext(oidCertificateIssuer, true, name)
		}, false},
		{"entry with an unknown critical extension", func(rl *x509.RevocationList) {
			rl.RevokedCertificateEntries[0].ExtraExtensions = ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 2}, true, []byte{0x05, 0x00})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rl := base()
			tc.edit(rl)
			_, err := ParseCRL(signCRL(t, p.Inter, rl), "crl.der", issuers)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseCRL: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestCAOnlyCRLIsNotTheLeavesCRL: a CRL for CA certificates only (an ARL)
// revokes CAs but does not stand for the CRL of its issuer's clients.
func TestCAOnlyCRLIsNotTheLeavesCRL(t *testing.T) {
	p := certtest.New(t)
	e := newBundleEnv(t, p, p.Root.PEM)
	bob, _ := certtest.Client(t, p.Inter, "bob", nil)
	now := time.Now()
	arl := func(ca *certtest.CA, serials ...*big.Int) *CRL {
		rl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
			ExtraExtensions: []pkix.Extension{{Id: oidIssuingDistributionPoint, Critical: true, Value: []byte{0x30, 3, 0x82, 1, 0xff}}}}
		for _, s := range serials {
			rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now})
		}
		return mustParseCRL(t, e, signCRL(t, ca, rl), "arl.crl")
	}
	e.srv.SetCRLs(arl(p.Inter))
	if err := e.ping(bob); err == nil {
		t.Fatal("a CA-only CRL of bob's issuer stands for the CRL of its clients")
	}
	inter := mustParseCRL(t, e, p.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), "inter.crl")
	e.srv.SetCRLs(arl(p.Root), inter)
	if err := e.ping(bob); err != nil {
		t.Fatalf("bob with the root's ARL and his issuer's CRL: %v", err)
	}
	e.srv.SetCRLs(arl(p.Root, p.Inter.Cert.SerialNumber), inter)
	if err := e.ping(bob); err == nil {
		t.Fatal("the root's ARL does not revoke the intermediate")
	}
}

// TestLoadCRLFilesRollbackThroughAnotherIssuer: a file that goes from the
// intermediate's CRL number 5 to the root's CRL and then to the
// intermediate's number 3 must not un-revoke what number 5 revoked.
func TestLoadCRLFilesRollbackThroughAnotherIssuer(t *testing.T) {
	p := certtest.New(t)
	e := newBundleEnv(t, p, p.Root.PEM)
	alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
	now := time.Now()
	crl := e.write(t, "crl.pem", p.Inter.CRL(t, big.NewInt(5), now, now.Add(time.Hour), aliceLeaf.SerialNumber))
	if err := e.srv.LoadCRLFiles(crl); err != nil {
		t.Fatal(err)
	}
	e.write(t, "crl.pem", p.Root.CRL(t, big.NewInt(1), now, now.Add(time.Hour)))
	if err := e.srv.LoadCRLFiles(crl); err != nil {
		t.Fatal(err)
	}
	e.write(t, "crl.pem", p.Inter.CRL(t, big.NewInt(3), now, now.Add(time.Hour)))
	if err := e.srv.LoadCRLFiles(crl); err == nil {
		t.Error("the intermediate's CRL number 3 accepted after number 5")
	}
	if err := e.ping(alice); err == nil {
		t.Fatal("alice gets in after a rollback through the root's CRL")
	}
}

// TestIssuerCRLMatchesKeyNotOnlyName: a second intermediate with the same
// name as the first (a new key after a rotation) has no CRL while only the
// first's is in force: its clients are refused, since the first's CRL
// says nothing about the certificates the second signed.
func TestIssuerCRLMatchesKeyNotOnlyName(t *testing.T) {
	p := certtest.New(t)
	twin := certtest.NewCA(t, p.Inter.Cert.Subject.CommonName, p.Root)
	e := newBundleEnv(t, p, append(append([]byte{}, p.Root.PEM...), twin.PEM...))
	bob, _ := certtest.Client(t, twin, "bob", nil)
	alice, _ := certtest.Client(t, p.Inter, "alice", nil)
	now := time.Now()
	inter := mustParseCRL(t, e, p.Inter.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), "inter.crl")
	e.srv.SetCRLs(inter)
	if err := e.ping(alice); err != nil {
		t.Fatalf("alice: %v", err)
	}
	if err := e.ping(bob); err == nil {
		t.Fatal("a client of the same-named twin intermediate gets in without its CRL in force")
	}
	twinCRL := mustParseCRL(t, e, twin.CRL(t, big.NewInt(1), now, now.Add(time.Hour)), "twin.crl")
	e.srv.SetCRLs(inter, twinCRL)
	if err := e.ping(bob); err != nil {
		t.Fatalf("bob with his issuer's CRL in force: %v", err)
	}
}

// TestRemovedClientCAClosesItsConnections: taking a CA out of ca.pem (to
// cut off every client it issued, the way to revoke without a CRL) closes
// the open connections of its clients, hijacked streams included; the
// clients of the CAs that stay keep theirs.
func TestRemovedClientCAClosesItsConnections(t *testing.T) {
	p, other := certtest.New(t), certtest.New(t)
	e := newBundleEnv(t, p, append(append([]byte{}, p.Root.PEM...), other.Root.PEM...))
	alice, _ := certtest.Client(t, p.Inter, "alice", nil)
	bob, _ := certtest.Client(t, other.Inter, "bob", nil)
	aliceConn, bobConn := e.open(t, alice), e.open(t, bob)

	certPEM, keyPEM := p.Server(t)
	set, err := certstore.ParseSet(p.Root.PEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SetCertificates(set); err != nil {
		t.Fatal(err)
	}
	assertClosed(t, "the connection of a client of the removed CA", bobConn)
	if err := e.ping(bob); err == nil {
		t.Fatal("a client of the removed CA gets in")
	}
	_ = aliceConn
	if err := e.ping(alice); err != nil {
		t.Fatalf("alice: %v", err)
	}
}

// TestLoadCRLRefusesAFIFO: whoever can write the CRL's directory (a PKI
// agent's account) must not freeze the CRL reloads by putting a FIFO
// there: opening it for reading would block until a writer comes, and a
// silent writer would block the read; the daemon's reload holds its lock
// meanwhile, so no later CRL (a new revocation) would go in force.
func TestLoadCRLRefusesAFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crl.pem")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := LoadCRL(path, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("LoadCRL of a FIFO: %v", err)
		}
	case <-time.After(waitLimit):
		// Unblock the open so the goroutine ends.
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatal("LoadCRL blocks on a FIFO")
	}
}
