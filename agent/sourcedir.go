package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tlsdock/tlsdock/certstore"
)

// dirSource is a watched source directory. Every change is looked at right
// away (a probe): a complete, valid set that differs from the installed
// one is handed to the provision sequence at once, without waiting for
// the debounce. Only while what the source holds does not load or
// validate (a writer doing the files one by one, a file partly written)
// does the debounce wait for more changes; a settled source that is still
// invalid is reported.
type dirSource struct {
	r *Rotator

	watch   *sourceWatch // nil before open
	deb     debouncer    // changes not acted on yet
	probe   bool         // a change not looked at yet: look at once
	scanNow bool         // scan without waiting (startup, SIGHUP)

	candidate *certstore.Set // a valid source set that differs from installed
	invalid   string         // why the settled source set is invalid
	blockedFP string         // bad input: not retried until the source changes

	pending   *certstore.Set // a valid source set whose notBefore is ahead
	pendingAt time.Time      // when pending may be installed
	wakeAt    time.Time      // look at the source again (a notBefore passes); zero: never
	woken     bool           // the scan in progress is that look
}

func (d *dirSource) String() string { return d.r.cfg.Certs }

// check fails the start on a source that someone besides root (and the
// allow-source-owner account) can change: the daemon would otherwise
// install whatever CA that account puts there.
func (d *dirSource) check() error {
	cfg := d.r.cfg
	trust, err := cfg.SourceTrust()
	if err != nil {
		return err
	}
	if err := certstore.CheckSourceFiles(cfg.SourcePaths(), trust); err != nil {
		return &InputError{Field: "--certs", Err: fmt.Errorf("%w; tlsdock run does not start on a source others can change", err)}
	}
	if w := cfg.SourceWarning(); w != "" {
		d.r.log.Warn(w, "source", cfg.Certs)
	}
	return nil
}

func (d *dirSource) open() error {
	if d.watch != nil {
		return nil
	}
	w, err := newSourceWatch(d.r.cfg.Certs, d.r.cfg.SourcePaths(), d.r.log)
	if err != nil {
		return err
	}
	d.watch = w
	return nil
}

func (d *dirSource) close() {
	if d.watch != nil {
		d.watch.Close()
		d.watch = nil
	}
}

func (d *dirSource) events() (<-chan fsnotify.Event, <-chan error) {
	if d.watch == nil {
		return nil, nil
	}
	return d.watch.w.Events, d.watch.w.Errors
}

// onEvent handles one fsnotify event: a relevant one starts or extends
// the debounce.
func (d *dirSource) onEvent(ev fsnotify.Event) {
	if d.watch == nil {
		return
	}
	relevant, structural := d.watch.classify(ev)
	if !relevant {
		return
	}
	d.r.log.Debug("source changed", "event", ev.String(), "structural", structural)
	d.watch.sync()
	d.changed()
}

// onError handles the watcher's errors. An overflow lost events: rescan.
func (d *dirSource) onError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		d.r.log.Warn("too many file events at once; rescanning the source", "dir", d.r.cfg.Certs)
	} else {
		d.r.log.Warn("watching the source failed; rescanning it", "dir", d.r.cfg.Certs, "err", err)
	}
	if d.watch != nil {
		d.watch.sync()
	}
	d.changed()
}

// changed notes a change of the source at the clock's time; the next step
// looks at the source at once.
func (d *dirSource) changed() {
	d.deb.changed(d.r.o.Clock.Now())
	d.probe = true
}

func (d *dirSource) recheck() { d.blockedFP, d.scanNow = "", true }

func (d *dirSource) reload() {
	d.deb.settle, d.deb.maxWait = d.r.cfg.Debounce, d.r.cfg.MaxWait
	d.candidate, d.invalid, d.wakeAt = nil, "", time.Time{}
	d.setPending(nil, time.Time{})
}

func (d *dirSource) next(now time.Time) time.Time {
	var at time.Time
	if d.probe {
		at = now
	} else if d.deb.pending() {
		at = d.deb.at()
	} else if d.scanNow {
		at = now
	}
	if d.candidate != nil && !d.deb.pending() && !d.blocked() {
		if t := orNow(d.r.rotateAt(), now); at.IsZero() || t.Before(at) {
			at = t
		}
	}
	if w := d.wakeAt; !w.IsZero() && !d.deb.pending() && (at.IsZero() || w.Before(at)) {
		at = w // while a burst is in progress, the debounce scans
	}
	return at
}

