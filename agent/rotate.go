package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/systemd"
)

// RunConfig is what `tlsdock run` needs: the provision settings (Certs is
// the watched source, or Generate for the local CA) plus the rotation
// loop's own.
type RunConfig struct {
	Config
	// Debounce is the trailing timer: a burst of changes is acted on once
	// no change came for this long.
	Debounce time.Duration
	// MaxWait bounds how long a continuous burst can delay acting.
	MaxWait time.Duration
	// MinRestartInterval is the least time between two rotations, so that
	// docker.service's start limit (3 in 60 s) is never reached.
	MinRestartInterval time.Duration
	// MetricsListen is where Prometheus metrics are served; "" is off.
	MetricsListen string
}

// Defaults of the rotation loop.
const (
	DefaultDebounce           = 2 * time.Second
	DefaultMaxWait            = 10 * time.Second
	DefaultMinRestartInterval = 20 * time.Second
	// MaxRenewBefore bounds RenewBefore: half of the local CA's lifetime.
	MaxRenewBefore = ServerValidity / 2
)

// Retry backoff after a failed rotation: the first retry after
// retryBackoffMin, doubling up to retryBackoffMax.
const (
	retryBackoffMin = 30 * time.Second
	retryBackoffMax = 10 * time.Minute
)

// RunDefaults returns the documented defaults of `tlsdock run`.
func RunDefaults() RunConfig {
	return RunConfig{
		Config:             Defaults(),
		Debounce:           DefaultDebounce,
		MaxWait:            DefaultMaxWait,
		MinRestartInterval: DefaultMinRestartInterval,
	}
}

// Validate checks the settings before the daemon starts.
func (c RunConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	switch {
	case c.DryRun:
		return inputErr("--dry-run", "tlsdock run has no dry run: use `tlsdock provision --dry-run` to see what a rotation would change")
	case c.Debounce <= 0:
		return inputErr("--debounce", "must be positive, got %v: it is how long the source must stay unchanged before tlsdock acts, usually 2s", c.Debounce)
	case c.MaxWait < c.Debounce:
		return inputErr("--max-wait", "--max-wait %v must be at least --debounce %v: it bounds how long a burst of changes can delay a rotation", c.MaxWait, c.Debounce)
	case c.MinRestartInterval < 0:
		return inputErr("--min-restart-interval", "must not be negative, got %v: docker.service allows 3 starts in 60s, so keep it at 20s or more", c.MinRestartInterval)
	case c.RenewBefore < 0 || c.RenewBefore > MaxRenewBefore:
		return inputErr("--renew-before", "--renew-before %v must be between 0 and %v: the local CA issues certificates for %v, and 0 renews at two thirds of that", c.RenewBefore, MaxRenewBefore, ServerValidity)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return inputErr("--metrics-listen", "%q is not HOST:PORT (%v): use for example 127.0.0.1:9323", c.MetricsListen, err)
		}
	}
	return nil
}

// Clock is the rotation loop's time source. Only the loop owns one; every
// decision is a function of the time it reads.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time                 { return time.Now() }
func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// Applier runs the provision sequence and reads what it installed.
// *Agent satisfies it.
type Applier interface {
	Provision(ctx context.Context, cfg Config) (*Result, error)
	// Installed returns the set installed in /etc/docker/ssl, or nil.
	Installed() (*certstore.Set, error)
	// RecordError sets the error `tlsdock status` shows ("" clears it).
	RecordError(msg string) error
}

// Installed returns the set installed in /etc/docker/ssl, or nil when none
// is.
func (a *Agent) Installed() (*certstore.Set, error) {
	return certstore.Store{Dir: a.o.Paths.SSL()}.Load()
}

// RecordError records msg as the current error in state.json, which
// `tlsdock status` shows, and changes nothing else. An empty msg clears
// it. The next apply replaces it with its own result.
func (a *Agent) RecordError(msg string) error {
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := a.loadState()
	if err != nil {
		return err
	}
	if st == nil {
		if msg == "" {
			return nil
		}
		st = &State{}
	}
	if st.LastError == msg {
		return nil
	}
	st.LastError = msg
	return a.saveState(st)
}

