package testhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// PowerLoss stops the host the way a power cut does: every process of the
// guest, nspawn and its wrapper get SIGKILL at once, with no shutdown, no
// unit stopping and no sync. The host's disk (the overlay, with its upper
// directory) stays mounted as it is; PowerOn boots a new guest on it.
//
// What this models, and what not: the overlay's upper directory lives on
// this machine's filesystem, whose page cache survives. So every write that
// reached the kernel before the kill is there after PowerOn, synced or not.
// It is a crash of all of the guest's processes at one instant (the moment
// between two writes of a program, a half-done rename sequence, a service
// killed mid-restart), not the loss of writes that were never synced.
func (h *Host) PowerLoss() error {
	if h.cmd == nil || h.PID == 0 {
		return fmt.Errorf("test host %s is not running", h.Name)
	}
	// SIGKILL for PID 1 of a pid namespace kills every process in it; the
	// cgroups hold the rest (nspawn, script, the wrapper).
	_ = syscall.Kill(h.PID, syscall.SIGKILL)
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	err := killCgroups(h.st.Cgroups, 10*time.Second)
	if !h.waitExit(10 * time.Second) {
		err = errors.Join(err, fmt.Errorf("script (pid %d) did not exit", h.cmd.Process.Pid))
	}
	// The guest's systemd made cgroups below the host's; a new boot gets
	// empty ones, as a new machine would.
	err = errors.Join(err, removeCgroups(h.st.Cgroups, 5*time.Second))
	for _, d := range []string{"/run/systemd/nspawn/propagate/", "/run/systemd/nspawn/unix-export/"} {
		os.Remove(d + h.Name)
	}
	h.logf("testhost: %s: power lost (systemd pid %d killed)", h.Name, h.PID)
	h.PID, h.cmd = 0, nil
	if err != nil {
		return fmt.Errorf("power loss of test host %s: %w", h.Name, err)
	}
	return nil
}

// PowerOn boots a new guest on the disk of a host after PowerLoss (the same
// overlay, so the same upper directory) and waits until docker.service is
// active, as Boot does. Whatever the guest had in memory (/run, the
// processes) is gone; what it had written is there. A host that fails to
// come up stays closable with Close; the error carries the console's end.
func (h *Host) PowerOn(ctx context.Context) error {
	if h.cmd != nil {
		return fmt.Errorf("test host %s is running: PowerLoss first", h.Name)
	}
	if !isMounted(h.Root) {
		return fmt.Errorf("test host %s has no disk: %s is not mounted", h.Name, h.Root)
	}
	start := time.Now()
	if err := h.start(ctx); err != nil {
		return fmt.Errorf("powering on test host %s: %w%s", h.Name, err, h.consoleTail(20))
	}
	h.BootTime = time.Since(start)
	h.logf("testhost: %s powered on in %v (systemd pid %d)", h.Name, h.BootTime.Round(time.Millisecond), h.PID)
	return nil
}
