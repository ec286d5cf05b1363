package testhost

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"run", "etc/ssl", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"var/run":      "/run",        // absolute: relative to root, not to this machine
		"lib":          "usr/lib",     // relative
		"etc/certs":    "../etc/ssl",  // relative with ..
		"etc/escape":   "../../../..", // .. never leaves root
		"etc/loop":     "/etc/loop",
		"etc/ssl/cert": "/run/cert.pem",
	}
	if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, in   string
		followLast bool
		want       string
		wantErr    bool
	}{
		{"plain", "/etc/ssl/key.pem", false, "/etc/ssl/key.pem", false},
		{"absolute symlink in parent", "/var/run/docker.sock", false, "/run/docker.sock", false},
		{"relative symlink in parent", "/lib/x", false, "/usr/lib/x", false},
		{"dot-dot symlink", "/etc/certs/ca.pem", false, "/etc/ssl/ca.pem", false},
		{"escape stays inside", "/etc/escape/etc/passwd", false, "/etc/passwd", false},
		{"missing parents kept", "/new/dir/file", false, "/new/dir/file", false},
		{"last symlink kept", "/etc/ssl/cert", false, "/etc/ssl/cert", false},
		{"last symlink followed", "/etc/ssl/cert", true, "/run/cert.pem", false},
		{"dot-dot in input", "/etc/../run/x", false, "/run/x", false},
		{"loop", "/etc/loop/x", false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveIn(root, tt.in, tt.followLast)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("resolveIn(%q, %v) = %q, %v; want %q, error %v", tt.in, tt.followLast, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestUniqueName(t *testing.T) {
	for _, in := range []string{"TestHostRecipe", "TestX/sub_test#01", "", "Test_" + string(make([]byte, 80))} {
		got := uniqueName(in)
		if !nameRE.MatchString(got) {
			t.Errorf("uniqueName(%q) = %q, not a valid host name", in, got)
		}
	}
	if a, b := uniqueName("T"), uniqueName("T"); a == b {
		t.Errorf("uniqueName returned %q twice", a)
	}
}
