package e2e

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// operatorsDaemonJSON is daemon.json as the administrator had it before
// tlsdock.
const operatorsDaemonJSON = "{\n    \"log-level\": \"info\"\n}\n"

// recoverHost boots a host with tlsdock, the administrator's daemon.json,
// a first set in the source and a client of the test CA in /root/probe,
// and provisions it with that set.
func recoverHost(t *testing.T, ctx context.Context) (*testhost.Host, *rotIssuer, rotSet) {
	t.Helper()
	h := startWithTlsdock(t)
	if err := h.WriteFile("/etc/docker/daemon.json", []byte(operatorsDaemonJSON), 0o644); err != nil {
		t.Fatal(err)
	}
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
	return h, iss, s0
}

// addDebug is the administrator's edit of daemon.json, by hand: one key
// more, the rest as it is.
func addDebug(t *testing.T, h *testhost.Host) string {
	t.Helper()
	data, err := h.ReadFile("/etc/docker/daemon.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := daemonjson.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Set("debug", true); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile("/etc/docker/daemon.json", doc.Render(), 0o644); err != nil {
		t.Fatal(err)
	}
	return string(doc.Render())
}

// waitJournal waits until unit's journal has want.
func waitJournal(t *testing.T, ctx context.Context, h *testhost.Host, unit, want string) {
	t.Helper()
	for {
		if strings.Contains(h.Journal(ctx, unit, 400), want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s's journal never said %q:\n%s", unit, want, h.Journal(context.Background(), unit, 60))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestRunKilledMidRotationRecoversAtStartUp: `tlsdock run` runs as a
// service with Restart=always and is SIGKILLed mid-rotation (paused after
// docker restarted on the new set). While systemd brings it back, the
// administrator edits daemon.json. The restarted daemon undoes the
// interrupted rotation first (its log says so, and that daemon.json was
// left as the administrator's), then rotates again: the edit survives,
// the journal is gone, docker serves the new set.
func TestRunKilledMidRotationRecoversAtStartUp(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	h, iss, s0 := recoverHost(t, ctx)
	// The first start pauses at "restarted" (the test hook); the start
	// after the kill waits for the test's edit, then runs plainly.
	const marker, goFile = "/run/tlsdock/paused-restarted", "/run/tlsdock-e2e-go"
	daemon := "/usr/local/bin/tlsdock run --certs " + rotSource + " --probe-client /root/probe"
	// (A file: systemd 252 mangles the ";" of an inline script in a
	// transient unit at the daemon-reloads tlsdock makes.)
	script := "#!/bin/sh\nif [ -e " + marker + " ]; then\n\twhile [ ! -e " + goFile + " ]; do sleep 0.1; done\n\texec " + daemon + "\nfi\n" +
		"TLSDOCK_TEST_PAUSE_AT=restarted exec " + daemon + "\n"
	if err := h.WriteFile("/usr/local/bin/tlsdock-e2e-run", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, errb, err := h.Exec(ctx, nil, "systemd-run", "--unit="+rotUnit, "--service-type=notify", "-p", "TimeoutStartSec=5min",
		"-p", "Restart=always", "-p", "RestartSec=1", "/usr/local/bin/tlsdock-e2e-run"); err != nil {
		t.Fatalf("starting tlsdock run: %v\n%s\n%s", err, errb, h.Journal(ctx, rotUnit, 40))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tlsdock run's journal:\n%s", h.Journal(context.Background(), rotUnit, 80))
		}
	})
	rotIdle(t, ctx, h, s0.serial)

	s1 := iss.issue()
	s1.write(t, h)
	waitFile(t, ctx, h, marker)
	rotWaitServed(t, ctx, h, s1.serial) // docker restarted on s1; not committed
	if _, err := h.ReadFile("/var/lib/tlsdock/journal.json"); err != nil {
		t.Fatalf("no journal while the rotation is paused: %v", err)
	}
	run(t, ctx, h, "systemctl", "kill", "-s", "KILL", "--kill-whom=main", rotUnit)
	// systemd restarts it (Restart=always); it waits for goFile.
	for {
		out, _, _ := h.Exec(ctx, nil, "systemctl", "show", "-p", "NRestarts", "--value", rotUnit)
		if strings.TrimSpace(string(out)) == "1" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("systemd did not restart tlsdock run:\n%s", h.Journal(ctx, rotUnit, 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
	edited := addDebug(t, h)
	if err := h.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	waitJournal(t, ctx, h, rotUnit, "msg=recovered")
	rotWaitServed(t, ctx, h, s1.serial)
	rotIdle(t, ctx, h, s1.serial)
	rotDockerActive(t, ctx, h)
	log := h.Journal(ctx, rotUnit, 400)
	if !strings.Contains(log, "left /etc/docker/daemon.json as it is") {
		t.Errorf("the log does not say daemon.json was left as the administrator's:\n%s", log)
	}
	if i, j := strings.Index(log, "msg=recovered"), strings.LastIndex(log, "msg=ready"); i < 0 || j < i {
		t.Errorf("the recovery is not logged before the restarted daemon is ready:\n%s", log)
	}
	got, err := h.ReadFile("/etc/docker/daemon.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := daemonjson.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if on, _, _ := doc.Bool("debug"); !on {
		t.Fatalf("the administrator's edit is lost: daemon.json is\n%s\nit was edited to\n%s", got, edited)
	}
	if _, err := h.ReadFile("/var/lib/tlsdock/journal.json"); !os.IsNotExist(err) {
		t.Fatalf("journal.json left behind: %v", err)
	}
	if out := mustTlsdock(t, ctx, h, "status"); !strings.Contains(out, s1.serial.Text(16)) {
		t.Errorf("status after the recovery and the rotation:\n%s", out)
	}
}

// operatorsTlsdockUnit is a tlsdock.service the administrator installed in
// /etc/systemd/system (tlsdock never writes it in daemon-json mode).
const operatorsTlsdockUnit = `[Unit]
Description=tlsdock rotation daemon (installed by hand)
After=docker.service

[Service]
Type=notify
ExecStart=/usr/local/bin/tlsdock run --certs /etc/tlsdock/certs --probe-client /root/probe
Restart=on-failure
`

// TestRevertLeavesTheAdministratorsUnit: in daemon-json mode, with the
// daemon running from a tlsdock.service the administrator installed,
// revert puts back daemon.json and /etc/docker/ssl and leaves the unit
// (byte for byte) and the daemon running. The daemon then agrees: a new
// set in the source is not installed, its log and `tlsdock status` say
// why, until `tlsdock provision`.
func TestRevertLeavesTheAdministratorsUnit(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	h, iss, _ := recoverHost(t, ctx)
	const unitPath = "/etc/systemd/system/tlsdock.service"
	if err := h.WriteFile(unitPath, []byte(operatorsTlsdockUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "daemon-reload")
	run(t, ctx, h, "systemctl", "start", "tlsdock.service")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tlsdock.service's journal:\n%s", h.Journal(context.Background(), "tlsdock.service", 60))
		}
	})
	waitJournal(t, ctx, h, "tlsdock.service", "msg=ready")

	out := mustTlsdock(t, ctx, h, "revert")
	if !strings.Contains(out, "left "+unitPath+" as it is: tlsdock never wrote it") {
		t.Errorf("revert does not say it left the unit:\n%s", out)
	}
	if got, err := h.ReadFile(unitPath); err != nil || string(got) != operatorsTlsdockUnit {
		t.Fatalf("revert changed the administrator's %s: %q, %v", unitPath, got, err)
	}
	if got, err := h.ReadFile("/etc/docker/daemon.json"); err != nil || string(got) != operatorsDaemonJSON {
		t.Fatalf("daemon.json after revert: %q, %v", got, err)
	}
	if st := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "tlsdock.service")); st != "active" {
		t.Fatalf("tlsdock.service is %s after revert", st)
	}

	// The daemon's next event: a new set in the source.
	s1 := iss.issue()
	s1.write(t, h)
	waitJournal(t, ctx, h, "tlsdock.service", "not provisioning: the host was reverted")
	rotDockerActive(t, ctx, h)
	if got, err := h.ReadFile("/etc/docker/daemon.json"); err != nil || string(got) != operatorsDaemonJSON {
		t.Fatalf("daemon.json after the daemon's event: %q, %v", got, err)
	}
	if _, err := h.ReadFile("/etc/docker/ssl/server-cert.pem"); !os.IsNotExist(err) {
		t.Fatalf("the daemon installed a set after revert: %v", err)
	}
	if out := mustTlsdock(t, ctx, h, "status"); !strings.Contains(out, "reverted") || !strings.Contains(out, "`tlsdock provision`") {
		t.Errorf("status after revert:\n%s", out)
	}
}
