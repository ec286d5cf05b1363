package agent

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/tlsdock/tlsdock/certstore"
)

// TestConcurrentCertsClientAllRecorded: 16 `certs client` at once (as 16
// processes would: each takes the host lock on its own descriptor) are
// all recorded in issued.json, so `certs revoke NAME` finds every one.
func TestConcurrentCertsClientAllRecorded(t *testing.T) {
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}, noDNS), generateCfg())
	const n = 16
	var wg sync.WaitGroup
	serials := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One agent each, as one process each.
			b, err := h.agent(nil, noDNS).IssueClient("ci", nil, filepath.Join(h.root, fmt.Sprintf("home/ci%d", i)))
			if err == nil {
				serials[i] = b.Serial
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var is Issued
	if err := readJSON(filepath.Join(h.root, IssuedPath), &is); err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for _, c := range is.Clients["ci"] {
		recorded = append(recorded, c.Serial)
	}
	t.Logf("%d concurrent issues, %d recorded in %s", n, len(recorded), IssuedPath)
	sort.Strings(recorded)
	sort.Strings(serials)
	if strings.Join(recorded, " ") != strings.Join(serials, " ") {
		t.Fatalf("%d of %d issued certificates recorded", len(recorded), n)
	}
	res, err := h.agent(nil, noDNS).Revoke("ci")
	if err != nil || len(res.Revoked) != n {
		t.Fatalf("revoke ci: %d revoked, %v; want %d", len(res.Revoked), err, n)
	}
}

// TestCertsClientFailsWithoutARecord: when issued.json cannot be written
// the command fails and no bundle is left behind as if it had succeeded.
func TestCertsClientFailsWithoutARecord(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, issued string)
		want   string
	}{
		{"issued.json is a directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
		{"issued.json is a symlink", func(t *testing.T, p string) {
			if err := os.WriteFile(p+".real", []byte(`{"clients": {}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(p+".real", p); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink"},
		{"issued.json is damaged", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is damaged"},
		{"the CA directory is read-only", func(t *testing.T, p string) {
			if os.Geteuid() == 0 {
				t.Skip("root writes into a read-only directory")
			}
			if err := os.Chmod(filepath.Dir(p), 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(filepath.Dir(p), 0o700) })
		}, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			mustProvision(t, h.agent(&fakeVerifier{}, noDNS), generateCfg())
			tt.break_(t, filepath.Join(h.root, IssuedPath))
			out := filepath.Join(h.root, "home/alice")
			b, err := h.agent(nil, noDNS).IssueClient("alice", nil, out)
			if err == nil {
				t.Fatalf("issued %+v without a record", b)
			}
			for _, w := range []string{IssuedPath, tt.want, "no client bundle was written"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a bundle was left in %s (%v)", out, err)
			}
		})
	}
}

// TestClientBundlesAllowClientAuth: every client certificate of the local
// CA (certs client, --client-out, the probe's own) carries exactly the
// clientAuth EKU and verifies for it against the CA, which proxy mode
// requires; none can serve as a server certificate.
func TestClientBundlesAllowClientAuth(t *testing.T) {
	h := newFakeHost(t)
	cfg := generateCfg()
	cfg.ClientOut = filepath.Join(h.root, "root/admin")
	v := &fakeVerifier{}
	mustProvision(t, h.agent(v, noDNS), cfg)
	if _, err := h.agent(nil, noDNS).IssueClient("alice", []string{"ops"}, filepath.Join(h.root, "home/alice")); err != nil {
		t.Fatal(err)
	}
	ca, err := certstore.LoadCA(filepath.Join(h.root, CADir))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	certs := map[string]*x509.Certificate{}
	for _, dir := range []string{cfg.ClientOut, filepath.Join(h.root, "home/alice")} {
		certs[dir] = loadClientCert(dir)
	}
	if len(v.probes) == 0 || v.probes[0].Client == nil {
		t.Fatal("the probe had no client certificate")
	}
	probe, err := x509.ParseCertificate(v.probes[0].Client.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	certs["the probe"] = probe
	for dir, c := range certs {
		if c == nil {
			t.Fatalf("no cert.pem in %s", dir)
		}
		if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(c.UnknownExtKeyUsage) != 0 {
			t.Errorf("%s: EKU %v, want exactly [clientAuth]", dir, c.ExtKeyUsage)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: fixedNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: does not verify for clientAuth: %v", dir, err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: fixedNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
			t.Errorf("%s: a client certificate verifies for serverAuth", dir)
		}
	}
}
