package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/agent"
)

func TestConfigCommand(t *testing.T) {
	set := func(t *testing.T, root string, names ...string) {
		t.Helper()
		for _, n := range names {
			putFile(t, filepath.Join(root, agent.DefaultSource, n), "pem")
		}
	}
	tests := []struct {
		name   string
		conf   string // "-": no file
		args   []string
		source []string // files in /etc/tlsdock/certs
		code   int
		stdout []string
		stderr string
	}{
		{
			name: "generate in the file", conf: "# c\ngenerate = true\nhost = tcp://0.0.0.0:2376\nhost = tcp://[::]:2377\n",
			code: ExitOK,
			stdout: []string{
				"generate              true",
				"tlsdock.conf:2", "tcp://[::]:2377", "tlsdock.conf:4",
				"timeout               3m0s",
				"Configured to provision: run `tlsdock provision`.",
			},
		},
		{
			name: "certs in the file", conf: "certs = /srv/certs\n", code: ExitOK,
			stdout: []string{"/srv/certs", "tlsdock.conf:1", "Configured to provision"},
		},
		{
			name: "generate as a flag", conf: "-", args: []string{"--generate", "--timeout", "30s"}, code: ExitOK,
			stdout: []string{"--generate", "30s", "--timeout"},
		},
		{
			name: "a complete set in /etc/tlsdock/certs", conf: "-", source: []string{"ca.pem", "server-cert.pem", "server-key.pem"},
			code:   ExitDefaultSource,
			stdout: []string{"holds a complete set: run `tlsdock provision --certs /etc/tlsdock/certs`"},
		},
		{
			name: "an incomplete set", conf: "-", source: []string{"ca.pem", "server-cert.pem"},
			code: ExitNotConfigured, stdout: []string{"Not configured: set generate = true"},
		},
		{
			name: "nothing", conf: "timeout = 30s\n", code: ExitNotConfigured,
			stdout: []string{"Not configured"},
		},
		{
			name: "a bad value", conf: "generate = true\ntimeout = 5x\n", code: ExitBadInput,
			stderr: `tlsdock.conf:2: timeout: "5x" is not a duration`,
		},
		{
			name: "an unknown key", conf: "generate = true\nhostname = x\n", code: ExitBadInput,
			stderr: "tlsdock.conf:2: unknown key",
		},
		{
			name: "a value only the daemon uses", conf: "certs = /srv/certs\nrenew-before = 720h\n", code: ExitBadInput,
			stderr: "tlsdock.conf:2: renew-before: applies only with --generate",
		},
		{
			name: "not configured, but a bad value", conf: "client-out = /root/client\n", code: ExitBadInput,
			stderr: "tlsdock.conf:1: client-out: a client bundle can only be issued by the local CA",
		},
		{
			name: "a complete set and a bad flag", conf: "-", source: []string{"ca.pem", "server-cert.pem", "server-key.pem"},
			args: []string{"--host", "tcp://0.0.0.0"}, code: ExitBadInput, stderr: "--host",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			conf := filepath.Join(root, "etc/tlsdock/tlsdock.conf")
			if tt.conf != "-" {
				putFile(t, conf, tt.conf)
			}
			set(t, root, tt.source...)
			code, stdout, stderr := run(t, root, append([]string{"config", "--config", conf}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout does not contain %q:\n%s", want, stdout)
				}
			}
			if tt.stderr != "" && !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
			if tt.stderr == "" && stderr != "" {
				t.Errorf("stderr %q, want none", stderr)
			}
		})
	}
}

func TestConfigCommandJSON(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "tlsdock.conf")
	putFile(t, conf, "mode = proxy\ngenerate = true\n")
	code, stdout, stderr := run(t, root, "config", "--config", conf, "--json", "--san", "a.example.com")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep configReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.State != "configured" || rep.ExitCode != 0 || rep.ConfigFile != conf || rep.Provision != "tlsdock provision" {
		t.Fatalf("report %+v", rep)
	}
	got := map[string]agent.Setting{}
	for _, s := range rep.Settings {
		got[s.Key] = s
	}
	if s := got["mode"]; s.Source != agent.FromFile || s.File != conf || len(s.Lines) != 1 || s.Lines[0] != 1 || s.Values[0] != "proxy" {
		t.Errorf("mode: %+v", s)
	}
	if s := got["san"]; s.Source != agent.FromFlag || len(s.Values) != 1 || s.Values[0] != "a.example.com" {
		t.Errorf("san: %+v", s)
	}
	// The daemon's view: proxy mode needs no restart interval.
	if s := got["min-restart-interval"]; s.Source != agent.FromDefault || s.Values[0] != "0s" {
		t.Errorf("min-restart-interval: %+v", s)
	}
}

func TestConfigCommandUnreadableFile(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "tlsdock.conf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, root, "config", "--config", dir)
	if code != ExitFailed || !strings.Contains(stderr, "reading "+dir) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
