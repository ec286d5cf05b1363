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
	// Debounce is the trailing timer: a change that leaves the set
	// incomplete or invalid waits this long for more changes before the
	// set is refused. A complete, valid set is acted on at once.
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
		return inputErr("--debounce", "must be positive, got %v: it is how long an incomplete or invalid source set waits for more changes, usually 2s", c.Debounce)
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
	// TimerAt fires at at, at once when at is not after Now. It takes the
	// instant rather than a duration: a duration computed from an earlier
	// Now would count from a later one if the clock moved in between.
	TimerAt(at time.Time) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) TimerAt(at time.Time) Timer {
	return systemTimer{time.NewTimer(max(time.Until(at), 0))}
}

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
	// RecordPending sets the pending set `tlsdock status` shows (nil
	// clears it).
	RecordPending(p *PendingSet) error
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
	return a.updateState(msg == "", func(st *State) bool {
		if st.LastError == msg {
			return false
		}
		st.LastError = msg
		return true
	})
}

// RecordPending records p as the set waiting to become valid in
// state.json, which `tlsdock status` shows, and changes nothing else. A
// nil p clears it.
func (a *Agent) RecordPending(p *PendingSet) error {
	return a.updateState(p == nil, func(st *State) bool {
		if st.Pending.equal(p) {
			return false
		}
		st.Pending = p
		return true
	})
}

// updateState changes state.json under the lock: change reports whether
// it changed the state, which is saved only then. clears says the change
// only clears a field, so a host without state.json keeps none.
func (a *Agent) updateState(clears bool, change func(st *State) bool) error {
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
		if clears {
			return nil
		}
		st = &State{}
	}
	if !change(st) {
		return nil
	}
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
	// SystemRoots are the trusted roots a public CA's server chain is
	// checked against (serverRoots); default x509.SystemCertPool.
	SystemRoots func() (*x509.CertPool, error)
}

// Rotator is the rotation daemon: it keeps dockerd serving the current,
// valid set from its source (a watched directory or the local CA) by
// running the provision sequence when needed, never faster than the
// restart limit allows. What the two sources share is here: the served
// set, the rate limit, the retry backoff, the expiry warnings and what
// status shows.
type Rotator struct {
	app Applier
	cfg RunConfig
	o   RunOptions
	log *slog.Logger

	src source // the watched directory or the local CA

	installed *certstore.Set // what dockerd serves, as installed
	force     bool           // apply even if unchanged (settings changed)

	lastAttempt time.Time // end of the last Provision (rate limit)
	retry       retry

	warning      string // expiry warning for the served certificate
	warns        expiryWarnings
	lastFailure  string
	recorded     string      // what RecordError last wrote
	recordedSure bool        // false after a Provision, which writes its own
	pending      *PendingSet // what RecordPending last wrote
	pendingSure  bool        // false after a Provision, which writes its own
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
	r := &Rotator{app: daemonApplier{app}, cfg: cfg, o: o, log: o.Logger.With("component", "rotate")}
	r.src = r.newSource()
	return r
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
	r.log.Info("ready", "source", r.src.String())

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
			timer = r.o.Clock.TimerAt(at)
			fire = timer.C()
		}
		events, errs := r.src.events()
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

// checkSource fails the start on a source the daemon must not use.
func (r *Rotator) checkSource() error { return r.src.check() }

func (r *Rotator) startWatch() error { return r.src.open() }

func (r *Rotator) stopWatch() { r.src.close() }

// start is the startup reconcile.
func (r *Rotator) start(ctx context.Context) {
	// Whatever an earlier run recorded is rewritten (or cleared) once.
	r.recorded, r.recordedSure = "\x00", true
	r.refreshInstalled()
	r.src.recheck()
	r.step(ctx)
}

// onFSEvent and onFSError hand the watcher's events to the source.
func (r *Rotator) onFSEvent(ev fsnotify.Event) { r.src.onEvent(ev) }

func (r *Rotator) onFSError(err error) { r.src.onError(err) }

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
			moved := cfg.Certs != r.cfg.Certs || cfg.Generate != r.cfg.Generate
			r.force = !reflect.DeepEqual(cfg.Config, r.cfg.Config)
			r.cfg = cfg
			if moved {
				r.src.close()
				r.src = r.newSource()
			} else {
				r.src.reload()
			}
			if err := r.src.open(); err != nil {
				r.log.Error("watching the new source failed; changes are seen only on SIGHUP", "dir", cfg.Certs, "err", err)
			}
		}
	}
	r.retry = retry{}
	r.src.recheck()
	r.step(ctx)
}

