package agent

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestWaitListeningRetriesRefused: a listener that opens after the
// restart job ended (dockerd holding it itself) is waited for, however
// many connections were refused first.
func TestWaitListeningRetriesRefused(t *testing.T) {
	addr := freeAddr(t)
	opened := make(chan net.Listener, 1)
	go func() {
		time.Sleep(5 * listenRetry)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			opened <- nil
			return
		}
		opened <- l
	}()
	err := Probe{Addr: addr, Wait: time.Minute}.waitListening(context.Background())
	l := <-opened
	if l == nil {
		t.Skip("the port was taken in between")
	}
	defer l.Close()
	if err != nil {
		t.Fatalf("waitListening: %v", err)
	}
}

// TestWaitListeningGivesUp: a listener that never opens fails once Wait
// has passed, naming the refusal.
func TestWaitListeningGivesUp(t *testing.T) {
	err := Probe{Addr: freeAddr(t), Wait: 3 * listenRetry}.waitListening(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not accepting connections") {
		t.Fatalf("waitListening = %v, want not accepting connections", err)
	}
}
