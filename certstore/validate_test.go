package certstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	root := newRoot(t, "Test Root")
	otherRoot := newRoot(t, "Other Root")
	req := Requirements{
		Now:      now,
		DNSNames: []string{"docker.example.com", "localhost"},
		IPs:      []net.IP{net.ParseIP("10.0.0.5"), net.ParseIP("127.0.0.1")},
	}
	names := SetNames{CA: "/etc/src/ca.pem", Cert: "/etc/src/server-cert.pem", Key: "/etc/src/server-key.pem"}
	const (
		caL   = "ca.pem (/etc/src/ca.pem)"
		certL = "server-cert.pem (/etc/src/server-cert.pem)"
		keyL  = "server-key.pem (/etc/src/server-key.pem)"
	)

	// server builds a set: leaf from tmpl with key k signed by parent, CA
	// bundle ca, extra intermediates appended after the leaf.
	server := func(t *testing.T, tmpl *x509.Certificate, k crypto.Signer, parent issuer, ca []byte, inter ...[]byte) fixture {
		leaf := sign(t, tmpl, k.Public(), &parent, k)
		return fixture{ca: ca, cert: cat(append([][]byte{leaf.pem}, inter...)...), key: pkcs8(t, k)}
	}
	intermediate := func(t *testing.T, mutate func(*x509.Certificate)) issuer {
		k := ecKey(t)
		tmpl := caTemplate("Test Intermediate")
		tmpl.MaxPathLenZero = true
		if mutate != nil {
			mutate(tmpl)
		}
		return sign(t, tmpl, k.Public(), &root, k)
	}
	with := func(mutate func(*x509.Certificate)) *x509.Certificate {
		tmpl := leafTemplate("docker.example.com")
		mutate(tmpl)
		return tmpl
	}

	tests := []struct {
		name  string
		build func(t *testing.T) fixture
		req   *Requirements
		want  [][]string // one list of substrings per expected problem
	}{
		{name: "valid ecdsa", build: func(t *testing.T) fixture {
			return server(t, leafTemplate("srv"), ecKey(t), root, root.pem)
		}},
		{name: "valid rsa-2048", build: func(t *testing.T) fixture {
			return server(t, leafTemplate("srv"), rsaKey(t, 2048), root, root.pem)
		}},
		{name: "no extended key usage is accepted", build: func(t *testing.T) fixture {
			return server(t, with(func(c *x509.Certificate) { c.ExtKeyUsage = nil }), ecKey(t), root, root.pem)
		}},
		{name: "extended key usage any", build: func(t *testing.T) fixture {
			return server(t, with(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny} }), ecKey(t), root, root.pem)
		}},
		{name: "wildcard name", build: func(t *testing.T) fixture {
			return server(t, with(func(c *x509.Certificate) { c.DNSNames = []string{"*.example.com"} }), ecKey(t), root, root.pem)
		}, req: &Requirements{Now: now, DNSNames: []string{"docker.example.com"}}},
		{name: "bundle with two CAs", build: func(t *testing.T) fixture {
			return server(t, leafTemplate("srv"), ecKey(t), root, cat(otherRoot.pem, root.pem))
		}},
		{name: "with intermediate", build: func(t *testing.T) fixture {
			in := intermediate(t, nil)
			return server(t, leafTemplate("srv"), ecKey(t), in, root.pem, in.pem)
		}},
		{name: "key mismatch", build: func(t *testing.T) fixture {
			f := server(t, leafTemplate("srv"), ecKey(t), root, root.pem)
			f.key = pkcs8(t, ecKey(t))
			return f
		}, want: [][]string{{keyL, "does not match the server certificate in " + certL, "install the key that was issued together with this certificate"}}},
		{name: "expired", build: func(t *testing.T) fixture {
			return server(t, with(func(c *x509.Certificate) {
				c.SerialNumber.SetInt64(0x1f2e)
				c.NotBefore, c.NotAfter = now.AddDate(0, -4, 0), now.AddDate(0, -1, 0)
			}), ecKey(t), root, root.pem)
		}, want: [][]string{{certL, "certificate expired on 2026-10-01T12:00:00Z (serial 1f2e): issue a new certificate"}}},
		{name: "not yet valid", build: func(t *testing.T) fixture {
			return server(t, with(func(c *x509.Certificate) { c.NotBefore = now.AddDate(0, 0, 2) }), ecKey(t), root, root.pem)
		}, want: [][]string{{certL, "is not valid until 2026-11-03T12:00:00Z", "check the system clock"}}},
		{name: "client certificate", build: func(t *testing.T) fixture {
			return server(t, with(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }), ecKey(t), root, root.pem)
		}, want: [][]string{{certL, "does not allow serverAuth (it has clientAuth", "extendedKeyUsage = serverAuth"}}},
		{name: "missing DNS name and IP", build: func(t *testing.T) fixture {
			return server(t, with(func(c *x509.Certificate) {
				c.DNSNames = []string{"localhost"}
				c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			}), ecKey(t), root, root.pem)
		}, want: [][]string{
			{certL, `does not cover DNS name "docker.example.com" (it covers DNS:localhost, IP:127.0.0.1)`, "subjectAltName DNS:docker.example.com"},
			{certL, "does not cover IP address 10.0.0.5", "subjectAltName IP:10.0.0.5"},
		}},
		{name: "common name only", build: func(t *testing.T) fixture {
			return server(t, with(func(c *x509.Certificate) { c.DNSNames, c.IPAddresses = nil, nil }), ecKey(t), root, root.pem)
		}, req: &Requirements{Now: now, DNSNames: []string{"docker.example.com"}},
			want: [][]string{{certL, `does not cover DNS name "docker.example.com" (it covers no subjectAltName at all)`}}},
		{name: "rsa-1024 server key", build: func(t *testing.T) fixture {
			return server(t, leafTemplate("srv"), rsaKey(t, 1024), root, root.pem)
		}, want: [][]string{{keyL, "server key is RSA with 1024 bits, fewer than 2048", "ECDSA P-256"}}},
		{name: "P-224 server key", build: func(t *testing.T) fixture {
			k, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return server(t, leafTemplate("srv"), k, root, root.pem)
		}, want: [][]string{{keyL, "ECDSA on curve P-224, not P-256, P-384 or P-521"}}},
		{name: "ed25519 server key", build: func(t *testing.T) fixture {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return server(t, leafTemplate("srv"), k, root, root.pem)
		}, want: [][]string{{keyL, "ed25519.PublicKey, which tlsdock does not accept"}}},
		{name: "rsa-1024 CA", build: func(t *testing.T) fixture {
			k := rsaKey(t, 1024)
			weak := sign(t, caTemplate("Weak Root"), k.Public(), nil, k)
			return server(t, leafTemplate("srv"), ecKey(t), weak, weak.pem)
		}, want: [][]string{{caL, `CA certificate "CN=Weak Root"`, "RSA with 1024 bits", "create a new CA"}}},
		{name: "SHA-1 signed leaf", build: func(t *testing.T) fixture {
			k := rsaKey(t, 2048)
			rsaRoot := sign(t, caTemplate("RSA Root"), k.Public(), nil, k)
			return server(t, with(func(c *x509.Certificate) { c.SignatureAlgorithm = x509.SHA1WithRSA }), ecKey(t), rsaRoot, rsaRoot.pem)
		}, want: [][]string{{certL, "certificate is signed with SHA1-RSA", "reissue it with a SHA-256 signature"}}},
		{name: "SHA-1 signed intermediate", build: func(t *testing.T) fixture {
			k := rsaKey(t, 2048)
			rsaRoot := sign(t, caTemplate("RSA Root"), k.Public(), nil, k)
			ik := ecKey(t)
			itmpl := caTemplate("SHA1 Intermediate")
			itmpl.SignatureAlgorithm = x509.SHA1WithRSA
			in := sign(t, itmpl, ik.Public(), &rsaRoot, ik)
			return server(t, leafTemplate("srv"), ecKey(t), in, rsaRoot.pem, in.pem)
		}, want: [][]string{{certL, `intermediate certificate "CN=SHA1 Intermediate"`, "signed with SHA1-RSA"}}},
		{name: "SHA-1 self-signed root is fine", build: func(t *testing.T) fixture {
			k := rsaKey(t, 2048)
			tmpl := caTemplate("Old Root")
			tmpl.SignatureAlgorithm = x509.SHA1WithRSA
			old := sign(t, tmpl, k.Public(), nil, k)
			return server(t, leafTemplate("srv"), ecKey(t), old, old.pem)
		}},
		{name: "CA bundle holds a leaf", build: func(t *testing.T) fixture {
			f := server(t, leafTemplate("srv"), ecKey(t), root, root.pem)
			return fixture{ca: cat(f.ca, f.cert), cert: f.cert, key: f.key}
		}, want: [][]string{{caL, `certificate "CN=srv"`, "is not a CA certificate", "not a server or client certificate"}}},
		{name: "self-signed server certificate as CA", build: func(t *testing.T) fixture {
			k := ecKey(t)
			self := sign(t, leafTemplate("self"), k.Public(), nil, k)
			return fixture{ca: self.pem, cert: self.pem, key: pkcs8(t, k)}
		}, want: [][]string{{caL, `certificate "CN=self"`, "is not a CA certificate"}}},
		{name: "foreign CA", build: func(t *testing.T) fixture {
			return server(t, leafTemplate("srv"), ecKey(t), root, otherRoot.pem)
		}, want: [][]string{{certL, `(issuer "CN=Test Root") is not signed by any CA in ` + caL, `"CN=Other Root"`, "put the CA that issued it in " + caL}}},
		{name: "missing intermediate", build: func(t *testing.T) fixture {
			in := intermediate(t, nil)
			return server(t, leafTemplate("srv"), ecKey(t), in, root.pem)
		}, want: [][]string{{certL, `issuer "CN=Test Intermediate"`, "any intermediates after the server certificate"}}},
		{name: "expired CA", build: func(t *testing.T) fixture {
			k := ecKey(t)
			tmpl := caTemplate("Expired Root")
			tmpl.NotBefore, tmpl.NotAfter = now.AddDate(-5, 0, 0), now.AddDate(0, 0, -10)
			old := sign(t, tmpl, k.Public(), nil, k)
			return server(t, leafTemplate("srv"), ecKey(t), old, old.pem)
		}, want: [][]string{{caL, `CA certificate "CN=Expired Root"`, "that issued the server certificate expired on 2026-10-22T12:00:00Z", "renew the CA"}}},
		{name: "expired CA next to a valid one", build: func(t *testing.T) fixture {
			k := ecKey(t)
			tmpl := caTemplate("Expired Root")
			tmpl.NotBefore, tmpl.NotAfter = now.AddDate(-5, 0, 0), now.AddDate(0, 0, -10)
			old := sign(t, tmpl, k.Public(), nil, k)
			return server(t, leafTemplate("srv"), ecKey(t), old, cat(otherRoot.pem, old.pem))
		}, want: [][]string{{caL, `CA certificate "CN=Expired Root"`, "expired on 2026-10-22T12:00:00Z", "renew the CA"}}},
		{name: "intermediate not a CA", build: func(t *testing.T) fixture {
			in := intermediate(t, func(c *x509.Certificate) { c.IsCA, c.MaxPathLenZero = false, false })
			return server(t, leafTemplate("srv"), ecKey(t), in, root.pem, in.pem)
		}, want: [][]string{{certL, `intermediate certificate "CN=Test Intermediate"`, "is not a CA certificate"}}},
		{name: "expired intermediate", build: func(t *testing.T) fixture {
			in := intermediate(t, func(c *x509.Certificate) { c.NotAfter = now.AddDate(0, 0, -1) })
			return server(t, leafTemplate("srv"), ecKey(t), in, root.pem, in.pem)
		}, want: [][]string{{certL, `intermediate certificate "CN=Test Intermediate"`, "expired on 2026-10-31T12:00:00Z", "current intermediate"}}},
		{name: "intermediate restricted to clientAuth", build: func(t *testing.T) fixture {
			in := intermediate(t, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })
			return server(t, leafTemplate("srv"), ecKey(t), in, root.pem, in.pem)
		}, want: [][]string{{certL, "the chain to " + caL + " does not allow serverAuth"}}},
		{name: "everything at once", build: func(t *testing.T) fixture {
			f := server(t, with(func(c *x509.Certificate) {
				c.NotBefore, c.NotAfter = now.AddDate(0, 0, -30), now.AddDate(0, 0, -2)
				c.DNSNames = []string{"other.example.com"}
				c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			}), ecKey(t), root, otherRoot.pem)
			f.key = pkcs8(t, ecKey(t))
			return f
		}, req: &Requirements{Now: now, DNSNames: []string{"docker.example.com"}},
			want: [][]string{
				{keyL, "does not match"},
				{certL, "expired on 2026-10-30T12:00:00Z"},
				{certL, "does not allow serverAuth"},
				{certL, `does not cover DNS name "docker.example.com"`},
				{certL, "is not signed by any CA in " + caL},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.build(t)
			s, err := ParseSet(f.ca, f.cert, f.key, names)
			if err != nil {
				t.Fatalf("ParseSet: %v", err)
			}
			r := req
			if tc.req != nil {
				r = *tc.req
			}
			err = s.Validate(r)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %d problems", len(tc.want))
			}
			var problems []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				problems = j.Unwrap()
			} else {
				problems = []error{err}
			}
			if len(problems) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(problems), len(tc.want), err)
			}
			for i, want := range tc.want {
				if i >= len(problems) {
					break
				}
				for _, w := range want {
					if !strings.Contains(problems[i].Error(), w) {
						t.Errorf("problem %d %q\n  does not contain %q", i+1, problems[i], w)
					}
				}
			}
		})
	}
}

func TestValidateIncompleteSet(t *testing.T) {
	var s *Set
	if err := s.Validate(Requirements{Now: now}); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("nil set: %v, want an incomplete-set error", err)
	}
	if err := (&Set{}).Validate(Requirements{Now: now}); err == nil {
		t.Error("empty set: no error")
	}
}
