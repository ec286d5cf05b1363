package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/agent"
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
		return dockerAt(ctx, b, net.JoinHostPort(a.Addr, "2376"), bundle+"/ca.pem", bundle+"/cert.pem", bundle+"/key.pem", args...)
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

// dockerAt runs the docker CLI of from against the API at addr (host:port)
// over mutual TLS, with the CA file, client certificate (or chain) and key
// at those paths in from; it returns stdout and stderr, trimmed.
func dockerAt(ctx context.Context, from *testhost.Host, addr, caFile, certFile, keyFile string, args ...string) (string, error) {
	out, errb, err := from.Exec(ctx, nil, append([]string{"docker", "--tlsverify",
		"--tlscacert", caFile, "--tlscert", certFile, "--tlskey", keyFile, "-H", "tcp://" + addr}, args...)...)
	return strings.TrimSpace(string(out) + string(errb)), err
}

// The fleet's server certificates: 5 minutes long, renewed by step's daemon
// every minute (and at once on its SIGHUP).
const (
	fleetValidity = "5m"
	fleetPeriod   = "1m"
)

// Inside the CA's host: the fleet's root and its admin's client certificate
// (chain) and key, for the docker CLI there.
const (
	fleetRoot      = stepPath + "/certs/root_ca.crt"
	fleetAdminCert = "/root/admin.crt"
	fleetAdminKey  = "/root/admin.key"
)

// fleetHost is a Docker host of the fleet, renewing its server certificate
// with step; serves asks, from the CA's host over the test network, what it
// serves to the admin.
type fleetHost struct {
	renewing
	name string         // its hostname, as docker info shows it
	api  string         // ADDR:2376 on the test network
	ca   *stepCA        // whose host asks
	pool *x509.CertPool // the fleet's root
}

// pingAs does GET /_ping on the host's API from the CA's host as client.
func (f *fleetHost) pingAs(client *tls.Certificate) (*big.Int, error) {
	return pingAt(f.ca.h, f.api, f.pool, client)
}

