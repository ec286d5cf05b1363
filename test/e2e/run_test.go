package e2e

import (
	"context"
	"crypto/rand"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// The rotation daemon on a real host: `tlsdock run` as a Type=notify unit
// (systemd-run returns once it sent READY=1), certificate sets written into
// /etc/tlsdock/certs the way issuers do (rename into place), and the serial
// that 127.0.0.1:2376 presents read with openssl inside the host.

const (
	rotSource = "/etc/tlsdock/certs"
	rotUnit   = "tlsdock-run"
)

// rotIssuer is a test CA that issues server sets and has one client.
type rotIssuer struct {
	t  *testing.T
	ca *certstore.CA
}

type rotSet struct {
	ca, cert, key []byte
	serial        *big.Int
}

func newRotIssuer(t *testing.T) *rotIssuer {
	t.Helper()
	ca, err := certstore.NewCA(certstore.ECDSAP256, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &rotIssuer{t: t, ca: ca}
}

func (i *rotIssuer) issue() rotSet {
	i.t.Helper()
	certPEM, keyPEM, err := i.ca.Issue(certstore.IssueRequest{
		CommonName: "dockerhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 90 * 24 * time.Hour, Server: true,
	}, rand.Reader)
	if err != nil {
		i.t.Fatal(err)
	}
	s, err := certstore.ParseSet(i.ca.CertPEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		i.t.Fatal(err)
	}
	return rotSet{ca: i.ca.CertPEM, cert: certPEM, key: keyPEM, serial: s.Cert.SerialNumber}
}

// write puts s into the source, each file renamed into place, key last.
func (s rotSet) write(t *testing.T, h *testhost.Host, files ...string) {
	t.Helper()
	if len(files) == 0 {
		files = []string{"ca.pem", "server-cert.pem", "server-key.pem"}
	}
	data := map[string][]byte{"ca.pem": s.ca, "server-cert.pem": s.cert, "server-key.pem": s.key}
	for _, f := range files {
		mode := os.FileMode(0o644)
		if f == "server-key.pem" {
			mode = 0o600
		}
		if err := h.WriteFile(rotSource+"/"+f, data[f], mode); err != nil {
			t.Fatal(err)
		}
	}
}

// rotHost boots a host with tlsdock, a first set in the source and a
// client of the test CA in /root/probe, provisions it with that set and
// starts the daemon, whose startup reconcile then has nothing to do (so no
// rotation happened just before the test's own).
func rotHost(t *testing.T, ctx context.Context) (*testhost.Host, *rotIssuer, rotSet) {
	t.Helper()
	h := startWithTlsdock(t)
	iss := newRotIssuer(t)
	certPEM, keyPEM, err := iss.ca.Issue(certstore.IssueRequest{CommonName: "probe", KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 24 * time.Hour}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"/root/probe/cert.pem": certPEM, "/root/probe/key.pem": keyPEM} {
		if err := h.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s0 := iss.issue()
	s0.write(t, h)
	mustTlsdock(t, ctx, h, "provision", "--certs", rotSource, "--probe-client", "/root/probe")
	before := rotDockerStarts(t, ctx, h)
	rotStartDaemon(t, ctx, h)
	rotIdle(t, ctx, h, s0.serial)
	if got := rotDockerStarts(t, ctx, h) - before; got != 0 {
		t.Fatalf("the startup reconcile restarted docker %d times though the installed set is the source's", got)
	}
	return h, iss, s0
}

// rotStartDaemon starts `tlsdock run` as a transient Type=notify service.
func rotStartDaemon(t *testing.T, ctx context.Context, h *testhost.Host) {
	t.Helper()
	_, _, _ = h.Exec(ctx, nil, "systemctl", "reset-failed", rotUnit)
	if _, errb, err := h.Exec(ctx, nil, "systemd-run", "--unit="+rotUnit, "--service-type=notify", "-p", "TimeoutStartSec=5min",
		"/usr/local/bin/tlsdock", "run", "--certs", rotSource, "--probe-client", "/root/probe"); err != nil {
		t.Fatalf("starting tlsdock run: %v\n%s\n%s", err, errb, h.Journal(ctx, rotUnit, 40))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tlsdock run's journal:\n%s", h.Journal(context.Background(), rotUnit, 60))
		}
	})
}

// rotServed returns the serial of the certificate 127.0.0.1:2376 presents.
func rotServed(ctx context.Context, h *testhost.Host) (*big.Int, error) {
	out, _, err := h.Exec(ctx, nil, "sh", "-c",
		"openssl s_client -connect 127.0.0.1:2376 -cert /root/probe/cert.pem -key /root/probe/key.pem </dev/null 2>/dev/null | openssl x509 -noout -serial")
	if err != nil {
		return nil, err
	}
	hex, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "serial=")
	n, ok2 := new(big.Int).SetString(hex, 16)
	if !ok || !ok2 {
		return nil, os.ErrInvalid
	}
	return n, nil
}