// RunOptions are the rotation loop's dependencies. Every field has a safe
// default.
type RunOptions struct {
	Clock Clock
	// Rand returns a random number in [0, n); it draws the renewal jitter.
	Rand   func(n int64) int64
	Logger *slog.Logger
	// Notify sends a state line to systemd (READY=1, STATUS=..., WATCHDOG=1,
	// STOPPING=1); the default is systemd.Notify.
	Notify func(state string) bool
	// Watchdog is systemd's watchdog interval (WATCHDOG_USEC); 0 is off.
	Watchdog time.Duration
	// Metrics, when set, is kept up to date.
	Metrics *Metrics
	// Hangup delivers SIGHUP: re-read the settings with Reload and check
	// again at once.
	Hangup <-chan os.Signal
	// Reload re-reads the config file and flags; nil keeps the settings.
	Reload func() (RunConfig, error)
}

// Rotator is the rotation daemon: it keeps dockerd serving the current,
// valid set from the source (or from the local CA) by running the
// provision sequence when needed, never faster than the restart limit
// allows.
type Rotator struct {
	app Applier
	cfg RunConfig
	o   RunOptions
	log *slog.Logger

	watch *sourceWatch // nil with Generate or before Run

	deb     debouncer // changes of the source not acted on yet
	scanNow bool      // scan without waiting (startup, SIGHUP)

	installed *certstore.Set // what dockerd serves, as installed
	candidate *certstore.Set // a valid source set that differs from installed
	invalid   string         // why the settled source set is invalid
	force     bool           // apply even if unchanged (settings changed)

	lastAttempt time.Time // end of the last Provision (rate limit)
	retry       retry
	blockedFP   string // bad input: not retried until the source changes
	refused     bool   // with Generate: bad input; not retried until SIGHUP

	renewAt      time.Time // with Generate: the next renewal
	jitterSerial string
	jitter       time.Duration

	warning      string // expiry warning for the served certificate
	warns        expiryWarnings
	lastFailure  string
	recorded     string // what RecordError last wrote
	recordedSure bool   // false after a Provision, which writes its own
	lastStatus   string
}

// NewRotator returns the rotation loop for cfg, filling in defaults.
func NewRotator(app Applier, cfg RunConfig, o RunOptions) *Rotator {
	if o.Clock == nil {
		o.Clock = SystemClock
	}
	if o.Rand == nil {
		o.Rand = rand.Int64N
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Notify == nil {
		o.Notify = systemd.Notify
	}
	return &Rotator{app: app, cfg: cfg, o: o, log: o.Logger.With("component", "rotate"),
		deb: debouncer{settle: cfg.Debounce, maxWait: cfg.MaxWait}}
}

// Run starts the daemon and returns when ctx is done. It reconciles first
// (rotates if the installed set differs from a valid source set, or
// provisions with the local CA), then tells systemd it is ready and waits
// for changes, timers and SIGHUP. A Provision in progress is never
// interrupted: it is bounded by its own timeout.
func (r *Rotator) Run(ctx context.Context) error {
	if err := r.checkSource(); err != nil {
		return err
	}
	if err := r.startWatch(); err != nil {
		return err
	}
	defer r.stopWatch()
	r.start(ctx)
	r.o.Notify("READY=1")
	r.log.Info("ready", "source", r.source())

	var watchdog <-chan time.Time
	if r.o.Watchdog > 0 {
		t := time.NewTicker(r.o.Watchdog / 2)
		defer t.Stop()
		watchdog = t.C
		r.o.Notify("WATCHDOG=1")
	}
	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		var fire <-chan time.Time
		if at := r.next(); !at.IsZero() {
			timer = r.o.Clock.NewTimer(max(at.Sub(r.o.Clock.Now()), 0))
			fire = timer.C()
		}
		var events <-chan fsnotify.Event
		var errs <-chan error
		if r.watch != nil {
			events, errs = r.watch.w.Events, r.watch.w.Errors
		}
		select {
		case <-ctx.Done():
			r.o.Notify("STOPPING=1")
			r.log.Info("stopping")
			return nil
		case <-fire:
			r.step(ctx)
		case ev, ok := <-events:
			if ok {
				r.onFSEvent(ev)
			}
		case err, ok := <-errs:
			if ok {
				r.onFSError(err)
			}
		case <-r.o.Hangup:
			r.hangup(ctx)
		case <-watchdog:
			r.o.Notify("WATCHDOG=1")
		}
	}
}

