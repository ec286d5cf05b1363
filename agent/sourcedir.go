package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tlsdock/tlsdock/certstore"
)

// dirSource is a watched source directory: a change starts the debounce,
// a settled directory is loaded and validated once, and a valid set that
// differs from the installed one is handed to the provision sequence.
type dirSource struct {
	r *Rotator

	watch   *sourceWatch // nil before open
	deb     debouncer    // changes not acted on yet
	scanNow bool         // scan without waiting (startup, SIGHUP)

	candidate *certstore.Set // a valid source set that differs from installed
	invalid   string         // why the settled source set is invalid
	blockedFP string         // bad input: not retried until the source changes
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
	if err := certstore.CheckSource(cfg.Certs, trust); err != nil {
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
	w, err := newSourceWatch(d.r.cfg.Certs, d.r.log)
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

// changed notes a change of the source at the clock's time.
func (d *dirSource) changed() { d.deb.changed(d.r.o.Clock.Now()) }

func (d *dirSource) recheck() { d.blockedFP, d.scanNow = "", true }

func (d *dirSource) reload() {
	d.deb.settle, d.deb.maxWait = d.r.cfg.Debounce, d.r.cfg.MaxWait
	d.candidate, d.invalid = nil, ""
}

func (d *dirSource) next(now time.Time) time.Time {
	var at time.Time
	if d.deb.pending() {
		at = d.deb.at()
	} else if d.scanNow {
		at = now
	}
	if d.candidate != nil && !d.deb.pending() && !d.blocked() {
		if t := orNow(d.r.rotateAt(), now); at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at
}

func (d *dirSource) blocked() bool {
	return d.candidate != nil && d.blockedFP != "" && d.candidate.Fingerprint() == d.blockedFP && !d.r.force
}

func (d *dirSource) step(ctx context.Context, now time.Time) {
	switch {
	case d.deb.due(now):
		settled := d.deb.settled(now)
		d.deb.clear()
		d.scanNow = false
		d.scan(now, settled)
	case d.scanNow && !d.deb.pending(): // while a burst is in progress, the debounce scans
		d.scanNow = false
		d.scan(now, true)
	}
	d.maybeRotate(ctx, now)
}

// load reads the source set with the source trust checks and runs
// provision's validation of it.
func (d *dirSource) load(now time.Time) (*certstore.Set, error) {
	cfg := d.r.cfg.Config
	trust, err := cfg.SourceTrust()
	if err != nil {
		return nil, err
	}
	set, err := certstore.LoadSource(cfg.Certs, trust)
	if err != nil {
		return nil, err
	}
	ls, err := cfg.Listeners()
	if err != nil {
		return nil, err
	}
	req := requiredNames(cfg, ls)
	req.Now = now
	if err := set.Validate(req); err != nil {
		return nil, err
	}
	return set, nil
}

// scan reads the source. settled says no change came for Debounce: before
// that, a set that does not load or validate is only not ready yet.
func (d *dirSource) scan(now time.Time, settled bool) {
	r := d.r
	r.refreshInstalled() // a manual provision or revert may have changed it
	set, err := d.load(now)
	if err != nil {
		if !settled {
			r.log.Debug("the source set is not complete yet; waiting for more changes", "dir", r.cfg.Certs, "err", err)
			d.deb.wait(now)
			return
		}
		msg := fmt.Sprintf("invalid set in %s: %v; %s, and tlsdock checks again when the files change", r.cfg.Certs, err, d.servingWhat())
		logMsg := "invalid certificate set; not installing it"
		if errors.Is(err, certstore.ErrUnsafeSource) {
			msg = fmt.Sprintf("unsafe source %s: %v; %s, and tlsdock checks again when the files change or on SIGHUP", r.cfg.Certs, err, d.servingWhat())
			logMsg = "the certificate source can be changed by others than root; not installing it"
		}
		if msg != d.invalid {
			r.log.Error(logMsg, "dir", r.cfg.Certs, "err", err, "serving", r.installed.Serial())
			r.o.Metrics.rotation("invalid")
		}
		d.invalid, d.candidate = msg, nil
		r.o.Metrics.setValidationError(true)
		return
	}
	if d.invalid != "" {
		r.log.Info("the source set is valid again", "dir", r.cfg.Certs, "serial", set.Serial())
	}
	d.invalid = ""
	r.o.Metrics.setValidationError(false)
	fp := set.Fingerprint()
	if fp != d.blockedFP {
		d.blockedFP = "" // the source changed: a rejected set may be retried
	}
	if fp == r.installedFP() && !r.force {
		if d.candidate != nil {
			r.log.Info("the source is back to the installed set; nothing to do", "serial", set.Serial())
		} else {
			r.log.Debug("the source set is unchanged", "serial", set.Serial())
		}
		d.candidate = nil
		return
	}
	if d.candidate == nil || d.candidate.Fingerprint() != fp {
		r.log.Info("new certificate set in the source", "dir", r.cfg.Certs, "serial", set.Serial(), "expires", set.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	d.candidate = set
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
