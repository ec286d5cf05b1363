package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tlsdock/tlsdock/certstore"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clock   *fakeClock
	c       chan time.Time
	at      time.Time
	stopped bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) TimerAt(at time.Time) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, c: make(chan time.Time, 1), at: at}
	if !at.After(c.now) {
		t.c <- c.now
		t.stopped = true
	} else {
		c.timers = append(c.timers, t)
	}
	return t
}

// Set moves the clock to t and fires the timers that are due.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	var keep []*fakeTimer
	for _, tm := range c.timers {
		switch {
		case tm.stopped:
		case !tm.at.After(t):
			tm.stopped = true
			tm.c <- t
		default:
			keep = append(keep, tm)
		}
	}
	c.timers = keep
}

// call is one Provision the fake applier ran.
type call struct {
	at      time.Time
	serial  string // installed afterwards ("" when it failed)
	changed bool
	err     error
	reads   int // Installed calls before this Provision
}

// fakeApplier "installs" the source set in memory, or issues from a local
// CA with Generate, like Provision does.
type fakeApplier struct {
	mu        sync.Mutex
	clock     *fakeClock
	ca        *certstore.CA
	installed *certstore.Set
	calls     []call
	lastError string
	records   []string
	pending   *PendingSet
	reads     int // Installed calls
	// fail, when set, is asked before each Provision (n counts from 1).
	fail func(n int) error
	// neverRenew makes Generate report "unchanged" even when due.
	neverRenew bool
	// started and release, when set, pause Provision (Run tests).
	started chan context.Context
	release chan struct{}
	events  *eventLog
}

func (f *fakeApplier) Provision(ctx context.Context, cfg Config) (*Result, error) {
	if f.started != nil {
		f.started <- ctx
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	n := len(f.calls) + 1
	c := call{at: now, reads: f.reads}
	defer func() {
		f.calls = append(f.calls, c)
		if f.events != nil {
			f.events.add(fmt.Sprintf("provision %s ctx=%v", c.serial, ctx.Err()))
		}
	}()
	var set *certstore.Set
	if cfg.Generate {
		if f.installed != nil && (f.neverRenew || now.Before(renewTime(f.installed.Cert, cfg.RenewBefore))) {
			c.serial = f.installed.Serial()
			f.lastError = ""
			return &Result{Serial: c.serial, Fingerprint: f.installed.Fingerprint(), NotAfter: f.installed.Cert.NotAfter, served: f.installed}, nil
		}
		certPEM, keyPEM, err := f.ca.Issue(certstore.IssueRequest{CommonName: "host", DNSNames: []string{"host"}, KeyType: certstore.ECDSAP256, Now: now, Validity: ServerValidity, Server: true}, rand.Reader)
		if err != nil {
			return nil, err
		}
		if set, err = certstore.ParseSet(f.ca.CertPEM, certPEM, keyPEM, certstore.SetNames{}); err != nil {
			return nil, err
		}
	} else {
		var err error
		if cfg.SourceSet != nil {
			set = cfg.SourceSet
			err = set.Validate(certstore.Requirements{Now: now})
		} else if set, err = certstore.LoadDir(cfg.Certs); err == nil {
			err = set.Validate(certstore.Requirements{Now: now})
		}
		if err != nil {
			c.err = &InputError{Field: "--certs", Err: err}
			f.lastError = c.err.Error()
			return &Result{Error: c.err.Error()}, c.err
		}
	}
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			c.err = err
			f.lastError = err.Error()
			return &Result{Error: err.Error()}, err
		}
	}
	f.installed = set
	f.lastError = ""
	c.serial, c.changed = set.Serial(), true
	return &Result{Changed: true, Restarted: true, Serial: set.Serial(), Fingerprint: set.Fingerprint(), NotAfter: set.Cert.NotAfter, served: set}, nil
}

func (f *fakeApplier) Installed() (*certstore.Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.installed, nil
}

func (f *fakeApplier) RecordError(msg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastError = msg
	f.records = append(f.records, msg)
	return nil
}

func (f *fakeApplier) RecordPending(p *PendingSet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = p
	return nil
}

func (f *fakeApplier) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// eventLog orders what the applier and systemd saw, across goroutines.
type eventLog struct {
	mu sync.Mutex
	ev []string
	c  chan string
}

func (l *eventLog) add(s string) {
	l.mu.Lock()
	l.ev = append(l.ev, s)
	l.mu.Unlock()
	if l.c != nil {
		l.c <- s
	}
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ev...)
}

// rig is a rotator over a real source directory, with a fake clock and a
// fake applier.
type rig struct {
	t     testing.TB
	clock *fakeClock
	app   *fakeApplier
	r     *Rotator
	ca    *certstore.CA
	src   string
	logs  *bytes.Buffer
	reg   *Metrics
	notes []string
}

var t0 = fixedNow

