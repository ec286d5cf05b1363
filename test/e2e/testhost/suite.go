package testhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Suite is a Debian release that test hosts boot: where setup-host.sh
// caches its rootfs, and what tests may expect of it.
type Suite struct {
	// Name is Debian's code name: bookworm, trixie, sid.
	Name string
	// RootFS is the cached rootfs that setup-host.sh builds for the suite.
	RootFS string
	// Docker starts the version that its dockerd reports ("20.10."), or is
	// empty where it moves (sid).
	Docker string
	// API is the highest Docker API version its dockerd speaks ("1.41"),
	// or empty where it moves (sid).
	API string
	// Systemd is its systemd's major version ("252"), or empty where it
	// moves (sid).
	Systemd string
	// HostPrefix starts the names of the hosts that Start boots for a test
	// with this suite (see UseSuite), so that they are told apart in ps,
	// machinectl and /var/tmp/tlsdock-e2e.
	HostPrefix string
	// UnifiedHierarchy: the guest's systemd boots on this machine's cgroup
	// v1 only with nspawn's unified hierarchy (cgroup v2), and runc cannot
	// start containers inside it (bpf_prog_query(BPF_CGROUP_DEVICE) fails),
	// so tests on it run no containers.
	UnifiedHierarchy bool
}

// The suites that setup-host.sh builds: Bookworm by `make e2e-setup` (the
// default rootfs), Trixie by `make e2e-setup` too, Sid by `make e2e-sid`.
var (
	Bookworm = Suite{Name: "bookworm", RootFS: DefaultRootFS, Docker: "20.10.", API: "1.41", Systemd: "252"}
	Trixie   = Suite{Name: "trixie", RootFS: DefaultRootFS + "-trixie", Docker: "26.1.", API: "1.45", Systemd: "257", HostPrefix: "tx-"}
	Sid      = Suite{Name: "sid", RootFS: DefaultRootFS + "-sid", HostPrefix: "sid-", UnifiedHierarchy: true}
)

var knownSuites = []Suite{Bookworm, Trixie, Sid}

// SuiteOf tells which suite the rootfs at root holds, from its
// /etc/debian_version ("trixie/sid" on sid) and /etc/os-release
// (VERSION_CODENAME). The suite's RootFS is root. A release it does not
// know comes back with only Name and RootFS set.
func SuiteOf(root string) Suite {
	name := ""
	if b, err := os.ReadFile(filepath.Join(root, "etc/debian_version")); err == nil &&
		strings.HasSuffix(strings.TrimSpace(string(b)), "/sid") {
		name = "sid"
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/os-release")); err == nil && name == "" {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok {
				name = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
	}
	for _, s := range knownSuites {
		if s.Name == name {
			s.RootFS = root
			return s
		}
	}
	return Suite{Name: name, RootFS: root}
}

// suiteByTest maps a test's name to the suite that UseSuite chose for it.
var suiteByTest struct {
	sync.Mutex
	m map[string]Suite
}

// UseSuite makes Start and StartN boot the hosts of t, and of its
// subtests, from s.RootFS, with names that start with s.HostPrefix. It lets
// one test body run on several suites:
//
//	t.Run("trixie", func(t *testing.T) { testhost.UseSuite(t, testhost.Trixie); TestProxy(t) })
func UseSuite(t testing.TB, s Suite) {
	t.Helper()
	suiteByTest.Lock()
	defer suiteByTest.Unlock()
	if suiteByTest.m == nil {
		suiteByTest.m = map[string]Suite{}
	}
	name := t.Name()
	suiteByTest.m[name] = s
	t.Cleanup(func() {
		suiteByTest.Lock()
		defer suiteByTest.Unlock()
		delete(suiteByTest.m, name)
	})
}

// suiteFor returns the suite chosen by UseSuite for the test called name or
// the closest of its parents.
func suiteFor(name string) (Suite, bool) {
	suiteByTest.Lock()
	defer suiteByTest.Unlock()
	for {
		if s, ok := suiteByTest.m[name]; ok {
			return s, true
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return Suite{}, false
		}
		name = name[:i]
	}
}

// Ready says whether s's rootfs has been built, and if not, how to build it.
func (s Suite) Ready() error {
	if _, err := os.Stat(filepath.Join(s.RootFS, rootFSMarker)); err != nil {
		return fmt.Errorf("the %s rootfs %s is not ready (no %s): run test/e2e/setup-host.sh %s as root (make e2e-setup builds bookworm and trixie)",
			s.Name, s.RootFS, rootFSMarker, s.Name)
	}
	return nil
}
