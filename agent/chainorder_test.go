package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/certstore/certtest"
)

// intermediateFirst is a source whose server certificate file holds the
// intermediate first and the leaf after it, in dir.
type intermediateFirst struct {
	source    []byte // the server certificate file as written
	leafFirst []byte // the same chain, leaf first
	leafPEM   []byte
	pki       *certtest.PKI
}

func writeIntermediateFirst(t *testing.T, dir string) intermediateFirst {
	t.Helper()
	pki := certtest.New(t)
	certPEM, keyPEM := pki.Server(t) // leaf, then the intermediate
	leafPEM := certPEM[:len(certPEM)-len(pki.Inter.PEM)]
	s := intermediateFirst{source: append(append([]byte{}, pki.Inter.PEM...), leafPEM...), leafFirst: certPEM, leafPEM: leafPEM, pki: pki}
	writeSource(t, dir, certstore.CAFile, pki.Root.PEM)
	writeSource(t, dir, certstore.CertFile, s.source)
	writeSource(t, dir, certstore.KeyFile, keyPEM)
	return s
}

func dockerRestarts(h *fakeHost) int {
	n := 0
	for _, c := range h.Calls() {
		if c == "restart docker.service" {
			n++
		}
	}
	return n
}

// TestProvisionIntermediateFirst: in the native modes dockerd loads
// tlscert itself and takes its first certificate as the server's; with
// the intermediate first it did not start ("private key does not match
// public key"), and provision rolled back. The set is installed leaf
// first, dockerd starts and the probe expects the leaf; the source file
// stays as it is, and a second provision changes nothing.
func TestProvisionIntermediateFirst(t *testing.T) {
	for _, mode := range []Mode{ModeDaemonJSON, ModeDropIn} {
		t.Run(string(mode), func(t *testing.T) {
			h := newFakeHost(t)
			dir, err := os.MkdirTemp(h.root, "pki")
			must(t, err)
			src := writeIntermediateFirst(t, dir)
			cfg := Defaults()
			cfg.Mode, cfg.Certs = mode, dir
			v := &fakeVerifier{}
			a := h.agent(v, func(o *Options) { o.Now = time.Now }) // certtest issues around the real time
			res, err := a.Provision(context.Background(), cfg)
			if err != nil {
				t.Fatalf("provision: %v (dockerd: %v)", err, h.LastStartError())
			}
			if h.Running() == nil || h.ActiveState() != "active" {
				t.Fatalf("dockerd is not running: %v", h.LastStartError())
			}
			if got := readFile(t, h.root, SSLDir+"/..data/"+certstore.CertFile); got != string(src.leafFirst) {
				t.Errorf("installed server certificate:\n%s\nwant the leaf, then the intermediate", got)
			}
			if got, err := os.ReadFile(filepath.Join(dir, certstore.CertFile)); err != nil || !bytes.Equal(got, src.source) {
				t.Errorf("the source file was changed (%v)", err)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), "starts with an intermediate, not the server certificate: installed leaf first") {
				t.Errorf("notes do not say the chain was put leaf first: %q", res.Notes)
			}
			if len(v.probes) == 0 || v.probes[len(v.probes)-1].Expect == nil || v.probes[len(v.probes)-1].Expect.Subject.CommonName != "docker" {
				t.Error("the probe does not expect the leaf")
			}
			restarts := dockerRestarts(h)
			res, err = a.Provision(context.Background(), cfg)
			if err != nil || res.Changed || dockerRestarts(h) != restarts {
				t.Errorf("second provision: changed %v, %d more restarts, %v; want nothing to do", res != nil && res.Changed, dockerRestarts(h)-restarts, err)
			}
		})
	}
}

