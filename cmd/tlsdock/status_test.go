package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/agent"
)

// TestStatusShowsPending: the set `tlsdock run` waits to install is shown
// in text and JSON.
func TestStatusShowsPending(t *testing.T) {
	h := newFakeHostCLI(t)
	if code, stdout, stderr := h.run("provision", "--generate"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	path := filepath.Join(h.root, agent.StateDir, "state.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	nb := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	st["pending"] = agent.PendingSet{Serial: "ab12", NotBefore: nb, InstallAt: nb.Add(5 * time.Second), Source: "/etc/tlsdock/certs"}
	if data, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := h.run("status")
	want := "pending:     serial ab12, valid from " + nb.Format("2006-01-02 15:04:05 MST") + " (in 3h)"
	if code != 0 || !strings.Contains(stdout, want+"\n") {
		t.Fatalf("status (exit %d) does not show %q:\n%s\n%s", code, want, stdout, stderr)
	}
	code, stdout, stderr = h.run("status", "--json")
	var out struct {
		Pending *agent.PendingInfo `json:"pending"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil || out.Pending == nil || out.Pending.Serial != "ab12" || !out.Pending.NotBefore.Equal(nb) ||
		!strings.HasPrefix(out.Pending.Summary, "serial ab12, valid from ") {
		t.Fatalf("status --json (exit %d):\n%s\n%s", code, stdout, stderr)
	}
}
