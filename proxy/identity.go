package proxy

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
)

// Identity names a client by its certificate, the Kubernetes way: the
// subject's common name is the user and each organization (O) value is a
// group.
type Identity struct {
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
	// Serial is the certificate's serial number in lower-case hex, as
	// certstore prints it.
	Serial string `json:"serial"`
}

// IdentityOf reads the identity from a client certificate. Groups keep the
// certificate's order; duplicates are dropped.
func IdentityOf(cert *x509.Certificate) Identity {
	id := Identity{User: cert.Subject.CommonName}
	for _, g := range cert.Subject.Organization {
		if !slices.Contains(id.Groups, g) {
			id.Groups = append(id.Groups, g)
		}
	}
	if cert.SerialNumber != nil {
		id.Serial = cert.SerialNumber.Text(16)
	}
	return id
}

// InGroup reports whether the identity is a member of group g.
func (id Identity) InGroup(g string) bool { return slices.Contains(id.Groups, g) }

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// checkClientCert refuses a client certificate that does not name exactly
// one user (one CN attribute in its subject: with several, two parts of a
// system could disagree on who the client is) or that does not carry the
// clientAuth extended key usage explicitly. Go's verification accepts a
// leaf without any extended key usage, and one with anyExtendedKeyUsage;
// tlsdock refuses both, so a server or CA certificate of the same PKI is
// never taken for a client.
func checkClientCert(leaf *x509.Certificate) error {
	cns := 0
	for _, a := range leaf.Subject.Names {
		if a.Type.Equal(oidCommonName) {
			cns++
		}
	}
	switch {
	case cns == 0 || leaf.Subject.CommonName == "":
		return errors.New("client certificate has no common name: tlsdock names clients by CN")
	case cns > 1:
		return fmt.Errorf("client certificate has %d common names (CN): tlsdock names a client by exactly one; issue it with a single CN", cns)
	case !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth):
		return fmt.Errorf("client certificate %s lacks the clientAuth extended key usage: issue client certificates with extendedKeyUsage=clientAuth", leaf.Subject.CommonName)
	}
	return nil
}
