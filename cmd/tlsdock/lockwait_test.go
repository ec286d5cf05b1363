package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProvisionWaitsForTheDaemonsLock: tlsdock.service takes the host lock
// for its rotation, the first one right after a proxy-mode provision
// (re)started it. A provision typed while it holds the lock waits for it,
// says so, and succeeds, instead of failing with "lock held".
func TestProvisionWaitsForTheDaemonsLock(t *testing.T) {
	h := newFakeHostCLI(t)
	lock := filepath.Join(h.root, "run/tlsdock/lock")
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		f.Close()
		close(released)
	}()
	code, stdout, stderr := h.run("provision", "--generate")
	<-released
	if code != 0 {
		t.Fatalf("provision while the daemon held the lock: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "waiting for it") {
		t.Errorf("provision waited without saying so: stderr %q", stderr)
	}
}
