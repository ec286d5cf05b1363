package testhost

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Start boots one test host for t, or skips t unless the process runs as
// root and TLSDOCK_E2E=1 is set. The host has a unique name, logs through
// t.Logf and is closed by t.Cleanup. docker.service is active when it
// returns.
func Start(t testing.TB) *Host {
	t.Helper()
	return StartN(t, 1)[0]
}

// StartN boots n test hosts for t in parallel, like Start. They boot from
// the suite that UseSuite chose for t or a parent of t, else from
// $TLSDOCK_E2E_ROOTFS or DefaultRootFS, and their names start with their
// suite's HostPrefix.
func StartN(t testing.TB, n int) []*Host {
	t.Helper()
	return StartNOn(t, nil, n)
}

// StartNetwork creates a test network for t (see NewNetwork) with
// DefaultSubnet, or skips t like Start. t.Cleanup closes it, after the
// hosts that StartNOn booted on it later.
func StartNetwork(t testing.TB) *Network {
	t.Helper()
	SkipUnlessEnabled(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := NewNetwork(ctx, uniqueName(t.Name()), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	t.Logf("testhost: test network %s (%s, namespace %s)", n.Name, n.Subnet, n.NS)
	return n
}

// StartNOn boots n test hosts for t like StartN, on the test network net
// (none if nil).
func StartNOn(t testing.TB, net *Network, n int) []*Host {
	t.Helper()
	SkipUnlessEnabled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var opt Options
	if s, ok := suiteFor(t.Name()); ok {
		opt.RootFS = s.RootFS
	}
	prefix := SuiteOf(rootFS(opt.RootFS)).HostPrefix
	hosts := make([]*Host, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			hosts[i], errs[i] = Boot(ctx, Options{RootFS: opt.RootFS, Name: prefix + uniqueName(t.Name()), Logf: t.Logf, Network: net})
		})
	}
	wg.Wait()
	for _, h := range hosts {
		if h != nil {
			t.Cleanup(func() {
				if err := h.Close(); err != nil {
					t.Errorf("%v", err)
				}
			})
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return hosts
}

// SkipUnlessEnabled skips t unless the process runs as root and
// TLSDOCK_E2E=1 is set.
func SkipUnlessEnabled(t testing.TB) {
	t.Helper()
	if os.Getenv("TLSDOCK_E2E") != "1" {
		t.Skip("end-to-end test: set TLSDOCK_E2E=1 (and run as root) to run it")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end test: needs root")
	}
}

// uniqueName makes a host name from a test name and random hex.
func uniqueName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 30 {
		s = strings.Trim(s[:30], "-")
	}
	if s == "" {
		s = "t"
	}
	return s + "-" + randomHex(4)
}
