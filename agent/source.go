package agent

import (
	"context"
	"time"

	"github.com/fsnotify/fsnotify"
)

// source is where the sets the rotation loop serves come from: a watched
// directory (dirSource) or the local CA (caSource). The Rotator holds one,
// chosen from the settings, and never asks which.
type source interface {
	// String names the source in logs and messages.
	String() string
	// check fails the start on a source the daemon must not use.
	check() error
	// open starts watching the source and close stops; both may be called
	// again.
	open() error
	close()
	// events are the file events the loop selects on; nil when none.
	events() (<-chan fsnotify.Event, <-chan error)
	onEvent(ev fsnotify.Event)
	onError(err error)
	// recheck looks at the source again at once and forgets refused input
	// (startup, SIGHUP).
	recheck()
	// reload forgets what was read under the previous settings.
	reload()
	// next is when step must run again for the source at now; zero when
	// nothing is scheduled.
	next(now time.Time) time.Time
	// step looks at the source at now and runs the provision sequence when
	// it is due.
	step(ctx context.Context, now time.Time)
	// problem is what is wrong with the source for `tlsdock status`, or "".
	problem() string
	// pendingSet is the set waiting in the source to become valid, or nil.
	pendingSet() *PendingSet
	// status is the STATUS line when no rotation is failing.
	status(serving string) string
	// thresholds are when, before expiry, the served certificate is warned
	// about, and advice says what to do about it.
	thresholds() []time.Duration
	advice() string
}

// newSource returns the source the settings ask for.
func (r *Rotator) newSource() source {
	if r.cfg.Generate {
		return &caSource{r: r}
	}
	return &dirSource{r: r, deb: debouncer{settle: r.cfg.Debounce, maxWait: r.cfg.MaxWait}}
}

// orNow is t, or now when t is zero.
func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}
