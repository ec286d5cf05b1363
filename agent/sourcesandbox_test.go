package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// packagedUnit installs the packaged tlsdock.service under root, as the
// .deb does.
func packagedUnit(t *testing.T, root string) {
	t.Helper()
	data, err := os.ReadFile("../packaging/tlsdock.service")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "/lib/systemd/system/tlsdock.service", string(data))
}

func underTmp(t *testing.T, dir string) {
	t.Helper()
	if !under(resolve(dir), "/tmp") {
		t.Skipf("the test directory %s is not under /tmp", dir)
	}
}

// TestProvisionRefusesASourceTheSandboxHides: with the packaged unit, a
// source under /tmp (PrivateTmp) or one linking into /root (ProtectHome)
// is refused at provision, dry run included, and nothing changes.
func TestProvisionRefusesASourceTheSandboxHides(t *testing.T) {
	for _, tt := range []struct {
		name    string
		dropIn  string
		link    bool // ca.pem is a symlink into /root/.step
		field   string
		want    []string
		allowed bool
	}{
		{name: "under /tmp", field: "--certs",
			want: []string{" is under /tmp, which tlsdock.service does not see", "PrivateTmp=yes in /lib/systemd/system/tlsdock.service", "outside /tmp and /var/tmp"}},
		{name: "a symlink into /root", dropIn: "[Service]\nPrivateTmp=no\n", link: true, field: "--ca-file",
			want: []string{"resolves through /root/.step/certs/root_ca.crt, which is under /root", "ProtectHome=yes in /lib/systemd/system/tlsdock.service", "ProtectHome=read-only"}},
		{name: "a drop-in relaxed the sandbox", dropIn: "[Service]\nPrivateTmp=false\nProtectHome=read-only\n", link: true, allowed: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			underTmp(t, h.root)
			packagedUnit(t, h.root)
			if tt.dropIn != "" {
				writeFile(t, h.root, "/etc/systemd/system/tlsdock.service.d/override.conf", tt.dropIn)
			}
			dir := writeSet(t, h.root, "127.0.0.1")
			if tt.link {
				must(t, os.Remove(filepath.Join(dir, "ca.pem")))
				must(t, os.Symlink("/root/.step/certs/root_ca.crt", filepath.Join(dir, "ca.pem")))
			}
			cfg := Defaults()
			cfg.Certs = dir
			a := h.agent(&fakeVerifier{})
			if tt.allowed {
				if err := a.checkSandbox(cfg); err != nil {
					t.Fatalf("refused though the drop-in shows it: %v", err)
				}
				return
			}
			before := treeHash(t, h.root)
			for _, dry := range []bool{true, false} {
				cfg.DryRun = dry
				_, err := a.Provision(context.Background(), cfg)
				var ie *InputError
				if !errors.As(err, &ie) || ie.Field != tt.field {
					t.Fatalf("dry run %v: got %v, want an input error on %s", dry, err, tt.field)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%q\nmisses %q", err, w)
					}
				}
			}
			if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
				t.Fatalf("the refused provision changed %v", d)
			}
		})
	}
}

// TestSandboxNeedsTheUnit: without tlsdock.service nothing hides the
// source, and the daemon's own provisions are not checked.
func TestSandboxNeedsTheUnit(t *testing.T) {
	h := newFakeHost(t)
	underTmp(t, h.root)
	cfg := Defaults()
	cfg.Certs = writeSet(t, h.root, "127.0.0.1")
	a := h.agent(&fakeVerifier{})
	if err := a.checkSandbox(cfg); err != nil {
		t.Fatalf("no unit: %v", err)
	}
	packagedUnit(t, h.root)
	if err := a.checkSandbox(cfg); err == nil {
		t.Fatal("the packaged unit's PrivateTmp was not seen")
	}
	// A fragment in /etc replaces the packaged one.
	writeFile(t, h.root, "/etc/systemd/system/tlsdock.service", "[Service]\nExecStart=/usr/bin/tlsdock run\n")
	if err := a.checkSandbox(cfg); err != nil {
		t.Fatalf("the unit in /etc has no sandbox: %v", err)
	}
}

func TestVisited(t *testing.T) {
	dir := t.TempDir()
	real := resolve(dir)
	must(t, os.MkdirAll(filepath.Join(dir, "gen"), 0o755))
	must(t, os.Symlink("gen", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/tls.crt", filepath.Join(dir, "tls.crt")))
	must(t, os.Symlink("/root/.step/x.crt", filepath.Join(dir, "gen", "tls.crt")))
	got := strings.Join(visited(filepath.Join(real, "tls.crt")), " ")
	for _, w := range []string{real + "/tls.crt", real + "/..data", real + "/gen/tls.crt", "/root", "/root/.step/x.crt"} {
		if !strings.Contains(got+" ", w+" ") {
			t.Errorf("visited %s\nmisses %s", got, w)
		}
	}
}
