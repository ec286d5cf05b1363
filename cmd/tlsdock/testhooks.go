//go:build tlsdock_testhooks

package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/tlsdock/tlsdock/agent"
)

// This file exists only in test builds (go build -tags tlsdock_testhooks,
// as test/e2e builds tlsdock). The shipped binary (make build, make
// package) has testhooks_off.go instead and never reads PauseEnv.

// PauseEnv is TEST-ONLY. TLSDOCK_TEST_PAUSE_AT=<step> makes the sequence
// stop at that step (one of the names agent.Options.Pause receives:
// backed-up, live-restore, certs-installed, written, restarted): tlsdock
// writes /run/tlsdock/paused-<step> and then blocks until it is killed. The
// crash tests in test/e2e use it to SIGKILL tlsdock at a chosen point. It
// only pauses; it never changes what tlsdock does.
const PauseEnv = "TLSDOCK_TEST_PAUSE_AT"

// testHooks installs the hooks the environment asks for.
func testHooks(o *agent.Options, root string) {
	if step := os.Getenv(PauseEnv); step != "" {
		o.Pause = pauseAt(agent.Paths{Root: root}, step)
	}
}

// pauseAt is the TEST-ONLY Pause hook of PauseEnv.
func pauseAt(p agent.Paths, at string) func(string) {
	return func(step string) {
		if step != at {
			return
		}
		marker := p.Abs(filepath.Join("/run/tlsdock", "paused-"+step))
		_ = os.MkdirAll(filepath.Dir(marker), 0o755)
		_ = os.WriteFile(marker, []byte(step+"\n"), 0o600)
		for {
			time.Sleep(time.Hour)
		}
	}
}
