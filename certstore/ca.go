package certstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names of the built-in CA in its state directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// Backdate is subtracted from the issue time for NotBefore, to tolerate
// clients whose clocks are slightly behind.
const Backdate = 5 * time.Minute

// CAValidityYears is the lifetime of a CA created by LoadOrCreateCA.
const CAValidityYears = 10

// CA is tlsdock's built-in certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
}

// LoadCA loads the CA from dir/ca.pem and dir/ca-key.pem. When ca.pem is
// absent the error wraps os.ErrNotExist. A ca.pem without its key, a key that
// does not match, a certificate that is not a CA, or a key readable by group
// or others is an error.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := readBounded(certPath)
	if err != nil {
		return nil, fmt.Errorf("loading the tlsdock CA: %w", err)
	}
	keyPEM, err := readBounded(keyPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("loading the tlsdock CA: %s exists but its key %s is missing: restore the key from a backup, or move %s away to create a new CA (every client certificate must then be reissued)", certPath, keyPath, certPath)
		}
		return nil, fmt.Errorf("loading the tlsdock CA: %w", err)
	}
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("loading the tlsdock CA: %s is accessible by group or others (mode %v): chmod 0400 %s", keyPath, fi.Mode().Perm(), keyPath)
	}
	certs, err := parseCertificates(certPEM, certPath, "the tlsdock CA certificate")
	if err != nil {
		return nil, fmt.Errorf("loading the tlsdock CA: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("loading the tlsdock CA: %s holds %d certificates, expected 1", label(certPath), len(certs))
	}
	cert := certs[0]
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("loading the tlsdock CA: %s: certificate %s is not a CA certificate: move it away to create a new CA", label(certPath), describe(cert))
	}
	key, err := parsePrivateKey(keyPEM, keyPath)
	if err != nil {
		return nil, fmt.Errorf("loading the tlsdock CA: %w", err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("loading the tlsdock CA: %s does not match the certificate in %s: restore the matching key", label(keyPath), label(certPath))
	}
	return &CA{Cert: cert, CertPEM: certPEM, Key: key}, nil
}

