package certstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Requirements is what Validate checks a set against.
type Requirements struct {
	// Now is the time at which the set must be valid.
	Now time.Time
	// DNSNames must each be covered by the server certificate.
	DNSNames []string
	// IPs must each be covered by the server certificate.
	IPs []net.IP
	// ServerRoots, when set, are the roots a server certificate from a
	// public CA may chain to instead of the CA bundle: the system's
	// trusted roots. The CA bundle is then only the CA of the clients
	// (dockerd's tlscacert), as with certbot's fullchain.pem and a
	// private client CA. It is called only when the server certificate
	// does not chain to the CA bundle, so that a private PKI never loads
	// the system's roots (several MiB of a long-running daemon's memory).
	// nil, or a nil pool: the server certificate must chain to the CA
	// bundle.
	ServerRoots func() *x509.CertPool
}

// MinRSABits is the smallest RSA key Validate accepts.
const MinRSABits = 2048

// Validate checks that the set can serve dockerd's TLS API at req.Now:
//
//   - the key matches the server certificate;
//   - the server certificate is valid at req.Now, allows serverAuth (or has
//     no extended key usage at all, as Go's verifier accepts) and covers every
//     name and IP of req;
//   - every CA certificate is a CA, and the server certificate chains to the
//     CA bundle (through the intermediates) for serverAuth, or to
//     req.ServerRoots (a public CA's chain; the CA bundle then only
//     verifies the clients);
//   - intermediates are CAs and valid at req.Now;
//   - RSA keys have at least 2048 bits and ECDSA keys use P-256, P-384 or
//     P-521 (server, intermediate and CA keys);
//   - the server certificate and the intermediates are not signed with SHA-1
//     or MD5 (a root's self-signature does not matter).
//
// It returns every problem found, joined with errors.Join, so the operator
// sees them all at once. Each problem names the file, shows the offending
// value and says what to do. A nil error means the set is usable.
func (s *Set) Validate(req Requirements) error {
	if s == nil || s.Cert == nil || s.Key == nil {
		return errors.New("certificate set is incomplete: it needs a CA bundle, a server certificate and a key")
	}
	n := s.Names.withDefaults()
	caL, certL, keyL := label(n.CA), label(n.Cert), label(n.Key)
	leaf := s.Cert
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	// The key belongs to the certificate.
	if !publicKeysEqual(s.Key.Public(), leaf.PublicKey) {
		add("%s: private key does not match the server certificate in %s (%s): install the key that was issued together with this certificate",
			keyL, certL, describe(leaf))
	}

	// Validity period.
	leafTimeOK := true
	if msg := validityProblem(leaf, req.Now); msg != "" {
		leafTimeOK = false
		hint := "issue a new certificate"
		if req.Now.Before(leaf.NotBefore) {
			hint = "check the system clock, or wait until it becomes valid"
		}
		add("%s: certificate %s (serial %s): %s", certL, msg, serialHex(leaf), hint)
	}

	// Extended key usage.
	ekuOK := allowsServerAuth(leaf)
	if !ekuOK {
		add("%s: certificate extended key usage does not allow serverAuth (it has %s; serial %s): issue a server certificate with extendedKeyUsage = serverAuth",
			certL, ekuList(leaf), serialHex(leaf))
	}

	// Names and addresses.
	for _, name := range req.DNSNames {
		if err := leaf.VerifyHostname(name); err != nil {
			add("%s: certificate does not cover DNS name %q (it covers %s): issue a certificate with subjectAltName DNS:%s",
				certL, name, coverage(leaf), name)
		}
	}
	for _, ip := range req.IPs {
		if err := leaf.VerifyHostname(ip.String()); err != nil {
			add("%s: certificate does not cover IP address %s (it covers %s): issue a certificate with subjectAltName IP:%s",
				certL, ip, coverage(leaf), ip)
		}
	}

	// Key strength.
	if msg := weakKey(s.Key.Public()); msg != "" {
		add("%s: server key is %s: use an ECDSA P-256 key (or RSA with at least %d bits) and issue a new certificate", keyL, msg, MinRSABits)
	} else if !publicKeysEqual(s.Key.Public(), leaf.PublicKey) {
		if msg := weakKey(leaf.PublicKey); msg != "" {
			add("%s: server certificate key is %s: issue a new certificate with an ECDSA P-256 key (or RSA with at least %d bits)", certL, msg, MinRSABits)
		}
	}

	// Signature algorithms of what the server presents.
	weakSig := false
	for _, c := range append([]*x509.Certificate{leaf}, s.Intermediates...) {
		if isWeakSignature(c.SignatureAlgorithm) {
			weakSig = true
			what := "certificate"
			if c != leaf {
				what = "intermediate certificate " + describe(c)
			}
			add("%s: %s is signed with %s, which TLS clients reject: reissue it with a SHA-256 signature", certL, what, sigName(c.SignatureAlgorithm))
		}
	}

	// Intermediates.
	badIntermediate := false
	for _, c := range s.Intermediates {
		if !c.BasicConstraintsValid || !c.IsCA {
			badIntermediate = true
			add("%s: intermediate certificate %s is not a CA certificate: keep only the server certificate and the CAs that issued it in this file", certL, describe(c))
		}
		if msg := validityProblem(c, req.Now); msg != "" {
			badIntermediate = true
			add("%s: intermediate certificate %s %s: get the current intermediate from the issuer", certL, describe(c), msg)
		}
		if msg := weakKey(c.PublicKey); msg != "" {
			add("%s: intermediate certificate %s has a key that is %s: use an intermediate CA with a stronger key", certL, describe(c), msg)
		}
	}

	// CA bundle.
	roots := x509.NewCertPool()
	for _, c := range s.CAs {
		roots.AddCert(c)
		if !c.BasicConstraintsValid || !c.IsCA {
			add("%s: certificate %s is not a CA certificate (basic constraints CA:FALSE or missing): put the certificate of the CA that issued the server certificate here, not a server or client certificate", caL, describe(c))
		}
		if msg := weakKey(c.PublicKey); msg != "" {
			add("%s: CA certificate %s has a key that is %s: create a new CA with an ECDSA P-256 key (or RSA with at least %d bits)", caL, describe(c), msg, MinRSABits)
		}
	}

	// Chain. Weak signatures and broken intermediates make the verifier fail
	// in ways already reported above. An expired leaf is reported above too;
	// its chain is then checked in the middle of its validity period.
	if !weakSig && !badIntermediate {
		at := req.Now
		if !leafTimeOK {
			at = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		}
		inter := x509.NewCertPool()
		for _, c := range s.Intermediates {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			CurrentTime:   at,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		_, err := leaf.Verify(opts)
		public := false
		if err != nil && req.ServerRoots != nil {
			if system := req.ServerRoots(); system != nil {
				opts.Roots = system
				_, perr := leaf.Verify(opts)
				public = perr == nil
			}
		}
		if err != nil && !public {
			if e := s.chainError(err, at, leafTimeOK, ekuOK); e != nil {
				if req.ServerRoots != nil {
					e = fmt.Errorf("%w; nor does it chain to the system's trusted roots: a certificate from a public CA such as Let's Encrypt needs its intermediates after it in %s, as certbot's fullchain.pem has them (its cert.pem does not)", e, certL)
				}
				errs = append(errs, e)
			}
		}
	}
	return errors.Join(errs...)
}

// chainError explains a verification failure; nil when it is already reported.
func (s *Set) chainError(err error, at time.Time, leafTimeOK, ekuOK bool) error {
	n := s.Names.withDefaults()
	caL, certL := label(n.CA), label(n.Cert)
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.IncompatibleUsage:
			if !ekuOK {
				return nil
			}
			return fmt.Errorf("%s: the chain to %s does not allow serverAuth (an intermediate or CA restricts extended key usage): issue the server certificate from a CA that may issue server certificates", certL, caL)
		case x509.Expired:
			if inv.Cert != nil && inv.Cert.Equal(s.Cert) && !leafTimeOK {
				return nil // reported above
			}
			for _, ca := range s.CAs {
				if inv.Cert != nil && inv.Cert.Equal(ca) {
					return caExpired(caL, ca, at)
				}
			}
			return fmt.Errorf("%s: the chain to %s is not valid at %s: %v: renew the expired certificate", certL, caL, at.UTC().Format(time.RFC3339), err)
		}
		return fmt.Errorf("%s: the certificate does not chain to %s: %v: fix the CA bundle or the intermediates", certL, caL, err)
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		// Is the issuing CA present but out of its validity period?
		issuers := append([]*x509.Certificate{s.Cert}, s.Intermediates...)
		for _, ca := range s.CAs {
			for _, c := range issuers {
				if string(c.RawIssuer) != string(ca.RawSubject) || c.CheckSignatureFrom(ca) != nil {
					continue
				}
				if validityProblem(ca, at) != "" {
					return caExpired(caL, ca, at)
				}
			}
		}
		var subjects []string
		for _, ca := range s.CAs {
			subjects = append(subjects, fmt.Sprintf("%q", ca.Subject.String()))
		}
		return fmt.Errorf("%s: certificate (issuer %q) is not signed by any CA in %s (which holds %s): put the CA that issued it in %s, and any intermediates after the server certificate in %s",
			certL, s.topIssuer(), caL, strings.Join(subjects, ", "), caL, certL)
	}
	return fmt.Errorf("%s: the certificate does not chain to %s: %v: fix the CA bundle or the intermediates", certL, caL, err)
}