func (r *Rotator) source() string {
	if r.cfg.Generate {
		return CADir
	}
	return r.cfg.Certs
}

// checkSource fails the start on a source that someone besides root (and
// the allow-source-owner account) can change: the daemon would otherwise
// install whatever CA that account puts there.
func (r *Rotator) checkSource() error {
	if r.cfg.Generate {
		return nil
	}
	trust, err := r.cfg.SourceTrust()
	if err != nil {
		return err
	}
	if err := certstore.CheckSource(r.cfg.Certs, trust); err != nil {
		return &InputError{Field: "--certs", Err: fmt.Errorf("%w; tlsdock run does not start on a source others can change", err)}
	}
	if w := r.cfg.SourceWarning(); w != "" {
		r.log.Warn(w, "source", r.cfg.Certs)
	}
	return nil
}

func (r *Rotator) startWatch() error {
	if r.cfg.Generate || r.watch != nil {
		return nil
	}
	w, err := newSourceWatch(r.cfg.Certs, r.log)
	if err != nil {
		return err
	}
	r.watch = w
	return nil
}

func (r *Rotator) stopWatch() {
	if r.watch != nil {
		r.watch.Close()
		r.watch = nil
	}
}

// start is the startup reconcile.
func (r *Rotator) start(ctx context.Context) {
	// Whatever an earlier run recorded is rewritten (or cleared) once.
	r.recorded, r.recordedSure = "\x00", true
	r.refreshInstalled()
	if r.cfg.Generate {
		r.force = true // provision once: creates the CA on a new host, renews if due
	} else {
		r.scanNow = true
	}
	r.step(ctx)
}

// onFSEvent handles one fsnotify event: a relevant one starts or extends
// the debounce.
func (r *Rotator) onFSEvent(ev fsnotify.Event) {
	if r.watch == nil {
		return
	}
	relevant, structural := r.watch.classify(ev)
	if !relevant {
		return
	}
	r.log.Debug("source changed", "event", ev.String(), "structural", structural)
	r.watch.sync()
	r.changed()
}

// onFSError handles the watcher's errors. An overflow lost events: rescan.
func (r *Rotator) onFSError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		r.log.Warn("too many file events at once; rescanning the source", "dir", r.cfg.Certs)
	} else {
		r.log.Warn("watching the source failed; rescanning it", "dir", r.cfg.Certs, "err", err)
	}
	if r.watch != nil {
		r.watch.sync()
	}
	r.changed()
}

// changed notes a change of the source at the clock's time.
func (r *Rotator) changed() { r.deb.changed(r.o.Clock.Now()) }

// hangup re-reads the settings and checks again at once.
func (r *Rotator) hangup(ctx context.Context) {
	r.log.Info("SIGHUP: re-reading the settings and checking again")
	if r.o.Reload != nil {
		cfg, err := r.o.Reload()
		if err != nil {
			r.log.Error("re-reading the settings failed; keeping the previous ones", "err", err)
			r.o.Notify("STATUS=SIGHUP: the settings do not load, keeping the previous ones: " + oneLine(err.Error()))
			r.lastStatus = ""
		} else if !reflect.DeepEqual(cfg, r.cfg) {
			if cfg.MetricsListen != r.cfg.MetricsListen {
				r.log.Warn("metrics-listen changes only with a restart of tlsdock", "listening", r.cfg.MetricsListen, "configured", cfg.MetricsListen)
				cfg.MetricsListen = r.cfg.MetricsListen
			}
			if cfg.Certs != r.cfg.Certs || cfg.Generate != r.cfg.Generate {
				r.stopWatch()
			}
			r.force = !reflect.DeepEqual(cfg.Config, r.cfg.Config)
			r.cfg = cfg
			r.deb.settle, r.deb.maxWait = cfg.Debounce, cfg.MaxWait
			r.renewAt, r.candidate, r.invalid = time.Time{}, nil, ""
			if err := r.startWatch(); err != nil {
				r.log.Error("watching the new source failed; changes are seen only on SIGHUP", "dir", cfg.Certs, "err", err)
			}
		}
	}
	if r.cfg.Generate {
		r.force = true
	}
	r.retry, r.blockedFP, r.refused = retry{}, "", false
	r.scanNow = !r.cfg.Generate
	r.step(ctx)
}

