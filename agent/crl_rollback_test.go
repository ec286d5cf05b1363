package agent

import (
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore/certtest"
	"github.com/tlsdock/tlsdock/proxy"
)

// TestCRLRollbackThroughAnotherIssuer: whoever can put validly signed but
// old CRLs into a CRL file (an unauthenticated download of the CA's CRL)
// must not roll the intermediate's CRL back by passing through a CRL of
// another accepted issuer (the root's): CheckUpdate compares only CRLs of
// one issuer, so the step through the root's CRL reset the comparison.
// The newest CRL of each issuer is the floor, across sources and restarts.
func TestCRLRollbackThroughAnotherIssuer(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "live"
		if restart {
			name = "across a restart"
		}
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			p := certtest.New(t)
			alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
			crl := filepath.Join(t.TempDir(), "crl.pem")
			now := time.Now()
			cd := startCRLDaemon(t, root, p, crl)
			write := func(data []byte) {
				t.Helper()
				if err := os.WriteFile(crl, data, 0o644); err != nil {
					t.Fatal(err)
				}
				cd.d.Hangup()
			}
			write(p.Inter.CRL(t, big.NewInt(5), now, now.Add(time.Hour), aliceLeaf.SerialNumber))
			if err := cd.ping(p, alice); err == nil {
				t.Fatal("alice, revoked, gets in")
			}
			write(p.Root.CRL(t, big.NewInt(1), now, now.Add(time.Hour)))
			if restart {
				cd = startCRLDaemon(t, root, p, crl)
			}
			write(p.Inter.CRL(t, big.NewInt(3), now, now.Add(time.Hour)))
			if err := cd.ping(p, alice); err == nil {
				t.Fatal("alice gets in after the intermediate's CRL was rolled back through the root's")
			}
		})
	}
}

// TestCRLCrashBetweenFloorAndCopy: a crash after the issuer's floor (the
// newest CRL, number 5) was written but before the source's own copy
// (still number 4) leaves the two apart; a restart with a broken CRL file
// enforces number 5.
func TestCRLCrashBetweenFloorAndCopy(t *testing.T) {
	root := t.TempDir()
	p := certtest.New(t)
	alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
	crl := filepath.Join(t.TempDir(), "crl.pem")
	now := time.Now()
	v4 := p.Inter.CRL(t, big.NewInt(4), now, now.Add(time.Hour))
	v5 := p.Inter.CRL(t, big.NewInt(5), now, now.Add(time.Hour), aliceLeaf.SerialNumber)
	if err := os.WriteFile(crl, v4, 0o644); err != nil {
		t.Fatal(err)
	}
	cd := startCRLDaemon(t, root, p, crl)
	if err := cd.ping(p, alice); err != nil {
		t.Fatalf("alice before the revocation: %v", err)
	}
	c5, err := proxy.ParseCRL(v5, crl, cd.d.srv.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	// The state a crash in the middle of putting number 5 in force leaves.
	if err := persistCRL(CRLIssuerStatePath(Paths{Root: root}, c5), c5.Raw); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crl, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	cd = startCRLDaemon(t, root, p, crl)
	if err := cd.ping(p, alice); err == nil {
		t.Fatal("alice gets in: the restart enforces number 4, not the floor's number 5")
	}
}
