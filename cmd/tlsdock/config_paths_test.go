package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/agent"
)

// TestConfigFileRelativePathRefused: `certs = certs` in tlsdock.conf is
// refused by config, provision and run with FILE:LINE and what to do
// (exit 2), even with a complete set in the directory provision runs in,
// and nothing on the host changes.
func TestConfigFileRelativePathRefused(t *testing.T) {
	h := newFakeHostCLI(t)
	conf := filepath.Join(h.root, agent.ConfigFile)
	putFile(t, conf, "# tlsdock.conf\ncerts = certs\n")
	set, _ := goodSet(t, nil)
	for name, data := range map[string][]byte{"ca.pem": set.ca, "server-cert.pem": set.cert, "server-key.pem": set.key} {
		putFile(t, filepath.Join(h.root, "etc/tlsdock/certs", name), string(data))
	}
	t.Chdir(filepath.Join(h.root, "etc/tlsdock"))
	want := conf + `:2: certs: "certs" is a relative path`
	for _, args := range [][]string{{"config", "--config", conf}, {"provision"}, {"run", "--config", conf}} {
		code, stdout, stderr := h.run(args...)
		if code != ExitBadInput || !strings.Contains(stderr, want) || !strings.Contains(stderr, "give the absolute path, such as /etc/tlsdock/certs") {
			t.Errorf("%s: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", args[0], code, ExitBadInput, want, stdout, stderr)
		}
	}
	for _, p := range []string{agent.StateDir, agent.SSLDir, "/etc/docker/daemon.json"} {
		if _, err := os.Stat(filepath.Join(h.root, p)); err == nil {
			t.Errorf("%s exists: the refused command changed the host", p)
		}
	}
}
