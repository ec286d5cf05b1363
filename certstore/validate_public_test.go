package certstore

import (
	"crypto/x509"
	"strings"
	"testing"
)

// TestValidatePublicServerChain: certbot's layout with a private client
// CA. fullchain.pem holds a leaf of a public CA and its intermediate,
// privkey.pem the key, and ca-file a private CA that signs only the
// clients. The set is refused without the system's roots (the leaf does
// not chain to ca-file), accepted with them; certbot's cert.pem alone
// (no intermediate) is refused with a hint at fullchain.pem; ServerRoots
// says which pool a client verifies the server against.
func TestValidatePublicServerChain(t *testing.T) {
	public := newRoot(t, "Public Root X1")
	ik := ecKey(t)
	inter := sign(t, caTemplate("Public R11"), ik.Public(), &public, ik)
	k := ecKey(t)
	leaf := sign(t, leafTemplate("docker.example.com"), k.Public(), &inter, k)
	clientCA := newRoot(t, "Private Client CA")
	system := x509.NewCertPool()
	system.AddCert(public.cert)
	names := SetNames{CA: "/etc/tlsdock/client-ca.pem", Cert: "/etc/letsencrypt/live/docker.example.com/fullchain.pem", Key: "/etc/letsencrypt/live/docker.example.com/privkey.pem"}
	full, err := ParseSet(clientCA.pem, cat(leaf.pem, inter.pem), pkcs8(t, k), names)
	if err != nil {
		t.Fatal(err)
	}
	req := Requirements{Now: now, DNSNames: []string{"docker.example.com"}}

	if err := full.Validate(req); err == nil || !strings.Contains(err.Error(), "is not signed by any CA in client-ca.pem (/etc/tlsdock/client-ca.pem)") {
		t.Fatalf("without the system's roots: %v, want a refusal naming the client CA", err)
	}
	req.ServerRoots = func() *x509.CertPool { return system }
	if err := full.Validate(req); err != nil {
		t.Fatalf("with the system's roots: %v", err)
	}
	if got := full.ServerRoots(func() *x509.CertPool { return system }); got != system {
		t.Error("ServerRoots of the public chain is not the system's pool")
	}

	leafOnly, err := ParseSet(clientCA.pem, leaf.pem, pkcs8(t, k), names)
	if err != nil {
		t.Fatal(err)
	}
	err = leafOnly.Validate(req)
	if err == nil || !strings.Contains(err.Error(), "nor does it chain to the system's trusted roots: a certificate from a public CA such as Let's Encrypt needs its intermediates after it in fullchain.pem (/etc/letsencrypt/live/docker.example.com/fullchain.pem), as certbot's fullchain.pem has them (its cert.pem does not)") {
		t.Fatalf("cert.pem alone: %v, want the hint at fullchain.pem", err)
	}

	// A private PKI keeps verifying against its CA bundle, system roots
	// or not.
	f, root := goodFixture(t)
	private, err := ParseSet(f.ca, f.cert, f.key, SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	// ...and never loads the system's roots (MiBs of a daemon's memory).
	loads := 0
	req.ServerRoots = func() *x509.CertPool { loads++; return system }
	if err := private.Validate(req); err != nil {
		t.Fatal(err)
	}
	if got := private.ServerRoots(req.ServerRoots); got == system {
		t.Error("ServerRoots of a private set is the system's pool")
	} else if _, err := private.Cert.Verify(x509.VerifyOptions{Roots: got, CurrentTime: now}); err != nil {
		t.Errorf("ServerRoots of a private set does not verify it (root %s): %v", root.cert.Subject, err)
	}
	if loads != 0 {
		t.Errorf("a private set loaded the system's roots %d times", loads)
	}
}