// next is when step must run again; zero when nothing is scheduled.
func (r *Rotator) next() time.Time {
	var at time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if r.deb.pending() {
		consider(r.deb.at())
	} else if r.scanNow {
		consider(r.o.Clock.Now())
	}
	due := func(t time.Time) time.Time {
		if t.IsZero() {
			return r.o.Clock.Now()
		}
		return t
	}
	switch {
	case r.cfg.Generate && r.refused && !r.force:
		// Bad input: wait for SIGHUP.
	case r.cfg.Generate:
		renew := r.renewAt
		if r.force || r.retry.failures > 0 {
			renew = time.Time{} // at once, but for the rate limit and the backoff
		}
		consider(due(later(renew, r.rotateAt())))
	case r.candidate != nil && !r.deb.pending() && !r.blocked():
		consider(due(r.rotateAt()))
	}
	consider(r.warns.next)
	return at
}

func later(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// rotateAt is the earliest time the next rotation may start: the minimum
// interval after the last one, and the backoff after failures.
func (r *Rotator) rotateAt() time.Time {
	var t time.Time
	if !r.lastAttempt.IsZero() {
		t = r.lastAttempt.Add(r.cfg.MinRestartInterval)
	}
	return later(t, r.retry.at())
}

func (r *Rotator) blocked() bool {
	return r.candidate != nil && r.blockedFP != "" && r.candidate.Fingerprint() == r.blockedFP && !r.force
}

// step does whatever is due at the clock's time: scan a settled source,
// rotate, renew, warn. Each decision logs one line.
func (r *Rotator) step(ctx context.Context) {
	now := r.o.Clock.Now()
	switch {
	case r.deb.due(now):
		settled := r.deb.settled(now)
		r.deb.clear()
		r.scanNow = false
		r.scan(now, settled)
	case r.scanNow && !r.deb.pending(): // while a burst is in progress, the debounce scans
		r.scanNow = false
		r.scan(now, true)
	}
	if r.cfg.Generate {
		r.maybeRenew(ctx, now)
	} else {
		r.maybeRotate(ctx, now)
	}
	r.checkExpiry(now)
	r.record()
	r.status(now)
}

// refreshInstalled reads what is installed, which a manual provision or
// revert may have changed.
func (r *Rotator) refreshInstalled() {
	set, err := r.app.Installed()
	if err != nil {
		r.log.Warn("the installed set does not load; a valid source set replaces it", "dir", SSLDir, "err", err)
		set = nil
	}
	r.setInstalled(set)
}

func (r *Rotator) setInstalled(set *certstore.Set) {
	r.installed = set
	if set != nil {
		r.o.Metrics.setExpiry(set.Cert.NotAfter)
	}
}

// served takes what dockerd serves after a Provision from its result:
// the set the sequence installed, or the one handed to it. Only a failed
// sequence, or a result that does not say, makes it read what is
// installed.
func (r *Rotator) served(res *Result, err error, handed *certstore.Set) {
	switch {
	case err != nil || res.Fingerprint == "":
		r.refreshInstalled()
	case res.served != nil && res.served.Fingerprint() == res.Fingerprint:
		r.setInstalled(res.served)
	case handed != nil && handed.Fingerprint() == res.Fingerprint:
		r.setInstalled(handed)
	case res.Fingerprint == r.installedFP():
	default:
		r.refreshInstalled()
	}
}

func (r *Rotator) installedFP() string {
	if r.installed == nil {
		return ""
	}
	return r.installed.Fingerprint()
}

// loadSource reads the source set and runs provision's validation of it.
func (r *Rotator) loadSource(now time.Time) (*certstore.Set, error) {
	trust, err := r.cfg.SourceTrust()
	if err != nil {
		return nil, err
	}
	set, err := certstore.LoadSource(r.cfg.Certs, trust)
	if err != nil {
		return nil, err
	}
	ls, err := r.cfg.Listeners()
	if err != nil {
		return nil, err
	}
	req := requiredNames(r.cfg.Config, ls)
	req.Now = now
	if err := set.Validate(req); err != nil {
		return nil, err
	}
	return set, nil
}

// scan reads the source. settled says no change came for Debounce: before
// that, a set that does not load or validate is only not ready yet.
func (r *Rotator) scan(now time.Time, settled bool) {
	if r.cfg.Generate {
		return
	}
	r.refreshInstalled()
	set, err := r.loadSource(now)
	if err != nil {
		if !settled {
			r.log.Debug("the source set is not complete yet; waiting for more changes", "dir", r.cfg.Certs, "err", err)
			r.deb.wait(now)
			return
		}
		msg := fmt.Sprintf("invalid set in %s: %v; %s, and tlsdock checks again when the files change", r.cfg.Certs, err, r.servingWhat())
		logMsg := "invalid certificate set; not installing it"
		if errors.Is(err, certstore.ErrUnsafeSource) {
			msg = fmt.Sprintf("unsafe source %s: %v; %s, and tlsdock checks again when the files change or on SIGHUP", r.cfg.Certs, err, r.servingWhat())
			logMsg = "the certificate source can be changed by others than root; not installing it"
		}
		if msg != r.invalid {
			r.log.Error(logMsg, "dir", r.cfg.Certs, "err", err, "serving", r.installed.Serial())
			r.o.Metrics.rotation("invalid")
		}
		r.invalid, r.candidate = msg, nil
		r.o.Metrics.setValidationError(true)
		return
	}
	if r.invalid != "" {
		r.log.Info("the source set is valid again", "dir", r.cfg.Certs, "serial", set.Serial())
	}
	r.invalid = ""
	r.o.Metrics.setValidationError(false)
	fp := set.Fingerprint()
	if fp != r.blockedFP {
		r.blockedFP = "" // the source changed: a rejected set may be retried
	}
	if fp == r.installedFP() && !r.force {
		if r.candidate != nil {
			r.log.Info("the source is back to the installed set; nothing to do", "serial", set.Serial())
		} else {
			r.log.Debug("the source set is unchanged", "serial", set.Serial())
		}
		r.candidate = nil
		return
	}
	if r.candidate == nil || r.candidate.Fingerprint() != fp {
		r.log.Info("new certificate set in the source", "dir", r.cfg.Certs, "serial", set.Serial(), "expires", set.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	r.candidate = set
}

func (r *Rotator) servingWhat() string {
	if r.installed == nil {
		return "nothing is installed yet"
	}
	return "docker keeps serving serial " + r.installed.Serial()
}

// maybeRotate installs the latest valid source set when the rate limit and
// the backoff allow and no burst of changes is in progress.
func (r *Rotator) maybeRotate(ctx context.Context, now time.Time) {
	if r.candidate == nil || r.deb.pending() || r.blocked() {
		return
	}
	if at := r.rotateAt(); now.Before(at) {
		return
	}
	set := r.candidate
	cfg := r.cfg.Config
	r.log.Info("rotating", "from", r.installed.Serial(), "to", set.Serial(), "dir", cfg.Certs)
	r.o.Notify("STATUS=rotating to serial " + set.Serial())
	r.lastStatus = ""
	cfg.SourceSet = set // the sequence installs what was validated here
	res, err := r.provision(ctx, cfg)
	r.served(res, err, set)
	r.force = false
	now = r.o.Clock.Now()
	if r.after(res, err, now, set.Serial()) {
		if res.Fingerprint != set.Fingerprint() {
			// The sequence served another set than the one handed to
			// it: look at the source again.
			r.scanNow = true
		}
		r.candidate = nil
		return
	}
	var ie *InputError
	if errors.As(err, &ie) {
		r.blockedFP = set.Fingerprint()
	}
}

// maybeRenew runs the provision sequence with the local CA when the
// renewal is due (the plan reissues from RenewAt on).
func (r *Rotator) maybeRenew(ctx context.Context, now time.Time) {
	if r.refused && !r.force {
		return
	}
	due := r.force || r.retry.failures > 0 || r.renewAt.IsZero() || !now.Before(r.renewAt)
	if !due || now.Before(r.rotateAt()) {
		return
	}
	wasDue := !r.force && r.installed != nil && !r.renewAt.IsZero() && !now.Before(r.renewAt)
	before := r.installed.Serial()
	if wasDue {
		r.log.Info("renewing the server certificate", "serial", before, "due", r.renewAt.UTC().Format(time.RFC3339))
		r.o.Notify("STATUS=renewing serial " + before)
		r.lastStatus = ""
	}
	res, err := r.provision(ctx, r.cfg.Config)
	r.served(res, err, nil)
	r.force = false
	now = r.o.Clock.Now()
	if err == nil && (r.installed == nil || wasDue && r.installed.Serial() == before) {
		// The plan saw nothing to renew: never spin on it.
		r.o.Metrics.rotation("failed")
		r.failed(now, fmt.Sprintf("the local CA did not renew serial %s though it was due at %s: check the system clock and %s", before, r.renewAt.UTC().Format(time.RFC3339), CADir))
	} else {
		var ie *InputError
		r.refused = !r.after(res, err, now, "") && errors.As(err, &ie)
	}
	r.planRenewal()
}

// planRenewal sets renewAt for the installed certificate: renewTime plus a
// jitter drawn once per certificate.
func (r *Rotator) planRenewal() {
	if r.installed == nil {
		r.renewAt = time.Time{}
		return
	}
	c := r.installed.Cert
	if r.jitterSerial != r.installed.Serial() {
		r.jitterSerial, r.jitter = r.installed.Serial(), renewJitter(c, r.o.Rand)
	}
	r.renewAt = renewTime(c, r.cfg.RenewBefore).Add(r.jitter)
}

// renewTime is when a local-CA certificate is due: before ahead of its
// expiry, or at two thirds of its lifetime (RenewAt) when before is 0.
func renewTime(c *x509.Certificate, before time.Duration) time.Time {
	if before > 0 {
		return c.NotAfter.Add(-before)
	}
	return RenewAt(c)
}

// maxRenewJitter bounds the renewal jitter: 1% of the lifetime, at most an
// hour.
func maxRenewJitter(c *x509.Certificate) time.Duration {
	return min(time.Hour, c.NotAfter.Sub(c.NotBefore)/100)
}

// renewJitter spreads renewals of many hosts: a random delay in
// [0, maxRenewJitter). It is never negative, because the plan reissues only
// from the renewal time on.
func renewJitter(c *x509.Certificate, rnd func(int64) int64) time.Duration {
	m := maxRenewJitter(c)
	if m <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(m)))
}

// provision runs the sequence. It is not interrupted when ctx is done
// (SIGTERM): it is bounded by its own timeouts. The watchdog is fed
// meanwhile.
func (r *Rotator) provision(ctx context.Context, cfg Config) (*Result, error) {
	if r.o.Watchdog > 0 {
		done := make(chan struct{})
		defer close(done)
		go func() {
			t := time.NewTicker(r.o.Watchdog / 2)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					r.o.Notify("WATCHDOG=1")
				}
			}
		}()
	}
	res, err := r.app.Provision(context.WithoutCancel(ctx), cfg)
	r.recordedSure = false
	r.lastAttempt = r.o.Clock.Now()
	if res == nil {
		res = &Result{}
	}
	return res, err
}

