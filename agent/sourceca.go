package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"
)

// caSource is the local CA: the provision sequence issues the server
// certificate, and reissues it at its renewal time plus a jitter drawn
// once per certificate.
type caSource struct {
	r *Rotator

	refused bool      // bad input: not retried until SIGHUP
	renewAt time.Time // the next renewal; zero: at once

	jitterSerial string
	jitter       time.Duration
}

func (c *caSource) String() string { return CADir }

func (c *caSource) check() error { return nil }
func (c *caSource) open() error  { return nil }
func (c *caSource) close()       {}

func (c *caSource) events() (<-chan fsnotify.Event, <-chan error) { return nil, nil }
func (c *caSource) onEvent(fsnotify.Event)                        {}
func (c *caSource) onError(error)                                 {}

// recheck provisions once: it creates the CA on a new host and renews if
// due.
func (c *caSource) recheck() { c.refused, c.r.force = false, true }

func (c *caSource) reload() { c.renewAt = time.Time{} }

func (c *caSource) next(now time.Time) time.Time {
	r := c.r
	if c.refused && !r.force {
		return time.Time{} // bad input: wait for SIGHUP
	}
	renew := c.renewAt
	if r.force || r.retry.failures > 0 {
		renew = time.Time{} // at once, but for the rate limit and the backoff
	}
	return orNow(later(renew, r.rotateAt()), now)
}

// step runs the provision sequence with the local CA when the renewal is
// due (the plan reissues from RenewAt on).
func (c *caSource) step(ctx context.Context, now time.Time) {
	r := c.r
	if c.refused && !r.force {
		return
	}
	due := r.force || r.retry.failures > 0 || c.renewAt.IsZero() || !now.Before(c.renewAt)
	if !due || now.Before(r.rotateAt()) {
		return
	}
	wasDue := !r.force && r.installed != nil && !c.renewAt.IsZero() && !now.Before(c.renewAt)
	before := r.installed.Serial()
	if wasDue {
		r.log.Info("renewing the server certificate", "serial", before, "due", c.renewAt.UTC().Format(time.RFC3339))
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
		r.failed(now, fmt.Sprintf("the local CA did not renew serial %s though it was due at %s: check the system clock and %s", before, c.renewAt.UTC().Format(time.RFC3339), CADir))
	} else {
		var ie *InputError
		c.refused = !r.after(res, err, now, "") && errors.As(err, &ie)
	}
	c.planRenewal()
}

// planRenewal sets renewAt for the installed certificate: renewTime plus a
// jitter drawn once per certificate.
func (c *caSource) planRenewal() {
	in := c.r.installed
	if in == nil {
		c.renewAt = time.Time{}
		return
	}
	if c.jitterSerial != in.Serial() {
		c.jitterSerial, c.jitter = in.Serial(), renewJitter(in.Cert, c.r.o.Rand)
	}
	c.renewAt = renewTime(in.Cert, c.r.cfg.RenewBefore).Add(c.jitter)
}

func (c *caSource) problem() string { return "" }

// pendingSet is nil: the local CA backdates what it issues, so its sets are
// valid at once.
func (c *caSource) pendingSet() *PendingSet { return nil }

func (c *caSource) status(serving string) string {
	return fmt.Sprintf("local CA %s; %s; renewal at %s", CADir, serving, c.renewAt.UTC().Format(time.DateTime))
}

// The local CA renews at two thirds of the lifetime, so only the later
// expiry thresholds apply to it.
func (c *caSource) thresholds() []time.Duration { return expiryThresholdsLocalCA }

func (c *caSource) advice() string {
	return "the local CA's automatic renewal did not replace it; see `journalctl -u tlsdock`"
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
