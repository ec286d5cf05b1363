package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// startLs boots a test host named ls-NAME-RANDOM with tlsdock installed.
func startLs(t *testing.T, name string) *testhost.Host {
	t.Helper()
	testhost.SkipUnlessEnabled(t)
	bin := tlsdockBinary(t)
	rnd := make([]byte, 3)
	_, _ = rand.Read(rnd)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := testhost.Boot(ctx, testhost.Options{Name: "ls-" + name + "-" + hex.EncodeToString(rnd), Logf: t.Logf})
	if h != nil {
		t.Cleanup(func() {
			if err := h.Close(); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CopyIn(bin, "/usr/local/bin/tlsdock", 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// copyRecipeCerts copies the openssl recipe's server set to /srv/certs
// and its client certificate to /srv/client inside h.
func copyRecipeCerts(t *testing.T, h *testhost.Host, certs string) {
	t.Helper()
	for _, f := range []struct{ from, to string }{
		{"ca.pem", "/srv/certs/ca.pem"}, {"server-cert.pem", "/srv/certs/server-cert.pem"}, {"server-key.pem", "/srv/certs/server-key.pem"},
		{"ca.pem", "/srv/client/ca.pem"}, {"cert.pem", "/srv/client/cert.pem"}, {"key.pem", "/srv/client/key.pem"},
	} {
		if err := h.CopyIn(filepath.Join(certs, f.from), f.to, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotFiles reads the files a recipe left, "" for a missing one.
func snapshotFiles(h *testhost.Host, paths ...string) map[string]string {
	out := map[string]string{}
	for _, p := range paths {
		data, err := h.ReadFile(p)
		if err != nil {
			out[p] = "<missing>"
			continue
		}
		out[p] = string(data)
	}
	return out
}

// localDockerHangs reports whether the local docker CLI fails to answer
// over /run/docker.sock within a few seconds.
func localDockerAnswers(ctx context.Context, h *testhost.Host) (string, bool) {
	out, errb, err := h.Exec(ctx, nil, "timeout", "10", "docker", "ps", "-q")
	return string(out) + string(errb), err == nil
}

var recipeFiles = []string{
	"/etc/docker/daemon.json",
	"/etc/systemd/system/docker.service.d/override.conf",
	"/etc/systemd/system/docker.service.d/zz-tlsdock.conf",
	"/etc/systemd/system/docker.socket.d/tcp.conf",
	"/etc/systemd/system/docker.socket.d/zz-tlsdock.conf",
}

// TestLsDocsRecipe: Docker's docs recipe (daemon.json with the TLS keys,
// the shipped unit's ExecStart edited to -H=0.0.0.0:2376, so dockerd
// serves no local socket while docker.socket holds /run/docker.sock) with
// a running container and live-restore on. Provision in daemon-json,
// dropin and proxy modes succeeds, the real docker CLI works over mutual
// TLS (dockerd's, or the proxy's), the
// local `docker ps` works afterwards, the container survives, and revert
// gives the files back byte for byte.
func TestLsDocsRecipe(t *testing.T) {
	certs := opensslRecipe(t)
	for _, mode := range []string{"daemon-json", "dropin", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			h := startLs(t, "docs-"+strings.ReplaceAll(mode, "-", ""))
			ctx := ctxFor(t, 8*time.Minute)
			copyRecipeCerts(t, h, certs)
			for _, n := range []string{"ca.pem", "server-cert.pem", "server-key.pem"} {
				if err := h.CopyIn(filepath.Join(certs, n), "/etc/docker/certs/"+n, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// live-restore first, so the container survives the
			// restart into the recipe.
			if err := h.WriteFile("/etc/docker/daemon.json", []byte("{\"live-restore\": true}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, ctx, h, "systemctl", "restart", "docker.service")
			sleeper := startSleeper(t, ctx, h)
			started := containerStarted(t, ctx, h, sleeper)
			userJSON := "{\n  \"live-restore\": true,\n  \"tlsverify\": true,\n  \"tlscacert\": \"/etc/docker/certs/ca.pem\",\n  \"tlscert\": \"/etc/docker/certs/server-cert.pem\",\n  \"tlskey\": \"/etc/docker/certs/server-key.pem\"\n}\n"
			if err := h.WriteFile("/etc/docker/daemon.json", []byte(userJSON), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := h.WriteFile("/etc/systemd/system/docker.service.d/override.conf", []byte("[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H=0.0.0.0:2376 --containerd=/run/containerd/containerd.sock\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, ctx, h, "systemctl", "daemon-reload")
			run(t, ctx, h, "systemctl", "restart", "docker.service")
			if out, ok := localDockerAnswers(ctx, h); ok {
				t.Fatalf("the recipe's dockerd answers on /run/docker.sock: %s", out)
			}
			client := fetchBundle(t, h, "/srv/client")
			if out, err := remoteDocker(ctx, t, h, client, "", "ps", "-q"); err != nil || !strings.HasPrefix(sleeper, strings.TrimSpace(out)) {
				t.Fatalf("the recipe over mTLS: %q %v", out, err)
			}
			before := snapshotFiles(h, recipeFiles...)

			began := time.Now()
			out := mustTlsdock(t, ctx, h, "provision", "--certs", "/srv/certs", "--mode", mode, "--probe-client", "/srv/client")
			t.Logf("provision (%v):\n%s", time.Since(began).Round(time.Millisecond), out)
			dropIn := string(mustRead(t, h, "/etc/systemd/system/docker.service.d/zz-tlsdock.conf"))
			if !strings.Contains(dropIn, "-H fd://") {
				t.Errorf("tlsdock's drop-in gives dockerd no local socket:\n%s", dropIn)
			}
			if out, ok := localDockerAnswers(ctx, h); !ok || !strings.HasPrefix(sleeper, strings.TrimSpace(out)) {
				t.Errorf("local docker ps after provision: %q (ok %v)", out, ok)
			}
			if out, err := remoteDocker(ctx, t, h, client, "", "ps", "-q"); err != nil || !strings.HasPrefix(sleeper, strings.TrimSpace(out)) {
				t.Errorf("docker CLI over mTLS after provision: %q %v", out, err)
			}
			if out, _ := curlOutside(ctx, h, "http://127.0.0.1:2376/_ping"); out == "OK" {
				t.Error("plain HTTP answers on 2376")
			}
			if got := containerStarted(t, ctx, h, sleeper); got != started {
				t.Errorf("container restarted: %s -> %s", started, got)
			}

			began = time.Now()
			out = mustTlsdock(t, ctx, h, "revert")
			t.Logf("revert (%v):\n%s", time.Since(began).Round(time.Millisecond), out)
			after := snapshotFiles(h, recipeFiles...)
			for _, p := range recipeFiles {
				if before[p] != after[p] {
					t.Errorf("%s after revert:\n%s\nbefore:\n%s", p, after[p], before[p])
				}
			}
			// The recipe has no local socket again: ask over mTLS.
			if got, err := remoteDocker(ctx, t, h, client, "", "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", sleeper); err != nil || strings.TrimSpace(got) != started {
				t.Errorf("container after revert: %q %v, want %s", got, err, started)
			}
			if out, err := remoteDocker(ctx, t, h, client, "", "ps", "-q"); err != nil || !strings.HasPrefix(sleeper, strings.TrimSpace(out)) {
				t.Errorf("the recipe over mTLS after revert: %q %v", out, err)
			}
		})
	}
}

// TestLsSocketListenStream: a docker.socket drop-in with a plain
// ListenStream=0.0.0.0:2375 hands dockerd an unauthenticated API through
// -H fd://. Provision closes it (tlsdock's docker.socket drop-in resets
// the list); revert gives it back.
func TestLsSocketListenStream(t *testing.T) {
	h := startLs(t, "sock2375")
	ctx := ctxFor(t, 6*time.Minute)
	if err := h.WriteFile("/etc/systemd/system/docker.socket.d/tcp.conf", []byte("[Socket]\nListenStream=0.0.0.0:2375\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile("/etc/docker/daemon.json", []byte("{\"live-restore\": true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "daemon-reload")
	run(t, ctx, h, "systemctl", "stop", "docker.socket")
	run(t, ctx, h, "systemctl", "start", "docker.socket", "docker.service")
	if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); out != "OK" {
		t.Fatalf("the recipe: plain 2375 does not answer: %q %v", out, err)
	}
	before := snapshotFiles(h, recipeFiles...)
	began := time.Now()
	out := mustTlsdock(t, ctx, h, "provision", "--generate", "--client-out", "/root/client")
	t.Logf("provision (%v):\n%s", time.Since(began).Round(time.Millisecond), out)
	if !strings.Contains(out, "removed TCP listener 0.0.0.0:2375 from docker.socket") {
		t.Errorf("provision does not say 2375 is closed:\n%s", out)
	}
	if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err == nil {
		t.Errorf("2375 still answers after provision: %q", out)
	}
	if ss := run(t, ctx, h, "ss", "-ltn"); strings.Contains(ss, ":2375 ") {
		t.Errorf("something still listens on 2375:\n%s", ss)
	}
	if out, ok := localDockerAnswers(ctx, h); !ok {
		t.Errorf("local docker ps after provision: %q", out)
	}
	out = mustTlsdock(t, ctx, h, "revert")
	t.Logf("revert:\n%s", out)
	after := snapshotFiles(h, recipeFiles...)
	for _, p := range recipeFiles {
		if before[p] != after[p] {
			t.Errorf("%s after revert:\n%s\nbefore:\n%s", p, after[p], before[p])
		}
	}
}

// TestLsExtraListenerRollsBack: a TCP listener dockerd serves that
// tlsdock cannot close, from a socket unit of its own (Service=
// docker.service: systemd hands its socket to dockerd, which serves every
// socket it is handed through -H fd://). In proxy mode dockerd has no TLS
// settings, so it answers there in plain text: verification probes every
// TCP listener dockerd has, fails naming it, and provision rolls back
// (exit 3).
func TestLsExtraListenerRollsBack(t *testing.T) {
	h := startLs(t, "extra")
	ctx := ctxFor(t, 6*time.Minute)
	if err := h.WriteFile("/etc/systemd/system/ls-extra.socket", []byte("[Socket]\nListenStream=127.0.0.1:2377\nService=docker.service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "daemon-reload")
	// systemd refuses to start a socket whose service runs already.
	run(t, ctx, h, "systemctl", "stop", "docker.service")
	run(t, ctx, h, "systemctl", "start", "ls-extra.socket")
	run(t, ctx, h, "systemctl", "start", "docker.service")
	if out, err := curlOutside(ctx, h, "http://127.0.0.1:2377/_ping"); out != "OK" {
		t.Fatalf("the injected listener does not answer in plain text: %q %v", out, err)
	}
	before := snapshotFiles(h, recipeFiles...)
	began := time.Now()
	out, errb, code := tlsdock(ctx, h, "provision", "--generate", "--mode", "proxy")
	t.Logf("provision (%v), exit %d:\n%s\n%s", time.Since(began).Round(time.Millisecond), code, out, errb)
	if code != 3 {
		t.Fatalf("exit %d, want 3 (rolled back)", code)
	}
	if !strings.Contains(out+errb, "127.0.0.1:2377") {
		t.Errorf("the error does not name the listener 127.0.0.1:2377")
	}
	after := snapshotFiles(h, recipeFiles...)
	for _, p := range recipeFiles {
		if before[p] != after[p] {
			t.Errorf("%s after the rollback:\n%s\nbefore:\n%s", p, after[p], before[p])
		}
	}
	if out, ok := localDockerAnswers(ctx, h); !ok {
		t.Errorf("local docker ps after the rollback: %q", out)
	}
}
