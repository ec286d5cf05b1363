package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
)

// newLocalCA puts a local CA under root, as provision --generate does.
func newLocalCA(t *testing.T, root string) {
	t.Helper()
	ca, err := certstore.NewCA(certstore.ECDSAP256, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(agent.Paths{Root: root}.CA()); err != nil {
		t.Fatal(err)
	}
}

func TestNativeModeWarnsAboutGroupsAndRevocation(t *testing.T) {
	root := t.TempDir()
	newLocalCA(t, root)
	code, _, stderr := run(t, root, "certs", "client", "ro", "--group", "read-only", "--out", filepath.Join(root, "ro"))
	if code != 0 || !strings.Contains(stderr, "dockerd does not enforce groups") {
		t.Fatalf("exit %d, stderr %q: want a warning that groups are not enforced", code, stderr)
	}
	code, stdout, stderr := run(t, root, "certs", "revoke", "ro")
	if code != 0 || !strings.Contains(stdout, "Revoked serial") || !strings.Contains(stderr, "dockerd cannot check revocation") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, agent.LocalCRLPath)); err != nil {
		t.Fatalf("no CRL published: %v", err)
	}
	if code, _, stderr := run(t, root, "certs", "revoke", "nobody"); code != ExitBadInput || !strings.Contains(stderr, `"nobody" is neither a client`) {
		t.Fatalf("unknown name: exit %d, %q", code, stderr)
	}
}

func TestTunnelRefusesRemoteListenWithoutFlag(t *testing.T) {
	root := t.TempDir()
	newLocalCA(t, root)
	dir := filepath.Join(root, "c")
	if code, _, stderr := run(t, root, "certs", "client", "c", "--out", dir); code != 0 {
		t.Fatal(stderr)
	}
	code, _, stderr := run(t, root, "tunnel", "--listen", "tcp://0.0.0.0:0", "--to", "tcp://127.0.0.1:2376", "--certs", dir)
	if code != ExitBadInput || !strings.Contains(stderr, "allow-remote") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestProxyModeRunDefaults(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "tlsdock.conf")
	if err := os.WriteFile(conf, []byte("mode = proxy\ngenerate = true\npolicy = /etc/tlsdock/policy.json\ncrl = /a.crl\ncrl = /b.crl\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var f settingsFlags
	var rf runFlags
	cmd := &cobra.Command{Use: "run"}
	f.register(cmd.Flags())
	rf.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--config", conf}); err != nil {
		t.Fatal(err)
	}
	cfg, err := rf.config(cmd, &f, root)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != agent.ModeProxy || cfg.Policy != "/etc/tlsdock/policy.json" || len(cfg.CRLs) != 2 || cfg.MinRestartInterval != 0 {
		t.Fatalf("cfg = %+v: want proxy mode, the policy, two CRLs and no restart interval", cfg)
	}
}
