package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestAtkConfigFileRefused: a docker.service that runs dockerd with
// --config-file /etc/docker/other.json (plain :2375 in its hosts) is
// refused in proxy mode with exit 2 naming the flag, and nothing changes:
// dockerd would have kept reading other.json and ignored tlsdock's
// daemon.json. Then ~/.docker holding another daemon's bundle is refused
// as --client-out, and its key is kept.
func TestAtkConfigFileRefused(t *testing.T) {
	start := time.Now()
	h := startEnvHost(t, "atk-config-file")
	ctx := ctxFor(t, 5*time.Minute)
	const override = "/etc/systemd/system/docker.service.d/override.conf"
	if err := h.WriteFile("/etc/docker/other.json", []byte(`{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(override, []byte("[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock --config-file=/etc/docker/other.json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "daemon-reload")
	run(t, ctx, h, "systemctl", "restart", "docker.service")
	if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err != nil || out != "OK" {
		t.Fatalf("the recipe does not open plain :2375: %q %v\n%s", out, err, h.Journal(ctx, "docker.service", 20))
	}
	pid := dockerPID(t, ctx, h)
	stdout, stderr, code := tlsdock(ctx, h, "provision", "--mode", "proxy", "--generate")
	if code != 2 || !strings.Contains(stderr, "--config-file /etc/docker/other.json") {
		t.Errorf("provision over --config-file: exit %d, want 2 naming the flag\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("refusal:\n%s", stderr)
	if got := dockerPID(t, ctx, h); got != pid {
		t.Errorf("docker restarted on the refused provision (main PID %s -> %s)", pid, got)
	}
	if _, _, err := h.Exec(ctx, nil, "test", "!", "-e", "/etc/systemd/system/docker.service.d/zz-tlsdock.conf"); err != nil {
		t.Error("the refused provision wrote tlsdock's drop-in")
	}

	// Another daemon's bundle in ~/.docker.
	run(t, ctx, h, "rm", override)
	run(t, ctx, h, "systemctl", "daemon-reload")
	run(t, ctx, h, "systemctl", "restart", "docker.service")
	run(t, ctx, h, "sh", "-c", "mkdir -p /root/.docker && cd /root/.docker && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other-daemon-ca -keyout key.pem -out cert.pem 2>/dev/null && cp cert.pem ca.pem")
	keyBefore := mustRead(t, h, "/root/.docker/key.pem")
	stdout, stderr, code = tlsdock(ctx, h, "provision", "--generate", "--client-out", "/root/.docker")
	if code != 2 || !strings.Contains(stderr, "/root/.docker/cert.pem holds a client certificate issued by \"other-daemon-ca\"") {
		t.Errorf("provision --client-out over another bundle: exit %d, want 2 naming cert.pem\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("refusal:\n%s", stderr)
	if got := mustRead(t, h, "/root/.docker/key.pem"); string(got) != string(keyBefore) {
		t.Error("the other daemon's key.pem was replaced")
	}
	t.Logf("TestAtkConfigFileRefused: %v", time.Since(start).Round(time.Second))
}

// TestAtkManagerEnvironment: `systemctl set-environment DOCKER_OPTS=-H
// tcp://0.0.0.0:2375` reaches Debian's $DOCKER_OPTS (its
// /etc/default/docker leaves the variable unset). Proxy mode takes it
// over, naming where it came from; the revert gives it back.
func TestAtkManagerEnvironment(t *testing.T) {
	start := time.Now()
	h := startEnvHost(t, "atk-manager-env")
	ctx := ctxFor(t, 5*time.Minute)
	run(t, ctx, h, "systemctl", "set-environment", "DOCKER_OPTS=-H tcp://0.0.0.0:2375")
	run(t, ctx, h, "systemctl", "restart", "docker.service")
	if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err != nil || out != "OK" {
		t.Fatalf("set-environment does not open plain :2375: %q %v\n%s", out, err, h.Journal(ctx, "docker.service", 20))
	}
	res := parseResult(t, mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--generate", "--json"))
	if !res.Changed || res.RolledBack || res.Error != "" {
		t.Fatalf("provision: %+v", res)
	}
	if notes := strings.Join(res.Notes, "\n"); !strings.Contains(notes, "DOCKER_OPTS (set in the service manager's environment") {
		t.Errorf("the notes do not say where DOCKER_OPTS came from:\n%s", notes)
	}
	if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err == nil {
		t.Errorf("plain :2375 still answers after provision: %q", out)
	}
	mustTlsdock(t, ctx, h, "revert")
	if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err != nil || out != "OK" {
		t.Errorf("plain :2375 does not serve again after the revert: %q %v", out, err)
	}
	t.Logf("TestAtkManagerEnvironment: %v", time.Since(start).Round(time.Second))
}
