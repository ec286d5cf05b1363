package systemd

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWithoutFlagsShortGroups: pflag reads "-DH tcp://..." as -D -H
// tcp://..., so the listener must be seen and removed while -D stays.
func TestWithoutFlagsShortGroups(t *testing.T) {
	for line, want := range map[string]struct{ rest, hosts []string }{
		"/usr/bin/dockerd -DH tcp://0.0.0.0:2375":      {[]string{"/usr/bin/dockerd", "-D"}, []string{"tcp://0.0.0.0:2375"}},
		"/usr/bin/dockerd -DHtcp://0.0.0.0:2375":       {[]string{"/usr/bin/dockerd", "-D"}, []string{"tcp://0.0.0.0:2375"}},
		"/usr/bin/dockerd -DH=tcp://0.0.0.0:2375":      {[]string{"/usr/bin/dockerd", "-D"}, []string{"tcp://0.0.0.0:2375"}},
		"/usr/bin/dockerd -H=tcp://0.0.0.0:2375":       {[]string{"/usr/bin/dockerd"}, []string{"tcp://0.0.0.0:2375"}},
		"/usr/bin/dockerd -Htcp://0.0.0.0:2375 -D":     {[]string{"/usr/bin/dockerd", "-D"}, []string{"tcp://0.0.0.0:2375"}},
		"/usr/bin/dockerd -l debug -D":                 {[]string{"/usr/bin/dockerd", "-l", "debug", "-D"}, nil},
		"/usr/bin/dockerd -lH":                         {[]string{"/usr/bin/dockerd", "-lH"}, nil}, // H is -l's value
		"/usr/bin/dockerd -H fd:// -DH unix:///x.sock": {[]string{"/usr/bin/dockerd", "-D"}, []string{"fd://", "unix:///x.sock"}},
	} {
		cmd, err := ParseCommand(line)
		if err != nil {
			t.Fatal(err)
		}
		rest, hosts, _ := cmd.WithoutFlags(true)
		if !slices.Equal(values(rest), want.rest) || !slices.Equal(hosts, want.hosts) {
			t.Errorf("%s: rest %q hosts %q, want %q %q", line, values(rest), hosts, want.rest, want.hosts)
		}
	}
}

// TestGlobUnderSkipsDotFiles: systemd reads EnvironmentFile= patterns
// with glob(3) without GLOB_PERIOD, so "*" does not match a leading dot
// (an editor's .docker.swp); Go's filepath.Glob would.
func TestGlobUnderSkipsDotFiles(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"a.env", ".a.env.swp", "b.env"} {
		p := filepath.Join(root, "etc/env.d", n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := globUnder(root, "/etc/env.d/*")
	if err != nil || !slices.Equal(got, []string{"/etc/env.d/a.env", "/etc/env.d/b.env"}) {
		t.Errorf("globUnder * = %q, %v", got, err)
	}
	got, err = globUnder(root, "/etc/env.d/.*")
	if err != nil || !slices.Equal(got, []string{"/etc/env.d/.a.env.swp"}) {
		t.Errorf("globUnder .* = %q, %v", got, err)
	}
}
