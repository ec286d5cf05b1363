package main

import (
	"crypto/rand"
	"errors"
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

func TestAuditLogSettings(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		args       []string
		path       string
		size       int64
		err        string
	}{
		{name: "defaults", path: agent.DefaultAuditLog, size: agent.DefaultAuditLogMaxSize},
		{name: "file sets them", conf: "audit-log = /srv/log/audit.jsonl\naudit-log-max-size = 1G\n", path: "/srv/log/audit.jsonl", size: 1 << 30},
		{name: "empty in the file: the journal only", conf: "audit-log =\naudit-log-max-size = 0\n", path: "", size: 0},
		{name: "flags win", conf: "audit-log = /srv/a.jsonl\n", args: []string{"--audit-log=", "--audit-log-max-size", "512K"}, path: "", size: 512 << 10},
		{name: "relative path", args: []string{"--audit-log", "audit.jsonl"}, err: "--audit-log"},
		{name: "bad size", conf: "audit-log-max-size = lots\n", err: "--audit-log-max-size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			conf := filepath.Join(root, "tlsdock.conf")
			if err := os.WriteFile(conf, []byte("mode = proxy\ngenerate = true\n"+tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			var f settingsFlags
			var rf runFlags
			cmd := &cobra.Command{Use: "run"}
			f.register(cmd.Flags())
			rf.register(cmd.Flags())
			if err := cmd.Flags().Parse(append([]string{"--config", conf}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			cfg, err := rf.config(cmd, &f, root)
			if tc.err != "" {
				var ie *agent.InputError
				if !errors.As(err, &ie) || ie.Field != tc.err {
					t.Fatalf("err = %v, want an input error on %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AuditLog != tc.path || cfg.AuditLogMaxSize != tc.size {
				t.Fatalf("audit log %q max %d, want %q max %d", cfg.AuditLog, cfg.AuditLogMaxSize, tc.path, tc.size)
			}
		})
	}
}