// TestDaemonIntermediateFirstSource: tlsdock run over the agent on a
// fake host, whose source is renewed with the intermediate first. The
// rotation is installed once, leaf first, and the daemon then sees the
// source as the installed set: no more restarts. Before, every rotation
// failed (dockerd refused the pair) and was rolled back, and the daemon
// retried it on its backoff, each try a failed restart of docker.
func TestDaemonIntermediateFirstSource(t *testing.T) {
	for _, mode := range []Mode{ModeDaemonJSON, ModeDropIn} {
		t.Run(string(mode), func(t *testing.T) {
			h := newFakeHost(t)
			clock := &fakeClock{now: time.Now()} // certtest issues around the real time
			h.SetClock(clock.Now)
			src := filepath.Join(t.TempDir(), "certs")
			must(t, os.Mkdir(src, 0o755))
			first := certtest.New(t)
			certPEM, keyPEM := first.Server(t)
			writeSource(t, src, certstore.CAFile, first.Root.PEM)
			writeSource(t, src, certstore.CertFile, certPEM)
			writeSource(t, src, certstore.KeyFile, keyPEM)
			a := h.agent(&fakeVerifier{}, func(o *Options) { o.Now = clock.Now })
			cfg := RunDefaults()
			cfg.Mode, cfg.Certs = mode, src
			mustProvision(t, a, cfg.Config)

			logs := &bytes.Buffer{}
			g := &rig{t: t, clock: clock, src: src, logs: logs, reg: NewMetrics()}
			g.r = NewRotator(a, cfg, RunOptions{
				Clock: clock, Rand: func(n int64) int64 { return n / 2 }, Logger: testLogger(t, logs),
				Notify: func(s string) bool { g.notes = append(g.notes, s); return true }, Metrics: g.reg,
			})
			g.start()
			before := dockerRestarts(h)

			clock.Set(clock.Now().Add(time.Minute))
			renewed := writeIntermediateFirst(t, src)
			g.dir().changed()
			g.runUntil(clock.Now().Add(30 * time.Minute))

			if n := dockerRestarts(h) - before; n != 1 {
				t.Errorf("docker was restarted %d times for one renewal, want once; calls %q", n, h.Calls())
			}
			if h.Running() == nil || h.ActiveState() != "active" {
				t.Fatalf("dockerd is not running: %v", h.LastStartError())
			}
			if got := readFile(t, h.root, SSLDir+"/..data/"+certstore.CertFile); got != string(renewed.leafFirst) {
				t.Errorf("installed server certificate:\n%s\nwant the renewal, leaf first", got)
			}
			for _, r := range []string{"rolled_back", "failed"} {
				if n := g.metric("tlsdock_rotations_total", r); n != 0 {
					t.Errorf("%v rotations %s", n, r)
				}
			}
			if n := g.metric("tlsdock_rotations_total", "ok"); n != 1 {
				t.Errorf("%v rotations ok, want 1", n)
			}
			if got, _ := os.ReadFile(filepath.Join(src, certstore.CertFile)); !bytes.Equal(got, renewed.source) {
				t.Error("the source file was changed")
			}
		})
	}
}

// TestProvisionReordersAnInstalledChain: a set installed with the
// intermediate first (by a tlsdock that did not reorder, served in proxy
// mode) has the source's fingerprint once parsed, but dockerd cannot
// load it: a native provision installs it again, leaf first.
func TestProvisionReordersAnInstalledChain(t *testing.T) {
	h := newFakeHost(t)
	dir, err := os.MkdirTemp(h.root, "pki")
	must(t, err)
	src := writeIntermediateFirst(t, dir)
	old, err := certstore.LoadSourceFiles(certstore.SourceNames{}.Paths(dir), certstore.SourceTrust{})
	must(t, err)
	old.CertPEM = src.source // as installed before
	if _, err := (certstore.Store{Dir: filepath.Join(h.root, SSLDir)}).Install(old); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Mode, cfg.Certs = ModeDropIn, dir
	a := h.agent(&fakeVerifier{}, func(o *Options) { o.Now = time.Now }) // certtest issues around the real time
	if _, err := a.Provision(context.Background(), cfg); err != nil {
		t.Fatalf("provision: %v (dockerd: %v)", err, h.LastStartError())
	}
	if got := readFile(t, h.root, SSLDir+"/..data/"+certstore.CertFile); got != string(src.leafFirst) {
		t.Errorf("installed server certificate:\n%s\nwant the leaf, then the intermediate", got)
	}
	if h.Running() == nil {
		t.Fatalf("dockerd is not running: %v", h.LastStartError())
	}
}
