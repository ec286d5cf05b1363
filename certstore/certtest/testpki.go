// Package certtest issues real certificate hierarchies for tests: a root, an
// intermediate that issues the leaves (as step-ca and most PKIs do), server
// and client certificates, and CRLs signed by either CA.
package certtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority of a test hierarchy.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte
}

// PKI is root → intermediate; the intermediate issues servers and clients.
type PKI struct {
	Root, Inter *CA
}

var serial atomic.Int64

func nextSerial() *big.Int { return big.NewInt(1000 + serial.Add(1)) }

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, tmpl *x509.Certificate, parent *CA, key crypto.Signer) (*x509.Certificate, []byte) {
	t.Helper()
	pc, pk := tmpl, key
	if parent != nil {
		pc, pk = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), pk)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// NewCA makes a CA named name, self-signed when parent is nil.
func NewCA(t testing.TB, name string, parent *CA) *CA {
	t.Helper()
	k := newKey(t)
	now := time.Now()
	c, p := sign(t, &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}, parent, k)
	return &CA{Cert: c, Key: k, PEM: p}
}

// New makes a root and an intermediate under it.
func New(t testing.TB) *PKI {
	t.Helper()
	root := NewCA(t, "Test Root CA", nil)
	return &PKI{Root: root, Inter: NewCA(t, "Test Intermediate CA", root)}
}

// Server issues a server certificate for localhost and 127.0.0.1 from the
// intermediate; it returns the PEM of the leaf followed by the
// intermediate, and the key.
func (p *PKI) Server(t testing.TB) (certPEM, key []byte) {
	t.Helper()
	k := newKey(t)
	now := time.Now()
	_, c := sign(t, &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "docker"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.Inter, k)
	return append(c, p.Inter.PEM...), encodeKey(t, k)
}

func encodeKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Client issues a client certificate named cn from ca (clientAuth), after
// edit changes the template. The tls.Certificate carries ca's certificate
// too, as clients of an intermediate send it.
func Client(t testing.TB, ca *CA, cn string, edit func(*x509.Certificate)) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	k := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	c, _ := sign(t, tmpl, ca, k)
	chain := [][]byte{c.Raw}
	if !bytes.Equal(ca.Cert.RawIssuer, ca.Cert.RawSubject) {
		chain = append(chain, ca.Cert.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: k, Leaf: c}, c
}

// ClientPEM is Client as PEM files: the leaf (then the CA when it is an
// intermediate) and the key.
func ClientPEM(t testing.TB, ca *CA, cn string) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	tc, leaf := Client(t, ca, cn, nil)
	for _, der := range tc.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(tc.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), leaf
}

// CRL is a CRL signed by ca revoking serials, with number,
// this update at this and next update at next, as PEM.
func (ca *CA) CRL(t testing.TB, number *big.Int, this, next time.Time, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: number, ThisUpdate: this, NextUpdate: next}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: this})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}