func newRig(t testing.TB, mod ...func(*RunConfig, *RunOptions)) *rig {
	t.Helper()
	ca, err := certstore.NewCA(certstore.ECDSAP256, t0.Add(-time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	src := filepath.Join(parent, "certs")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, clock: &fakeClock{now: t0}, ca: ca, src: src, logs: &bytes.Buffer{}, reg: NewMetrics()}
	g.app = &fakeApplier{clock: g.clock, ca: ca}
	cfg := RunDefaults()
	cfg.Certs = src
	o := RunOptions{
		Clock:   g.clock,
		Rand:    func(n int64) int64 { return n / 2 },
		Logger:  testLogger(t, g.logs),
		Notify:  func(s string) bool { g.notes = append(g.notes, s); return true },
		Metrics: g.reg,
	}
	for _, m := range mod {
		m(&cfg, &o)
	}
	g.r = NewRotator(g.app, cfg, o)
	return g
}

// set is one issued certificate set.
type set struct {
	ca, cert, key []byte
	serial        string
}

// issue makes a server set of the rig's CA, valid from now for validity.
func (g *rig) issue(validity time.Duration) set {
	g.t.Helper()
	certPEM, keyPEM, err := g.ca.Issue(certstore.IssueRequest{CommonName: "srv", DNSNames: []string{"localhost"}, KeyType: certstore.ECDSAP256, Now: g.clock.Now(), Validity: validity, Server: true}, rand.Reader)
	if err != nil {
		g.t.Fatal(err)
	}
	s, err := certstore.ParseSet(g.ca.CertPEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		g.t.Fatal(err)
	}
	return set{ca: g.ca.CertPEM, cert: certPEM, key: keyPEM, serial: s.Serial()}
}

func (s set) parsed(t *testing.T) *certstore.Set {
	t.Helper()
	p, err := certstore.ParseSet(s.ca, s.cert, s.key, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dir is the rotator's watched directory source.
func (g *rig) dir() *dirSource {
	g.t.Helper()
	d, ok := g.r.src.(*dirSource)
	if !ok {
		g.t.Fatalf("the rotator's source is %T, not the watched directory", g.r.src)
	}
	return d
}

// write writes files of the source at the clock's time and tells the
// rotator, as the watcher would.
func (g *rig) write(files map[string][]byte) {
	g.t.Helper()
	for name, data := range files {
		writeSource(g.t, g.src, name, data)
	}
	g.dir().changed()
}

func (g *rig) writeSet(s set) {
	g.write(map[string][]byte{certstore.CAFile: s.ca, certstore.CertFile: s.cert, certstore.KeyFile: s.key})
}

// prepare writes the source before the daemon starts: no event.
func (g *rig) prepare(s set) {
	g.t.Helper()
	g.writeSet(s)
	g.dir().deb.clear()
}

func writeSource(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs the startup reconcile.
func (g *rig) start() { g.r.start(context.Background()) }

// runUntil plays the loop's timer: it steps at every time next asks for,
// up to until, and leaves the clock at until.
func (g *rig) runUntil(until time.Time) {
	g.t.Helper()
	for i := 0; ; i++ {
		if i > 10000 {
			g.t.Fatalf("the loop does not settle: next = %v at %v", g.r.next(), g.clock.Now())
		}
		at := g.r.next()
		if at.IsZero() || at.After(until) {
			g.clock.Set(until)
			return
		}
		if at.Before(g.clock.Now()) {
			at = g.clock.Now()
		}
		g.clock.Set(at)
		g.r.step(context.Background())
	}
}

func (g *rig) at(d time.Duration) time.Time { return t0.Add(d) }

func (g *rig) serials() []string {
	var s []string
	for _, c := range g.app.Calls() {
		s = append(s, c.serial)
	}
	return s
}

func (g *rig) callTimes() []time.Duration {
	var s []time.Duration
	for _, c := range g.app.Calls() {
		s = append(s, c.at.Sub(t0))
	}
	return s
}

// metric reads a gauge or counter from the rig's metrics, as a Prometheus
// server parses them.
func (g *rig) metric(name, label string) float64 {
	g.t.Helper()
	mfs := scrape(g.t, g.reg)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	g.t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

type testWriter struct {
	t   testing.TB
	buf *bytes.Buffer
	mu  sync.Mutex
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	if w.buf != nil {
		w.buf.Write(p)
	}
	return len(p), nil
}

func testLogger(t testing.TB, buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t, buf: buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestDebounce(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		// play writes the new set in steps; write(d, files) writes at t0+d.
		play        func(g *rig, s1 set, write func(time.Duration, map[string][]byte))
		wantAt      []time.Duration
		wantInvalid int // invalid sets reported
	}{
		{
			name: "a burst of writes: applied once the set is complete and valid",
			play: func(g *rig, s1 set, write func(time.Duration, map[string][]byte)) {
				write(1*s, map[string][]byte{certstore.CAFile: s1.ca})
				write(1500*time.Millisecond, map[string][]byte{certstore.CertFile: s1.cert})
				write(2*s, map[string][]byte{certstore.KeyFile: s1.key})
				write(2500*time.Millisecond, map[string][]byte{certstore.KeyFile: s1.key})
			},
			wantAt: []time.Duration{2 * s}, // the CA alone is the installed set, the certificate alone a mismatch
		},
		{
			name: "certificate and key a second apart",
			play: func(g *rig, s1 set, write func(time.Duration, map[string][]byte)) {
				write(1*s, map[string][]byte{certstore.CertFile: s1.cert})
				write(2*s, map[string][]byte{certstore.KeyFile: s1.key})
			},
			wantAt: []time.Duration{2 * s},
		},
		{
			name: "key before certificate",
			play: func(g *rig, s1 set, write func(time.Duration, map[string][]byte)) {
				write(1*s, map[string][]byte{certstore.KeyFile: s1.key})
				write(1900*time.Millisecond, map[string][]byte{certstore.CertFile: s1.cert})
			},
			wantAt: []time.Duration{1900 * time.Millisecond},
		},
		{
			name: "certificate and key further apart than the debounce: the mismatch is reported, then one apply",
			play: func(g *rig, s1 set, write func(time.Duration, map[string][]byte)) {
				write(1*s, map[string][]byte{certstore.CertFile: s1.cert})
				write(5*s, map[string][]byte{certstore.KeyFile: s1.key})
			},
			wantAt:      []time.Duration{5 * s},
			wantInvalid: 1,
		},
		{
			name: "endless rewrites of a whole set: applied at the first",
			play: func(g *rig, s1 set, write func(time.Duration, map[string][]byte)) {
				for i := 1; i <= 30; i++ {
					write(time.Duration(i)*s, map[string][]byte{certstore.CAFile: s1.ca, certstore.CertFile: s1.cert, certstore.KeyFile: s1.key})
				}
			},
			wantAt: []time.Duration{1 * s},
		},
		{
			name: "a partial set at max-wait is not ready yet while writes go on",
			play: func(g *rig, s1 set, write func(time.Duration, map[string][]byte)) {
				for i := 1; i <= 14; i++ {
					write(time.Duration(i)*s, map[string][]byte{certstore.CertFile: s1.cert})
				}
				write(15*s, map[string][]byte{certstore.KeyFile: s1.key})
			},
			wantAt: []time.Duration{15 * s},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newRig(t)
			s0 := g.issue(ServerValidity)
			g.app.installed = s0.parsed(t)
			g.prepare(s0)
			g.start()
			if n := len(g.app.Calls()); n != 0 {
				t.Fatalf("startup with the installed set in the source applied %d times", n)
			}
			s1 := g.issue(ServerValidity)
			tt.play(g, s1, func(d time.Duration, files map[string][]byte) {
				g.runUntil(g.at(d))
				g.write(files)
			})
			g.runUntil(g.at(10 * time.Minute))
			if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint(tt.wantAt) {
				t.Fatalf("applies at %v, want %v", got, tt.wantAt)
			}
			if got := g.serials(); got[len(got)-1] != s1.serial {
				t.Fatalf("applied serials %v, want the last to be %s", got, s1.serial)
			}
			if got := g.metric("tlsdock_rotations_total", "invalid"); got != float64(tt.wantInvalid) {
				t.Fatalf("invalid sets reported: %v, want %d; log:\n%s", got, tt.wantInvalid, g.logs)
			}
			if got := g.metric("tlsdock_validation_error", ""); got != 0 {
				t.Fatalf("validation_error = %v after a valid set", got)
			}
			if got := g.metric("tlsdock_rotations_total", "ok"); got != 1 {
				t.Fatalf("rotations ok = %v, want 1", got)
			}
		})
	}
}

// maxIn returns the largest number of times within any window.
func maxIn(times []time.Duration, window time.Duration) int {
	best := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j]-times[i] < window; j++ {
			n++
		}
		best = max(best, n)
	}
	return best
}

func TestRateLimit(t *testing.T) {
	t.Run("eight sets in 16 seconds", func(t *testing.T) {
		g := newRig(t)
		s0 := g.issue(ServerValidity)
		g.app.installed = s0.parsed(t)
		g.prepare(s0)
		g.start()
		var sets []set
		for i := range 8 {
			g.runUntil(g.at(time.Duration(2*i) * time.Second))
			s := g.issue(ServerValidity)
			sets = append(sets, s)
			g.writeSet(s)
		}
		g.runUntil(g.at(10 * time.Minute))
		wantAt := []time.Duration{0, 20 * time.Second}
		if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint(wantAt) {
			t.Fatalf("applies at %v, want %v", got, wantAt)
		}
		want := []string{sets[0].serial, sets[7].serial}
		if got := g.serials(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("applied %v, want %v (the first, then the latest)", got, want)
		}
	})
	t.Run("a set every 5 seconds for 5 minutes", func(t *testing.T) {
		g := newRig(t)
		s0 := g.issue(ServerValidity)
		g.app.installed = s0.parsed(t)
		g.prepare(s0)
		g.start()
		var last set
		for i := range 60 {
			g.runUntil(g.at(time.Duration(5*i) * time.Second))
			last = g.issue(ServerValidity)
			g.writeSet(last)
		}
		g.runUntil(g.at(time.Hour))
		times := g.callTimes()
		if len(times) != 16 {
			t.Fatalf("%d applies at %v, want 16 (every 20s from 2s, then the last set)", len(times), times)
		}
		if n := maxIn(times, 60*time.Second); n > 3 {
			t.Fatalf("%d applies within 60s (at %v): docker.service allows 3", n, times)
		}
		for i := 1; i < len(times); i++ {
			if d := times[i] - times[i-1]; d < DefaultMinRestartInterval {
				t.Fatalf("applies %v apart (at %v), want at least %v", d, times, DefaultMinRestartInterval)
			}
		}
		if got := g.serials(); got[len(got)-1] != last.serial {
			t.Fatalf("last applied %s, want the latest set %s", got[len(got)-1], last.serial)
		}
	})
}

func TestInvalidSet(t *testing.T) {
	g := newRig(t)
	s0 := g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.start()

	// The key of another set: a complete but invalid set.
	s1, s2 := g.issue(ServerValidity), g.issue(ServerValidity)
	g.runUntil(g.at(time.Second))
	g.write(map[string][]byte{certstore.CertFile: s1.cert, certstore.KeyFile: s2.key})
	g.runUntil(g.at(time.Minute))
	if n := len(g.app.Calls()); n != 0 {
		t.Fatalf("an invalid set started the sequence %d times", n)
	}
	rec := g.app.lastError
	for _, want := range []string{"invalid set in " + g.src, certstore.KeyFile, "does not match", "serial " + s0.serial} {
		if !strings.Contains(rec, want) {
			t.Fatalf("recorded error %q does not contain %q", rec, want)
		}
	}
	if g.metric("tlsdock_validation_error", "") != 1 || g.metric("tlsdock_rotations_total", "invalid") != 1 {
		t.Fatal("metrics do not show the invalid set")
	}
	if !strings.HasPrefix(g.notes[len(g.notes)-1], "STATUS=invalid set in "+g.src+": ") {
		t.Fatalf("last STATUS %q", g.notes[len(g.notes)-1])
	}

	// The same invalid files written again: reported once.
	g.write(map[string][]byte{certstore.KeyFile: s2.key})
	g.runUntil(g.at(2 * time.Minute))
	if g.metric("tlsdock_rotations_total", "invalid") != 1 {
		t.Fatal("the same invalid set was counted twice")
	}

	// Fixed: applied once, error gone.
	g.write(map[string][]byte{certstore.KeyFile: s1.key})
	g.runUntil(g.at(3 * time.Minute))
	if got := g.serials(); fmt.Sprint(got) != fmt.Sprint([]string{s1.serial}) {
		t.Fatalf("applied %v, want [%s]", got, s1.serial)
	}
	if g.app.lastError != "" || g.metric("tlsdock_validation_error", "") != 0 {
		t.Fatalf("error still recorded after a valid set: %q", g.app.lastError)
	}

	// An expired set is invalid too, and names the file.
	g.clock.Set(g.at(4 * time.Minute))
	old := g.issue(time.Minute)
	g.runUntil(g.at(6 * time.Minute))
	g.writeSet(old)
	g.runUntil(g.at(8 * time.Minute))
	if n := len(g.app.Calls()); n != 1 {
		t.Fatalf("an expired set was applied (%d applies)", n)
	}
	if !strings.Contains(g.app.lastError, certstore.CertFile) || !strings.Contains(g.app.lastError, "expired") {
		t.Fatalf("recorded error %q does not name the expired certificate", g.app.lastError)
	}
}

func TestStartupReconcile(t *testing.T) {
	tests := []struct {
		name      string
		installed string // "", "same", "other"
		source    string // "valid", "invalid", "missing"
		wantCalls int
		wantError string
	}{
		{"nothing installed", "", "valid", 1, ""},
		{"installed differs", "other", "valid", 1, ""},
		{"installed equals the source", "same", "valid", 0, ""},
		{"source invalid", "other", "invalid", 0, "does not match"},
		{"source missing", "other", "missing", 0, certstore.CAFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newRig(t)
			src, other := g.issue(ServerValidity), g.issue(ServerValidity)
			switch tt.installed {
			case "same":
				g.app.installed = src.parsed(t)
			case "other":
				g.app.installed = other.parsed(t)
			}
			switch tt.source {
			case "valid":
				g.writeSet(src)
			case "invalid":
				g.writeSet(set{ca: src.ca, cert: src.cert, key: other.key})
			case "missing":
				if err := os.Remove(g.src); err != nil {
					t.Fatal(err)
				}
			}
			g.dir().deb.clear() // the writes above were before the start
			g.app.lastError = "stale: recorded by an earlier run"
			g.start()
			if got := len(g.app.Calls()); got != tt.wantCalls {
				t.Fatalf("%d applies at startup, want %d", got, tt.wantCalls)
			}
			if tt.wantCalls == 1 && g.serials()[0] != src.serial {
				t.Fatalf("applied %s, want %s", g.serials()[0], src.serial)
			}
			if tt.wantCalls == 1 && !slices.Contains(g.notes, "STATUS=rotating to serial "+src.serial) {
				t.Fatalf("no STATUS for the rotation: %q", g.notes)
			}
			if tt.source == "valid" {
				want := fmt.Sprintf("STATUS=watching %s; serving serial %s, expires %s", g.src, src.serial, src.parsed(t).Cert.NotAfter.UTC().Format(time.DateOnly))
				if last := g.notes[len(g.notes)-1]; last != want {
					t.Fatalf("STATUS %q, want %q", last, want)
				}
			}
			if tt.wantError == "" && g.app.lastError != "" || !strings.Contains(g.app.lastError, tt.wantError) {
				t.Fatalf("recorded error %q, want one containing %q", g.app.lastError, tt.wantError)
			}
			// Nothing else happens later.
			g.runUntil(g.at(time.Hour))
			if got := len(g.app.Calls()); got != tt.wantCalls {
				t.Fatalf("%d applies after an hour, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestBackoffAfterFailedApply(t *testing.T) {
	t.Run("retried with backoff, then succeeds", func(t *testing.T) {
		g := newRig(t)
		s0, s1 := g.issue(ServerValidity), g.issue(ServerValidity)
		g.app.installed = s0.parsed(t)
		g.app.fail = func(n int) error {
			switch n {
			case 1, 3:
				return errors.New("restarting docker: job result \"failed\"")
			case 2:
				return fmt.Errorf("verify: %w", ErrRolledBack)
			}
			return nil
		}
		g.prepare(s1)
		g.start()
		g.runUntil(g.at(time.Hour))
		want := []time.Duration{0, 30 * time.Second, 90 * time.Second, 210 * time.Second}
		if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("attempts at %v, want %v", got, want)
		}
		if g.app.installed.Serial() != s1.serial {
			t.Fatal("the set was not installed in the end")
		}
		for result, want := range map[string]float64{"failed": 2, "rolled_back": 1, "ok": 1, "invalid": 0} {
			if got := g.metric("tlsdock_rotations_total", result); got != want {
				t.Errorf("rotations{%s} = %v, want %v", result, got, want)
			}
		}
		if g.metric("tlsdock_last_rotation_success_timestamp_seconds", "") != float64(g.at(210*time.Second).Unix()) {
			t.Error("last success timestamp is not the successful rotation's time")
		}
	})
	t.Run("bad input is not retried until the source changes", func(t *testing.T) {
		g := newRig(t)
		s0, s1, s2 := g.issue(ServerValidity), g.issue(ServerValidity), g.issue(ServerValidity)
		g.app.installed = s0.parsed(t)
		g.app.fail = func(n int) error {
			if n == 1 {
				return &InputError{Field: DaemonJSONPath, Err: errors.New("sets hosts, which docker.service's ExecStart also passes")}
			}
			return nil
		}
		g.prepare(s1)
		g.start()
		g.runUntil(g.at(time.Hour))
		if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint([]time.Duration{0}) {
			t.Fatalf("attempts at %v, want only the first", got)
		}
		if !strings.Contains(g.notes[len(g.notes)-1], "refused") {
			t.Fatalf("STATUS does not say the rotation was refused: %q", g.notes[len(g.notes)-1])
		}
		g.writeSet(s2)
		g.runUntil(g.at(2 * time.Hour))
		if got := g.serials(); fmt.Sprint(got) != fmt.Sprint([]string{"", s2.serial}) {
			t.Fatalf("applied %v, want the new set once", got)
		}
	})
	t.Run("backoff schedule", func(t *testing.T) {
		want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
		for i, w := range want {
			if got := backoff(i + 1); got != w {
				t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
			}
		}
	})
}

func TestLocalCARenewal(t *testing.T) {
	for _, tt := range []struct {
		name        string
		rand        func(int64) int64
		renewBefore time.Duration
	}{
		{"least jitter", func(int64) int64 { return 0 }, 0},
		{"most jitter", func(n int64) int64 { return n - 1 }, 0},
		{"renew-before", func(n int64) int64 { return n / 3 }, 30 * 24 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newRig(t, func(c *RunConfig, o *RunOptions) {
				c.Certs, c.Generate, c.RenewBefore = "", true, tt.renewBefore
				o.Rand = tt.rand
			})
			g.start()
			if got := len(g.app.Calls()); got != 1 {
				t.Fatalf("%d provisions at startup, want 1", got)
			}
			first := g.app.installed
			due := RenewAt(first.Cert)
			if tt.renewBefore > 0 {
				due = first.Cert.NotAfter.Add(-tt.renewBefore)
			}
			jitter := g.r.next().Sub(due)
			if jitter < 0 || jitter >= time.Hour || jitter != time.Duration(tt.rand(int64(time.Hour))) {
				t.Fatalf("renewal at %v: jitter %v after %v, want rand's %v in [0, 1h)", g.r.next(), jitter, due, time.Duration(tt.rand(int64(time.Hour))))
			}
			g.runUntil(due.Add(jitter - time.Nanosecond))
			if got := len(g.app.Calls()); got != 1 {
				t.Fatalf("%d provisions before the renewal time, want 1", got)
			}
			g.runUntil(due.Add(jitter))
			calls := g.app.Calls()
			if len(calls) != 2 || !calls[1].changed || calls[1].serial == first.Serial() {
				t.Fatalf("at the renewal time: calls %+v, want a new certificate", calls)
			}
			if !strings.Contains(g.notes[len(g.notes)-1], "local CA") {
				t.Fatalf("STATUS %q", g.notes[len(g.notes)-1])
			}
		})
	}
	t.Run("a renewal the plan does not make is retried with backoff, not in a loop", func(t *testing.T) {
		g := newRig(t, func(c *RunConfig, o *RunOptions) { c.Certs, c.Generate = "", true })
		g.start()
		g.app.neverRenew = true
		due := g.r.next()
		g.runUntil(due.Add(time.Hour))
		var want []time.Duration
		at := time.Duration(0)
		for i := 1; at <= time.Hour; i++ {
			want = append(want, due.Sub(t0)+at)
			at += backoff(i)
		}
		if got := g.callTimes()[1:]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("renewal attempts at %v, want %v", got, want)
		}
	})
	t.Run("a failed provision is retried with backoff, bad input waits for SIGHUP", func(t *testing.T) {
		g := newRig(t, func(c *RunConfig, o *RunOptions) { c.Certs, c.Generate = "", true })
		g.app.fail = func(n int) error {
			switch n {
			case 1:
				return errors.New("restarting docker: job result \"timeout\"")
			case 2:
				return &InputError{Field: DaemonJSONPath, Err: errors.New("is not a JSON object")}
			}
			return nil
		}
		g.start()
		g.runUntil(g.at(time.Hour))
		if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint([]time.Duration{0, 30 * time.Second}) {
			t.Fatalf("attempts at %v, want a retry after 30s and none after bad input", got)
		}
		g.r.hangup(context.Background())
		calls := g.app.Calls()
		if len(calls) != 3 || !calls[2].changed || calls[2].at != g.at(time.Hour) {
			t.Fatalf("SIGHUP: calls %+v, want a provision at once", calls)
		}
		g.runUntil(g.at(2 * time.Hour))
		if n := len(g.app.Calls()); n != 3 {
			t.Fatalf("%d calls after the successful provision, want 3", n)
		}
	})
	t.Run("jitter bounds", func(t *testing.T) {
		// Issued certificates are backdated by 5 minutes.
		for _, tt := range []struct {
			life, max time.Duration
		}{
			{ServerValidity, time.Hour},
			{24 * time.Hour, 14*time.Minute + 27*time.Second},
			{10 * time.Minute, 9 * time.Second},
		} {
			g := newRig(t)
			c := g.issue(tt.life).parsed(t).Cert
			if got := maxRenewJitter(c); got != tt.max {
				t.Errorf("lifetime %v: max jitter %v, want %v", tt.life, got, tt.max)
			}
			if j := renewJitter(c, func(n int64) int64 { return n - 1 }); j >= maxRenewJitter(c) || j < 0 {
				t.Errorf("lifetime %v: jitter %v out of [0, %v)", tt.life, j, maxRenewJitter(c))
			}
		}
	})
}

func TestExpiryWarnings(t *testing.T) {
	day := 24 * time.Hour
	t.Run("levels", func(t *testing.T) {
		na := t0.Add(40 * day)
		for _, tt := range []struct {
			now       time.Time
			level     int
			next      time.Time
			threshold []time.Duration
		}{
			{t0, 0, na.Add(-30 * day), expiryThresholds},
			{na.Add(-30 * day), 1, na.Add(-7 * day), expiryThresholds},
			{na.Add(-7*day - time.Second), 1, na.Add(-7 * day), expiryThresholds},
			{na.Add(-2 * day), 2, na.Add(-day), expiryThresholds},
			{na.Add(-time.Hour), 3, na, expiryThresholds},
			{na, 4, time.Time{}, expiryThresholds},
			{na.Add(-20 * day), 0, na.Add(-7 * day), expiryThresholdsLocalCA},
		} {
			level, next := expiryLevel(na, tt.now, tt.threshold)
			if level != tt.level || !next.Equal(tt.next) {
				t.Errorf("at %v: level %d next %v, want %d %v", tt.now, level, next, tt.level, tt.next)
			}
		}
	})
	t.Run("warned at 30, 7 and 1 days", func(t *testing.T) {
		g := newRig(t)
		s := g.issue(200 * day) // long enough for the thresholds as they are (expiryReference)
		g.app.installed = s.parsed(t)
		g.prepare(s)
		g.start()
		na := g.app.installed.Cert.NotAfter
		if g.app.lastError != "" {
			t.Fatalf("a warning 40 days before expiry: %q", g.app.lastError)
		}
		for i, tt := range []struct {
			at   time.Time
			want string
		}{
			{na.Add(-30 * day), "in 30 days"},
			{na.Add(-7 * day), "in 7 days"},
			{na.Add(-day), "in 24 hours"},
			{na, "expired on"},
		} {
			g.runUntil(tt.at.Add(-time.Second))
			if n := strings.Count(g.logs.String(), "certificate expires soon"); n != i {
				t.Fatalf("before %v: %d warnings, want %d", tt.at, n, i)
			}
			g.runUntil(tt.at)
			if n := strings.Count(g.logs.String(), "certificate expires soon"); n != i+1 {
				t.Fatalf("at %v: %d warnings, want %d", tt.at, n, i+1)
			}
			if !strings.Contains(g.app.lastError, tt.want) || !strings.Contains(g.app.lastError, "put a renewed set into "+g.src) {
				t.Fatalf("at %v: recorded %q, want %q and what to do", tt.at, g.app.lastError, tt.want)
			}
			if !strings.Contains(g.notes[len(g.notes)-1], tt.want) {
				t.Fatalf("STATUS %q does not warn", g.notes[len(g.notes)-1])
			}
		}
		if !g.r.next().IsZero() {
			t.Fatalf("a timer is still set after expiry: %v", g.r.next())
		}
		// A renewed set clears the warning.
		g.clock.Set(na.Add(-time.Hour))
		renewed := g.issue(ServerValidity)
		g.clock.Set(na.Add(time.Hour))
		g.writeSet(renewed)
		g.runUntil(na.Add(2 * time.Hour))
		if g.app.installed.Serial() != renewed.serial || g.app.lastError != "" {
			t.Fatalf("after renewal: serving %s, recorded %q", g.app.installed.Serial(), g.app.lastError)
		}
	})
}

func TestOverflowRescans(t *testing.T) {
	g := newRig(t)
	s0, s1 := g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.start()
	// Files change, but the events are lost.
	for name, data := range map[string][]byte{certstore.CertFile: s1.cert, certstore.KeyFile: s1.key} {
		writeSource(t, g.src, name, data)
	}
	g.runUntil(g.at(time.Minute))
	if len(g.app.Calls()) != 0 {
		t.Fatal("applied without an event")
	}
	g.r.onFSError(fsnotify.ErrEventOverflow)
	g.runUntil(g.at(2 * time.Minute))
	if got := g.serials(); fmt.Sprint(got) != fmt.Sprint([]string{s1.serial}) {
		t.Fatalf("after an overflow: applied %v, want [%s]", got, s1.serial)
	}
}

func TestRunConfigValidate(t *testing.T) {
	base := RunDefaults()
	base.Certs = "/etc/tlsdock/certs"
	for _, tt := range []struct {
		name string
		mod  func(*RunConfig)
		want string
	}{
		{"defaults", func(*RunConfig) {}, ""},
		{"no debounce", func(c *RunConfig) { c.Debounce = 0 }, "--debounce: must be positive"},
		{"max-wait below debounce", func(c *RunConfig) { c.MaxWait = time.Second }, "--max-wait 1s must be at least --debounce 2s"},
		{"negative interval", func(c *RunConfig) { c.MinRestartInterval = -time.Second }, "--min-restart-interval"},
		{"renew-before too long", func(c *RunConfig) { c.RenewBefore = 60 * 24 * time.Hour }, "--renew-before 1440h0m0s must be between 0 and 1080h0m0s"},
		{"metrics address", func(c *RunConfig) { c.MetricsListen = "9323" }, `--metrics-listen: "9323" is not HOST:PORT`},
		{"dry run", func(c *RunConfig) { c.DryRun = true }, "no dry run"},
		{"provision's checks", func(c *RunConfig) { c.Certs = "" }, "--certs: no certificates given"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want an InputError containing %q", err, tt.want)
			}
		})
	}
}

func TestRecordError(t *testing.T) {
	h := newFakeHost(t)
	a := h.agent(&fakeVerifier{})
	if err := a.RecordError(""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.statePath()); !os.IsNotExist(err) {
		t.Fatal("clearing nothing wrote state.json")
	}
	mustProvision(t, a, generateCfg())
	before, err := a.loadState()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.RecordError("invalid set in /etc/tlsdock/certs: server-key.pem: ..."); err != nil {
		t.Fatal(err)
	}
	s, err := a.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.LastError != "invalid set in /etc/tlsdock/certs: server-key.pem: ..." {
		t.Fatalf("status shows %q", s.LastError)
	}
	after, _ := a.loadState()
	after.LastError = before.LastError
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("RecordError changed more than the error:\n%+v\n%+v", before, after)
	}
	set, err := a.Installed()
	if err != nil || set == nil || set.Serial() != before.Serial {
		t.Fatalf("Installed() = %v, %v; want serial %s", set, err, before.Serial)
	}
}

