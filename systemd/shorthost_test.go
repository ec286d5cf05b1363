package systemd

import (
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
