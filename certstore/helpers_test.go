package certstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// now is the fixed time every test runs at.
var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

var serialCounter atomic.Int64

func ecKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t testing.TB, bits int) crypto.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(1000 + serialCounter.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.AddDate(-1, 0, 0),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func leafTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(0x1f00 + serialCounter.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              []string{"docker.example.com", "localhost"},
		IPAddresses:           []net.IP{net.ParseIP("10.0.0.5"), net.ParseIP("127.0.0.1")},
		NotBefore:             now.AddDate(0, 0, -1),
		NotAfter:              now.AddDate(0, 0, 89),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
}

// issuer is a certificate with its key, able to sign.
type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// sign creates a certificate from tmpl for pub, signed by parent (self-signed
// when parent is nil, with key).
func sign(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey, parent *issuer, key crypto.Signer) issuer {
	t.Helper()
	pc, pk := tmpl, key
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, pub, pk)
	if err != nil {
		t.Fatalf("creating %q: %v", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return issuer{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func newRoot(t testing.TB, cn string) issuer {
	t.Helper()
	k := ecKey(t)
	return sign(t, caTemplate(cn), k.Public(), nil, k)
}

func pkcs8(t testing.TB, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// fixture is one set's three PEMs.
type fixture struct{ ca, cert, key []byte }

// goodFixture returns a valid ECDSA set: a root CA and a server certificate.
func goodFixture(t testing.TB) (fixture, issuer) {
	t.Helper()
	root := newRoot(t, "Test Root")
	k := ecKey(t)
	leaf := sign(t, leafTemplate("docker.example.com"), k.Public(), &root, k)
	return fixture{ca: root.pem, cert: leaf.pem, key: pkcs8(t, k)}, root
}

func cat(b ...[]byte) []byte {
	var out []byte
	for _, x := range b {
		out = append(out, x...)
	}
	return out
}
