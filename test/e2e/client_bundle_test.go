package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// asUser runs a shell command inside h as user, with the user's HOME.
func asUser(ctx context.Context, h *testhost.Host, user, script string) (string, error) {
	out, errb, err := h.Exec(ctx, nil, "runuser", "-u", user, "--", "env", "HOME=/home/"+user, "sh", "-c", script)
	return string(out) + string(errb), err
}

var contextLineRE = regexp.MustCompile(`(?m)^\s*(docker context create (\S+) --docker "[^"]+")$`)

// TestClientBundleForSudoUser is the quick start as a person runs it:
// `sudo tlsdock provision --generate --client-out ~/.docker/myhost` (sudo
// leaves SUDO_USER set) writes a bundle that belongs to that user, and
// the docker context line it prints, run as that user with the host's
// docker CLI, reaches dockerd over mutual TLS through the machine's
// hostname (the default --host listens on 0.0.0.0). Another user cannot
// read the key; an unknown --client-owner exits 2 and changes nothing.
func TestClientBundleForSudoUser(t *testing.T) {
	start := time.Now()
	h := startCISHost(t, "bundle")
	ctx := ctxFor(t, 5*time.Minute)
	run(t, ctx, h, "useradd", "-m", "-s", "/bin/sh", "alice")
	run(t, ctx, h, "useradd", "-m", "-s", "/bin/sh", "bob")
	// What a Debian install writes for the machine's own name.
	run(t, ctx, h, "sh", "-c", `echo "127.0.1.1 $(hostname)" >> /etc/hosts`)
	hostname := strings.TrimSpace(run(t, ctx, h, "hostname"))

	// Bad input first: nothing is written, docker keeps running.
	pid := dockerPID(t, ctx, h)
	stdout, stderr, code := tlsdock(ctx, h, "provision", "--generate", "--client-out", "/home/alice/.docker/myhost", "--client-owner", "mallory")
	if code != 2 || !strings.Contains(stderr, `--client-owner: user "mallory"`) {
		t.Errorf("unknown --client-owner: exit %d, want 2 naming the flag\n%s\n%s", code, stdout, stderr)
	}
	if _, _, err := h.Exec(ctx, nil, "test", "-e", "/home/alice/.docker"); err == nil {
		t.Error("the refused provision wrote into alice's home")
	}
	if got := dockerPID(t, ctx, h); got != pid {
		t.Errorf("docker restarted on bad input (main PID %s -> %s)", pid, got)
	}

	out, errb, err := h.Exec(ctx, nil, "env", "SUDO_USER=alice", "tlsdock", "provision", "--generate", "--client-out", "/home/alice/.docker/myhost")
	if err != nil {
		t.Fatalf("provision under sudo: %v\n%s\n%s", err, out, errb)
	}
	t.Logf("provision printed:\n%s", out)
	const dir = "/home/alice/.docker/myhost"
	wantEnv := "export DOCKER_HOST=tcp://" + hostname + ":2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=" + dir
	if !strings.Contains(string(out), wantEnv) {
		t.Errorf("the hint does not say %q", wantEnv)
	}
	m := contextLineRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no docker context create line in:\n%s", out)
	}
	line, name := m[1], m[2]
	if want := `--docker "host=tcp://` + hostname + ":2376,ca=" + dir + "/ca.pem,cert=" + dir + "/cert.pem,key=" + dir + `/key.pem"`; !strings.HasSuffix(line, want) {
		t.Errorf("context line %q, want it to end with %q", line, want)
	}

	st := run(t, ctx, h, "stat", "-c", "%n %U:%G %a", "/home/alice/.docker", dir, dir+"/ca.pem", dir+"/cert.pem", dir+"/key.pem")
	t.Logf("bundle:\n%s", st)
	want := []string{
		"/home/alice/.docker alice:alice 700",
		dir + " alice:alice 700",
		dir + "/ca.pem alice:alice 444",
		dir + "/cert.pem alice:alice 444",
		dir + "/key.pem alice:alice 400",
	}
	if got := strings.Split(strings.TrimSpace(st), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bundle owners and modes:\n%s\nwant:\n%s", st, strings.Join(want, "\n"))
	}

	// alice pastes the line and uses the context.
	if out, err := asUser(ctx, h, "alice", line+" && docker --context "+name+" version --format '{{.Server.Version}}'"); err != nil || !strings.Contains(out, "20.10.") {
		t.Fatalf("as alice: %s && docker --context %s version: %v\n%s", line, name, err, out)
	}
	if out, err := asUser(ctx, h, "alice", "docker --context "+name+" ps --format '{{.ID}}'"); err != nil {
		t.Errorf("as alice: docker --context %s ps: %v\n%s", name, err, out)
	}
	// The printed export line works too.
	if out, err := asUser(ctx, h, "alice", wantEnv+" && docker version --format '{{.Server.Version}}'"); err != nil || !strings.Contains(out, "20.10.") {
		t.Errorf("as alice, with the export line: %v\n%s", err, out)
	}
	// bob cannot read alice's key.
	if out, err := asUser(ctx, h, "bob", "cat "+dir+"/key.pem"); err == nil {
		t.Errorf("bob read alice's key:\n%s", out)
	}

	// certs client --owner: a bundle for bob, same hint.
	out, errb, err = h.Exec(ctx, nil, "tlsdock", "certs", "client", "bob", "--out", "/home/bob/docker", "--owner", "bob")
	if err != nil || !strings.Contains(string(out), "owned by bob") || !strings.Contains(string(out), "DOCKER_HOST=tcp://"+hostname+":2376 ") {
		t.Fatalf("certs client bob --owner bob: %v\n%s\n%s", err, out, errb)
	}
	m = contextLineRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no docker context create line in:\n%s", out)
	}
	if out, err := asUser(ctx, h, "bob", m[1]+" && docker --context "+m[2]+" version --format '{{.Server.Version}}'"); err != nil || !strings.Contains(out, "20.10.") {
		t.Fatalf("as bob: %v\n%s", err, out)
	}
	t.Logf("client bundles for alice and bob checked in %v", time.Since(start).Round(time.Second))
}
