package certstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, created, err := LoadOrCreateCA(dir, ECDSAP256, now, rand.Reader)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCA = %v, %v; want created", created, err)
	}
	c := ca.Cert
	if !strings.HasPrefix(c.Subject.CommonName, "tlsdock local CA ") || len(c.Subject.CommonName) != len("tlsdock local CA ")+12 {
		t.Errorf("CN = %q, want \"tlsdock local CA \" + 12 hex digits", c.Subject.CommonName)
	}
	if host, _ := os.Hostname(); host != "" && strings.Contains(c.Subject.CommonName, host) {
		t.Errorf("CN %q contains the host name", c.Subject.CommonName)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("IsCA=%v MaxPathLen=%d MaxPathLenZero=%v; want a CA limited to leaf certificates", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if !c.NotBefore.Equal(now.Add(-5*time.Minute)) || !c.NotAfter.Equal(time.Date(2036, 11, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("validity %v .. %v, want now-5m .. now+10y", c.NotBefore, c.NotAfter)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 || c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("KeyUsage %v, signature %v", c.KeyUsage, c.SignatureAlgorithm)
	}
	if k, ok := ca.Key.Public().(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.Key.Public())
	}
	for name, mode := range map[string]os.FileMode{".": 0o700 | os.ModeDir, CAKeyFile: 0o400, CACertFile: 0o444} {
		if fi := lstat(t, filepath.Join(dir, name)); fi.Mode() != mode {
			t.Errorf("%s mode = %v, want %v", name, fi.Mode(), mode)
		}
	}
	assertOnlyEntries(t, dir, CACertFile, CAKeyFile)
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("ca-key.pem is not a PKCS#8 PRIVATE KEY block")
	}

	again, created, err := LoadOrCreateCA(dir, RSA2048, now.Add(time.Hour), rand.Reader)
	if err != nil || created {
		t.Fatalf("second LoadOrCreateCA = %v, %v; want reuse", created, err)
	}
	if !bytes.Equal(again.CertPEM, ca.CertPEM) || !again.Cert.Equal(ca.Cert) {
		t.Error("second call returned another certificate")
	}
	if !publicKeysEqual(again.Key.Public(), ca.Key.Public()) {
		t.Error("second call returned another key")
	}
}

func TestLoadOrCreateCARSA(t *testing.T) {
	ca, _, err := LoadOrCreateCA(t.TempDir(), RSA2048, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := ca.Key.Public().(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Errorf("CA key is %T, want RSA 2048", ca.Key.Public())
	}
	if ca.Cert.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("signature %v, want SHA256-RSA", ca.Cert.SignatureAlgorithm)
	}
}

func TestLoadCAErrors(t *testing.T) {
	newCA := func(t *testing.T) string {
		dir := t.TempDir()
		if _, _, err := LoadOrCreateCA(dir, ECDSAP256, now, rand.Reader); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name     string
		prepare  func(t *testing.T) string
		want     []string
		notExist bool
	}{
		{"absent", func(t *testing.T) string { return t.TempDir() }, []string{"ca.pem", "does not exist"}, true},
		{"key missing", func(t *testing.T) string {
			dir := newCA(t)
			os.Remove(filepath.Join(dir, CAKeyFile))
			return dir
		}, []string{"ca-key.pem is missing", "restore the key"}, false},
		{"key readable by others", func(t *testing.T) string {
			dir := newCA(t)
			if err := os.Chmod(filepath.Join(dir, CAKeyFile), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, []string{"ca-key.pem is accessible by group or others", "chmod 0400"}, false},
		{"key of another CA", func(t *testing.T) string {
			dir, other := newCA(t), newCA(t)
			b, err := os.ReadFile(filepath.Join(other, CAKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), b, 0o400); err != nil {
				t.Fatal(err)
			}
			return dir
		}, []string{"ca-key.pem", "does not match the certificate"}, false},
		{"not a CA", func(t *testing.T) string {
			dir := t.TempDir()
			f, _ := goodFixture(t)
			if err := WriteFileAtomic(filepath.Join(dir, CACertFile), f.cert, 0o444); err != nil {
				t.Fatal(err)
			}
			if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), f.key, 0o400); err != nil {
				t.Fatal(err)
			}
			return dir
		}, []string{"is not a CA certificate"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.prepare(t)
			ca, err := LoadCA(dir)
			if ca != nil {
				t.Error("got a CA")
			}
			wantErrContains(t, err, tc.want...)
			if got := errors.Is(err, os.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(err, os.ErrNotExist) = %v, want %v", got, tc.notExist)
			}
			if !tc.notExist {
				// LoadOrCreateCA must not replace a CA it cannot load.
				before, _ := os.ReadFile(filepath.Join(dir, CACertFile))
				if _, created, err := LoadOrCreateCA(dir, ECDSAP256, now, rand.Reader); err == nil || created {
					t.Errorf("LoadOrCreateCA over a broken CA = %v, %v; want an error", created, err)
				}
				if after, _ := os.ReadFile(filepath.Join(dir, CACertFile)); !bytes.Equal(before, after) {
					t.Error("LoadOrCreateCA replaced ca.pem")
				}
			}
		})
	}
}

