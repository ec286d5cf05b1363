package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// Points of the full power-loss sweep per scenario (a power loss costs a
// boot, so fewer than SIGKILL's).
const (
	powerSteps  = 8
	powerJitter = 2
)

// TestPowerLoss kills the whole test host (every process of the guest and
// nspawn, at once, no shutdown: testhost's PowerLoss) while each
// scenario's command runs, boots a new host on the same disk (the same
// overlay upper directory: PowerOn) and checks that docker.service comes up
// by itself with its local socket answering, and that the next run of the
// command converges (checkRecovers, as after a SIGKILL).
//
// What this does not model: the overlay's upper directory is on this
// machine, whose page cache survives the "power loss", so every write that
// reached the kernel is there after the boot, fsynced or not. It is a crash
// of all of the guest's processes at one instant, including systemd and a
// dockerd in the middle of a restart, not the loss of unsynced writes
// (that needs a disk that can drop its cache, for example dm-flakey or a
// VM).
func TestPowerLoss(t *testing.T) {
	sweep(t, powerLoss, powerSteps, powerJitter, func(sc sweepScenario) []float64 { return sc.powerQuick })
}

// TestPowerLossKeepsDisk: after PowerLoss and PowerOn, a file written
// before is there (same disk), /run is empty (the guest's memory is gone),
// systemd is a new process and docker.service came up by itself.
func TestPowerLossKeepsDisk(t *testing.T) {
	h := testhost.Start(t)
	ctx := ctxFor(t, 3*time.Minute)
	if err := h.WriteFile("/var/lib/disk-marker", []byte("on disk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile("/run/memory-marker", []byte("in memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := h.PID
	if err := h.PowerLoss(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Exec(ctx, nil, "true"); err == nil {
		t.Fatal("Exec works on a host without power")
	}
	if err := h.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	if h.PID == before {
		t.Errorf("systemd has the same pid %d after the power loss", h.PID)
	}
	if got, err := h.ReadFile("/var/lib/disk-marker"); err != nil || string(got) != "on disk\n" {
		t.Errorf("the file on disk after PowerOn: %q %v", got, err)
	}
	if _, err := h.ReadFile("/run/memory-marker"); err == nil {
		t.Error("/run survived the power loss")
	}
	if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "docker.service")); got != "active" {
		t.Errorf("docker.service is %q after PowerOn", got)
	}
	run(t, ctx, h, "docker", "version")
}