// rotWaitServed waits until the endpoint presents serial; ctx bounds the
// wait (a failure bound, not a timing requirement). It returns how long it
// took.
func rotWaitServed(t *testing.T, ctx context.Context, h *testhost.Host, serial *big.Int) time.Duration {
	t.Helper()
	start := time.Now()
	var last *big.Int
	var lastErr error
	for {
		got, err := rotServed(ctx, h)
		if err == nil && got.Cmp(serial) == 0 {
			return time.Since(start)
		}
		last, lastErr = got, err
		select {
		case <-ctx.Done():
			t.Fatalf("127.0.0.1:2376 never served serial %x (last %x, %v); status %q", serial, last, lastErr, rotStatus(h))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rotStatus is the daemon's STATUS= line.
func rotStatus(h *testhost.Host) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _, _ := h.Exec(ctx, nil, "systemctl", "show", "-p", "StatusText", "--value", rotUnit)
	return strings.TrimSpace(string(out))
}

// rotWaitStatus waits until the daemon's STATUS= starts with prefix.
func rotWaitStatus(t *testing.T, ctx context.Context, h *testhost.Host, prefix string) string {
	t.Helper()
	for {
		if s := rotStatus(h); strings.HasPrefix(s, prefix) {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("STATUS never started with %q; it is %q", prefix, rotStatus(h))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rotIdle waits until the daemon reports it serves serial and has nothing
// left to do.
func rotIdle(t *testing.T, ctx context.Context, h *testhost.Host, serial *big.Int) {
	t.Helper()
	rotWaitStatus(t, ctx, h, "watching "+rotSource+"; serving serial "+serial.Text(16)+",")
}

// rotDockerStarts counts the starts of dockerd so far.
func rotDockerStarts(t *testing.T, ctx context.Context, h *testhost.Host) int {
	t.Helper()
	out := run(t, ctx, h, "sh", "-c", "journalctl --no-pager -o cat -u docker.service | grep -c 'Daemon has completed initialization' || true")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("counting dockerd starts: %q", out)
	}
	return n
}

func rotDockerActive(t *testing.T, ctx context.Context, h *testhost.Host) {
	t.Helper()
	if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "docker.service")); got != "active" {
		t.Fatalf("docker.service is %s; journal:\n%s", got, h.Journal(ctx, "docker.service", 30))
	}
}

func TestRunServesANewSet(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	h, iss, _ := rotHost(t, ctx)
	s1 := iss.issue()
	s1.write(t, h)
	took := rotWaitServed(t, ctx, h, s1.serial)
	t.Logf("a set renamed into place was served after %v", took.Round(100*time.Millisecond))
	rotIdle(t, ctx, h, s1.serial)
	rotDockerActive(t, ctx, h)
}

func TestRunCertAndKeyApartRestartOnce(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	h, iss, s0 := rotHost(t, ctx)
	rotIdle(t, ctx, h, s0.serial)
	before := rotDockerStarts(t, ctx, h)

	s1 := iss.issue()
	s1.write(t, h, "server-cert.pem")
	time.Sleep(time.Second) // the issuer writes the key a second later
	s1.write(t, h, "server-key.pem")
	rotWaitServed(t, ctx, h, s1.serial)
	rotIdle(t, ctx, h, s1.serial)
	if got := rotDockerStarts(t, ctx, h) - before; got != 1 {
		t.Fatalf("dockerd started %d times for one new set, want 1", got)
	}
	rotDockerActive(t, ctx, h)
}

func TestRunInvalidSetKeepsServing(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	h, iss, s0 := rotHost(t, ctx)
	rotIdle(t, ctx, h, s0.serial)
	before := rotDockerStarts(t, ctx, h)

	s1, s2 := iss.issue(), iss.issue()
	bad := rotSet{ca: s1.ca, cert: s1.cert, key: s2.key}
	bad.write(t, h, "server-cert.pem", "server-key.pem")
	st := rotWaitStatus(t, ctx, h, "invalid set in "+rotSource+":")
	if !strings.Contains(st, "server-key.pem") {
		t.Errorf("STATUS does not name the file: %q", st)
	}
	if got, err := rotServed(ctx, h); err != nil || got.Cmp(s0.serial) != 0 {
		t.Fatalf("after an invalid set the endpoint serves %x (%v), want the previous %x", got, err, s0.serial)
	}
	if out := mustTlsdock(t, ctx, h, "status"); !strings.Contains(out, "server-key.pem") || !strings.Contains(out, "does not match") {
		t.Errorf("tlsdock status does not show the invalid set:\n%s", out)
	}
	if got := rotDockerStarts(t, ctx, h) - before; got != 0 {
		t.Fatalf("dockerd restarted %d times for an invalid set", got)
	}
	rotDockerActive(t, ctx, h)

	// Fixed: served.
	s1.write(t, h, "server-key.pem")
	rotWaitServed(t, ctx, h, s1.serial)
	rotIdle(t, ctx, h, s1.serial)
}

func TestRunEightSetsInSixteenSeconds(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	h, iss, s0 := rotHost(t, ctx)
	rotIdle(t, ctx, h, s0.serial)
	before := rotDockerStarts(t, ctx, h)

	var last rotSet
	for i := range 8 {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		last = iss.issue()
		last.write(t, h)
	}
	rotWaitServed(t, ctx, h, last.serial)
	rotIdle(t, ctx, h, last.serial)
	rotDockerActive(t, ctx, h)
	starts := rotDockerStarts(t, ctx, h) - before
	t.Logf("eight sets caused %d dockerd starts", starts)
	if starts < 1 || starts > 3 {
		t.Fatalf("dockerd started %d times for eight sets in 16s, want 1 to 3", starts)
	}
}

func TestRunKilledMidRotationConverges(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	h, iss, s0 := rotHost(t, ctx)
	rotIdle(t, ctx, h, s0.serial)

	s1 := iss.issue()
	s1.write(t, h)
	// The journal exists from the backup to the commit of a rotation.
	for {
		if _, err := h.ReadFile("/var/lib/tlsdock/journal.json"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the rotation never started; status %q", rotStatus(h))
		case <-time.After(10 * time.Millisecond):
		}
	}
	run(t, ctx, h, "systemctl", "kill", "-s", "KILL", rotUnit)
	for {
		out, _, _ := h.Exec(ctx, nil, "systemctl", "is-active", rotUnit)
		if st := strings.TrimSpace(string(out)); st == "failed" || st == "inactive" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("tlsdock run did not die from SIGKILL")
		case <-time.After(50 * time.Millisecond):
		}
	}
	s2 := iss.issue()
	s2.write(t, h)

	rotStartDaemon(t, ctx, h)
	rotWaitServed(t, ctx, h, s2.serial)
	rotIdle(t, ctx, h, s2.serial)
	rotDockerActive(t, ctx, h)
	if _, err := h.ReadFile("/var/lib/tlsdock/journal.json"); !os.IsNotExist(err) {
		t.Fatalf("journal.json left behind: %v", err)
	}
}

// rotReloads counts systemd's daemon-reloads so far.
func rotReloads(t *testing.T, ctx context.Context, h *testhost.Host) int {
	t.Helper()
	out := run(t, ctx, h, "sh", "-c", "journalctl --no-pager -o cat _PID=1 | grep -c '^Reloading' || true")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("counting daemon-reloads: %q", out)
	}
	return n
}

