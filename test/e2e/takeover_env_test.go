package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// startEnvHost boots a test host named env-NAME-RANDOM (NAME-RANDOM when
// NAME starts with "atk-") with tlsdock installed, like startWithTlsdock.
func startEnvHost(t *testing.T, name string) *testhost.Host {
	t.Helper()
	testhost.SkipUnlessEnabled(t)
	bin := tlsdockBinary(t)
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if !strings.HasPrefix(name, "atk-") {
		name = "env-" + name
	}
	h, err := testhost.Boot(ctx, testhost.Options{Name: name + "-" + hex.EncodeToString(suffix), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	if err := h.CopyIn(bin, "/usr/local/bin/tlsdock", 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestEnvTakeOverDockerOpts: a Debian host that an old recipe opened with
// DOCKER_OPTS="-H tcp://0.0.0.0:2375" (in /etc/default/docker, which
// Debian's docker.service reads with EnvironmentFile=, or in an
// Environment= line of a drop-in), with a running container, is taken
// over in each mode: provision succeeds, the real docker CLI gets in over
// mutual TLS, the plain :2375 refuses connections, the container keeps
// running, and the revert gives the user's files back byte-identical with
// :2375 serving again as before.
func TestEnvTakeOverDockerOpts(t *testing.T) {
	const etcDefault = "/etc/default/docker"
	const override = "/etc/systemd/system/docker.service.d/override.conf"
	tests := []struct {
		name, mode string
		// file is the user's file the recipe writes, and line what it
		// adds to it.
		file, line string
	}{
		{name: "default-daemon-json", mode: "daemon-json", file: etcDefault, line: "DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"\n"},
		{name: "default-dropin", mode: "dropin", file: etcDefault, line: "DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"\n"},
		{name: "default-proxy", mode: "proxy", file: etcDefault, line: "DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"\n"},
		{name: "environment-daemon-json", mode: "daemon-json", file: override, line: "[Service]\nEnvironment=\"DOCKER_OPTS=-H tcp://0.0.0.0:2375\"\n"},
		// dockerd's pflag reads a group of short flags: -DH is -D -H.
		{name: "atk-grouped-proxy", mode: "proxy", file: etcDefault, line: "DOCKER_OPTS=\"-DH tcp://0.0.0.0:2375\"\n"},
		{name: "atk-grouped-joined-daemon-json", mode: "daemon-json", file: etcDefault, line: "DOCKER_OPTS=\"-DHtcp://0.0.0.0:2375\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			h := startEnvHost(t, tt.name)
			ctx := ctxFor(t, 6*time.Minute)

			// The recipe: the line goes at the end of Debian's
			// /etc/default/docker, or into a new drop-in.
			var body []byte
			if tt.file == etcDefault {
				body = mustRead(t, h, etcDefault)
			}
			body = append(body, tt.line...)
			if err := h.WriteFile(tt.file, body, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, ctx, h, "systemctl", "daemon-reload")
			run(t, ctx, h, "systemctl", "restart", "docker.service")
			if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err != nil || out != "OK" {
				t.Fatalf("the recipe does not open plain :2375: %q %v\n%s", out, err, h.Journal(ctx, "docker.service", 20))
			}
			sleeper := startSleeper(t, ctx, h)
			startedBefore := containerStarted(t, ctx, h, sleeper)

			res := parseResult(t, mustTlsdock(t, ctx, h, "provision", "--mode", tt.mode, "--generate", "--client-out", "/root/client", "--json"))
			if !res.Changed || res.RolledBack || res.Error != "" {
				t.Fatalf("provision: %+v", res)
			}
			notes := strings.Join(res.Notes, "\n")
			if !strings.Contains(notes, "DOCKER_OPTS (set in "+tt.file+")") || !strings.Contains(notes, "next provision") {
				t.Errorf("the notes do not say where DOCKER_OPTS came from:\n%s", notes)
			}
			t.Logf("provision notes:\n%s", notes)

			// Mutual TLS on --host, with the real docker CLI.
			bundle := fetchBundle(t, h, "/root/client")
			if out, err := remoteDocker(ctx, t, h, bundle, "", "version", "--format", "{{.Server.Version}}"); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "20.10.") {
				t.Fatalf("docker version over mutual TLS: %q %v", out, err)
			}
			if out, err := remoteDocker(ctx, t, h, "", "", "version"); err == nil || strings.Contains(out, "20.10.") {
				t.Errorf("docker without a client certificate got in: %q", out)
			}
			// The plain listener is gone.
			if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err == nil {
				t.Errorf("plain :2375 still answers after provision: %q", out)
			}
			if out := run(t, ctx, h, "ss", "-Hltn", "sport = :2375"); strings.TrimSpace(out) != "" {
				t.Errorf("something still listens on :2375:\n%s", out)
			}
			if got := containerStarted(t, ctx, h, sleeper); got != startedBefore || !strings.HasPrefix(got, "true ") {
				t.Errorf("the container did not survive the provision: %q, before %q", got, startedBefore)
			}
			if got := mustRead(t, h, tt.file); string(got) != string(body) {
				t.Errorf("provision edited %s:\n%s", tt.file, got)
			}

			// A second provision changes nothing and says it again.
			res2 := parseResult(t, mustTlsdock(t, ctx, h, "provision", "--mode", tt.mode, "--generate", "--client-out", "/root/client", "--json"))
			if res2.Changed || res2.Restarted || !strings.Contains(strings.Join(res2.Notes, "\n"), "DOCKER_OPTS") {
				t.Errorf("second provision: changed=%v restarted=%v notes %q", res2.Changed, res2.Restarted, res2.Notes)
			}

			mustTlsdock(t, ctx, h, "revert")
			if got := mustRead(t, h, tt.file); string(got) != string(body) {
				t.Errorf("after the revert %s differs:\n%s\nwant:\n%s", tt.file, got, body)
			}
			if _, _, err := h.Exec(ctx, nil, "test", "!", "-e", "/etc/systemd/system/docker.service.d/zz-tlsdock.conf"); err != nil {
				t.Error("tlsdock's drop-in is left after the revert")
			}
			if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err != nil || out != "OK" {
				t.Errorf("plain :2375 does not serve again after the revert: %q %v", out, err)
			}
			t.Logf("%s: %v", tt.name, time.Since(start).Round(time.Second))
		})
	}
}