func (d *dirSource) blocked() bool {
	return d.candidate != nil && d.blockedFP != "" && d.candidate.Fingerprint() == d.blockedFP && !d.r.force
}

func (d *dirSource) step(ctx context.Context, now time.Time) {
	switch {
	case d.probe && d.deb.pending() && !d.deb.due(now):
		// A change: act on a complete, valid set at once; anything
		// else waits for the debounce (see scan).
		d.probe = false
		d.scan(now, false)
	case d.deb.due(now):
		d.probe = false
		settled := d.deb.settled(now)
		d.deb.clear()
		d.scanNow = false
		d.scan(now, settled)
	case d.scanNow && !d.deb.pending(): // while a burst is in progress, the debounce scans
		d.probe, d.scanNow = false, false
		d.scan(now, true)
	case !d.wakeAt.IsZero() && !d.deb.pending() && !now.Before(d.wakeAt):
		// A notBefore passed: read and validate the source again.
		d.woken = true
		d.scan(now, true)
		d.woken = false
	}
	d.maybeRotate(ctx, now)
}

// load reads the source set with the source trust checks and runs
// provision's validation of it. It returns the set and when it may be
// installed: now, or later for a set that is valid but for its notBefore
// (see installableFrom). On a validation error the set is returned too,
// so that its notBefore can be seen; it is nil when the files do not
// load.
func (d *dirSource) load(now time.Time) (*certstore.Set, time.Time, error) {
	cfg := d.r.cfg.Config
	trust, err := cfg.SourceTrust()
	if err != nil {
		return nil, time.Time{}, err
	}
	set, err := certstore.LoadSourceFiles(cfg.SourcePaths(), trust)
	if err != nil {
		return nil, time.Time{}, err
	}
	ls, err := cfg.Listeners()
	if err != nil {
		return nil, time.Time{}, err
	}
	req := requiredNames(cfg, ls)
	req.ServerRoots = serverRoots(d.r.o.SystemRoots, d.r.log)
	from, err := installableFrom(set, req, now)
	return set, from, err
}