func caExpired(caL string, ca *x509.Certificate, at time.Time) error {
	return fmt.Errorf("%s: CA certificate %s that issued the server certificate %s: renew the CA and issue a new server certificate", caL, describe(ca), validityProblem(ca, at))
}

// topIssuer is the issuer of the last certificate on the presented chain: the
// one whose issuer is not among the intermediates.
func (s *Set) topIssuer() string {
	c := s.Cert
	for range len(s.Intermediates) {
		next := false
		for _, i := range s.Intermediates {
			if string(c.RawIssuer) == string(i.RawSubject) && i != c {
				c, next = i, true
				break
			}
		}
		if !next {
			break
		}
	}
	return c.Issuer.String()
}

func validityProblem(c *x509.Certificate, now time.Time) string {
	switch {
	case now.Before(c.NotBefore):
		return "is not valid until " + c.NotBefore.UTC().Format(time.RFC3339)
	case now.After(c.NotAfter):
		return "expired on " + c.NotAfter.UTC().Format(time.RFC3339)
	}
	return ""
}

func allowsServerAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

var ekuNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:             "any",
	x509.ExtKeyUsageServerAuth:      "serverAuth",
	x509.ExtKeyUsageClientAuth:      "clientAuth",
	x509.ExtKeyUsageCodeSigning:     "codeSigning",
	x509.ExtKeyUsageEmailProtection: "emailProtection",
	x509.ExtKeyUsageTimeStamping:    "timeStamping",
	x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
}

