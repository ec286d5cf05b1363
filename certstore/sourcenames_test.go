package certstore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/certstore/certtest"
)

// writeFiles writes name → content into dir, 0644 (keys 0600).
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		mode := os.FileMode(0o644)
		if strings.Contains(name, "key") {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoadSourceFilesLayouts reads the sets of real issuers under their
// own file names.
func TestLoadSourceFilesLayouts(t *testing.T) {
	pki := certtest.New(t)
	chain, key := pki.Server(t) // leaf, then the intermediate
	for _, tt := range []struct {
		name   string
		names  SourceNames
		layout func(t *testing.T, base string) string // returns the source dir
	}{
		{
			// `step ca certificate docker server.crt server.key` (leaf
			// and intermediate) and `step ca root root_ca.crt`.
			name:  "step",
			names: SourceNames{CA: "root_ca.crt", Cert: "server.crt", Key: "server.key"},
			layout: func(t *testing.T, base string) string {
				writeFiles(t, base, map[string][]byte{"root_ca.crt": pki.Root.PEM, "server.crt": chain, "server.key": key})
				return base
			},
		},
		{
			// cfssl gencert -bare server: server.pem, server-key.pem.
			name:  "cfssl",
			names: SourceNames{Cert: "server.pem", Key: "server-key.pem"},
			layout: func(t *testing.T, base string) string {
				writeFiles(t, base, map[string][]byte{"ca.pem": pki.Root.PEM, "server.pem": chain, "server-key.pem": key})
				return base
			},
		},
		{
			// A kubernetes.io/tls secret with ca.crt, mounted by the
			// atomic writer: NAME -> ..data/NAME, ..data -> ..TIMESTAMP.
			name:  "kubernetes",
			names: SourceNames{CA: "ca.crt", Cert: "tls.crt", Key: "tls.key"},
			layout: func(t *testing.T, base string) string {
				gen := mkdir(t, filepath.Join(base, "..2026_12_01_10_00_00.1"), 0o755)
				writeFiles(t, gen, map[string][]byte{"ca.crt": pki.Root.PEM, "tls.crt": chain, "tls.key": key})
				symlink(t, "..2026_12_01_10_00_00.1", filepath.Join(base, "..data"))
				for _, n := range []string{"ca.crt", "tls.crt", "tls.key"} {
					symlink(t, "..data/"+n, filepath.Join(base, n))
				}
				return base
			},
		},
		{
			// certbot: live/NAME/fullchain.pem -> ../../archive/NAME/fullchain1.pem;
			// the client CA lives elsewhere (an absolute --ca-file).
			name: "certbot",
			layout: func(t *testing.T, base string) string {
				archive := mkdir(t, filepath.Join(base, "archive", "docker.example.com"), 0o700)
				live := mkdir(t, filepath.Join(base, "live", "docker.example.com"), 0o755)
				writeFiles(t, archive, map[string][]byte{"fullchain1.pem": chain, "privkey1.pem": key})
				symlink(t, "../../archive/docker.example.com/fullchain1.pem", filepath.Join(live, "fullchain.pem"))
				symlink(t, "../../archive/docker.example.com/privkey1.pem", filepath.Join(live, "privkey.pem"))
				writeFiles(t, base, map[string][]byte{"client-ca.pem": pki.Root.PEM})
				return live
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir := tt.layout(t, base)
			names := tt.names
			if tt.name == "certbot" {
				names = SourceNames{CA: filepath.Join(base, "client-ca.pem"), Cert: "fullchain.pem", Key: "privkey.pem"}
			}
			paths := names.Paths(dir)
			if err := CheckSourceFiles(paths, SourceTrust{}); err != nil {
				t.Fatalf("CheckSourceFiles: %v", err)
			}
			set, err := LoadSourceFiles(paths, SourceTrust{})
			if err != nil {
				t.Fatalf("LoadSourceFiles: %v", err)
			}
			if !bytes.Equal(set.CAPEM, pki.Root.PEM) || !bytes.Equal(set.CertPEM, chain) || !bytes.Equal(set.KeyPEM, key) {
				t.Error("read other bytes than the source holds")
			}
			if len(set.Intermediates) != 1 {
				t.Errorf("intermediates: got %d, want 1", len(set.Intermediates))
			}
			// Under the default names the same source is incomplete, and
			// the error names the file it looked for.
			_, err = LoadSource(dir, SourceTrust{})
			if err == nil || !strings.Contains(err.Error(), "ca.pem") && !strings.Contains(err.Error(), "server-cert.pem") {
				t.Errorf("default names: got %v, want an error naming the missing file", err)
			}
		})
	}
}

// TestLoadSourceFilesErrorsNameTheFile: a missing renamed file is named
// as configured.
func TestLoadSourceFilesErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	pki := certtest.New(t)
	chain, _ := pki.Server(t)
	writeFiles(t, dir, map[string][]byte{"root_ca.crt": pki.Root.PEM, "server.crt": chain})
	_, err := LoadSourceFiles(SourceNames{CA: "root_ca.crt", Cert: "server.crt", Key: "server.key"}.Paths(dir), SourceTrust{})
	if err == nil || !strings.Contains(err.Error(), "server.key ("+filepath.Join(dir, "server.key")+")") {
		t.Fatalf("got %v, want an error naming server.key", err)
	}
}

func TestSourceNamesPaths(t *testing.T) {
	got := SourceNames{CA: "/etc/tlsdock/client-ca.pem", Key: "privkey.pem"}.Paths("/etc/letsencrypt/live/h")
	want := SetNames{CA: "/etc/tlsdock/client-ca.pem", Cert: "/etc/letsencrypt/live/h/server-cert.pem", Key: "/etc/letsencrypt/live/h/privkey.pem"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestCheckSourceName(t *testing.T) {
	for _, tt := range []struct {
		name  string
		absOK bool
		ok    bool
	}{
		{"", false, true},
		{"tls.crt", false, true},
		{"..data", false, true}, // a name, if an odd one
		{"/etc/tlsdock/ca.pem", true, true},
		{"/etc/tlsdock/ca.pem", false, false},
		{"sub/tls.crt", false, false},
		{"sub/ca.crt", true, false},
		{"../ca.pem", true, false},
		{".", false, false},
		{"..", false, false},
		{"/", true, false},
		{" tls.crt", false, false},
	} {
		err := CheckSourceName(tt.name, tt.absOK)
		if (err == nil) != tt.ok {
			t.Errorf("CheckSourceName(%q, %v) = %v, want ok=%v", tt.name, tt.absOK, err, tt.ok)
		}
	}
}