// TestFleetStepCA: a fleet of three Docker hosts from one step-ca, on one
// test network. The CA's host runs step-ca (its CRL enabled) and is the
// admin's machine: its docker CLI, with a client certificate step issued,
// is the judge of every host. Each Docker host bootstraps step from the
// CA's fingerprint and gets its own 5-minute server certificate (its
// address as SAN) with a one-time token from the CA, its key made there;
// `step ca renew --daemon` renews it in place into tlsdock's source with
// step's file names (root_ca.crt, server.crt, server.key), and the packaged
// tlsdock.service serves every renewal, seen by the CA's host over the
// network. First in daemon-json mode (each renewal restarts dockerd), then
// in proxy mode with step-ca's CRL: a client revoked in step-ca (step ca
// revoke) is refused by every host once the CRL reaches it, the admin still
// gets in, and renewals are hot-swapped with dockerd not restarted. It logs
// the fleet numbers: from a renewal kicked on every host at once to the last
// host serving it, and from the revocation to the last host refusing, each
// measured TLSDOCK_FLEET_ROUNDS times (once by default; make bench-fleet).
func TestFleetStepCA(t *testing.T) {
	start := time.Now()
	testhost.SkipUnlessEnabled(t)
	rounds := fleetRounds(t)
	nw := testhost.StartNetwork(t)
	hosts := testhost.StartNOn(t, nw, 4)
	caHost := hosts[0]
	ctx := ctxFor(t, 20*time.Minute)
	t.Logf("4 hosts up in %v", time.Since(start).Round(time.Millisecond))

	ca := startStepCA(t, ctx, caHost, ":9000", caHost.Addr)
	pool, admin := fleetAdmin(t, ctx, ca)
	fp := ca.fingerprint(t, ctx)
	t.Logf("step-ca at %s (root fingerprint %s) after %v", ca.URL, fp, time.Since(start).Round(time.Millisecond))
	var fleet []*fleetHost
	for _, h := range hosts[1:] {
		fleet = append(fleet, joinFleet(t, ctx, ca, fp, h, pool, &admin))
	}
	t.Logf("fleet %s, %s, %s has its certificates after %v", fleet[0].api, fleet[1].api, fleet[2].api, time.Since(start).Round(time.Millisecond))
	var numbers fleetNumbers

	t.Run("native", func(t *testing.T) {
		provisionFleet(t, ctx, fleet)
		pids := fleetDockerPIDs(t, ctx, fleet)
		fleetDocker(t, ctx, ca, fleet)
		t.Logf("native fleet serving after %v", time.Since(start).Round(time.Millisecond))
		// Each host's scheduled renewal, then renewals of the whole fleet
		// at once.
		logRenewals(t, "scheduled renewal", time.Time{}, fleet, waitRenewals(t, ctx, fleetRenewing(fleet)))
		for range rounds {
			// A rotation comes at least --min-restart-interval (20 s)
			// after the one before: wait that out, so that the number is
			// a rotation's, not that limit's. (step's daemon renews a
			// minute after its last renewal, so the kick comes first.)
			time.Sleep(agent.DefaultMinRestartInterval + 2*time.Second)
			numbers.add("daemon-json: renewal kicked on every host at once, to the last host serving it", kickFleet(t, ctx, fleet))
		}
		for i, f := range fleet {
			if got := dockerPID(t, ctx, f.h); got == pids[i] {
				t.Errorf("%s serves its renewals but docker.service kept PID %s: in daemon-json mode the rotation restarts it", f.h.Name, got)
			}
		}
		fleetDocker(t, ctx, ca, fleet)
		for _, f := range fleet {
			pkgAssertCleanJournal(t, ctx, f.h)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		// Each proxy fetches step-ca's CRL itself, every fleetCRLRefresh:
		// nothing is pushed to the hosts when step-ca revokes.
		provisionFleet(t, ctx, fleet, "--mode", "proxy", "--crl-url", ca.URL+"/crl", "--crl-refresh", fleetCRLRefresh.String())
		pids := fleetDockerPIDs(t, ctx, fleet)
		fleetDocker(t, ctx, ca, fleet)
		t.Logf("proxy fleet serving after %v", time.Since(start).Round(time.Millisecond))
		for i := range rounds {
			// A client of the same CA, let in until step-ca revokes it.
			name := "mallory"
			if i > 0 {
				name += strconv.Itoa(i + 1)
			}
			crt, key := "/root/"+name+".crt", "/root/"+name+".key"
			ca.issue(t, ctx, name, crt, key, "1h")
			revoked := readClient(t, caHost, crt, key)
			for _, f := range fleet {
				if out, err := dockerAt(ctx, caHost, f.api, fleetRoot, crt, key, "version", "--format", "{{.Server.Version}}"); err != nil {
					t.Fatalf("%s, not yet revoked, does not get into %s: %q %v", name, f.api, out, err)
				}
			}
			numbers.add("proxy: step ca revoke to the last host refusing (each fetching the CRL every "+fleetCRLRefresh.String()+")", revokeInFleet(t, ctx, ca, fleet, crt, key, &revoked))
			for _, f := range fleet {
				if out, err := dockerAt(ctx, caHost, f.api, fleetRoot, crt, key, "version", "--format", "{{.Server.Version}}"); err == nil {
					t.Errorf("%s let the docker CLI of %s in after step-ca revoked it: %q", f.api, name, out)
				}
				if j := run(t, ctx, f.h, "journalctl", "-u", "tlsdock.service", "--no-pager", "-o", "cat"); !strings.Contains(j, "refused a revoked client certificate") || !strings.Contains(j, "user="+name+" ") {
					t.Errorf("tlsdock.service of %s did not log %s refused as revoked:\n%s", f.h.Name, name, j)
				}
			}
		}
		for i, f := range fleet {
			status := mustTlsdock(t, ctx, f.h, "status")
			if i == 0 {
				t.Logf("status of %s:\n%s", f.api, status)
			}
			if want := "crl:       " + ca.URL + "/crl number "; !strings.Contains(status, want) || !strings.Contains(status, " by CN=pd e2e Intermediate CA") {
				t.Errorf("status of %s does not show step-ca's CRL, signed by its intermediate, in force:\n%s", f.h.Name, status)
			}
			if want := "crl-url:   " + ca.URL + "/crl: fetched "; !strings.Contains(status, want) {
				t.Errorf("status of %s does not show the fetch of step-ca's CRL (%q):\n%s", f.h.Name, want, status)
			}
		}
		fleetDocker(t, ctx, ca, fleet)

		for range rounds {
			numbers.add("proxy: renewal kicked on every host at once, to the last host serving it", kickFleet(t, ctx, fleet))
		}
		for i, f := range fleet {
			if got := dockerPID(t, ctx, f.h); got != pids[i] {
				t.Errorf("dockerd of %s restarted in proxy mode (MainPID %s -> %s)", f.h.Name, pids[i], got)
			}
			pkgAssertCleanJournal(t, ctx, f.h)
		}
	})
	t.Logf("fleet numbers (3 hosts, %d round(s); TLSDOCK_FLEET_ROUNDS=N for more):\n%s", rounds, numbers.table())
	t.Logf("TestFleetStepCA took %v", time.Since(start).Round(time.Second))
}

// fleetAdmin issues the admin's client certificate on the CA's host and
// returns the root's pool and that client, for pingAt.
func fleetAdmin(t *testing.T, ctx context.Context, ca *stepCA) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	ca.issue(t, ctx, "fleet-admin", fleetAdminCert, fleetAdminKey, "1h")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(mustRead(t, ca.h, fleetRoot)) {
		t.Fatalf("%s holds no certificate", fleetRoot)
	}
	return pool, readClient(t, ca.h, fleetAdminCert, fleetAdminKey)
}

