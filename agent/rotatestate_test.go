package agent

import (
	"testing"
	"time"
)

func TestDebouncer(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	for _, tt := range []struct {
		name        string
		changes     []int // seconds after base
		waitAt      int   // -1: none; else wait(at(waitAt)) after clear
		now         int
		wantPending bool
		wantAt      time.Time
		wantDue     bool
		wantSettled bool
	}{
		{name: "nothing pending", waitAt: -1, now: 100, wantAt: time.Time{}},
		{name: "one change, settling", changes: []int{0}, waitAt: -1, now: 1, wantPending: true, wantAt: at(2)},
		{name: "one change, settled", changes: []int{0}, waitAt: -1, now: 2, wantPending: true, wantAt: at(2), wantDue: true, wantSettled: true},
		{name: "a burst extends the wait", changes: []int{0, 1, 3}, waitAt: -1, now: 4, wantPending: true, wantAt: at(5)},
		{name: "a long burst is cut at max wait", changes: []int{0, 2, 4, 6, 8, 9}, waitAt: -1, now: 10, wantPending: true, wantAt: at(10), wantDue: true},
		{name: "not complete yet: due once settled", changes: []int{0, 9}, waitAt: 10, now: 11, wantPending: true, wantAt: at(11), wantDue: true, wantSettled: true},
		{name: "not complete yet: still settling", changes: []int{0, 9}, waitAt: 10, now: 10, wantPending: true, wantAt: at(11)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := debouncer{settle: 2 * time.Second, maxWait: 10 * time.Second}
			for _, c := range tt.changes {
				d.changed(at(c))
			}
			if tt.waitAt >= 0 {
				d.clear()
				if d.pending() {
					t.Fatal("pending after clear")
				}
				d.wait(at(tt.waitAt))
			}
			now := at(tt.now)
			if got := d.pending(); got != tt.wantPending {
				t.Errorf("pending() = %v, want %v", got, tt.wantPending)
			}
			if got := d.at(); !got.Equal(tt.wantAt) {
				t.Errorf("at() = %v, want %v", got, tt.wantAt)
			}
			if got := d.due(now); got != tt.wantDue {
				t.Errorf("due(%v) = %v, want %v", now, got, tt.wantDue)
			}
			if tt.wantPending {
				if got := d.settled(now); got != tt.wantSettled {
					t.Errorf("settled(%v) = %v, want %v", now, got, tt.wantSettled)
				}
			}
		})
	}
}

func TestRetry(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		failures []time.Duration // times of the failures after base
		want     time.Time
	}{
		{name: "no failure", want: time.Time{}},
		{name: "first retry after 30s", failures: []time.Duration{0}, want: base.Add(30 * time.Second)},
		{name: "doubling", failures: []time.Duration{0, 30 * time.Second, 90 * time.Second}, want: base.Add(90*time.Second + 2*time.Minute)},
		{name: "at most 10m", failures: []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 5 * time.Hour, 6 * time.Hour, 7 * time.Hour}, want: base.Add(7*time.Hour + 10*time.Minute)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r retry
			for _, f := range tt.failures {
				r.failed(base.Add(f))
			}
			if r.failures != len(tt.failures) {
				t.Errorf("failures = %d, want %d", r.failures, len(tt.failures))
			}
			if got := r.at(); !got.Equal(tt.want) {
				t.Errorf("at() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExpiryWarningsOncePerLevel(t *testing.T) {
	day := 24 * time.Hour
	na := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var w expiryWarnings
	for _, tt := range []struct {
		serial    string
		now       time.Time
		wantLevel int
		wantFresh bool
		wantNext  time.Time
	}{
		{"01", na.Add(-40 * day), 0, false, na.Add(-30 * day)},
		{"01", na.Add(-30 * day), 1, true, na.Add(-7 * day)},
		{"01", na.Add(-20 * day), 1, false, na.Add(-7 * day)},
		{"01", na.Add(-7 * day), 2, true, na.Add(-day)},
		{"01", na.Add(-time.Hour), 3, true, na},
		{"01", na.Add(-time.Minute), 3, false, na},
		{"01", na, 4, true, time.Time{}},
		{"02", na.Add(-2 * day), 2, true, na.Add(-day)}, // a new certificate starts over
		{"02", na.Add(-2 * day), 2, false, na.Add(-day)},
	} {
		level, fresh := w.check(tt.serial, na, tt.now, expiryThresholds)
		if level != tt.wantLevel || fresh != tt.wantFresh || !w.next.Equal(tt.wantNext) {
			t.Errorf("serial %s at %v: level %d fresh %v next %v, want %d %v %v", tt.serial, tt.now, level, fresh, w.next, tt.wantLevel, tt.wantFresh, tt.wantNext)
		}
	}
}