// TestRunReloadsOnlyForChangedUnits: a rotation that only installs a new
// set restarts dockerd without a daemon-reload; once a drop-in of
// docker.service changed on disk without one, the next rotation reloads
// first, and the restarted dockerd runs with that drop-in.
//
// systemd sees a new drop-in (NeedDaemonReload) only in a drop-in
// directory that existed at its last daemon-reload: it caches the
// directories of its unit search path. A drop-in in a directory created
// since is seen neither by NeedDaemonReload nor by tlsdock's plan (which
// reads what systemd loaded), and the restart runs what systemd loaded, as
// `systemctl restart` does. So the directory is made, and loaded, first.
func TestRunReloadsOnlyForChangedUnits(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	h, iss, s0 := rotHost(t, ctx)
	rotIdle(t, ctx, h, s0.serial)
	run(t, ctx, h, "mkdir", "-p", "/etc/systemd/system/docker.service.d")
	run(t, ctx, h, "systemctl", "daemon-reload")
	reloads := rotReloads(t, ctx, h)

	s1 := iss.issue()
	s1.write(t, h)
	rotWaitServed(t, ctx, h, s1.serial)
	rotIdle(t, ctx, h, s1.serial)
	rotDockerActive(t, ctx, h)
	if got := rotReloads(t, ctx, h) - reloads; got != 0 {
		t.Errorf("a rotation that changed no unit file reloaded systemd %d times", got)
	}

	const mark = "TLSDOCK_E2E_DROPIN=1"
	if err := h.WriteFile("/etc/systemd/system/docker.service.d/50-e2e.conf", []byte("[Service]\nEnvironment="+mark+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := unitProp(t, ctx, h, "docker.service", "NeedDaemonReload"); got != "yes" {
		t.Fatalf("NeedDaemonReload = %q after a new drop-in, want yes", got)
	}
	reloads = rotReloads(t, ctx, h)
	s2 := iss.issue()
	s2.write(t, h)
	rotWaitServed(t, ctx, h, s2.serial)
	rotIdle(t, ctx, h, s2.serial)
	rotDockerActive(t, ctx, h)
	if got := rotReloads(t, ctx, h) - reloads; got < 1 {
		t.Errorf("the rotation after a drop-in changed did not reload systemd")
	}
	if got := unitProp(t, ctx, h, "docker.service", "NeedDaemonReload"); got != "no" {
		t.Errorf("NeedDaemonReload = %q after the rotation, want no", got)
	}
	env := run(t, ctx, h, "sh", "-c", "tr '\\0' '\\n' </proc/$(systemctl show -p MainPID --value docker.service)/environ")
	if !strings.Contains(env, mark) {
		t.Errorf("the restarted dockerd runs without the new drop-in's %s", mark)
	}
}
