package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/agent"
)

// TestStatusSaysWhereTheDaemonsSourceComesFrom: after a native
// provision from a source with its own file names, status names that
// source and that the provision recorded it; a config file's certs then
// wins, and status says so.
func TestStatusSaysWhereTheDaemonsSourceComesFrom(t *testing.T) {
	h := newFakeHostCLI(t)
	set, _ := goodSet(t, nil)
	dir := t.TempDir()
	for name, data := range map[string][]byte{"ca.crt": set.ca, "tls.crt": set.cert, "tls.key": set.key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if code, stdout, stderr := h.run("provision", "--certs", dir, "--ca-file", "ca.crt", "--cert-file", "tls.crt", "--key-file", "tls.key"); code != 0 {
		t.Fatalf("provision: exit %d\n%s\n%s", code, stdout, stderr)
	}
	want := "source:      " + dir + " (from tlsdock provision (" + agent.StateDir + "/state.json)), files ca.crt, tls.crt, tls.key\n"
	code, stdout, stderr := h.run("status")
	if code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("status (exit %d) does not show %q:\n%s\n%s", code, want, stdout, stderr)
	}
	code, stdout, _ = h.run("status", "--json")
	var out struct {
		DaemonSource string `json:"daemon_source"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil || out.DaemonSource+"\n" != strings.TrimPrefix(want, "source:      ") {
		t.Fatalf("status --json (exit %d): daemon_source %q", code, out.DaemonSource)
	}

	putFile(t, filepath.Join(h.root, agent.ConfigFile), "certs = /srv/pki\n")
	want = "source:      /srv/pki (from " + filepath.Join(h.root, agent.ConfigFile) + ":1), files ca.pem, server-cert.pem, server-key.pem\n"
	if code, stdout, stderr := h.run("status"); code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("with a config file, status (exit %d) does not show %q:\n%s\n%s", code, want, stdout, stderr)
	}
}
