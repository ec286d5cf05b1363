package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// MaxCRLSize bounds a CRL file.
const MaxCRLSize = 16 << 20

// ErrUnknownIssuer is a CRL issued by a CA that is none of the CRL issuers
// (CRLIssuers): it does not apply to this server's clients.
var ErrUnknownIssuer = errors.New("not a CA of this server's clients")

// CRL is a parsed certificate revocation list whose signature was verified
// against one of the CRL issuers (CRLIssuers).
type CRL struct {
	// Source names where the CRL came from (its file).
	Source string
	// Issuer is the issuing CA's subject.
	Issuer     string
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time // zero when the CRL has none
	Revoked    []certstore.RevokedCert
	// Raw is the CRL's DER, as signed.
	Raw []byte

	rawIssuer []byte
	signerKey []byte // the signing CA's SubjectPublicKeyInfo
	// caOnly: its issuing distribution point says it lists CA
	// certificates only (an ARL): it does not stand for the CRL of the
	// issuer's leaves.
	caOnly bool
}

var (
	oidCRLNumber                = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidAuthorityKeyID           = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidCertificateIssuer        = asn1.ObjectIdentifier{2, 5, 29, 29}
	oidReasonCode               = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate           = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidHoldInstruction          = asn1.ObjectIdentifier{2, 5, 29, 23}
)

// issuingDistributionPoint is RFC 5280's IssuingDistributionPoint.
type issuingDistributionPoint struct {
	DistributionPoint asn1.RawValue  `asn1:"optional,tag:0"`
	OnlyUser          bool           `asn1:"optional,tag:1"`
	OnlyCA            bool           `asn1:"optional,tag:2"`
	OnlySomeReasons   asn1.BitString `asn1:"optional,tag:3"`
	Indirect          bool           `asn1:"optional,tag:4"`
	OnlyAttribute     bool           `asn1:"optional,tag:5"`
}

// checkComplete refuses a CRL that is not a complete CRL of its issuer's
// certificates: a delta CRL (it lists only the changes since a base CRL:
// in force alone, it would un-revoke what the base lists), one whose
// issuing distribution point leaves out some reasons or is indirect or for
// attribute certificates, an entry for another issuer's certificate
// (certificateIssuer), and a critical extension tlsdock does not know. It
// reports whether the CRL lists CA certificates only.
func checkComplete(rl *x509.RevocationList) (caOnly bool, err error) {
	for _, e := range rl.Extensions {
		switch {
		case e.Id.Equal(oidDeltaCRLIndicator):
			return false, errors.New("is a delta CRL: configure the complete (base) CRL of the CA")
		case e.Id.Equal(oidIssuingDistributionPoint):
			var idp issuingDistributionPoint
			if rest, err := asn1.Unmarshal(e.Value, &idp); err != nil || len(rest) != 0 {
				return false, errors.New("has a malformed issuing distribution point extension")
			}
			switch {
			case idp.OnlySomeReasons.BitLength > 0:
				return false, errors.New("covers only some revocation reasons (issuing distribution point): configure the CA's complete CRL")
			case idp.Indirect:
				return false, errors.New("is an indirect CRL: configure the CRL that the CA issuing the clients signs")
			case idp.OnlyAttribute:
				return false, errors.New("covers attribute certificates only: configure the CA's CRL of public-key certificates")
			}
			caOnly = idp.OnlyCA
		case e.Id.Equal(oidCRLNumber), e.Id.Equal(oidAuthorityKeyID):
		case e.Critical:
			return false, fmt.Errorf("has a critical extension %v that tlsdock does not understand", e.Id)
		}
	}
	for _, r := range rl.RevokedCertificateEntries {
		for _, e := range r.Extensions {
			switch {
			case e.Id.Equal(oidCertificateIssuer):
				return false, fmt.Errorf("lists serial %s for another issuer (an indirect CRL): configure the CRL that the CA issuing the clients signs", certstore.FormatSerial(r.SerialNumber))
			case e.Id.Equal(oidReasonCode), e.Id.Equal(oidInvalidityDate), e.Id.Equal(oidHoldInstruction):
			case e.Critical:
				return false, fmt.Errorf("has a critical extension %v on serial %s that tlsdock does not understand", e.Id, certstore.FormatSerial(r.SerialNumber))
			}
		}
	}
	return caOnly, nil
}

