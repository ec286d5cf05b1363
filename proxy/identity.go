package proxy

import (
	"crypto/x509"
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
