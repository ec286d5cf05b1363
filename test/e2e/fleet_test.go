package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// TestFleetNetwork is the fleet's network: two test hosts on one private
// test network (a bridge in a network namespace of the test's own). Host A
// is provisioned with --generate (dockerd's TLS listener on the default
// tcp://0.0.0.0:2376, its certificate naming A's addresses); host B, with
// A's client bundle, runs its own docker CLI against A's address on the
// network over mutual TLS. Without a client certificate, or over plain
// HTTP, B gets nothing from A, and this machine's own network is not on
// the test network at all.
func TestFleetNetwork(t *testing.T) {
	start := time.Now()
	testhost.SkipUnlessEnabled(t)
	bin := tlsdockBinary(t)
	linksBefore := rootLinks(t)
	var nw *testhost.Network
	// Runs last, after the hosts and the network are closed: nothing of
	// theirs is left on this machine.
	t.Cleanup(func() {
		if nw == nil {
			return
		}
		if _, err := os.Stat("/run/netns/" + nw.NS); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("network namespace %s is still there after Close (%v)", nw.NS, err)
		}
		if after := rootLinks(t); strings.Join(after, " ") != strings.Join(linksBefore, " ") {
			t.Errorf("this machine's links were %v before the test network, %v after it", linksBefore, after)
		}
	})
	nw = testhost.StartNetwork(t)
	hosts := testhost.StartNOn(t, nw, 2)
	a, b := hosts[0], hosts[1]
	ctx := ctxFor(t, 2*time.Minute)
	t.Logf("hosts up in %v: A %s at %s, B %s at %s", time.Since(start).Round(time.Millisecond), a.Name, a.Addr, b.Name, b.Addr)
	for _, h := range hosts {
		addr, err := netip.ParseAddr(h.Addr)
		if err != nil || !nw.Subnet.Contains(addr) {
			t.Fatalf("host %s has address %q, want one in %s", h.Name, h.Addr, nw.Subnet)
		}
		// eth0 carries the address; loopback is still up.
		out := run(t, ctx, h, "ip", "-o", "-4", "addr", "show")
		if !regexp.MustCompile(`(?m)^\d+: eth0\s+inet `+regexp.QuoteMeta(h.Addr)+`/`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^\d+: lo\s+inet 127\.0\.0\.1/8`).MatchString(out) {
			t.Fatalf("addresses in host %s:\n%s", h.Name, out)
		}
	}
	if a.Addr == b.Addr {
		t.Fatalf("both hosts have %s", a.Addr)
	}

	if err := a.CopyIn(bin, "/usr/local/bin/tlsdock", 0o755); err != nil {
		t.Fatal(err)
	}
	res := parseResult(t, mustTlsdock(t, ctx, a, "provision", "--generate", "--client-out", "/root/client", "--json"))
	if !res.Changed || !res.Restarted {
		t.Fatalf("provision on A: %+v", res)
	}
	t.Logf("A provisioned after %v", time.Since(start).Round(time.Millisecond))

	// A's client bundle, copied to B.
	const bundle = "/root/fleet-a"
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		data := mustRead(t, a, "/root/client/"+f)
		if err := b.WriteFile(bundle+"/"+f, data, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	endpoint := "tcp://" + net.JoinHostPort(a.Addr, "2376")
	dockerB := func(args ...string) (string, error) {
		out, errb, err := b.Exec(ctx, nil, append([]string{"docker", "--tlsverify",
			"--tlscacert", bundle + "/ca.pem", "--tlscert", bundle + "/cert.pem", "--tlskey", bundle + "/key.pem",
			"-H", endpoint}, args...)...)
		return strings.TrimSpace(string(out) + string(errb)), err
	}
	out, err := dockerB("version", "--format", "{{.Server.Version}}")
	if err != nil || !strings.HasPrefix(out, a.Suite.Docker) {
		t.Fatalf("docker version from B against %s: %q %v", endpoint, out, err)
	}
	// It is A's dockerd that answers, not B's own.
	nameA := strings.TrimSpace(run(t, ctx, a, "hostname"))
	if out, err := dockerB("info", "--format", "{{.Name}}"); err != nil || out != nameA {
		t.Fatalf("docker info from B against %s: name %q %v, want A's %q", endpoint, out, err, nameA)
	}
	t.Logf("B's docker CLI reached A over mutual TLS after %v", time.Since(start).Round(time.Millisecond))

	// From B without the bundle: no TLS, and TLS without a client
	// certificate, both get nothing.
	curlB := func(args ...string) (string, error) {
		out, errb, err := b.Exec(ctx, nil, append([]string{"curl", "-sS", "--max-time", "5"}, args...)...)
		return strings.TrimSpace(string(out) + string(errb)), err
	}
	pingURL := net.JoinHostPort(a.Addr, "2376") + "/_ping"
	if out, _ := curlB("http://" + pingURL); out == "OK" || !strings.Contains(out, "HTTPS") {
		t.Errorf("plain HTTP from B to A: %q, want the TLS server's refusal", out)
	} else {
		t.Logf("plain HTTP from B to A: %q", out)
	}
	if out, err := curlB("-k", "https://"+pingURL); err == nil || out == "OK" {
		t.Errorf("HTTPS without a client certificate from B to A: %q %v", out, err)
	}
	if out, err := curlB("--cacert", bundle+"/ca.pem", "--cert", bundle+"/cert.pem", "--key", bundle+"/key.pem", "https://"+pingURL); err != nil || out != "OK" {
		t.Errorf("curl from B to A with the bundle: %q %v", out, err)
	}

	// This machine is not on the network: its own network namespace has
	// the links it had before the test (the veth pairs went from the
	// network's namespace straight into the hosts'), none with an address
	// in the subnet, and its route to A is its default route, not a link
	// to the bridge. No packet is sent: behind the default route, this
	// machine's network may answer any address (it does here).
	if after := rootLinks(t); strings.Join(after, " ") != strings.Join(linksBefore, " ") {
		t.Errorf("this machine's links were %v before the test network, %v with it", linksBefore, after)
	}
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ia := range ifAddrs {
		if ipn, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && nw.Subnet.Contains(ip.Unmap()) {
				t.Errorf("this machine has %v, in the test network's %s", ipn, nw.Subnet)
			}
		}
	}
	route, err := exec.CommandContext(ctx, "ip", "-o", "route", "get", a.Addr).CombinedOutput()
	t.Logf("this machine's route to A: %s", bytes.TrimSpace(route))
	if m := regexp.MustCompile(`\bdev (\S+)`).FindSubmatch(route); err == nil && m != nil && !slices.Contains(linksBefore, string(m[1])) {
		t.Errorf("this machine routes %s through %s, a link that came with the test network", a.Addr, m[1])
	}
	t.Logf("fleet network checked in %v", time.Since(start).Round(time.Millisecond))
}

// rootLinks lists the names of the links in this machine's network
// namespace, sorted.
func rootLinks(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return names
}