// joinFleet makes h a host of the fleet, as an operator would from the
// CA's URL and root fingerprint: step (and tlsdock with its packaged unit)
// installed, `step ca bootstrap`, then a server certificate for h's address
// (and loopback) into stepSource with step's file names, and a client
// certificate for --probe-client, each from a one-time token of the CA.
func joinFleet(t *testing.T, ctx context.Context, ca *stepCA, fp string, h *testhost.Host, pool *x509.CertPool, admin *tls.Certificate) *fleetHost {
	t.Helper()
	copyStep(t, h, "step")
	installUnit(t, ctx, h)
	stepIn(t, ctx, h, stepClientPath, "ca", "bootstrap", "--ca-url", ca.URL, "--fingerprint", fp)
	run(t, ctx, h, "mkdir", "-p", stepSource, stepProbe)
	tok := ca.token(t, ctx, h.Addr, h.Addr, "127.0.0.1", "localhost")
	stepIn(t, ctx, h, stepClientPath, "ca", "certificate", h.Addr, stepSource+"/server.crt", stepSource+"/server.key",
		"--token", tok, "--not-after", fleetValidity)
	stepIn(t, ctx, h, stepClientPath, "ca", "root", stepSource+"/root_ca.crt")
	tok = ca.token(t, ctx, "tlsdock-probe")
	stepIn(t, ctx, h, stepClientPath, "ca", "certificate", "tlsdock-probe", stepProbe+"/cert.pem", stepProbe+"/key.pem", "--token", tok)
	api := net.JoinHostPort(h.Addr, "2376")
	f := &fleetHost{name: strings.TrimSpace(run(t, ctx, h, "hostname")), api: api, ca: ca, pool: pool}
	f.h = h
	f.serves = func() (*big.Int, error) { return f.pingAs(admin) }
	return f
}

// provisionFleet provisions every host from its step source with args
// (none: daemon-json), step's renewal daemon paused meanwhile (provision
// must not read a source that step is rewriting in place), then has
// tlsdock.service watch the source and step renew it; each host serves its
// source's certificate to the CA's host.
func provisionFleet(t *testing.T, ctx context.Context, fleet []*fleetHost, args ...string) {
	t.Helper()
	for _, f := range fleet {
		h := f.h
		_, _, _ = h.Exec(ctx, nil, "systemctl", "stop", stepRenewer) // not running before the first provision
		pargs := append([]string{"provision", "--certs", stepSource, "--probe-client", stepProbe}, stepNames...)
		out := mustTlsdock(t, ctx, h, append(pargs, args...)...)
		if !strings.Contains(out, "a valid client gets /_ping = OK\n") || strings.Contains(out, "skipped") {
			t.Errorf("provision %s on %s did not probe with the step client:\n%s", strings.Join(args, " "), h.Name, out)
		}
		run(t, ctx, h, "systemctl", "start", "tlsdock.service")
		if err := h.WaitActive(ctx, "tlsdock.service"); err != nil {
			t.Fatal(err)
		}
		f.serial = leafSerial(h, stepSource+"/server.crt")
		startRenewer(t, ctx, h, stepClientPath, fleetPeriod)
		if s, err := f.serves(); err != nil || s.Cmp(f.serial) != 0 {
			t.Fatalf("%s after provision %s: serves serial %x (%v), want the source's %x", f.api, strings.Join(args, " "), s, err, f.serial)
		}
	}
}

// fleetDocker has the admin's docker CLI on the CA's host reach each host's
// dockerd (its own name in docker info) over mutual TLS. In daemon-json
// mode a renewal may be restarting dockerd: each host gets a minute.
func fleetDocker(t *testing.T, ctx context.Context, ca *stepCA, fleet []*fleetHost) {
	t.Helper()
	for _, f := range fleet {
		deadline := time.Now().Add(time.Minute) // a bound only
		for {
			out, err := dockerAt(ctx, ca.h, f.api, fleetRoot, fleetAdminCert, fleetAdminKey, "info", "--format", "{{.Name}}")
			if err == nil && out == f.name {
				break
			}
			if err == nil || time.Now().After(deadline) {
				t.Fatalf("docker info from the CA's host against %s: %q %v, want %q", f.api, out, err, f.name)
			}
			time.Sleep(time.Second)
		}
	}
}

func fleetDockerPIDs(t *testing.T, ctx context.Context, fleet []*fleetHost) []string {
	t.Helper()
	var pids []string
	for _, f := range fleet {
		pids = append(pids, dockerPID(t, ctx, f.h))
	}
	return pids
}