// after accounts for a Provision: log, metrics, backoff. It reports
// whether it succeeded.
func (r *Rotator) after(res *Result, err error, now time.Time, want string) bool {
	var ie *InputError
	switch {
	case err == nil:
		if res.Changed {
			r.o.Metrics.rotation("ok")
			r.o.Metrics.setLastSuccess(now)
			r.log.Info("rotated", "serial", res.Serial, "expires", res.NotAfter.UTC().Format(time.DateOnly), "restarted", res.Restarted)
		} else {
			r.log.Info("checked; nothing to change", "serial", res.Serial)
		}
		r.retry, r.lastFailure = retry{}, ""
		return true
	case errors.As(err, &ie):
		r.o.Metrics.rotation("invalid")
		r.lastFailure = fmt.Sprintf("rotation to %s refused: %v", orWord(want, "a new certificate"), err)
		r.log.Error("rotation refused: bad input; nothing was changed. Fix it, then change the source or send SIGHUP", "err", err)
		return false
	case errors.Is(err, ErrRolledBack):
		r.o.Metrics.rotation("rolled_back")
	default:
		r.o.Metrics.rotation("failed")
	}
	r.failed(now, fmt.Sprintf("rotation failed: %v", err))
	return false
}

// failed schedules a retry with backoff.
func (r *Rotator) failed(now time.Time, msg string) {
	r.retry.failed(now)
	r.lastFailure = msg
	r.log.Error("rotation failed; docker keeps its previous set", "err", msg, "retry_at", r.retry.next.UTC().Format(time.RFC3339), "failures", r.retry.failures)
}

