package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
)

// run executes the CLI in-process. Connecting to systemd fails, so only
// what happens before that is exercised here; the sequence itself is
// tested in agent and test/e2e.
func run(t *testing.T, root string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errb, Root: root, Connect: func(context.Context) (agent.Systemd, func(), error) {
		return nil, nil, errors.New("no systemd in unit tests")
	}}
	code := Run(env, args)
	return code, out.String(), errb.String()
}

func TestBadInputExitCodes(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "tlsdock.conf")
	if err := os.WriteFile(conf, []byte("generate = true\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no certificates", []string{"provision", "--config", "/nonexistent"}, "--certs: no certificates given"},
		{"unknown key type", []string{"provision", "--generate", "--key-type", "dsa", "--config", "/nonexistent"}, `unknown key type "dsa"`},
		{"unknown mode", []string{"provision", "--generate", "--mode", "proxy2", "--config", "/nonexistent"}, `unknown mode "proxy2"`},
		{"bad host", []string{"provision", "--generate", "--host", "http://x:1", "--config", "/nonexistent"}, "--host"},
		{"client-out without CA", []string{"provision", "--certs", "/x", "--client-out", "/y", "--config", "/nonexistent"}, "--client-out"},
		{"unknown flag", []string{"provision", "--frobnicate"}, "unknown flag: --frobnicate"},
		{"config unknown key", []string{"provision", "--config", conf}, conf + ":2: unknown key \"bogus\""},
		{"client without name", []string{"certs", "client", "--out", "/tmp/x"}, "exactly one NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, root, tt.args...)
			if code != ExitBadInput {
				t.Fatalf("exit %d, want %d; stderr: %s", code, ExitBadInput, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr %q does not contain %q", stderr, tt.want)
			}
		})
	}
}

func TestConfigFileUnderFlags(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "tlsdock.conf")
	body := "# comment\ngenerate = true\nhost = tcp://0.0.0.0:2376\nhost = tcp://[::]:2377\nkey-type = rsa-2048\nmode = dropin\nlive-restore = false\ntimeout = 30s\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var f settingsFlags
	cmd := &cobra.Command{Use: "x"}
	f.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--config", conf, "--key-type", "ecdsa-p256"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config(cmd)
	if err != nil {
		t.Fatal(err)
	}
	want := agent.Config{
		Mode: agent.ModeDropIn, Generate: true, KeyType: certstore.ECDSAP256, // the flag wins
		Hosts: []string{"tcp://0.0.0.0:2376", "tcp://[::]:2377"}, LiveRestore: false, Timeout: 30 * time.Second,
		AuditLog: agent.DefaultAuditLog, AuditLogMaxSize: agent.DefaultAuditLogMaxSize, CRLRefresh: agent.DefaultCRLRefresh,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config = %+v\nwant %+v", cfg, want)
	}
}

func TestCertsClientWithoutCA(t *testing.T) {
	root := t.TempDir()
	code, _, stderr := run(t, root, "certs", "client", "alice", "--out", filepath.Join(root, "alice"))
	if code != ExitBadInput || !strings.Contains(stderr, "tlsdock provision --generate") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "alice")); !os.IsNotExist(err) {
		t.Fatal("wrote a bundle without a CA")
	}
}

func TestHelpNamesEveryCommand(t *testing.T) {
	code, out, _ := run(t, t.TempDir(), "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range []string{"provision", "status", "revert", "certs"} {
		if !strings.Contains(out, c) {
			t.Errorf("--help does not list %s", c)
		}
	}
}

// TestCertsClientFailsWithoutARecord: a certificate that issued.json cannot
// record is a failed command (exit 1) with no bundle, because `certs revoke
// NAME` would miss it.
func TestCertsClientFailsWithoutARecord(t *testing.T) {
	root := t.TempDir()
	ca, err := certstore.NewCA(certstore.ECDSAP256, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(root, agent.CADir)
	if err := ca.Save(caDir); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, root, "certs", "client", "alice", "--out", filepath.Join(root, "alice"))
	if code != ExitOK || !strings.Contains(stdout, `Issued "alice"`) {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// issued.json swapped for a symlink: it reads, but tlsdock never
	// writes through a symlink.
	issued := filepath.Join(root, agent.IssuedPath)
	if err := os.Rename(issued, issued+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(issued+".real", issued); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, root, "certs", "client", "bob", "--out", filepath.Join(root, "bob"))
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitFailed, stdout, stderr)
	}
	for _, want := range []string{agent.IssuedPath, "is a symlink", "no client bundle was written"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not contain %q", stderr, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "bob")); !os.IsNotExist(err) {
		t.Errorf("a bundle was written without a record (%v)", err)
	}
}

func TestStatusAttentionSkipsShownWarnings(t *testing.T) {
	w := "warning: allow-source-owner vault: account uid 998 (group gid 998) may write the certificate source /srv/certs, so whoever controls that account can install their own CA and take over dockerd. Keep that account to the PKI agent"
	tests := []struct{ lastError, want string }{
		{w, ""},
		{"invalid set in /srv/certs: x; docker keeps serving serial 1; " + w, "invalid set in /srv/certs: x; docker keeps serving serial 1"},
		{"the served certificate expires soon", "the served certificate expires soon"},
	}
	for _, tt := range tests {
		s := &agent.Status{LastError: tt.lastError, LastApply: agent.Apply{Warnings: []string{w}}}
		if got := attention(s); got != tt.want {
			t.Errorf("attention(%q) = %q, want %q", tt.lastError, got, tt.want)
		}
	}
}