// next is when step must run again; zero when nothing is scheduled.
func (r *Rotator) next() time.Time {
	at := r.src.next(r.o.Clock.Now())
	if w := r.warns.next; !w.IsZero() && (at.IsZero() || w.Before(at)) {
		at = w
	}
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

// step does whatever is due at the clock's time: scan a settled source,
// rotate, renew, warn. Each decision logs one line.
func (r *Rotator) step(ctx context.Context) {
	now := r.o.Clock.Now()
	r.src.step(ctx, now)
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
	r.recordedSure, r.pendingSure = false, false
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
	case errors.Is(err, ErrReverted):
		r.lastFailure = "not provisioning: " + err.Error()
		r.log.Warn("not provisioning: the host was reverted; run `tlsdock provision` to provision it again", "err", err)
		return false
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
// warned about, scaled down for one valid less than expiryReference. The
// local CA renews at two thirds of the lifetime, so only the later ones
// apply to it.
var (
	expiryThresholds        = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour}
	expiryThresholdsLocalCA = []time.Duration{7 * 24 * time.Hour, 24 * time.Hour}
)

// expiryReference is the lifetime from which the expiry thresholds apply
// as they are. A certificate valid for less has them scaled to its
// lifetime (scaleThresholds): its first warning comes when a quarter of
// it is left, later than any issuer's usual renewal (step, cert-manager
// and the local CA renew at two thirds, certbot 30 days before a 90-day
// certificate ends), so that a short-lived certificate renewed on time
// never stands in "attention".
const expiryReference = 120 * 24 * time.Hour

// scaleThresholds are the thresholds th for a certificate valid for
// lifetime: th as they are from expiryReference on, each scaled by
// lifetime/expiryReference below (a 24-hour certificate: 6 h, 84 min and
// 12 min before expiry instead of 30, 7 and 1 days).
func scaleThresholds(th []time.Duration, lifetime time.Duration) []time.Duration {
	if lifetime >= expiryReference || lifetime <= 0 {
		return th
	}
	out := make([]time.Duration, len(th))
	for i, d := range th {
		out[i] = time.Duration(float64(d) * float64(lifetime) / float64(expiryReference)).Round(time.Second)
	}
	return out
}

// expiryMessage is the warning for a certificate at level.
func expiryMessage(c *x509.Certificate, serial string, now time.Time, advice string) string {
	what := fmt.Sprintf("the served certificate (serial %s) expires on %s (%s)", serial, c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), left(c.NotAfter.Sub(now)))
	if !now.Before(c.NotAfter) {
		what = fmt.Sprintf("the served certificate (serial %s) expired on %s: clients refuse it", serial, c.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
	}
	return what + ": " + advice
}

func left(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("in %d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("in %d hours", int(d.Hours()))
	}
	return fmt.Sprintf("in %d minutes", int(d.Minutes()))
}

// checkExpiry warns once per threshold crossed by the served certificate.
func (r *Rotator) checkExpiry(now time.Time) {
	r.warning, r.warns.next = "", time.Time{}
	if r.installed == nil {
		return
	}
	c := r.installed.Cert
	th := scaleThresholds(r.src.thresholds(), c.NotAfter.Sub(c.NotBefore))
	serial := r.installed.Serial()
	level, fresh := r.warns.check(serial, r.installed.Cert.NotAfter, now, th)
	if level == 0 {
		return
	}
	r.warning = expiryMessage(r.installed.Cert, serial, now, r.src.advice())
	if fresh {
		r.log.Warn("certificate expires soon", "serial", serial, "not_after", r.installed.Cert.NotAfter.UTC().Format(time.RFC3339), "warning", r.warning)
	}
}

// problems is what `tlsdock status` should show: an invalid source set and
// an expiry warning.
func (r *Rotator) problems() string {
	var p []string
	for _, s := range []string{r.src.problem(), r.warning, r.cfg.SourceWarning()} {
		if s != "" {
			p = append(p, s)
		}
	}
	return strings.Join(p, "; ")
}

// record writes problems and the pending set into state.json when they
// changed. After a Provision, which records its own result, an empty list
// is left alone.
func (r *Rotator) record() {
	r.recordPending()
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

// recordPending writes the pending set into state.json and the metrics
// when it changed.
func (r *Rotator) recordPending() {
	p := r.src.pendingSet()
	r.o.Metrics.setPending(p)
	if r.pendingSure && p.equal(r.pending) {
		return
	}
	if err := r.app.RecordPending(p); err != nil {
		r.log.Warn("recording the pending set for `tlsdock status` failed; trying again on the next change", "err", err)
		r.pendingSure = false
		return
	}
	r.pending, r.pendingSure = p, true
}

// status tells systemd what the daemon is doing, when it changed.
func (r *Rotator) status(now time.Time) {
	var s string
	serving := "nothing installed"
	if r.installed != nil {
		serving = fmt.Sprintf("serving serial %s, expires %s", r.installed.Serial(), r.installed.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	switch {
	case r.src.problem() != "":
		s = r.src.problem()
	case r.retry.failures > 0:
		s = fmt.Sprintf("%s; retrying at %s; %s", r.lastFailure, r.retry.next.UTC().Format(time.TimeOnly), serving)
	default:
		s = r.src.status(serving)
	}
	if p := r.src.pendingSet(); p != nil {
		// Absolute times only: the line stays until the next change.
		from := "valid from"
		if !now.Before(p.NotBefore) {
			from = "valid since" // waiting for notBeforeMargin
		}
		s += fmt.Sprintf("; pending: serial %s, %s %s, installed at %s", p.Serial, from, p.NotBefore.UTC().Format(statusTime), p.InstallAt.UTC().Format(time.TimeOnly))
	}
	if r.warning != "" && r.src.problem() == "" {
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
