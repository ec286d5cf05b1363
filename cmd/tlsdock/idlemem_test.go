package main

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestReturnMemoryAfterEvents(t *testing.T) {
	const delay = 200 * time.Millisecond
	var sent []string
	var frees atomic.Int32
	freed := make(chan struct{}, 10)
	notify := returnMemoryAfterEvents(func(s string) bool { sent = append(sent, s); return true }, delay, func() {
		frees.Add(1)
		freed <- struct{}{}
	})
	wait := func(want int32) {
		t.Helper()
		select {
		case <-freed:
		case <-time.After(10 * time.Second):
			t.Fatalf("free not called; %d calls", frees.Load())
		}
		// Nothing else is pending: no further call within three delays.
		time.Sleep(3 * delay)
		if n := frees.Load(); n != want {
			t.Fatalf("free called %d times, want %d", n, want)
		}
	}
	quiet := func(what string) {
		t.Helper()
		time.Sleep(3 * delay)
		if n := len(freed); n != 0 {
			t.Fatalf("%s: free called", what)
		}
	}

	quiet("nothing sent")
	notify("WATCHDOG=1")
	quiet("the watchdog ping")

	// A burst (READY, then status lines) frees once, after the last.
	notify("READY=1")
	notify("STATUS=serving serial 01")
	notify("WATCHDOG=1")
	notify("STATUS=rotating to serial 02")
	notify("STATUS=serving serial 02")
	wait(1)

	notify("STATUS=serving serial 02")
	notify("WATCHDOG=1")
	quiet("the same status again")

	notify("STATUS=serving serial 03")
	wait(2)
	notify("STOPPING=1\nSTATUS=serving serial 04")
	wait(3)

	if len(sent) != 10 || sent[0] != "WATCHDOG=1" || sent[9] != "STOPPING=1\nSTATUS=serving serial 04" {
		t.Errorf("not every state passed on: %q", sent)
	}
}
