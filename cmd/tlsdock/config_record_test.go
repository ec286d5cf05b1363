package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/agent"
)

// TestConfigKeepsTheProvisionByHand is what the package's postinstall
// sees on an upgrade after a provision by hand from a renamed source in
// dropin mode, while /etc/tlsdock/certs still holds a complete set:
// `tlsdock config` says the record is the host's source (exit 7, not 5),
// the bare `tlsdock provision` it then runs keeps the record (no changes,
// still dropin from the same source), and after `tlsdock revert` config
// says so (exit 8): the postinstall provisions nothing.
func TestConfigKeepsTheProvisionByHand(t *testing.T) {
	h := newFakeHostCLI(t)
	def, _ := goodSet(t, nil)
	for name, data := range map[string][]byte{"ca.pem": def.ca, "server-cert.pem": def.cert, "server-key.pem": def.key} {
		putFile(t, filepath.Join(h.root, agent.DefaultSource, name), string(data))
	}
	set, _ := goodSet(t, nil)
	dir := t.TempDir()
	for name, data := range map[string][]byte{"root_ca.crt": set.ca, "server.crt": set.cert, "server.key": set.key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(h.root, agent.ConfigFile)
	putFile(t, conf, "# nothing set, as shipped\n")
	if code, stdout, stderr := h.run("provision", "--certs", dir, "--ca-file", "root_ca.crt", "--cert-file", "server.crt", "--key-file", "server.key", "--mode", "dropin", "--host", "tcp://127.0.0.1:2376"); code != 0 {
		t.Fatalf("provision by hand: exit %d\n%s\n%s", code, stdout, stderr)
	}
	state := func() agent.State {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(h.root, agent.StateDir, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		var st agent.State
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := state()

	code, stdout, stderr := h.run("config", "--config", conf)
	if code != ExitRecorded || !strings.Contains(stdout, "the last provision by hand recorded its source") || !strings.Contains(stdout, "run `tlsdock provision`") {
		t.Fatalf("config: exit %d, want %d (recorded)\n%s\n%s", code, ExitRecorded, stdout, stderr)
	}
	for _, want := range []string{dir, "server.crt", "dropin", "tcp://127.0.0.1:2376", "tlsdock provision (" + agent.StateDir + "/state.json)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config does not show %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = h.run("provision")
	if code != 0 || !strings.Contains(stdout, "No changes") {
		t.Fatalf("bare provision: exit %d, want 0 with no changes\n%s\n%s", code, stdout, stderr)
	}
	after := state()
	if after.Mode != agent.ModeDropIn || after.Fingerprint != before.Fingerprint || after.Source == nil ||
		after.Source.Certs != dir || after.Source.CertFile != "server.crt" || after.Source.Mode != agent.ModeDropIn ||
		strings.Join(after.Source.Hosts, " ") != "tcp://127.0.0.1:2376" {
		t.Fatalf("after the bare provision: mode %s, source %+v; want dropin from %s as recorded", after.Mode, after.Source, dir)
	}

	if code, stdout, stderr := h.run("revert"); code != 0 {
		t.Fatalf("revert: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Reverted wins over a file that configures the host.
	putFile(t, conf, "generate = true\n")
	code, stdout, stderr = h.run("config", "--config", conf)
	if code != ExitReverted || !strings.Contains(stdout, "`tlsdock revert` put this host back") {
		t.Fatalf("config after revert: exit %d, want %d (reverted)\n%s\n%s", code, ExitReverted, stdout, stderr)
	}
	code, stdout, _ = h.run("config", "--config", conf, "--json")
	var rep configReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != ExitReverted || rep.State != "reverted" || rep.RevertedAt.IsZero() || rep.Provision != "" {
		t.Fatalf("config --json after revert: exit %d, %+v (%v)", code, rep, err)
	}
}
