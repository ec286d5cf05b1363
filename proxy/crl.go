package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// RevokedCert is one entry of a CRL.
type RevokedCert struct {
	Serial    *big.Int
	RevokedAt time.Time // zero: the CRL's this-update time
	// Reason is an RFC 5280 reason code; 0 is unspecified.
	Reason int
}

// MaxCRLSize bounds a CRL file.
const MaxCRLSize = 16 << 20

// IssueCRL issues a CRL from the local CA listing revoked, valid from now
// until next, with CRL number number (which must grow with every CRL the CA
// issues). It returns the CRL as PEM ("X509 CRL").
func IssueCRL(ca *certstore.CA, revoked []RevokedCert, now, next time.Time, number *big.Int) ([]byte, error) {
	switch {
	case ca == nil || ca.Cert == nil || ca.Key == nil:
		return nil, errors.New("issuing a CRL: no CA loaded")
	case now.IsZero() || !next.After(now):
		return nil, fmt.Errorf("issuing a CRL: next update %v must be after this update %v", next, now)
	case number == nil || number.Sign() < 0:
		return nil, errors.New("issuing a CRL: the CRL number must be a non-negative integer")
	}
	tmpl := &x509.RevocationList{
		Number:     number,
		ThisUpdate: now,
		NextUpdate: next,
	}
	for _, r := range revoked {
		if r.Serial == nil || r.Serial.Sign() <= 0 {
			return nil, fmt.Errorf("issuing a CRL: revoked serial %v is not a positive integer", r.Serial)
		}
		at := r.RevokedAt
		if at.IsZero() {
			at = now
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: r.Serial, RevocationTime: at.UTC(), ReasonCode: r.Reason,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issuing a CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// ParseSerial parses a certificate serial number as printed by tlsdock and
// openssl: hex, optionally with a 0x prefix or colons.
func ParseSerial(s string) (*big.Int, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	h = strings.TrimPrefix(h, "0x")
	h = strings.ReplaceAll(h, ":", "")
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || h == "" || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %q: expected a positive hexadecimal number such as 3f2a9c", s)
	}
	return n, nil
}

// CRL is a parsed certificate revocation list whose signature was verified
// against one of the client CAs.
type CRL struct {
	// Source names where the CRL came from (its file).
	Source string
	// Issuer is the issuing CA's subject.
	Issuer     string
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time // zero when the CRL has none
	Revoked    []RevokedCert

	rawIssuer []byte
}

// LoadCRL reads a CRL file (PEM or DER) and verifies it like ParseCRL.
func LoadCRL(path string, issuers []*x509.Certificate) (*CRL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRL: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCRLSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading CRL %s: %w", path, err)
	}
	if len(data) > MaxCRLSize {
		return nil, fmt.Errorf("CRL %s: larger than %d bytes", path, MaxCRLSize)
	}
	return ParseCRL(data, path, issuers)
}

// ParseCRL parses a CRL in PEM ("X509 CRL") or DER form and verifies its
// signature against issuers, the client CAs: a CRL that no client CA signed is
// refused, since anyone could otherwise un-revoke or deny clients. source
// names the CRL in errors.
func ParseCRL(data []byte, source string, issuers []*x509.Certificate) (*CRL, error) {
	der := data
	if t := bytes.TrimSpace(data); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		b, _ := pem.Decode(t)
		if b == nil {
			return nil, fmt.Errorf("CRL %s: truncated or corrupted PEM block", source)
		}
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL %s: PEM block is %q, expected \"X509 CRL\"", source, b.Type)
		}
		der = b.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: cannot be parsed: %w", source, err)
	}
	var issuer *x509.Certificate
	var sigErr error
	for _, ca := range issuers {
		if !bytes.Equal(ca.RawSubject, rl.RawIssuer) {
			continue
		}
		if sigErr = rl.CheckSignatureFrom(ca); sigErr == nil {
			issuer = ca
			break
		}
	}
	if issuer == nil {
		if sigErr != nil {
			return nil, fmt.Errorf("CRL %s: signature does not verify against client CA %q: %v: publish a CRL signed by that CA", source, rl.Issuer, sigErr)
		}
		return nil, fmt.Errorf("CRL %s: issued by %q, which is not a client CA of this server: configure the CRL of the CA that issues the client certificates", source, rl.Issuer)
	}
	c := &CRL{
		Source:     source,
		Issuer:     issuer.Subject.String(),
		Number:     rl.Number,
		ThisUpdate: rl.ThisUpdate,
		NextUpdate: rl.NextUpdate,
		rawIssuer:  slices.Clone(rl.RawIssuer),
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber == nil {
			continue
		}
		c.Revoked = append(c.Revoked, RevokedCert{Serial: e.SerialNumber, RevokedAt: e.RevocationTime, Reason: e.ReasonCode})
	}
	return c, nil
}

// Stale reports whether the CRL is past its next update at now. A stale CRL
// is still enforced: its serials stay revoked.
func (c *CRL) Stale(now time.Time) bool {
	return !c.NextUpdate.IsZero() && now.After(c.NextUpdate)
}

// revocation is the set of revoked certificates, keyed by issuer and serial.
type revocation struct {
	crls []*CRL
	keys map[string]struct{}
}

func newRevocation(crls []*CRL) *revocation {
	r := &revocation{crls: crls, keys: map[string]struct{}{}}
	for _, c := range crls {
		for _, e := range c.Revoked {
			r.keys[revKey(c.rawIssuer, e.Serial)] = struct{}{}
		}
	}
	return r
}

func (r *revocation) revoked(key string) bool {
	if r == nil || len(r.keys) == 0 {
		return false
	}
	_, ok := r.keys[key]
	return ok
}

// revKey identifies a certificate for revocation: a serial is unique only
// per issuer.
func revKey(rawIssuer []byte, serial *big.Int) string {
	if serial == nil {
		return string(rawIssuer) + "\x00"
	}
	return string(rawIssuer) + "\x00" + serial.Text(16)
}

func certRevKey(c *x509.Certificate) string { return revKey(c.RawIssuer, c.SerialNumber) }
