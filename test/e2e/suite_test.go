package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// suiteTest is a test body that runs on another suite.
type suiteTest struct {
	name string
	run  func(*testing.T)
}

// coreTests are the end-to-end tests that run on every Debian suite of
// `make test`, not only on the default one (bookworm): the test host
// itself, provision in each mode with revert and rollback, rotation by
// tlsdock run, proxy mode and the .deb's life cycle. Each is the test of
// the same name, run again with its hosts booted from another suite's
// rootfs (testhost.UseSuite).
var coreTests = []suiteTest{
	{"HostRecipe", TestHostRecipe},
	// daemon-json mode through docker.socket, a container kept, revert.
	{"ProvisionGenerate", TestProvisionGenerate},
	// daemon-json mode over a daemon.json with hosts that dockerd refuses.
	{"ProvisionHostsInDaemonJSON", TestProvisionHostsInDaemonJSON},
	{"ProvisionPortInUseRollsBack", TestProvisionPortInUseRollsBack},
	// docker.socket holds the TLS listener: two rotations under load, to
	// dropin mode and back, revert.
	{"SocketProvision", TestSocketProvision},
	// dropin mode with the openssl recipe's certificates.
	{"ProvisionOpenSSLDropIn", TestProvisionOpenSSLDropIn},
	{"Proxy", TestProxy},
	// proxy mode's guard, the Docker 28 CLI through it: dockerd 26.1
	// takes newer request shapes (API 1.45) than 20.10 (1.41).
	{"GuardedDockerCLI", TestGuardedDockerCLI},
	{"RunServesANewSet", TestRunServesANewSet},
	{"PackageLifecycle", TestPackageLifecycle},
	// DOCKER_OPTS="-H tcp://0.0.0.0:2375" taken over in each mode: trixie's
	// docker.service still passes $DOCKER_OPTS from /etc/default/docker.
	{"EnvTakeOverDockerOpts", TestEnvTakeOverDockerOpts},
	// CIS 3.9-3.14 on the configured TLS paths in both native modes.
	{"CISPaths", TestCISPaths},
	// daemon-json, then dropin mode, then revert: make e2e-sid's smoke.
	{"SmokeNoContainers", smokeNoContainers},
}

// sidTests are what make e2e-sid runs on Debian sid: the smoke, and core
// tests that start no container (runc cannot start one there).
var sidTests = []suiteTest{
	{"SmokeNoContainers", smokeNoContainers},
	{"ProvisionHostsInDaemonJSON", TestProvisionHostsInDaemonJSON},
	{"ProvisionOpenSSLDropIn", TestProvisionOpenSSLDropIn},
	{"RunServesANewSet", TestRunServesANewSet},
	{"PackageLifecycle", TestPackageLifecycle},
}

// TestCoreTrixie runs the core tests on Debian 13 (docker.io 26.1,
// systemd 257).
func TestCoreTrixie(t *testing.T) {
	runOn(t, testhost.Trixie, coreTests)
}

// runOn runs each of tests as a subtest whose hosts boot from s.
func runOn(t *testing.T, s testhost.Suite, tests []suiteTest) {
	testhost.SkipUnlessEnabled(t)
	if err := s.Ready(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			testhost.UseSuite(t, s)
			c.run(t)
		})
	}
	t.Logf("the tests on %s took %v", s.Name, time.Since(start).Round(time.Second))
}

// TestSidSmoke is `make e2e-sid`: on Debian sid (docker.io and systemd as
// they move; the rootfs built on demand), the no-container smoke
// (daemon-json and then dropin mode, the docker CLI over mutual TLS,
// revert) and the core tests that start no container (sidTests). It runs
// only with TLSDOCK_E2E_SID=1.
func TestSidSmoke(t *testing.T) {
	if os.Getenv("TLSDOCK_E2E_SID") != "1" {
		t.Skip("Debian sid smoke: run make e2e-sid (TLSDOCK_E2E_SID=1)")
	}
	runOn(t, testhost.Sid, sidTests)
}

