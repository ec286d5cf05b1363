package agent

import (
	"crypto/x509"
	"slices"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// The rotation loop's state is made of small values whose methods are
// pure functions of the time they are given.

// debouncer collects a burst of source changes: it is due once no change
// came for settle, but no later than maxWait after the burst began.
type debouncer struct {
	settle, maxWait time.Duration
	first, last     time.Time // zero when no change is pending
}

// pending says a change has not been acted on yet.
func (d debouncer) pending() bool { return !d.first.IsZero() }

// changed notes a change at now.
func (d *debouncer) changed(now time.Time) {
	if !d.pending() {
		d.first = now
	}
	d.last = now
}

// at is when the pending burst is acted on; zero when none is pending.
func (d debouncer) at() time.Time {
	if !d.pending() {
		return time.Time{}
	}
	t := d.last.Add(d.settle)
	if m := d.first.Add(d.maxWait); m.Before(t) {
		return m
	}
	return t
}

// due says the pending burst is to be acted on at now.
func (d debouncer) due(now time.Time) bool { return d.pending() && !now.Before(d.at()) }

// settled says no change came for settle before now.
func (d debouncer) settled(now time.Time) bool { return !now.Before(d.last.Add(d.settle)) }

// wait keeps the burst pending from now on: what was read is not complete
// yet. It is due again once settled, or maxWait from now.
func (d *debouncer) wait(now time.Time) { d.first = now }

// clear forgets the pending burst; the time of its last change stays.
func (d *debouncer) clear() { d.first = time.Time{} }

// retry is the backoff after failed rotations.
type retry struct {
	failures int       // consecutive failed rotations
	next     time.Time // when the next retry may start
}

// failed counts a failure at now and schedules the retry.
func (r *retry) failed(now time.Time) {
	r.failures++
	r.next = now.Add(backoff(r.failures))
}

// at is when a rotation may start again; zero after no failure.
func (r retry) at() time.Time {
	if r.failures == 0 {
		return time.Time{}
	}
	return r.next
}

// backoff is the wait before retry n (1, 2, ...) of a failed rotation.
func backoff(n int) time.Duration {
	d := retryBackoffMin
	for i := 1; i < n && d < retryBackoffMax; i++ {
		d *= 2
	}
	return min(d, retryBackoffMax)
}

// expiryWarnings warns once per expiry threshold a certificate crosses.
type expiryWarnings struct {
	serial string    // the certificate warned about
	level  int       // thresholds already warned about
	next   time.Time // when the next threshold is crossed; zero when none
}

// check looks at the certificate serial, expiring at notAfter, at now. It
// returns the level reached (0: no warning due) and whether that level is
// new, so that it is logged once.
func (w *expiryWarnings) check(serial string, notAfter, now time.Time, th []time.Duration) (level int, fresh bool) {
	level, w.next = expiryLevel(notAfter, now, th)
	if serial != w.serial {
		w.serial, w.level = serial, 0
	}
	if level > w.level {
		w.level = level
		return level, true
	}
	return level, false
}

// expiryLevel says how many thresholds before notAfter now has passed
// (len(th)+1 once expired) and when the next one is passed (zero when none
// is left).
func expiryLevel(notAfter, now time.Time, th []time.Duration) (level int, next time.Time) {
	if !now.Before(notAfter) {
		return len(th) + 1, time.Time{}
	}
	for _, d := range th {
		if at := notAfter.Add(-d); !now.Before(at) {
			level++
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() {
		next = notAfter
	}
	return level, next
}

// notBeforeMargin is how long after a set's notBefore the rotation loop
// waits before installing it. dockerd serves the set to clients on other
// hosts, which check notBefore with their own clocks: installing a set
// the moment it becomes valid by this host's clock would have it refused
// by every client whose clock is a little behind. The margin is never
// negative: a set is never installed before its notBefore by this host's
// clock (no tolerance the other way), because then every client with a
// correct clock would refuse it, while the served set stays valid
// meanwhile. Issuers that backdate notBefore (step-ca by 1 minute,
// tlsdock's own CA by certstore.Backdate) are not delayed at all.
const notBeforeMargin = 5 * time.Second

// installableFrom is the earliest time, from now on, at which set may be
// installed: it passes validation against req then, and it is at least
// notBeforeMargin past the notBefore of every certificate of the set. A
// set valid now and past the margin is installable at now. When no such
// time exists, err is the validation error at now.
//
// The candidates are now and the notBefore (plus the margin) of each
// certificate of the set: validity can only begin at one of them.
func installableFrom(set *certstore.Set, req certstore.Requirements, now time.Time) (time.Time, error) {
	req.Now = now
	nowErr := set.Validate(req)
	from := set.Cert.NotBefore
	for _, c := range set.Intermediates {
		from = later(from, c.NotBefore)
	}
	from = later(from.Add(notBeforeMargin), now)
	if nowErr == nil && !from.After(now) {
		return now, nil
	}
	cands := []time.Time{from}
	for _, c := range set.CAs {
		if t := c.NotBefore.Add(notBeforeMargin); t.After(from) {
			cands = append(cands, t)
		}
	}
	slices.SortFunc(cands, time.Time.Compare)
	for _, t := range cands {
		req.Now = t
		if set.Validate(req) == nil {
			return t, nil
		}
	}
	if nowErr == nil {
		return now, nil // valid now, though at no later candidate: serve it while it is
	}
	return time.Time{}, nowErr
}

// nextNotBefore is the earliest notBefore after now of the certificates
// of set; zero when there is none (or no set). A refusal that says "not
// valid until" changes then.
func nextNotBefore(set *certstore.Set, now time.Time) time.Time {
	if set == nil {
		return time.Time{}
	}
	var next time.Time
	for _, c := range slices.Concat([]*x509.Certificate{set.Cert}, set.Intermediates, set.CAs) {
		if c != nil && c.NotBefore.After(now) && (next.IsZero() || c.NotBefore.Before(next)) {
			next = c.NotBefore
		}
	}
	return next
}
