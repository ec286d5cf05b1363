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
