package systemd

import (
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notify sends a state line to systemd when running under Type=notify. It
// reports whether the message was sent; outside systemd it does nothing.
func Notify(state string) bool {
	ok, _ := daemon.SdNotify(false, state)
	return ok
}

// WatchdogInterval returns the interval at which WATCHDOG=1 must be sent,
// or 0 when the watchdog is off.
func WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}