func TestLoadOrCreateCAAfterCrash(t *testing.T) {
	// A crash between writing the key and the certificate leaves only the key.
	dir := t.TempDir()
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), []byte("stale"), 0o400); err != nil {
		t.Fatal(err)
	}
	ca, created, err := LoadOrCreateCA(dir, ECDSAP256, now, rand.Reader)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCA = %v, %v; want created", created, err)
	}
	loaded, err := LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA after recovery: %v", err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !publicKeysEqual(loaded.Key.Public(), ca.Key.Public()) {
		t.Error("LoadCA returned another CA than the one created")
	}
}

func TestIssue(t *testing.T) {
	ca, _, err := LoadOrCreateCA(t.TempDir(), ECDSAP256, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     IssueRequest
		wantEKU x509.ExtKeyUsage
		wantEnd time.Time
		keyType string
	}{
		{"server", IssueRequest{
			CommonName: "docker.example.com", DNSNames: []string{"docker.example.com", "localhost"},
			IPs: []net.IP{net.ParseIP("10.0.0.5"), net.ParseIP("127.0.0.1")}, KeyType: ECDSAP256,
			Now: now, Validity: 90 * 24 * time.Hour, Server: true,
		}, x509.ExtKeyUsageServerAuth, time.Date(2027, 1, 30, 12, 0, 0, 0, time.UTC), "ecdsa"},
		{"client", IssueRequest{
			CommonName: "alice", Groups: []string{"admins", "ci"}, KeyType: ECDSAP256,
			Now: now, Validity: 365 * 24 * time.Hour,
		}, x509.ExtKeyUsageClientAuth, time.Date(2027, 11, 1, 12, 0, 0, 0, time.UTC), "ecdsa"},
		{"rsa client", IssueRequest{
			CommonName: "bob", KeyType: RSA2048, Now: now, Validity: time.Hour,
		}, x509.ExtKeyUsageClientAuth, now.Add(time.Hour), "rsa"},
		{"clamped to the CA", IssueRequest{
			CommonName: "carol", KeyType: ECDSAP256, Now: now, Validity: 20 * 365 * 24 * time.Hour,
		}, x509.ExtKeyUsageClientAuth, ca.Cert.NotAfter, "ecdsa"},
	}
	serials := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.Issue(tc.req, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
				t.Fatalf("key PEM is not a PKCS#8 PRIVATE KEY block")
			}
			s, err := ParseSet(ca.CertPEM, certPEM, keyPEM, SetNames{})
			if err != nil {
				t.Fatal(err)
			}
			c := s.Cert
			if c.Subject.CommonName != tc.req.CommonName || !slices.Equal(c.Subject.Organization, tc.req.Groups) || len(c.Subject.Names) != len(tc.req.Groups)+1 {
				t.Errorf("subject = %v, want CN %q O %v", c.Subject, tc.req.CommonName, tc.req.Groups)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{tc.wantEKU}) {
				t.Errorf("EKU = %v, want [%v]", c.ExtKeyUsage, tc.wantEKU)
			}
			if !c.NotBefore.Equal(now.Add(-5*time.Minute)) || !c.NotAfter.Equal(tc.wantEnd) {
				t.Errorf("validity %v .. %v, want %v .. %v", c.NotBefore, c.NotAfter, now.Add(-5*time.Minute), tc.wantEnd)
			}
			if c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("signature = %v, want ECDSA-SHA256", c.SignatureAlgorithm)
			}
			if c.IsCA {
				t.Error("issued certificate is a CA")
			}
			if bl := c.SerialNumber.BitLen(); c.SerialNumber.Sign() <= 0 || bl > 128 || bl < 64 {
				t.Errorf("serial %s has %d bits, want a positive random 128-bit number", s.Serial(), bl)
			}
			if serials[s.Serial()] {
				t.Errorf("serial %s repeated", s.Serial())
			}
			serials[s.Serial()] = true
			switch tc.keyType {
			case "rsa":
				if _, ok := s.Key.(*rsa.PrivateKey); !ok {
					t.Errorf("key is %T, want RSA", s.Key)
				}
			default:
				if _, ok := s.Key.(*ecdsa.PrivateKey); !ok {
					t.Errorf("key is %T, want ECDSA", s.Key)
				}
			}
			if !slices.EqualFunc(c.IPAddresses, tc.req.IPs, func(a, b net.IP) bool { return a.Equal(b) }) || !slices.Equal(c.DNSNames, tc.req.DNSNames) {
				t.Errorf("SANs = %v %v, want %v %v", c.DNSNames, c.IPAddresses, tc.req.DNSNames, tc.req.IPs)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.Cert)
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{tc.wantEKU}}); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if tc.req.Server {
				if err := s.Validate(Requirements{Now: now, DNSNames: tc.req.DNSNames, IPs: tc.req.IPs}); err != nil {
					t.Errorf("Validate: %v", err)
				}
			}
		})
	}
}

