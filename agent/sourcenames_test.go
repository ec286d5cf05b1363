package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWatchRenamedFiles: a source under step's names, with the client CA
// given as an absolute path in another directory, is watched under those
// names: rewriting them in place (as `step ca renew` does) rotates, and
// files of the default names beside them are none of its business.
func TestWatchRenamedFiles(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "client-ca")
	caPath := filepath.Join(caDir, "root_ca.crt")
	g := newRig(t, func(c *RunConfig, _ *RunOptions) {
		c.CAFile, c.CertFile, c.KeyFile = caPath, "server.crt", "server.key"
	})
	s0, s1, s2 := g.issue(ServerValidity), g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	mustWrite(t, caPath, s0.ca)
	mustWrite(t, filepath.Join(g.src, "server.crt"), s0.cert)
	mustWrite(t, filepath.Join(g.src, "server.key"), s0.key)
	g.startWatching()
	g.wantSerials()
	if !slices.Contains(g.dir().watch.w.WatchList(), resolve(caDir)) {
		t.Fatalf("the CA's directory %s is not watched: %v", caDir, g.dir().watch.w.WatchList())
	}

	// Files under the default names do not count.
	for name, data := range s2.files() {
		mustWrite(t, filepath.Join(g.src, name), data)
	}
	g.pump()
	if g.dir().deb.pending() {
		t.Fatal("a file under a default name counted as a change of a renamed source")
	}

	mustWrite(t, filepath.Join(g.src, "server.crt"), s1.cert)
	mustWrite(t, filepath.Join(g.src, "server.key"), s1.key)
	g.pump()
	g.later(time.Minute)
	g.wantSerials(s1.serial)

	// The CA rewritten where it lives is seen too.
	mustWrite(t, caPath, append(append([]byte{}, s1.ca...), s1.ca...))
	g.pump()
	if !g.dir().deb.pending() {
		t.Fatalf("a rewrite of the CA at %s was not seen; watching %v", caPath, g.dir().watch.w.WatchList())
	}
}

// TestDirSourceLoadsRenamedFiles: the daemon reads the names it is given,
// and an incomplete renamed source is invalid naming the file.
func TestDirSourceLoadsRenamedFiles(t *testing.T) {
	g := newRig(t, func(c *RunConfig, _ *RunOptions) {
		c.CAFile, c.CertFile, c.KeyFile = "ca.crt", "tls.crt", "tls.key"
	})
	s0 := g.issue(ServerValidity)
	g.write(map[string][]byte{"ca.crt": s0.ca, "tls.crt": s0.cert})
	g.later(time.Minute)
	if p := g.dir().problem(); p == "" || !strings.Contains(p, "tls.key") {
		t.Fatalf("problem %q, want one naming tls.key", p)
	}
	g.write(map[string][]byte{"tls.key": s0.key})
	g.later(time.Minute)
	g.wantSerials(s0.serial)
	if _, err := os.Stat(filepath.Join(g.src, "ca.pem")); err == nil {
		t.Fatal("ca.pem appeared in the source")
	}
}

// TestProxyArgsCarryTheSourceNames: the proxy's tlsdock.service reads the
// same files as the provision that configured it.
func TestProxyArgsCarryTheSourceNames(t *testing.T) {
	cfg := Defaults()
	cfg.Mode, cfg.Certs = ModeProxy, "/srv/step"
	if args := strings.Join(ProxyArgs(cfg), " "); strings.Contains(args, "-file") {
		t.Fatalf("default names passed: %s", args)
	}
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = "/etc/tlsdock/root_ca.crt", "server.crt", "server.key"
	if args := strings.Join(ProxyArgs(cfg), " "); !strings.Contains(args, "--certs /srv/step --ca-file /etc/tlsdock/root_ca.crt --cert-file server.crt --key-file server.key") {
		t.Fatalf("args %s", args)
	}
}