// LoadCRL reads a CRL file (PEM or DER) and verifies it like ParseCRL.
// Only a regular file is read: a FIFO or a device (which whoever can
// write the CRL's directory could put there) would block the reload.
func LoadCRL(path string, issuers []*x509.Certificate) (*CRL, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reading CRL: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("reading CRL: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("CRL %s: not a regular file (%v): put the CRL file there", path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxCRLSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading CRL %s: %w", path, err)
	}
	if len(data) > MaxCRLSize {
		return nil, fmt.Errorf("CRL %s: larger than %d bytes", path, MaxCRLSize)
	}
	return ParseCRL(data, path, issuers)
}

// CRLIssuers returns the CAs whose CRLs a server of set accepts: every
// certificate of the CA bundle (the client CAs, intermediates included),
// and each CA certificate among the intermediates of the server's own chain
// that verifies at now to a client CA (step-ca and most PKIs sign the CRL
// with the intermediate that issues the leaves, while ca.pem holds only the
// root).
func CRLIssuers(set *certstore.Set, now time.Time) []*x509.Certificate {
	if set == nil {
		return nil
	}
	out := slices.Clone(set.CAs)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range set.CAs {
		roots.AddCert(c)
	}
	for _, c := range set.Intermediates {
		inter.AddCert(c)
	}
	for _, c := range set.Intermediates {
		if !c.BasicConstraintsValid || !c.IsCA || slices.ContainsFunc(out, func(o *x509.Certificate) bool { return o.Equal(c) }) {
			continue
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			continue
		}
		out = append(out, c)
	}
	return out
}

// ParseCRL parses a CRL in PEM ("X509 CRL") or DER form and verifies its
// signature against issuers (CRLIssuers): a CRL that none of them signed is
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
	caOnly, err := checkComplete(rl)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %v", source, err)
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
			return nil, fmt.Errorf("CRL %s: signature does not verify against CA %q: %v: publish a CRL signed by that CA", source, rl.Issuer, sigErr)
		}
		return nil, fmt.Errorf("CRL %s: issued by %q, which is neither a client CA (ca.pem) nor an intermediate of the server's chain (%w): configure the CRL of the CA that issues the client certificates, or add the CA that signs this CRL to ca.pem", source, rl.Issuer, ErrUnknownIssuer)
	}
	c := &CRL{
		Source:     source,
		Issuer:     issuer.Subject.String(),
		Number:     rl.Number,
		ThisUpdate: rl.ThisUpdate,
		NextUpdate: rl.NextUpdate,
		Raw:        slices.Clone(rl.Raw),
		rawIssuer:  slices.Clone(rl.RawIssuer),
		signerKey:  slices.Clone(issuer.RawSubjectPublicKeyInfo),
		caOnly:     caOnly,
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber == nil {
			continue
		}
		c.Revoked = append(c.Revoked, certstore.RevokedCert{Serial: e.SerialNumber, RevokedAt: e.RevocationTime, Reason: e.ReasonCode})
	}
	return c, nil
}