func ekuList(c *x509.Certificate) string {
	var s []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := ekuNames[u]; ok {
			s = append(s, n)
		} else {
			s = append(s, fmt.Sprintf("usage %d", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		s = append(s, oid.String())
	}
	return strings.Join(s, ", ")
}

func coverage(c *x509.Certificate) string {
	var s []string
	for _, d := range c.DNSNames {
		s = append(s, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		s = append(s, "IP:"+ip.String())
	}
	if len(s) == 0 {
		return "no subjectAltName at all"
	}
	return strings.Join(s, ", ")
}

// describe names a certificate for a message: subject and serial.
func describe(c *x509.Certificate) string {
	return fmt.Sprintf("%q (serial %s)", c.Subject.String(), serialHex(c))
}

// weakKey returns why a public key is too weak, or "" when it is acceptable.
func weakKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return fmt.Sprintf("RSA with %d bits, fewer than %d", bits, MinRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Sprintf("ECDSA on curve %s, not P-256, P-384 or P-521", k.Curve.Params().Name)
		}
	default:
		return fmt.Sprintf("of type %T, which tlsdock does not accept (only RSA and ECDSA)", pub)
	}
	return ""
}

func isWeakSignature(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1, x509.UnknownSignatureAlgorithm:
		return true
	}
	return false
}

func sigName(a x509.SignatureAlgorithm) string {
	if a == x509.UnknownSignatureAlgorithm {
		return "an unknown signature algorithm"
	}
	return a.String()
}

// ServerRoots is the pool a client verifies the served chain against: the
// CA bundle when the server certificate chains to it (the usual private
// PKI, and the local CA), else system when it chains there (a public CA's
// chain that Validate accepted with Requirements.ServerRoots: the CA
// bundle then verifies only the clients). The chain is checked in the
// middle of the leaf's lifetime: this chooses the roots, Validate judges
// the times. With neither, the CA bundle. system is called only when the
// chain does not lead to the CA bundle.
func (s *Set) ServerRoots(system func() *x509.CertPool) *x509.CertPool {
	roots := x509.NewCertPool()
	if s == nil || s.Cert == nil {
		return roots
	}
	for _, c := range s.CAs {
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range s.Intermediates {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		CurrentTime: s.Cert.NotBefore.Add(s.Cert.NotAfter.Sub(s.Cert.NotBefore) / 2),
	}
	if _, err := s.Cert.Verify(opts); err == nil || system == nil {
		return roots
	}
	sys := system()
	if sys == nil {
		return roots
	}
	opts.Roots = sys
	if _, err := s.Cert.Verify(opts); err == nil {
		return sys
	}
	return roots
}