// scan reads the source. settled says no change came for Debounce: before
// that, a set that does not load or validate is only not ready yet, and
// the debounce goes on. A set that loads and validates ends the debounce
// whether settled or not: the pair matches and every PEM block is whole
// (a file cut inside a block does not load), so it is acted on at once.
//
// A valid set whose notBefore is ahead is pending: docker keeps serving
// the installed set, and one wake-up (wakeAt) is planned for when the
// pending set becomes installable. Then the source is read and validated
// again, since it may have changed. A refused set whose message says "not
// valid until" is looked at again at that time too, so that what status
// shows stays true. Each scan plans afresh, so a file change replaces or
// cancels the wake-up.
func (d *dirSource) scan(now time.Time, settled bool) {
	r := d.r
	r.refreshInstalled() // a manual provision or revert may have changed it
	set, from, err := d.load(now)
	if err != nil {
		if !settled {
			r.log.Debug("the source set is not complete yet; waiting for more changes", "dir", r.cfg.Certs, "err", err)
			if !d.deb.pending() {
				d.deb.wait(now) // max-wait passed while changes go on
			}
			return
		}
		d.setPending(nil, time.Time{})
		d.wakeAt = nextNotBefore(set, now)
		msg := fmt.Sprintf("invalid set in %s: %v; %s, and tlsdock checks again when the files change", r.cfg.Certs, err, d.servingWhat())
		logMsg := "invalid certificate set; not installing it"
		if errors.Is(err, certstore.ErrUnsafeSource) {
			msg = fmt.Sprintf("unsafe source %s: %v; %s, and tlsdock checks again when the files change or on SIGHUP", r.cfg.Certs, err, d.servingWhat())
			logMsg = "the certificate source can be changed by others than root; not installing it"
		}
		switch {
		case msg == d.invalid:
		case d.woken:
			// The same files, looked at again once a notBefore passed.
			r.log.Info("a notBefore of the refused set passed; it is still invalid", "dir", r.cfg.Certs, "err", err)
		default:
			r.log.Error(logMsg, "dir", r.cfg.Certs, "err", err, "serving", r.installed.Serial())
			r.o.Metrics.rotation("invalid")
		}
		d.invalid, d.candidate = msg, nil
		r.o.Metrics.setValidationError(true)
		return
	}
	d.deb.clear() // complete and valid: nothing to wait for
	if d.invalid != "" {
		r.log.Info("the source set is valid again", "dir", r.cfg.Certs, "serial", set.Serial())
	}
	d.invalid, d.wakeAt = "", time.Time{}
	r.o.Metrics.setValidationError(false)
	fp := set.Fingerprint()
	if fp != d.blockedFP {
		d.blockedFP = "" // the source changed: a rejected set may be retried
	}
	if fp == r.installedFP() && !r.force {
		if d.candidate != nil || d.pending != nil {
			r.log.Info("the source is back to the installed set; nothing to do", "serial", set.Serial())
		} else {
			r.log.Debug("the source set is unchanged", "serial", set.Serial())
		}
		d.candidate = nil
		d.setPending(nil, time.Time{})
		return
	}
	if from.After(now) {
		if d.pending == nil || d.pending.Fingerprint() != fp {
			r.log.Info("new certificate set in the source, not valid yet: installing it when it is", "dir", r.cfg.Certs, "serial", set.Serial(),
				"valid_from", from.Add(-notBeforeMargin).UTC().Format(time.RFC3339), "install_at", from.UTC().Format(time.RFC3339), "serving", r.installed.Serial())
		}
		d.candidate = nil
		d.setPending(set, from)
		d.wakeAt = from
		return
	}
	if d.pending != nil && d.pending.Fingerprint() == fp {
		r.log.Info("the pending set is valid now", "serial", set.Serial())
	} else if d.candidate == nil || d.candidate.Fingerprint() != fp {
		r.log.Info("new certificate set in the source", "dir", r.cfg.Certs, "serial", set.Serial(), "expires", set.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	d.setPending(nil, time.Time{})
	d.candidate = set
}

// setPending remembers set as the pending one, installable at from; nil
// forgets it.
func (d *dirSource) setPending(set *certstore.Set, from time.Time) {
	d.pending, d.pendingAt = set, from
}

func (d *dirSource) pendingSet() *PendingSet {
	if d.pending == nil {
		return nil
	}
	return &PendingSet{Serial: d.pending.Serial(), NotBefore: d.pendingAt.Add(-notBeforeMargin), InstallAt: d.pendingAt, Source: d.r.cfg.Certs}
}

func (d *dirSource) servingWhat() string {
	if d.r.installed == nil {
		return "nothing is installed yet"
	}
	return "docker keeps serving serial " + d.r.installed.Serial()
}

// maybeRotate hands the latest valid source set to the provision sequence
// when the rate limit and the backoff allow and no burst of changes is in
// progress.
func (d *dirSource) maybeRotate(ctx context.Context, now time.Time) {
	r := d.r
	if d.candidate == nil || d.deb.pending() || d.blocked() {
		return
	}
	if at := r.rotateAt(); now.Before(at) {
		return
	}
	set := d.candidate
	cfg := r.cfg.Config
	cfg.SourceSet = set // the sequence installs what was validated here
	r.log.Info("rotating", "from", r.installed.Serial(), "to", set.Serial(), "dir", cfg.Certs)
	r.o.Notify("STATUS=rotating to serial " + set.Serial())
	r.lastStatus = ""
	r.recordPending() // the pending set that became this candidate is no longer shown as pending
	res, err := r.provision(ctx, cfg)
	r.served(res, err, set)
	r.force = false
	now = r.o.Clock.Now()
	if r.after(res, err, now, set.Serial()) {
		if res.Fingerprint != set.Fingerprint() {
			// The sequence served another set than the one handed to
			// it: look at the source again.
			d.scanNow = true
		}
		d.candidate = nil
		return
	}
	var ie *InputError
	if errors.As(err, &ie) {
		d.blockedFP = set.Fingerprint()
	}
}

func (d *dirSource) problem() string { return d.invalid }

func (d *dirSource) status(serving string) string {
	r := d.r
	switch {
	case d.blocked():
		return r.lastFailure
	case d.candidate != nil && !d.deb.pending():
		return fmt.Sprintf("waiting until %s to rotate to serial %s (restart rate limit); %s", r.rotateAt().UTC().Format(time.TimeOnly), d.candidate.Serial(), serving)
	}
	return fmt.Sprintf("watching %s; %s", r.cfg.Certs, serving)
}

func (d *dirSource) thresholds() []time.Duration { return expiryThresholds }

func (d *dirSource) advice() string { return "put a renewed set into " + d.r.cfg.Certs }