// IssuerID identifies the CRL's issuer, its name and signing key, in
// hex: the CRLs of one issuer compare by CheckUpdate, whatever file they
// came from.
func (c *CRL) IssuerID() string {
	h := sha256.New()
	h.Write(c.rawIssuer)
	h.Write([]byte{0})
	h.Write(c.signerKey)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Describe names the CRL for messages: "number 5", or its this-update
// time when it has no number.
func (c *CRL) Describe() string {
	if c.Number != nil {
		return "number " + c.Number.String()
	}
	return "of " + c.ThisUpdate.UTC().Format(time.RFC3339)
}

// CheckUpdate reports why next must not replace cur, the CRL in force from
// the same source (nil when there is none): next is already past its next
// update at now, or it is older than cur (a lower CRL number; without
// numbers, an earlier this-update). Either would un-revoke certificates.
// A CRL of another CA than cur's is not compared: it replaces cur.
func CheckUpdate(cur, next *CRL, now time.Time) error {
	if next.Stale(now) {
		return fmt.Errorf("expired: its next update %s has passed", next.NextUpdate.UTC().Format(time.RFC3339))
	}
	if cur == nil || !bytes.Equal(cur.rawIssuer, next.rawIssuer) || !bytes.Equal(cur.signerKey, next.signerKey) {
		return nil
	}
	if cur.Number != nil && next.Number != nil {
		switch next.Number.Cmp(cur.Number) {
		case -1:
			return fmt.Errorf("older than the CRL in force (number %s < %s)", next.Number, cur.Number)
		case 0:
			if next.ThisUpdate.Before(cur.ThisUpdate) {
				return fmt.Errorf("older than the CRL in force (number %s issued before it)", next.Number)
			}
		}
		return nil
	}
	if next.ThisUpdate.Before(cur.ThisUpdate) {
		return fmt.Errorf("older than the CRL in force (this update %s < %s)", next.ThisUpdate.UTC().Format(time.RFC3339), cur.ThisUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// Stale reports whether the CRL is past its next update at now. A stale CRL
// is still enforced: its serials stay revoked.
func (c *CRL) Stale(now time.Time) bool {
	return !c.NextUpdate.IsZero() && now.After(c.NextUpdate)
}

// CRLProblem is a CRL file that was refused, or a configured source
// without any good CRL.
type CRLProblem struct {
	Source string `json:"source"`
	// Reason says why, such as "older than the CRL in force (number 3 <
	// 5)".
	Reason string `json:"reason"`
	// Keeping names the CRL of this source still in force ("number 5");
	// empty when the source never had a good one: every client is then
	// refused.
	Keeping string `json:"keeping,omitempty"`
}

// Revocation is what a Server enforces (SetRevocation).
type Revocation struct {
	// CRLs are the revocation lists in force.
	CRLs []*CRL
	// Problems are refused CRL files, shown in Status. A problem without
	// Keeping is a configured source that never had a good CRL: while one
	// exists, every client handshake is refused (fail closed).
	Problems []CRLProblem
}

// revocation is the set of revoked certificates, keyed by issuer and serial.
type revocation struct {
	crls     []*CRL
	problems []CRLProblem
	keys     map[string]struct{}
	issuers  map[string]bool // issuerKey of the CAs with a CRL in force
	// closed names the sources without a good CRL: every client is refused.
	closed []string
}

func newRevocation(r Revocation) *revocation {
	rv := &revocation{crls: r.CRLs, problems: r.Problems, keys: map[string]struct{}{}, issuers: map[string]bool{}}
	for _, c := range r.CRLs {
		if !c.caOnly {
			rv.issuers[issuerKey(c.rawIssuer, c.signerKey)] = true
		}
		for _, e := range c.Revoked {
			rv.keys[revKey(c.rawIssuer, e.Serial)] = struct{}{}
		}
	}
	for _, p := range r.Problems {
		if p.Keeping == "" {
			rv.closed = append(rv.closed, p.Source)
		}
	}
	return rv
}

func (r *revocation) revoked(key string) bool {
	if r == nil || len(r.keys) == 0 {
		return false
	}
	_, ok := r.keys[key]
	return ok
}

// errRevoked is a client refused for revocation.
type errRevoked struct {
	msg  string
	logs []any
}

func (e *errRevoked) Error() string { return e.msg }

// check decides a client's verified chains. With CRLs in force or
// configured, the leaf's issuer must have a CRL in force; no certificate
// of any chain may be revoked, its trust anchor included (an intermediate
// in ca.pem anchors the chain of a client that sends only its leaf, and
// the root's CRL revokes it); and no configured source may be without a
// good CRL.
func (r *revocation) check(leaf *x509.Certificate, chains [][]*x509.Certificate) error {
	if r == nil {
		return nil
	}
	if len(r.closed) > 0 {
		return &errRevoked{
			msg:  fmt.Sprintf("is refused: no good CRL has been loaded from %s: every client is refused until one is", strings.Join(r.closed, ", ")),
			logs: []any{"crl", strings.Join(r.closed, ", ")},
		}
	}
	if len(r.crls) == 0 {
		return nil
	}
	// The issuer is its name and key: another CA of the same name (a new
	// key after a rotation) has a CRL of its own.
	for _, ch := range chains {
		if len(ch) < 2 || !r.issuers[issuerKey(leaf.RawIssuer, ch[1].RawSubjectPublicKeyInfo)] {
			return &errRevoked{
				msg:  fmt.Sprintf("is refused: no CRL of its issuer %q is in force: configure that CA's CRL (--crl)", leaf.Issuer),
				logs: []any{"issuer_needs_crl", leaf.Issuer.String()},
			}
		}
	}
	if len(chains) == 0 {
		return &errRevoked{msg: "is refused: no verified chain"}
	}
	if r.revoked(certRevKey(leaf)) {
		return &errRevoked{msg: "is revoked"}
	}
	for _, ch := range chains {
		for i := 1; i < len(ch); i++ {
			if r.revoked(certRevKey(ch[i])) {
				return &errRevoked{
					msg:  fmt.Sprintf("is refused: its issuing CA %q (serial %s) is revoked", ch[i].Subject, certstore.FormatSerial(ch[i].SerialNumber)),
					logs: []any{"revoked_ca", ch[i].Subject.String()},
				}
			}
		}
	}
	return nil
}

func issuerKey(rawSubject, spki []byte) string {
	return string(rawSubject) + "\x00" + string(spki)
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