func TestIssueErrors(t *testing.T) {
	ca, _, err := LoadOrCreateCA(t.TempDir(), ECDSAP256, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ok := IssueRequest{CommonName: "alice", KeyType: ECDSAP256, Now: now, Validity: time.Hour}
	tests := []struct {
		name   string
		mutate func(*IssueRequest)
		want   string
	}{
		{"no time", func(r *IssueRequest) { r.Now = time.Time{} }, "no current time"},
		{"zero validity", func(r *IssueRequest) { r.Validity = 0 }, "validity 0s must be positive"},
		{"server without names", func(r *IssueRequest) { r.Server = true }, "no DNS name or IP address"},
		{"client without CN", func(r *IssueRequest) { r.CommonName = "" }, "common name is empty"},
		{"bad key type", func(r *IssueRequest) { r.KeyType = "dsa" }, `unknown key type "dsa"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.mutate(&req)
			c, k, err := ca.Issue(req, rand.Reader)
			if c != nil || k != nil {
				t.Error("got output with an error")
			}
			wantErrContains(t, err, tc.want)
		})
	}
	var nilCA *CA
	if _, _, err := nilCA.Issue(ok, rand.Reader); err == nil {
		t.Error("nil CA issued a certificate")
	}
}

func BenchmarkIssueDefaults(b *testing.B) {
	for b.Loop() {
		dir := b.TempDir()
		ca, _, err := LoadOrCreateCA(dir, ECDSAP256, now, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ca.Issue(IssueRequest{
			CommonName: "docker.example.com", DNSNames: []string{"docker.example.com"}, IPs: []net.IP{net.ParseIP("127.0.0.1")},
			KeyType: ECDSAP256, Now: now, Validity: 90 * 24 * time.Hour, Server: true,
		}, rand.Reader); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ca.Issue(IssueRequest{
			CommonName: "client", KeyType: ECDSAP256, Now: now, Validity: 365 * 24 * time.Hour,
		}, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}