func fleetRenewing(fleet []*fleetHost) []*renewing {
	var rs []*renewing
	for _, f := range fleet {
		rs = append(rs, &f.renewing)
	}
	return rs
}

// kickFleet renews the whole fleet at once (SIGHUP to every host's step
// daemon), waits until every host serves its renewal and returns the fleet
// number: from the kick to the last host serving.
func kickFleet(t *testing.T, ctx context.Context, fleet []*fleetHost) time.Duration {
	t.Helper()
	t0 := time.Now()
	for _, f := range fleet {
		kickRenewer(t, ctx, f.h)
	}
	return logRenewals(t, "renewal kicked on every host at once", t0, fleet, waitRenewals(t, ctx, fleetRenewing(fleet)))
}

// logRenewals logs each host's renewal (from step's write to serving it)
// and returns the fleet's number: from t0 (the first write if zero) to the
// last host serving.
func logRenewals(t *testing.T, what string, t0 time.Time, fleet []*fleetHost, rs []renewal) time.Duration {
	t.Helper()
	var last time.Time
	for i, r := range rs {
		if t0.IsZero() || r.written.Before(t0) {
			t0 = r.written
		}
		last = maxTime(last, r.served)
		t.Logf("%s: %s serves serial %x %v after step wrote it", what, fleet[i].api, r.serial, r.served.Sub(r.written).Round(10*time.Millisecond))
	}
	t.Logf("%s: last host serving it %v after", what, last.Sub(t0).Round(10*time.Millisecond))
	return last.Sub(t0)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// fleetCRLRefresh is the fleet's --crl-refresh: how often each proxy
// fetches step-ca's CRL.
const fleetCRLRefresh = 10 * time.Second

// revokeInFleet revokes the certificate at certPath (key keyPath, both on
// the CA's host) in step-ca and waits until every host, fetching step-ca's
// CRL every fleetCRLRefresh, refuses that client while the admin still
// gets in. It returns the fleet number: from the revocation to the last
// host refusing, which is within the refresh interval (and a fetch) when
// the fetches work.
func revokeInFleet(t *testing.T, ctx context.Context, ca *stepCA, fleet []*fleetHost, certPath, keyPath string, revoked *tls.Certificate) time.Duration {
	t.Helper()
	t0 := time.Now()
	ca.step(t, ctx, "ca", "revoke", "--cert", certPath, "--key", keyPath)
	refused := make([]time.Duration, len(fleet))
	deadline := time.Now().Add(fleetCRLRefresh + time.Minute) // a bound only
	for left := len(fleet); left > 0; {
		for i, f := range fleet {
			if refused[i] != 0 {
				continue
			}
			if _, err := f.pingAs(revoked); err == nil {
				continue
			}
			if _, err := f.serves(); err == nil {
				refused[i] = time.Since(t0)
				left--
				t.Logf("revocation: %s refuses the revoked client %v after step ca revoke", f.api, refused[i].Round(10*time.Millisecond))
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every host refuses the client step-ca revoked (refused after: %v)", refused)
		}
		time.Sleep(50 * time.Millisecond)
	}
	last := slices.Max(refused)
	t.Logf("revocation: last host refusing %v after step ca revoke", last.Round(10*time.Millisecond))
	return last
}

// fleetRounds is how many times TestFleetStepCA measures each fleet
// number: $TLSDOCK_FLEET_ROUNDS (make bench-fleet), 1 if unset.
func fleetRounds(t *testing.T) int {
	t.Helper()
	v := os.Getenv("TLSDOCK_FLEET_ROUNDS")
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 20 {
		t.Fatalf("TLSDOCK_FLEET_ROUNDS=%q: want a number of rounds from 1 to 20", v)
	}
	return n
}

// fleetNumbers are the fleet numbers measured, in the order first seen.
type fleetNumbers struct {
	what []string
	ds   map[string][]time.Duration
}

func (n *fleetNumbers) add(what string, d time.Duration) {
	if n.ds == nil {
		n.ds = map[string][]time.Duration{}
	}
	if _, ok := n.ds[what]; !ok {
		n.what = append(n.what, what)
	}
	n.ds[what] = append(n.ds[what], d)
}

// table renders the numbers as a Markdown table: each event's rounds,
// and the minimum, median and maximum over them.
func (n *fleetNumbers) table() string {
	var b strings.Builder
	b.WriteString("| event | rounds | min | median | max |\n|---|---|---|---|---|\n")
	for _, w := range n.what {
		ds := slices.Sorted(slices.Values(n.ds[w]))
		r := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
		fmt.Fprintf(&b, "| %s | %d | %v | %v | %v |\n", w, len(ds), r(ds[0]), r(ds[len(ds)/2]), r(ds[len(ds)-1]))
	}
	return b.String()
}