// LoadOrCreateCA loads the CA in dir, or creates it when dir/ca.pem is
// absent: dir is created 0700, the key (type kt) is written to ca-key.pem
// 0400 and then the certificate to ca.pem 0444. The certificate's common name
// is "tlsdock local CA <random>", it is valid for CAValidityYears from now (backdated
// by Backdate) and may sign only leaf certificates (MaxPathLen 0).
//
// The key is written first: a crash in between leaves a key without a
// certificate, which nobody can trust yet, and the next call replaces it.
func LoadOrCreateCA(dir string, kt KeyType, now time.Time, rnd io.Reader) (ca *CA, created bool, err error) {
	ca, err = LoadCA(dir)
	if err == nil {
		return ca, false, nil
	}
	if _, serr := os.Lstat(filepath.Join(dir, CACertFile)); !errors.Is(serr, os.ErrNotExist) {
		return nil, false, err
	}
	ca, err = NewCA(kt, now, rnd)
	if err != nil {
		return nil, false, err
	}
	if err := ca.Save(dir); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// NewCA creates a local CA in memory: a key of type kt and a self-signed
// certificate whose common name is "tlsdock local CA <random>", valid for
// CAValidityYears from now (backdated by Backdate), that may sign only leaf
// certificates (MaxPathLen 0). Save writes it.
func NewCA(kt KeyType, now time.Time, rnd io.Reader) (*CA, error) {
	if rnd == nil {
		rnd = defaultRand()
	}
	if now.IsZero() {
		return nil, errors.New("creating the tlsdock CA: no current time given")
	}
	key, err := GenerateKey(kt, rnd)
	if err != nil {
		return nil, fmt.Errorf("creating the tlsdock CA: %w", err)
	}
	serial, err := randomSerial(rnd)
	if err != nil {
		return nil, fmt.Errorf("creating the tlsdock CA: %w", err)
	}
	var suffix [6]byte
	if _, err := io.ReadFull(rnd, suffix[:]); err != nil {
		return nil, fmt.Errorf("creating the tlsdock CA: reading random bytes: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tlsdock local CA " + hex.EncodeToString(suffix[:])},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.AddDate(CAValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    signatureAlgorithm(key),
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating the tlsdock CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("creating the tlsdock CA: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &CA{Cert: cert, CertPEM: certPEM, Key: key}, nil
}

// Save writes the CA to dir: dir is created 0700, the key to ca-key.pem 0400
// and then the certificate to ca.pem 0444. The key is written first: a
// crash in between leaves a key without a certificate, which nobody can
// trust yet, and the next LoadOrCreateCA replaces it. Save refuses to
// overwrite an existing ca.pem.
func (ca *CA) Save(dir string) error {
	if _, err := os.Lstat(filepath.Join(dir, CACertFile)); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("saving the tlsdock CA: %s already exists: tlsdock never overwrites a CA", filepath.Join(dir, CACertFile))
	}
	keyPEM, err := marshalKey(ca.Key)
	if err != nil {
		return fmt.Errorf("saving the tlsdock CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving the tlsdock CA: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("saving the tlsdock CA: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o400); err != nil {
		return fmt.Errorf("saving the tlsdock CA: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, CACertFile), ca.CertPEM, 0o444); err != nil {
		return fmt.Errorf("saving the tlsdock CA: %w", err)
	}
	return nil
}

// IssueRequest describes a certificate for CA.Issue.
type IssueRequest struct {
	CommonName string
	Groups     []string // Subject.Organization; proxy mode reads them as the client's groups
	DNSNames   []string
	IPs        []net.IP
	KeyType    KeyType
	Now        time.Time
	Validity   time.Duration
	Server     bool // serverAuth extended key usage; otherwise clientAuth
}

// Issue creates a new key of req.KeyType and a certificate for it signed by
// the CA: a random 128-bit serial, NotBefore = req.Now - Backdate, NotAfter =
// req.Now + req.Validity (but never after the CA's own NotAfter), a SHA-256
// signature. The key is returned as PKCS#8 ("PRIVATE KEY") PEM.
func (ca *CA) Issue(req IssueRequest, rnd io.Reader) (certPEM, keyPEM []byte, err error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, nil, errors.New("issuing a certificate: no CA loaded")
	}
	switch {
	case req.Now.IsZero():
		return nil, nil, errors.New("issuing a certificate: no current time given")
	case req.Validity <= 0:
		return nil, nil, fmt.Errorf("issuing a certificate for %q: validity %v must be positive", req.CommonName, req.Validity)
	case req.Server && len(req.DNSNames) == 0 && len(req.IPs) == 0:
		return nil, nil, fmt.Errorf("issuing a server certificate for %q: no DNS name or IP address given: clients verify the server by name", req.CommonName)
	case !req.Server && req.CommonName == "":
		return nil, nil, errors.New("issuing a client certificate: the common name is empty: it identifies the client")
	}
	if rnd == nil {
		rnd = defaultRand()
	}
	key, err := GenerateKey(req.KeyType, rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing a certificate for %q: %w", req.CommonName, err)
	}
	serial, err := randomSerial(rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing a certificate for %q: %w", req.CommonName, err)
	}
	notAfter := req.Now.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	eku := x509.ExtKeyUsageClientAuth
	if req.Server {
		eku = x509.ExtKeyUsageServerAuth
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject(req.CommonName, req.Groups),
		DNSNames:              append([]string(nil), req.DNSNames...),
		IPAddresses:           append([]net.IP(nil), req.IPs...),
		NotBefore:             req.Now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{eku},
		BasicConstraintsValid: true,
		SignatureAlgorithm:    signatureAlgorithm(ca.Key),
	}
	der, err := x509.CreateCertificate(rnd, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing a certificate for %q: %w", req.CommonName, err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing a certificate for %q: %w", req.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// subject builds "O=<group>, ..., CN=<name>" with one RDN per attribute, so
// that groups keep their order (pkix.Name.Organization would put all groups in
// one multi-valued RDN, which DER sorts).
func subject(cn string, groups []string) pkix.Name {
	var n pkix.Name
	for _, g := range groups {
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidOrganization, Value: g})
	}
	if cn != "" {
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidCommonName, Value: cn})
	}
	return n
}

var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
)

func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// signatureAlgorithm picks the SHA-256 signature for the signer's key type.
func signatureAlgorithm(signer crypto.Signer) x509.SignatureAlgorithm {
	switch signer.Public().(type) {
	case *ecdsa.PublicKey:
		return x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		return x509.SHA256WithRSA
	}
	return x509.UnknownSignatureAlgorithm
}

// randomSerial returns a random, non-zero 128-bit serial number.
func randomSerial(rnd io.Reader) (*big.Int, error) {
	var b [16]byte
	for range 4 {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return nil, fmt.Errorf("reading random bytes for a serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
	return nil, errors.New("the random source returned only zeros for a serial number")
}
