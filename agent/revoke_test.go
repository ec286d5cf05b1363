package agent

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/proxy"
)

// TestRevokeKeepsTheRecordFormat revokes on top of the records an earlier
// tlsdock wrote: revoked.json keeps its exact form, the CRL lists every
// recorded serial, and the --json result keeps its fields.
func TestRevokeKeepsTheRecordFormat(t *testing.T) {
	root := t.TempDir()
	a := New(Options{Paths: Paths{Root: root}, Now: func() time.Time { return fixedNow }})
	ca, err := certstore.NewCA(certstore.ECDSAP256, fixedNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(a.o.Paths.CA()); err != nil {
		t.Fatal(err)
	}
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(a.o.Paths.Abs(path), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(IssuedPath, `{"clients": {"bob": [{"serial": "3f2a9c", "issued": "2026-10-01T08:00:00Z", "not_after": "2027-10-01T08:00:00Z"}]}}`)
	write(RevokedPath, `{"crl_number": 4, "serials": [{"serial": "abc", "name": "alice", "revoked_at": "2026-10-01T08:00:00Z"}]}`)

	res, err := a.Revoke("bob")
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"revoked":[{"serial":"3f2a9c","name":"bob","revoked_at":"2026-11-01T12:00:00Z"}],"crl":"/etc/tlsdock/ca/crl.pem","crl_number":5}`; string(got) != want {
		t.Errorf("result\n%s\nwant\n%s", got, want)
	}
	data, err := os.ReadFile(a.o.Paths.Abs(RevokedPath))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "crl_number": 5,
  "serials": [
    {
      "serial": "abc",
      "name": "alice",
      "revoked_at": "2026-10-01T08:00:00Z"
    },
    {
      "serial": "3f2a9c",
      "name": "bob",
      "revoked_at": "2026-11-01T12:00:00Z"
    }
  ]
}
`
	if string(data) != want {
		t.Errorf("%s\n%s\nwant\n%s", RevokedPath, data, want)
	}
	crl, err := proxy.LoadCRL(a.o.Paths.Abs(LocalCRLPath), []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	var serials []string
	for _, r := range crl.Revoked {
		serials = append(serials, certstore.FormatSerial(r.Serial)+" "+r.RevokedAt.UTC().Format(time.RFC3339))
	}
	if len(serials) != 2 || serials[0] != "abc 2026-10-01T08:00:00Z" || serials[1] != "3f2a9c 2026-11-01T12:00:00Z" || crl.Number.Int64() != 5 || !crl.NextUpdate.Equal(fixedNow.Add(CRLValidity)) {
		t.Errorf("CRL number %v lists %q, next update %v", crl.Number, serials, crl.NextUpdate)
	}

	// A damaged serial in revoked.json stops the revoke: no CRL is issued
	// without it.
	write(RevokedPath, `{"crl_number": 5, "serials": [{"serial": "zz", "revoked_at": "2026-10-01T08:00:00Z"}]}`)
	if _, err := a.Revoke("bob"); err == nil {
		t.Fatal("revoke with a damaged revoked.json succeeded")
	}
	if again, err := proxy.LoadCRL(a.o.Paths.Abs(LocalCRLPath), []*x509.Certificate{ca.Cert}); err != nil || again.Number.Int64() != 5 {
		t.Errorf("crl.pem after a failed revoke: %v, %v; want number 5 unchanged", again, err)
	}
}