func TestRun(t *testing.T) {
	g := newRig(t)
	s1 := g.issue(ServerValidity)
	g.prepare(s1)
	log := &eventLog{c: make(chan string, 100)}
	g.app.events = log
	g.app.started = make(chan context.Context, 1)
	g.app.release = make(chan struct{})
	hup := make(chan os.Signal, 1)
	reloads := make(chan func() (RunConfig, error), 1)
	g.r.o.Notify = func(s string) bool { log.add(s); return true }
	g.r.o.Hangup = hup
	g.r.o.Watchdog = time.Hour
	g.r.o.Reload = func() (RunConfig, error) { return (<-reloads)() }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx) }()

	wait := func(prefix string) {
		t.Helper()
		timeout := time.After(30 * time.Second) // a failure bound only
		for {
			select {
			case s := <-log.c:
				if strings.HasPrefix(s, prefix) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q; events: %q", prefix, log.all())
			}
		}
	}
	// The startup reconcile applies the source set, then READY.
	<-g.app.started
	g.app.release <- struct{}{}
	wait("READY=1")
	wait("WATCHDOG=1")

	// SIGHUP with a config that does not load keeps the settings.
	reloads <- func() (RunConfig, error) { return RunConfig{}, errors.New("tlsdock.conf:3: unknown key") }
	hup <- os.Interrupt
	wait("STATUS=SIGHUP: the settings do not load")

	// SIGHUP with changed settings applies them at once (no rate limit
	// left: the clock moved on); SIGTERM meanwhile waits for the sequence.
	g.clock.Set(g.at(time.Minute))
	reloads <- func() (RunConfig, error) {
		c := g.r.cfg
		c.SANs = []string{"localhost"}
		return c, nil
	}
	hup <- os.Interrupt
	pctx := <-g.app.started
	cancel()
	g.app.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pctx.Err() != nil {
		t.Fatal("SIGTERM cancelled the Provision in progress")
	}
	ev := log.all()
	var order []string
	for _, e := range ev {
		if strings.HasPrefix(e, "provision") || e == "READY=1" || e == "STOPPING=1" {
			order = append(order, e)
		}
	}
	want := []string{"provision " + s1.serial + " ctx=<nil>", "READY=1", "provision " + s1.serial + " ctx=<nil>", "STOPPING=1"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %q, want %q", order, want)
	}
}