// smokeNoContainers provisions a fresh host in daemon-json mode, moves it
// to dropin mode and reverts it, then provisions it in proxy mode and
// reverts it again, with the docker CLI from outside over mutual TLS after
// each provision, and no container anywhere.
func smokeNoContainers(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	t.Logf("%s: %s, %s", h.Suite.Name,
		strings.TrimSpace(run(t, ctx, h, "dockerd", "--version")),
		strings.SplitN(run(t, ctx, h, "systemctl", "--version"), "\n", 2)[0])
	daemonJSON, _ := h.ReadFile("/etc/docker/daemon.json")

	var bundle string
	viaTLS := func(t *testing.T) {
		t.Helper()
		out, err := remoteDocker(ctx, t, h, bundle, "", "version", "--format", "{{.Server.Version}}")
		if err != nil || strings.TrimSpace(out) == "" || !strings.HasPrefix(out, h.Suite.Docker) {
			t.Fatalf("docker version over mutual TLS: %q %v", out, err)
		}
		if _, err := remoteDocker(ctx, t, h, bundle, "", "info"); err != nil {
			t.Fatalf("docker info over mutual TLS: %v", err)
		}
		if out, err := remoteDocker(ctx, t, h, "", "", "version", "--format", "{{.Server.Version}}"); err == nil {
			t.Fatalf("docker without a client certificate got in: %q", out)
		}
		if out, _ := curlOutside(ctx, h, "http://127.0.0.1:2376/_ping"); out == "OK" {
			t.Fatal("plain HTTP got OK")
		}
		run(t, ctx, h, "docker", "info") // the local socket
	}
	// closed: nothing answers on 2376 any more, not even a client with
	// the bundle (one without a certificate is refused while it serves).
	closed := func(t *testing.T) {
		t.Helper()
		if out, err := curlOutside(ctx, h, "--cacert", bundle+"/ca.pem", "--cert", bundle+"/cert.pem", "--key", bundle+"/key.pem", "https://127.0.0.1:2376/_ping"); err == nil || out == "OK" {
			t.Errorf("2376 still answers after revert: %q", out)
		}
	}
	checksOK := func(t *testing.T, res provisionResult, restart bool) {
		t.Helper()
		if !res.Changed || res.Restarted != restart || len(res.Checks) == 0 {
			t.Fatalf("provision: %+v", res)
		}
		for _, c := range res.Checks {
			if !c.OK {
				t.Errorf("check failed: %+v", c)
			}
		}
	}

	outer := t
	if !t.Run("daemon-json", func(t *testing.T) {
		checksOK(t, parseResult(t, mustTlsdock(t, ctx, h, "provision", "--generate", "--client-out", "/root/client", "--json")), true)
		bundle = fetchBundle(outer, h, "/root/client") // in outer's TempDir: it outlives this subtest
		viaTLS(t)
	}) {
		return
	}
	if !t.Run("dropin", func(t *testing.T) {
		checksOK(t, parseResult(t, mustTlsdock(t, ctx, h, "provision", "--generate", "--mode", "dropin", "--client-out", "/root/client", "--json")), true)
		if got := string(mustRead(t, h, "/etc/systemd/system/docker.service.d/zz-tlsdock.conf")); !strings.Contains(got, "-H tcp://0.0.0.0:2376 --tlsverify") {
			t.Errorf("drop-in:\n%s", got)
		}
		viaTLS(t)
	}) {
		return
	}
	if !t.Run("revert", func(t *testing.T) {
		mustTlsdock(t, ctx, h, "revert")
		got, _ := h.ReadFile("/etc/docker/daemon.json")
		if string(got) != string(daemonJSON) {
			t.Errorf("daemon.json after revert:\n%s\nbefore provision:\n%s", got, daemonJSON)
		}
		for _, p := range []string{"/etc/systemd/system/docker.service.d/zz-tlsdock.conf", "/etc/docker/ssl"} {
			if _, _, err := h.Exec(ctx, nil, "test", "!", "-e", p); err != nil {
				t.Errorf("%s still exists after revert", p)
			}
		}
		closed(t)
		run(t, ctx, h, "docker", "info")
	}) {
		return
	}
	// Proxy mode from the host as it was: dockerd has no TCP listener to
	// give up, so it is not restarted.
	t.Run("proxy", func(t *testing.T) {
		checksOK(t, parseResult(t, mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--generate", "--client-out", "/root/client", "--json")), false)
		if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "tlsdock.service")); got != "active" {
			t.Fatalf("tlsdock.service is %s", got)
		}
		bundle = fetchBundle(outer, h, "/root/client")
		viaTLS(t)
		mustTlsdock(t, ctx, h, "revert")
		closed(t)
		if got, _ := h.ReadFile("/etc/docker/daemon.json"); string(got) != string(daemonJSON) {
			t.Errorf("daemon.json after revert:\n%s\nbefore provision:\n%s", got, daemonJSON)
		}
		run(t, ctx, h, "docker", "info")
	})
}