// expiryThresholds are how long before expiry the served certificate is
// warned about. The local CA renews at two thirds of the lifetime, so only
// the later ones apply to it.
var (
	expiryThresholds        = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour}
	expiryThresholdsLocalCA = []time.Duration{7 * 24 * time.Hour, 24 * time.Hour}
)

// expiryMessage is the warning for a certificate at level.
func expiryMessage(c *x509.Certificate, serial string, now time.Time, generate bool, source string) string {
	what := fmt.Sprintf("the served certificate (serial %s) expires on %s (%s)", serial, c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), left(c.NotAfter.Sub(now)))
	if !now.Before(c.NotAfter) {
		what = fmt.Sprintf("the served certificate (serial %s) expired on %s: clients refuse it", serial, c.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
	}
	if generate {
		return what + ": the local CA's automatic renewal did not replace it; see `journalctl -u tlsdock`"
	}
	return what + ": put a renewed set into " + source
}

func left(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("in %d days", int(d.Hours()/24))
	}
	return fmt.Sprintf("in %d hours", int(d.Hours()))
}

// checkExpiry warns once per threshold crossed by the served certificate.
func (r *Rotator) checkExpiry(now time.Time) {
	r.warning, r.warns.next = "", time.Time{}
	if r.installed == nil {
		return
	}
	th := expiryThresholds
	if r.cfg.Generate {
		th = expiryThresholdsLocalCA
	}
	serial := r.installed.Serial()
	level, fresh := r.warns.check(serial, r.installed.Cert.NotAfter, now, th)
	if level == 0 {
		return
	}
	r.warning = expiryMessage(r.installed.Cert, serial, now, r.cfg.Generate, r.source())
	if fresh {
		r.log.Warn("certificate expires soon", "serial", serial, "not_after", r.installed.Cert.NotAfter.UTC().Format(time.RFC3339), "warning", r.warning)
	}
}

