package certstore

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

// RevokedCert is one revoked certificate: an entry of a CRL, and of the
// local CA's record of what it revoked. Its JSON form names the serial in
// FormatSerial's hex:
//
//	{"serial": "3f2a9c", "name": "alice", "revoked_at": "2026-11-01T12:00:00Z"}
type RevokedCert struct {
	Serial *big.Int
	// Name is the client the local CA issued the certificate to; empty
	// when unknown, and in a parsed CRL.
	Name      string
	RevokedAt time.Time // zero: the CRL's this-update time
	// Reason is an RFC 5280 reason code; 0 is unspecified.
	Reason int
}

// revokedCertJSON is RevokedCert's JSON form.
type revokedCertJSON struct {
	Serial    string    `json:"serial"`
	Name      string    `json:"name,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
	Reason    int       `json:"reason,omitempty"`
}

// MarshalJSON writes the serial in FormatSerial's hex.
func (r RevokedCert) MarshalJSON() ([]byte, error) {
	return json.Marshal(revokedCertJSON{Serial: FormatSerial(r.Serial), Name: r.Name, RevokedAt: r.RevokedAt, Reason: r.Reason})
}

// UnmarshalJSON reads the serial with ParseSerial: a serial that is not a
// positive hexadecimal number is an error.
func (r *RevokedCert) UnmarshalJSON(data []byte) error {
	var j revokedCertJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	n, err := ParseSerial(j.Serial)
	if err != nil {
		return err
	}
	*r = RevokedCert{Serial: n, Name: j.Name, RevokedAt: j.RevokedAt, Reason: j.Reason}
	return nil
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

// FormatSerial prints a serial number as tlsdock does everywhere: lower-case
// hex without leading zeros ("" for nil). ParseSerial reads it back.
func FormatSerial(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

// CRLRequest describes a CRL for CA.IssueCRL.
type CRLRequest struct {
	// Revoked are the certificates the CRL lists; each serial must be a
	// positive integer.
	Revoked []RevokedCert
	// Number is the CRL number, a non-negative integer that must grow with
	// every CRL the CA issues.
	Number *big.Int
	// Now is the CRL's this update; NextUpdate, its next update, must be
	// after it.
	Now, NextUpdate time.Time
}

// IssueCRL issues a CRL signed by the CA listing req.Revoked, valid from
// req.Now until req.NextUpdate, with CRL number req.Number. An entry
// without a revocation time is revoked at req.Now. It returns the CRL as
// PEM ("X509 CRL").
func (ca *CA) IssueCRL(req CRLRequest, rnd io.Reader) ([]byte, error) {
	switch {
	case ca == nil || ca.Cert == nil || ca.Key == nil:
		return nil, errors.New("issuing a CRL: no CA loaded")
	case req.Now.IsZero() || !req.NextUpdate.After(req.Now):
		return nil, fmt.Errorf("issuing a CRL: next update %v must be after this update %v", req.NextUpdate, req.Now)
	case req.Number == nil || req.Number.Sign() < 0:
		return nil, errors.New("issuing a CRL: the CRL number must be a non-negative integer")
	}
	if rnd == nil {
		rnd = defaultRand()
	}
	tmpl := &x509.RevocationList{
		Number:     req.Number,
		ThisUpdate: req.Now,
		NextUpdate: req.NextUpdate,
	}
	for _, r := range req.Revoked {
		if r.Serial == nil || r.Serial.Sign() <= 0 {
			return nil, fmt.Errorf("issuing a CRL: revoked serial %v is not a positive integer", r.Serial)
		}
		at := r.RevokedAt
		if at.IsZero() {
			at = req.Now
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: r.Serial, RevocationTime: at.UTC(), ReasonCode: r.Reason,
		})
	}
	der, err := x509.CreateRevocationList(rnd, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issuing a CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}
