package e2e

import (
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// coreTests are the end-to-end tests that run on every Debian suite of
// `make test`, not only on the default one (bookworm): the test host
// itself, provision in each mode with revert and rollback, rotation by
// tlsdock run, proxy mode and the .deb's life cycle. Each is the test of
// the same name, run again with its hosts booted from another suite's
// rootfs (testhost.UseSuite).
var coreTests = []struct {
	name string
	run  func(*testing.T)
}{
	{"HostRecipe", TestHostRecipe},
	// daemon-json mode through docker.socket, a container kept, revert.
	{"ProvisionGenerate", TestProvisionGenerate},
	// daemon-json mode over a daemon.json with hosts that dockerd refuses.
	{"ProvisionHostsInDaemonJSON", TestProvisionHostsInDaemonJSON},
	{"ProvisionPortInUseRollsBack", TestProvisionPortInUseRollsBack},
	// dropin mode with the openssl recipe's certificates.
	{"ProvisionOpenSSLDropIn", TestProvisionOpenSSLDropIn},
	{"Proxy", TestProxy},
	{"RunServesANewSet", TestRunServesANewSet},
	{"PackageLifecycle", TestPackageLifecycle},
}

// TestCoreTrixie runs the core tests on Debian 13 (docker.io 26.1,
// systemd 257).
func TestCoreTrixie(t *testing.T) {
	runCore(t, testhost.Trixie)
}

func runCore(t *testing.T, s testhost.Suite) {
	testhost.SkipUnlessEnabled(t)
	start := time.Now()
	for _, c := range coreTests {
		t.Run(c.name, func(t *testing.T) {
			testhost.UseSuite(t, s)
			c.run(t)
		})
	}
	t.Logf("the core tests on %s took %v", s.Name, time.Since(start).Round(time.Second))
}