// TestRotatorWithAgent runs the loop over the real sequence (fake systemd
// and dockerd): the rotation installs the source set, an invalid set shows
// in status, and the next valid set replaces it.
func TestRotatorWithAgent(t *testing.T) {
	h := newFakeHost(t)
	a := h.agent(&fakeVerifier{})
	g := newRig(t, func(c *RunConfig, o *RunOptions) { c.MinRestartInterval = 0 })
	g.r.app = a
	s1, s2, s3 := g.issue(ServerValidity), g.issue(ServerValidity), g.issue(ServerValidity)
	g.prepare(s1)
	g.start()
	installed := func() string {
		set, err := a.Installed()
		if err != nil || set == nil {
			t.Fatalf("installed: %v, %v", set, err)
		}
		return set.Serial()
	}
	if installed() != s1.serial {
		t.Fatal("the startup reconcile did not install the source set")
	}
	restarts := func() int {
		n := 0
		for _, c := range h.Calls() {
			if c == "restart docker.service" {
				n++
			}
		}
		return n
	}
	if restarts() != 1 {
		t.Fatalf("calls %v", h.Calls())
	}

	g.write(map[string][]byte{certstore.CertFile: s2.cert, certstore.KeyFile: s3.key})
	g.later(time.Minute)
	st, err := a.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if installed() != s1.serial || !strings.Contains(st.LastError, "does not match") || st.LastApply.Result != "ok" {
		t.Fatalf("after an invalid set: serving %s, status %+v", installed(), st)
	}

	g.write(map[string][]byte{certstore.KeyFile: s2.key})
	g.later(time.Minute)
	st, _ = a.Status(context.Background())
	if installed() != s2.serial || st.LastError != "" || restarts() != 2 {
		t.Fatalf("after a valid set: serving %s, status %+v, calls %v", installed(), st, h.Calls())
	}
}
