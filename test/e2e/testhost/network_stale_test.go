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

// TestNetworkPowerCycle: after PowerLoss the host's veth pair is gone with
// its network namespace; PowerOn gives the new guest the same address and a
// new pair under the same name; Close removes it.
func TestNetworkPowerCycle(t *testing.T) {
	n := StartNetwork(t)
	h := StartNOn(t, n, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	links := func() string {
		out, err := exec.CommandContext(ctx, "ip", "-n", n.NS, "-o", "link", "show", "master", bridgeName).CombinedOutput()
		if err != nil {
			t.Fatalf("links on %s: %v\n%s", n.NS, err, out)
		}
		return string(out)
	}
	guestAddr := func() string {
		out, _, err := h.ExecNet(ctx, nil, nil, "ip", "-o", "-4", "addr", "show", "dev", guestIf)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	addr := h.Addr
	if !strings.Contains(links(), "veth2@") || !strings.Contains(guestAddr(), " "+addr+"/24 ") {
		t.Fatalf("after boot: bridge ports %q, eth0 %q", links(), guestAddr())
	}
	if err := h.PowerLoss(); err != nil {
		t.Fatal(err)
	}
	// The pair goes with the dead guest's namespace, asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(links(), "veth2@") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if l := links(); strings.Contains(l, "veth2@") {
		t.Fatalf("after PowerLoss the bridge still has %q", l)
	}
	if err := h.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	if h.Addr != addr || !strings.Contains(links(), "veth2@") || !strings.Contains(guestAddr(), " "+addr+"/24 ") {
		t.Fatalf("after PowerOn: address %s (was %s), bridge ports %q, eth0 %q", h.Addr, addr, links(), guestAddr())
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if l := links(); l != "" {
		t.Errorf("after Close the bridge still has %q", l)
	}
}