// problems is what `tlsdock status` should show: an invalid source set and
// an expiry warning.
func (r *Rotator) problems() string {
	var p []string
	for _, s := range []string{r.invalid, r.warning, r.cfg.SourceWarning()} {
		if s != "" {
			p = append(p, s)
		}
	}
	return strings.Join(p, "; ")
}

// record writes problems into state.json when they changed. After a
// Provision, which records its own result, an empty list is left alone.
func (r *Rotator) record() {
	p := r.problems()
	if r.recordedSure && p == r.recorded {
		return
	}
	if !r.recordedSure && p == "" {
		r.recorded, r.recordedSure = "", true
		return
	}
	if err := r.app.RecordError(p); err != nil {
		r.log.Warn("recording the error for `tlsdock status` failed; trying again on the next change", "err", err)
		r.recordedSure = false
		return
	}
	r.recorded, r.recordedSure = p, true
}

// status tells systemd what the daemon is doing, when it changed.
func (r *Rotator) status(now time.Time) {
	var s string
	serving := "nothing installed"
	if r.installed != nil {
		serving = fmt.Sprintf("serving serial %s, expires %s", r.installed.Serial(), r.installed.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	switch {
	case r.invalid != "":
		s = r.invalid
	case r.retry.failures > 0:
		s = fmt.Sprintf("%s; retrying at %s; %s", r.lastFailure, r.retry.next.UTC().Format(time.TimeOnly), serving)
	case r.blocked():
		s = r.lastFailure
	case r.candidate != nil && !r.deb.pending():
		s = fmt.Sprintf("waiting until %s to rotate to serial %s (restart rate limit); %s", r.rotateAt().UTC().Format(time.TimeOnly), r.candidate.Serial(), serving)
	case r.cfg.Generate:
		s = fmt.Sprintf("local CA %s; %s; renewal at %s", CADir, serving, r.renewAt.UTC().Format(time.DateTime))
	default:
		s = fmt.Sprintf("watching %s; %s", r.cfg.Certs, serving)
	}
	if r.warning != "" && r.invalid == "" {
		s += "; " + r.warning
	}
	if w := r.cfg.SourceWarning(); w != "" {
		s += "; " + w
	}
	s = oneLine(s)
	if s != r.lastStatus {
		r.lastStatus = s
		r.o.Notify("STATUS=" + s)
	}
}

// oneLine folds a multi-line message (errors.Join) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
