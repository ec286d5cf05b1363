package testhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSuiteOf(t *testing.T) {
	for _, c := range []struct {
		name, debianVersion, osRelease string
		want                           Suite
	}{
		{"bookworm", "12.12\n", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n", Bookworm},
		{"trixie", "13.2\n", "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nVERSION_CODENAME=trixie\n", Trixie},
		{"sid", "forky/sid\n", "PRETTY_NAME=\"Debian GNU/Linux forky/sid\"\nVERSION_CODENAME=forky\n", Sid},
		{"quoted", "13.0\n", "VERSION_CODENAME='trixie'\n", Trixie},
		{"unknown", "11.0\n", "VERSION_CODENAME=bullseye\n", Suite{Name: "bullseye"}},
		{"empty", "", "", Suite{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if c.debianVersion != "" {
				if err := os.WriteFile(filepath.Join(root, "etc/debian_version"), []byte(c.debianVersion), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.osRelease != "" {
				if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte(c.osRelease), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := c.want
			want.RootFS = root
			if got := SuiteOf(root); got != want {
				t.Errorf("SuiteOf = %+v, want %+v", got, want)
			}
		})
	}
}

func TestUseSuite(t *testing.T) {
	if _, ok := suiteFor(t.Name()); ok {
		t.Fatal("a suite before UseSuite")
	}
	t.Run("trixie", func(t *testing.T) {
		UseSuite(t, Trixie)
		t.Run("sub", func(t *testing.T) {
			if s, ok := suiteFor(t.Name()); !ok || s != Trixie {
				t.Errorf("subtest %s: suite %+v %v, want trixie", t.Name(), s, ok)
			}
		})
		if s, ok := suiteFor(t.Name()); !ok || s != Trixie {
			t.Errorf("%s: suite %+v %v, want trixie", t.Name(), s, ok)
		}
	})
	// The choice ends with the test, and a sibling's name that shares a
	// prefix does not inherit it.
	t.Run("trixie2", func(t *testing.T) {
		if s, ok := suiteFor(t.Name()); ok {
			t.Errorf("%s: suite %+v", t.Name(), s)
		}
	})
	if s, ok := suiteFor(t.Name() + "/trixie"); ok {
		t.Errorf("after the subtest: suite %+v", s)
	}
}

func TestSuiteReady(t *testing.T) {
	s := Suite{Name: "trixie", RootFS: t.TempDir()}
	err := s.Ready()
	if err == nil {
		t.Fatal("Ready on an empty rootfs: no error")
	}
	for _, want := range []string{s.RootFS, "setup-host.sh trixie"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ready: %v; want it to name %q", err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(s.RootFS, rootFSMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Errorf("Ready with the marker: %v", err)
	}
}
