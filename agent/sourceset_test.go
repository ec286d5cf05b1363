package agent

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// The sequence installs the set it was handed, not what the source
// directory holds by then, and reports its fingerprint.
func TestProvisionServesTheHandedSet(t *testing.T) {
	loadDir := func(t *testing.T, dir string) *certstore.Set {
		t.Helper()
		s, err := certstore.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	installed := func(t *testing.T, h *fakeHost) string {
		t.Helper()
		s, err := certstore.Store{Dir: filepath.Join(h.root, SSLDir)}.Load()
		if err != nil || s == nil {
			t.Fatalf("installed set: %v, %v", s, err)
		}
		return s.Fingerprint()
	}

	t.Run("handed set", func(t *testing.T) {
		h := newFakeHost(t)
		handed := loadDir(t, writeSet(t, h.root, "127.0.0.1"))
		cfg := Defaults()
		cfg.Generate, cfg.Certs, cfg.SourceSet = false, writeSet(t, h.root, "127.0.0.1"), handed
		res := mustProvision(t, h.agent(&fakeVerifier{}), cfg)
		if !res.Changed || res.Fingerprint != handed.Fingerprint() {
			t.Fatalf("changed=%v fingerprint %s, want the handed set's %s", res.Changed, res.Fingerprint, handed.Fingerprint())
		}
		if got := installed(t, h); got != handed.Fingerprint() {
			t.Fatalf("installed %s, want the handed set %s (not the one in %s)", got, handed.Fingerprint(), cfg.Certs)
		}
		res = mustProvision(t, h.agent(&fakeVerifier{}), cfg)
		if res.Changed || res.Fingerprint != handed.Fingerprint() {
			t.Fatalf("unchanged run: changed=%v fingerprint %s, want %s", res.Changed, res.Fingerprint, handed.Fingerprint())
		}
	})
	t.Run("handed set still checked against the listeners", func(t *testing.T) {
		h := newFakeHost(t)
		cfg := Defaults()
		cfg.Generate, cfg.Certs = false, writeSet(t, h.root, "127.0.0.1")
		cfg.SourceSet = loadDir(t, cfg.Certs)
		cfg.Hosts = []string{"tcp://10.1.2.3:2376"}
		_, err := h.agent(&fakeVerifier{}).Provision(context.Background(), cfg)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != "--certs" {
			t.Fatalf("err = %v, want an input error of --certs", err)
		}
	})
	t.Run("local CA", func(t *testing.T) {
		h := newFakeHost(t)
		res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
		if got := installed(t, h); res.Fingerprint != got {
			t.Fatalf("fingerprint %q, want the installed %s", res.Fingerprint, got)
		}
		again := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
		if again.Changed || again.Fingerprint != res.Fingerprint {
			t.Fatalf("unchanged run: changed=%v fingerprint %s, want %s", again.Changed, again.Fingerprint, res.Fingerprint)
		}
	})
}

// After a rotation the loop takes what is served from the result: it does
// not read /etc/docker/ssl again.
func TestRotatorTakesTheServedSetFromTheResult(t *testing.T) {
	for _, tt := range []struct {
		name     string
		generate bool
	}{
		{name: "watched directory"},
		{name: "local CA", generate: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newRig(t, func(c *RunConfig, _ *RunOptions) {
				if tt.generate {
					c.Certs, c.Generate = "", true
				}
			})
			s := g.issue(90 * 24 * time.Hour)
			if !tt.generate {
				g.prepare(s)
			}
			g.start()
			calls := g.app.Calls()
			if len(calls) != 1 || !calls[0].changed {
				t.Fatalf("calls = %+v, want one rotation", calls)
			}
			if g.app.reads != calls[0].reads {
				t.Fatalf("the loop read the installed set %d times after the rotation", g.app.reads-calls[0].reads)
			}
			if g.r.installed.Serial() != calls[0].serial {
				t.Fatalf("the loop thinks serial %s is served, want %s", g.r.installed.Serial(), calls[0].serial)
			}
		})
	}
}
