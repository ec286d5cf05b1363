package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
)

// runCmd builds the run command's flags over args, as cobra would.
func runCmd(t *testing.T, args ...string) (*cobra.Command, *settingsFlags, *runFlags) {
	t.Helper()
	var f settingsFlags
	var rf runFlags
	cmd := &cobra.Command{Use: "run"}
	f.register(cmd.Flags())
	rf.register(cmd.Flags())
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	return cmd, &f, &rf
}

func writeConf(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tlsdock.conf")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunConfig(t *testing.T) {
	root := t.TempDir()
	def := agent.Defaults()
	tests := []struct {
		name string
		conf string
		args []string
		want agent.RunConfig
	}{
		{
			name: "defaults watch /etc/tlsdock/certs",
			want: agent.RunConfig{Config: withCerts(def, filepath.Join(root, agent.DefaultSource)), Debounce: 2 * time.Second, MaxWait: 10 * time.Second, MinRestartInterval: 20 * time.Second},
		},
		{
			name: "config file sets the run keys, flags win",
			conf: "certs = /srv/certs\ndebounce = 5s\nmax-wait = 30s\nmin-restart-interval = 1m\nmetrics-listen = 127.0.0.1:9323\n",
			args: []string{"--max-wait", "40s"},
			want: agent.RunConfig{Config: withCerts(def, "/srv/certs"), Debounce: 5 * time.Second, MaxWait: 40 * time.Second, MinRestartInterval: time.Minute, MetricsListen: "127.0.0.1:9323"},
		},
		{
			name: "generate in the file: no source",
			conf: "generate = true\nrenew-before = 720h\n",
			want: agent.RunConfig{Config: withGenerate(def, 720*time.Hour), Debounce: 2 * time.Second, MaxWait: 10 * time.Second, MinRestartInterval: 20 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--config", writeConf(t, tt.conf)}, tt.args...)
			cmd, f, rf := runCmd(t, args...)
			got, err := rf.config(cmd, f, root)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("config = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func withCerts(c agent.Config, dir string) agent.Config {
	c.Certs = dir
	return c
}

func withGenerate(c agent.Config, renewBefore time.Duration) agent.Config {
	c.Generate, c.RenewBefore = true, renewBefore
	return c
}

func TestRunReloadReadsTheFileAgain(t *testing.T) {
	conf := writeConf(t, "mode = dropin\nsan = a.example.com\n")
	cmd, f, rf := runCmd(t, "--config", conf, "--certs", "/srv/certs", "--host", "tcp://0.0.0.0:2376", "--host", "tcp://[::]:2377", "--debounce", "3s")
	first, err := rf.config(cmd, f, "/")
	if err != nil {
		t.Fatal(err)
	}
	if first.Mode != agent.ModeDropIn {
		t.Fatalf("mode %s", first.Mode)
	}
	// The file no longer sets mode: the default comes back, the flags stay.
	if err := os.WriteFile(conf, []byte("san = b.example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := reloadRunConfig(cmd, "/")
	if err != nil {
		t.Fatal(err)
	}
	want := first
	want.Mode, want.SANs = agent.ModeDaemonJSON, []string{"b.example.com"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reload %+v\nwant %+v", got, want)
	}
}

func TestRunBadInput(t *testing.T) {
	root := t.TempDir()
	badConf := writeConf(t, "debounce = soon\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"debounce", []string{"--debounce", "0s"}, "--debounce: must be positive"},
		{"max-wait", []string{"--max-wait", "1s"}, "--max-wait 1s must be at least --debounce 2s"},
		{"renew-before without generate", []string{"--renew-before", "720h"}, "--renew-before: applies only with --generate"},
		{"renew-before too long", []string{"--generate", "--renew-before", "2000h"}, "must be between 0 and 1080h0m0s"},
		{"metrics address", []string{"--metrics-listen", "nowhere"}, `"nowhere" is not HOST:PORT`},
		{"config value", []string{"--config", badConf}, badConf + `:1: debounce: "soon" is not a duration`},
		{"generate and certs", []string{"--generate", "--certs", "/srv/certs"}, "exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--config", "/nonexistent"}, tt.args...)
			code, _, stderr := run(t, root, args...)
			if code != ExitBadInput || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, ExitBadInput, tt.want)
			}
		})
	}
}

func TestRunNeedsSystemd(t *testing.T) {
	code, _, stderr := run(t, t.TempDir(), "run", "--config", "/nonexistent", "--certs", t.TempDir())
	if code != ExitFailed || !strings.Contains(stderr, "no systemd") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestHelpListsRun(t *testing.T) {
	code, out, _ := run(t, t.TempDir(), "run", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--certs", `(default "` + agent.DefaultSource + `")`, "--debounce", "--max-wait", "--min-restart-interval", "--renew-before", "--metrics-listen", "SIGHUP"} {
		if !strings.Contains(out, want) {
			t.Errorf("run --help does not mention %s", want)
		}
	}
}

func TestServeMetrics(t *testing.T) {
	var logs strings.Builder
	m, stop, err := serveMetrics("127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if m == nil {
		t.Fatal("no metrics")
	}
	_, addr, _ := strings.Cut(logs.String(), "addr=")
	addr, _, _ = strings.Cut(addr, " ")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{
		"tlsdock_certificate_expiry_timestamp_seconds ",
		`tlsdock_rotations_total{result="rolled_back"} 0`,
		"tlsdock_last_rotation_success_timestamp_seconds 0",
		"tlsdock_validation_error 0",
		"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ",
		"process_open_fds ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if _, _, err := serveMetrics(addr, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "--metrics-listen") {
		t.Fatalf("a busy address: %v", err)
	}
}

func TestRunReloadBadFileNamesTheLine(t *testing.T) {
	conf := writeConf(t, "certs = /srv/certs\n")
	cmd, f, rf := runCmd(t, "--config", conf, "--debounce", "3s")
	if _, err := rf.config(cmd, f, "/"); err != nil {
		t.Fatal(err)
	}
	// On SIGHUP the file is read again under the same flags: a value that
	// is wrong with them names its line.
	if err := os.WriteFile(conf, []byte("certs = /srv/certs\n\nmax-wait = 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := reloadRunConfig(cmd, "/")
	if want := conf + `:3: max-wait: --max-wait 1s must be at least --debounce 3s`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("reload: %v, want %q", err, want)
	}
	// A bad value is refused even where a flag overrides it.
	if err := os.WriteFile(conf, []byte("certs = /srv/certs\ndebounce = soon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = reloadRunConfig(cmd, "/")
	if want := conf + `:2: debounce: "soon" is not a duration`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("reload: %v, want %q", err, want)
	}
}

func TestOnChange(t *testing.T) {
	var o onChange
	errA, errB := errors.New("a"), errors.New("b")
	for i, step := range []struct {
		err  error
		want int
	}{
		{nil, unchanged},
		{errA, changedToError},
		{errA, unchanged},
		{errB, changedToError},
		{nil, changedToOK},
		{nil, unchanged},
	} {
		if got := o.set(step.err); got != step.want {
			t.Errorf("step %d (%v): %d, want %d", i, step.err, got, step.want)
		}
	}
}
