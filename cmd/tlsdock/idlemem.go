package main

import (
	"strings"
	"sync"
	"time"
)

// idleMemoryDelay is how long after an event the rotation daemon returns
// its free heap to the kernel.
const idleMemoryDelay = 500 * time.Millisecond

// returnMemoryAfterEvents wraps the daemon's sd_notify so that, delay after
// READY=1 and after each status line that differs from the one before,
// free() runs once: the work of an event (a rotation, a verification, the
// start-up) is over by then, and what it allocated is garbage. The daemon
// then sleeps on the heap it needs, not on the Go runtime's minimum heap
// goal of 4 MiB. The watchdog ping never schedules it, so an idle daemon
// does no work of its own, and a burst of events runs free() once.
func returnMemoryAfterEvents(notify func(string) bool, delay time.Duration, free func()) func(string) bool {
	var (
		mu     sync.Mutex
		status string
		timer  *time.Timer
	)
	return func(state string) bool {
		ok := notify(state)
		event := false
		for line := range strings.SplitSeq(state, "\n") {
			switch {
			case line == "READY=1":
				event = true
			case strings.HasPrefix(line, "STATUS="):
				mu.Lock()
				if line != status {
					status, event = line, true
				}
				mu.Unlock()
			}
		}
		if event {
			mu.Lock()
			if timer == nil {
				timer = time.AfterFunc(delay, free)
			} else {
				timer.Reset(delay)
			}
			mu.Unlock()
		}
		return ok
	}
}
