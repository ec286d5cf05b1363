package testhost

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netCrashChild makes TestNetworkCrashChild create a test network with a
// host on it and exit without closing either, as a killed test run would.
const netCrashChild = "TLSDOCK_E2E_NET_CRASH_CHILD"

func TestNetworkCrashChild(t *testing.T) {
	if os.Getenv(netCrashChild) == "" {
		t.Skip("helper for TestNetworkCleanupStale")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := NewNetwork(ctx, os.Getenv(netCrashChild), DefaultSubnet)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Boot(ctx, Options{Name: n.Name + "-h", Network: n})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = os.Stdout.WriteString("CRASHED " + h.Addr + "\n")
	os.Exit(3) // no Close: the namespace, the host and its veth pair stay
}

// TestNetworkCleanupStale: a process that dies with a test network and a
// host on it leaves them behind; CleanupStale removes the namespace and the
// host, and leaves a live network alone.
func TestNetworkCleanupStale(t *testing.T) {
	live := StartNetwork(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	name := "crashnet-" + randomHex(4)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNetworkCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), netCrashChild+"="+name)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "CRASHED 10.") {
		t.Fatalf("crash child: %v\n%s", err, out)
	}
	ns := filepath.Join(netnsDir, netnsPrefix+name)
	if _, err := os.Stat(ns); err != nil {
		t.Fatalf("the crashed network left no namespace: %v", err)
	}
	if links, err := exec.CommandContext(ctx, "ip", "-n", netnsPrefix+name, "-o", "link").CombinedOutput(); err != nil || !strings.Contains(string(links), "veth2@") {
		t.Fatalf("links in the crashed network: %v\n%s", err, links)
	}

	if err := CleanupStale(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ns, netLockPath(name), lockPath(name + "-h"), filepath.Join(WorkRoot, name+"-h")} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after CleanupStale (%v)", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(netnsDir, live.NS)); err != nil {
		t.Errorf("CleanupStale removed the live network's namespace: %v", err)
	}
	if _, err := os.Stat(netLockPath(live.Name)); err != nil {
		t.Errorf("CleanupStale removed the live network's lock: %v", err)
	}
}
