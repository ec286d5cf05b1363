package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/certstore"
)

// TestOldLinkPathsConverge: a host that an older tlsdock configured with
// the stable links (/etc/docker/ssl/ca.pem, symlinks, which CIS 3.10, 3.12
// and 3.14 read as 777) moves to the regular files under ..data on its
// next provision, with the same set, and keeps the links for the clients
// that name them.
func TestOldLinkPathsConverge(t *testing.T) {
	for _, mode := range []Mode{ModeDaemonJSON, ModeDropIn} {
		t.Run(string(mode), func(t *testing.T) {
			h := newFakeHost(t)
			v := &fakeVerifier{}
			cfg := generateCfg()
			cfg.Mode = mode
			first := mustProvision(t, h.agent(v), cfg)

			// What the older tlsdock left: the same files, naming the links.
			newCA, newCert, newKey := certstore.Store{Dir: SSLDir}.Paths()
			oldCA, oldCert, oldKey := certstore.Store{Dir: SSLDir}.LinkPaths()
			old := strings.NewReplacer(newCA, oldCA, newCert, oldCert, newKey, oldKey)
			var rewritten int
			for _, p := range []string{DaemonJSONPath, DropInPath} {
				b, err := os.ReadFile(filepath.Join(h.root, p))
				if err != nil {
					continue
				}
				if s := old.Replace(string(b)); s != string(b) {
					writeFile(t, h.root, p, s)
					rewritten++
				}
			}
			if rewritten == 0 {
				t.Fatal("neither daemon.json nor the drop-in names the TLS paths")
			}
			// status shows what dockerd is configured with, as CIS reads it.
			checkStatusFiles(t, h, []string{oldCA, oldCert, oldKey}, false)

			res := mustProvision(t, h.agent(v), cfg)
			if !res.Changed || !res.Restarted {
				t.Errorf("changed=%v restarted=%v: dockerd still reads the links", res.Changed, res.Restarted)
			}
			if res.Serial != first.Serial {
				t.Errorf("serial %s, want the installed %s: only the paths change", res.Serial, first.Serial)
			}
			var conf strings.Builder
			for _, p := range []string{DaemonJSONPath, DropInPath} {
				b, _ := os.ReadFile(filepath.Join(h.root, p))
				conf.Write(b)
			}
			for _, p := range []string{newCA, newCert, newKey} {
				if !strings.Contains(conf.String(), p) {
					t.Errorf("dockerd's configuration does not name %s:\n%s", p, conf.String())
				}
			}
			for _, p := range []string{oldCA, oldCert, oldKey} {
				if strings.Contains(conf.String(), p+"\"") || strings.Contains(conf.String(), p+" ") || strings.Contains(conf.String(), p+"\n") {
					t.Errorf("dockerd's configuration still names %s:\n%s", p, conf.String())
				}
				// The links stay, for whatever else names them.
				if fi, err := os.Lstat(filepath.Join(h.root, p)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("%s: %v, want the stable link kept", p, err)
				}
				if _, err := os.Stat(filepath.Join(h.root, p)); err != nil {
					t.Errorf("%s does not resolve: %v", p, err)
				}
			}
			checkStatusFiles(t, h, []string{newCA, newCert, newKey}, true)
			if again := mustProvision(t, h.agent(v), cfg); again.Changed || again.Restarted {
				t.Errorf("third provision changed=%v restarted=%v, want nothing", again.Changed, again.Restarted)
			}
		})
	}
}

func checkStatusFiles(t *testing.T, h *fakeHost, want []string, ok bool) {
	t.Helper()
	s, err := h.agent(&fakeVerifier{}).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Files) != len(want) {
		t.Fatalf("status files = %+v, want %q", s.Files, want)
	}
	for i, f := range s.Files {
		if f.Path != want[i] || f.OK != ok {
			t.Errorf("status file %+v, want %s with ok=%v", f, want[i], ok)
		}
		if !ok && f.Mode != "0777" {
			t.Errorf("status file %+v: a symlink reads 0777 to stat", f)
		}
	}
}
