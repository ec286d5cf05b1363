package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"4096", 4096, true}, {"512K", 512 << 10, true}, {"100M", 100 << 20, true}, {"2g", 2 << 30, true},
		{"", 0, false}, {"-1", 0, false}, {"10MB", 0, false}, {"M", 0, false}, {"1.5G", 0, false}, {"99999999999G", 0, false},
	} {
		got, err := ParseSize("--audit-log-max-size", tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v", tc.in, got, err)
		}
		if tc.ok {
			if back, err := ParseSize("x", FormatSize(got)); err != nil || back != got {
				t.Errorf("FormatSize(%d) = %q does not read back: %d, %v", got, FormatSize(got), back, err)
			}
		}
	}
}

func TestProxyArgsCarryTheAuditLog(t *testing.T) {
	cfg := Defaults()
	cfg.Mode, cfg.Certs = ModeProxy, "/etc/tlsdock/certs"
	if args := strings.Join(ProxyArgs(cfg), " "); strings.Contains(args, "audit") {
		t.Fatalf("defaults are passed: %s", args)
	}
	cfg.AuditLog, cfg.AuditLogMaxSize = "", 0
	if args := strings.Join(ProxyArgs(cfg), " "); !strings.HasSuffix(args, " --audit-log= --audit-log-max-size 0") {
		t.Fatalf("args %s", args)
	}
	cfg.AuditLog, cfg.AuditLogMaxSize = "/srv/audit.jsonl", 10<<20
	if args := strings.Join(ProxyArgs(cfg), " "); !strings.HasSuffix(args, " --audit-log=/srv/audit.jsonl --audit-log-max-size 10M") {
		t.Fatalf("args %s", args)
	}
}

// TestProxyDaemonAuditLog: the daemon opens the audit log (0600) under its
// root, reopens it on SIGHUP after logrotate moved it, closes it at
// shutdown, and refuses to start on a symlink.
func TestProxyDaemonAuditLog(t *testing.T) {
	root := t.TempDir()
	cfg := proxyCfg()
	cfg.AuditLog = DefaultAuditLog
	opts := ProxyDaemonOptions{Paths: Paths{Root: root}, Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d, err := NewProxyDaemon(opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, DefaultAuditLog)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("audit log: %v %v", st, err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	d.Hangup()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("not reopened on SIGHUP: %v", err)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.audit.Reopen(); err == nil {
		t.Fatal("the audit log is still open after Shutdown")
	}

	os.Remove(path)
	if err := os.Symlink(filepath.Join(root, "elsewhere"), path); err != nil {
		t.Fatal(err)
	}
	_, err = NewProxyDaemon(opts)
	var ie *InputError
	if !errors.As(err, &ie) || ie.Field != "--audit-log" || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("on a symlink: %v", err)
	}

	// "" keeps the records in the journal: no file.
	cfg.AuditLog = ""
	root2 := t.TempDir()
	d, err = NewProxyDaemon(ProxyDaemonOptions{Paths: Paths{Root: root2}, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	d.Shutdown(context.Background())
	if _, err := os.Stat(filepath.Join(root2, "var/log/tlsdock")); err == nil {
		t.Fatal("an audit log was created with audit-log empty")
	}
}
