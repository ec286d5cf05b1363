package e2e

import (
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// issueFrom issues a server set whose notBefore is nb.
func (i *rotIssuer) issueFrom(nb time.Time) rotSet {
	i.t.Helper()
	certPEM, keyPEM, err := i.ca.Issue(certstore.IssueRequest{
		CommonName: "dockerhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyType: certstore.ECDSAP256, Now: nb.Add(certstore.Backdate), Validity: 90 * 24 * time.Hour, Server: true,
	}, rand.Reader)
	if err != nil {
		i.t.Fatal(err)
	}
	s, err := certstore.ParseSet(i.ca.CertPEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		i.t.Fatal(err)
	}
	if !s.Cert.NotBefore.Equal(nb.Truncate(time.Second)) {
		i.t.Fatalf("issued with notBefore %v, want %v", s.Cert.NotBefore, nb)
	}
	return rotSet{ca: i.ca.CertPEM, cert: certPEM, key: keyPEM, serial: s.Cert.SerialNumber}
}

// TestRunInstallsASetWhenItBecomesValid: a set whose notBefore is 20 s
// ahead is pending (docker keeps serving the installed set, status says
// so), and is served once it is valid, with no further file change or
// signal.
func TestRunInstallsASetWhenItBecomesValid(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	h, iss, s0 := rotHost(t, ctx)
	before := rotDockerStarts(t, ctx, h)

	nb := time.Now().Add(20 * time.Second).Truncate(time.Second)
	s1 := iss.issueFrom(nb)
	s1.write(t, h)
	serial := s1.serial.Text(16)
	for st := rotStatus(h); !strings.Contains(st, "pending: serial "+serial); st = rotStatus(h) {
		if strings.Contains(st, "invalid set") {
			t.Fatalf("the set valid from %v was refused: STATUS %q", nb, st)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("STATUS never showed serial %s pending; it is %q", serial, st)
		case <-time.After(200 * time.Millisecond):
		}
	}
	out := mustTlsdock(t, ctx, h, "status")
	if time.Now().Before(nb) {
		if !strings.Contains(out, "pending:     serial "+serial+", valid from "+nb.UTC().Format("2006-01-02 15:04:05 MST")+" (in ") {
			t.Errorf("tlsdock status before notBefore does not show the pending set:\n%s", out)
		}
		if got, err := rotServed(ctx, h); err != nil || got.Cmp(s0.serial) != 0 {
			t.Fatalf("before notBefore the endpoint serves %x (%v), want the installed %x", got, err, s0.serial)
		}
	} else {
		t.Logf("the host was too slow to look at status before notBefore (%v); status:\n%s", nb, out)
	}
	if strings.Contains(out, "not valid until") {
		t.Errorf("tlsdock status shows a pending set as an error:\n%s", out)
	}

	// No file change, no signal from here on.
	took := rotWaitServed(t, ctx, h, s1.serial)
	seen := time.Now()
	if seen.Before(nb) {
		t.Fatalf("serial %s served at %v, before its notBefore %v", serial, seen, nb)
	}
	t.Logf("served %v after notBefore (%v after the wait began)", seen.Sub(nb).Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	rotIdle(t, ctx, h, s1.serial)
	out = mustTlsdock(t, ctx, h, "status")
	if strings.Contains(out, "pending:") || strings.Contains(out, "not valid until") || !strings.Contains(out, "serial:    "+serial) {
		t.Errorf("tlsdock status after the install:\n%s", out)
	}
	if got := rotDockerStarts(t, ctx, h) - before; got != 1 {
		t.Fatalf("dockerd started %d times for one pending set, want 1", got)
	}
	rotDockerActive(t, ctx, h)
}
