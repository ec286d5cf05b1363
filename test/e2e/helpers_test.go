package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// tlsdockBinary builds tlsdock once per test process, with its test hooks.
func tlsdockBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tlsdock-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tlsdock")
		// The test hooks (TLSDOCK_TEST_PAUSE_AT, for the crash tests) exist
		// only with this tag; the shipped binary has none.
		cmd := exec.Command("go", "build", "-tags", "tlsdock_testhooks", "-o", binPath, "./cmd/tlsdock")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building tlsdock: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// startWithTlsdock boots a test host with tlsdock installed as
// /usr/local/bin/tlsdock.
func startWithTlsdock(t *testing.T) *testhost.Host {
	t.Helper()
	bin := tlsdockBinary(t)
	h := testhost.Start(t)
	if err := h.CopyIn(bin, "/usr/local/bin/tlsdock", 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

var exitRE = regexp.MustCompile(`exit code (\d+)`)

// tlsdock runs tlsdock inside h and returns its output and exit code.
func tlsdock(ctx context.Context, h *testhost.Host, args ...string) (stdout, stderr string, code int) {
	out, errb, err := h.Exec(ctx, nil, append([]string{"tlsdock"}, args...)...)
	if err != nil {
		code = -1
		if m := exitRE.FindStringSubmatch(err.Error()); m != nil {
			code, _ = strconv.Atoi(m[1])
		}
	}
	return string(out), string(errb), code
}

// mustTlsdock runs tlsdock and fails the test unless it exits 0.
func mustTlsdock(t *testing.T, ctx context.Context, h *testhost.Host, args ...string) string {
	t.Helper()
	out, errb, code := tlsdock(ctx, h, args...)
	if code != 0 {
		t.Fatalf("tlsdock %s: exit %d\nstdout:\n%s\nstderr:\n%s\njournal:\n%s", strings.Join(args, " "), code, out, errb, h.Journal(ctx, "docker.service", 30))
	}
	return out
}

// dockerPID is docker.service's main PID inside h.
func dockerPID(t *testing.T, ctx context.Context, h *testhost.Host) string {
	t.Helper()
	return strings.TrimSpace(run(t, ctx, h, "systemctl", "show", "-p", "MainPID", "--value", "docker.service"))
}

// fetchBundle copies a client bundle written inside h to a directory on
// this machine, for this machine's docker CLI.
func fetchBundle(t *testing.T, h *testhost.Host, guestDir string, names ...string) string {
	t.Helper()
	if len(names) == 0 {
		names = []string{"ca.pem", "cert.pem", "key.pem"}
	}
	dir := t.TempDir()
	for _, n := range names {
		data, err := h.ReadFile(guestDir + "/" + n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// remoteDocker runs this machine's docker CLI (another binary, another TLS
// stack) in h's network namespace against tcp://127.0.0.1:2376.
func remoteDocker(ctx context.Context, t *testing.T, h *testhost.Host, certDir string, stdin string, args ...string) (string, error) {
	env := []string{"DOCKER_HOST=tcp://127.0.0.1:2376", "DOCKER_CONFIG=" + t.TempDir()}
	if certDir != "" {
		env = append(env, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+certDir)
	}
	var in *strings.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	var out []byte
	var err error
	if in != nil {
		out, _, err = h.ExecNet(ctx, env, in, append([]string{"/usr/local/bin/docker"}, args...)...)
	} else {
		out, _, err = h.ExecNet(ctx, env, nil, append([]string{"/usr/local/bin/docker"}, args...)...)
	}
	return string(out), err
}

// curlOutside runs this machine's curl in h's network namespace.
func curlOutside(ctx context.Context, h *testhost.Host, args ...string) (string, error) {
	out, _, err := h.ExecNet(ctx, nil, nil, append([]string{"curl", "-sS", "--max-time", "5"}, args...)...)
	return string(out), err
}

// startSleeper starts a long-running container and returns its ID.
func startSleeper(t *testing.T, ctx context.Context, h *testhost.Host) string {
	t.Helper()
	if err := h.ImportTinyImage(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(run(t, ctx, h, "docker", "run", "-d", "--name", "sleeper", "tiny", "sleep"))
}

// containerStarted returns the container's StartedAt, which changes if it
// was restarted.
func containerStarted(t *testing.T, ctx context.Context, h *testhost.Host, id string) string {
	t.Helper()
	return strings.TrimSpace(run(t, ctx, h, "docker", "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", id))
}
