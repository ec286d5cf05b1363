package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// issueFrom makes a server set of the rig's CA whose notBefore is nb.
func (g *rig) issueFrom(nb time.Time, validity time.Duration) set {
	g.t.Helper()
	certPEM, keyPEM, err := g.ca.Issue(certstore.IssueRequest{CommonName: "srv", DNSNames: []string{"localhost"}, KeyType: certstore.ECDSAP256,
		Now: nb.Add(certstore.Backdate), Validity: validity, Server: true}, rand.Reader)
	if err != nil {
		g.t.Fatal(err)
	}
	s, err := certstore.ParseSet(g.ca.CertPEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		g.t.Fatal(err)
	}
	if !s.Cert.NotBefore.Equal(nb) {
		g.t.Fatalf("issued with notBefore %v, want %v", s.Cert.NotBefore, nb)
	}
	return set{ca: g.ca.CertPEM, cert: certPEM, key: keyPEM, serial: s.Serial()}
}

func (g *rig) lastNote() string {
	g.t.Helper()
	if len(g.notes) == 0 {
		g.t.Fatal("no STATUS sent")
	}
	return g.notes[len(g.notes)-1]
}

// servingRig is a rig serving s0 from its source, started.
func servingRig(t *testing.T) (*rig, set) {
	t.Helper()
	g := newRig(t)
	s0 := g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.start()
	return g, s0
}

// TestPendingSetInstalledWhenValid: a set whose notBefore is ahead is
// kept pending and installed when it becomes valid, with no file event.
func TestPendingSetInstalledWhenValid(t *testing.T) {
	g, s0 := servingRig(t)
	nb := g.at(3 * time.Minute)
	s1 := g.issueFrom(nb, ServerValidity)
	g.runUntil(g.at(time.Second))
	g.writeSet(s1)

	g.runUntil(g.at(2 * time.Minute))
	if n := len(g.app.Calls()); n != 0 {
		t.Fatalf("a set not valid yet started the sequence %d times", n)
	}
	if g.app.lastError != "" {
		t.Fatalf("a pending set is recorded as an error: %q", g.app.lastError)
	}
	wantNote := fmt.Sprintf("pending: serial %s, valid from %s", s1.serial, nb.UTC().Format(time.DateTime))
	if note := g.lastNote(); !strings.Contains(note, wantNote) || !strings.Contains(note, "serving serial "+s0.serial) {
		t.Fatalf("STATUS %q, want it to serve %s and contain %q", note, s0.serial, wantNote)
	}
	if got := g.metric("tlsdock_pending_not_before_timestamp_seconds", ""); got != float64(nb.Unix()) {
		t.Fatalf("pending notBefore gauge %v, want %d", got, nb.Unix())
	}
	if got := g.metric("tlsdock_validation_error", ""); got != 0 {
		t.Fatalf("validation_error = %v for a set that is only not valid yet", got)
	}
	// One timer, for the time the set becomes installable.
	if at := g.r.next(); !at.Equal(nb.Add(notBeforeMargin)) {
		t.Fatalf("next wake-up at %v, want %v (notBefore plus the margin)", at, nb.Add(notBeforeMargin))
	}

	g.runUntil(g.at(10 * time.Minute))
	if got, want := g.callTimes(), []time.Duration{3*time.Minute + notBeforeMargin}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("applies at %v, want %v", got, want)
	}
	if got := g.serials(); fmt.Sprint(got) != fmt.Sprint([]string{s1.serial}) {
		t.Fatalf("applied %v, want [%s]", got, s1.serial)
	}
	if note := g.lastNote(); strings.Contains(note, "pending") || !strings.Contains(note, "serving serial "+s1.serial) {
		t.Fatalf("STATUS after the install: %q", note)
	}
	if got := g.metric("tlsdock_pending_not_before_timestamp_seconds", ""); got != 0 {
		t.Fatalf("pending notBefore gauge %v after the install, want 0", got)
	}
	if at := g.r.next(); !at.IsZero() && at.Before(g.at(24*time.Hour)) {
		t.Fatalf("the idle daemon wakes at %v", at)
	}
}

// TestPendingSetReplaced: a file change before notBefore re-plans: the
// timer follows the newer set, or goes.
func TestPendingSetReplaced(t *testing.T) {
	t.Run("by a set valid later still", func(t *testing.T) {
		g, _ := servingRig(t)
		s1 := g.issueFrom(g.at(3*time.Minute), ServerValidity)
		s2 := g.issueFrom(g.at(5*time.Minute), ServerValidity)
		g.writeSet(s1)
		g.runUntil(g.at(time.Minute))
		g.writeSet(s2)
		g.runUntil(g.at(4 * time.Minute))
		if n := len(g.app.Calls()); n != 0 {
			t.Fatalf("%d applies before the newer set is valid (the older pending set was installed?)", n)
		}
		if note := g.lastNote(); !strings.Contains(note, "pending: serial "+s2.serial) {
			t.Fatalf("STATUS %q does not show the newer pending set", note)
		}
		g.runUntil(g.at(10 * time.Minute))
		if got, want := g.callTimes(), []time.Duration{5*time.Minute + notBeforeMargin}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("applies at %v, want %v", got, want)
		}
		if got := g.serials(); fmt.Sprint(got) != fmt.Sprint([]string{s2.serial}) {
			t.Fatalf("applied %v, want [%s]", got, s2.serial)
		}
	})
	t.Run("by a set valid now", func(t *testing.T) {
		g, _ := servingRig(t)
		s1 := g.issueFrom(g.at(3*time.Minute), ServerValidity)
		g.writeSet(s1)
		g.runUntil(g.at(time.Minute))
		s2 := g.issue(ServerValidity)
		g.writeSet(s2)
		g.runUntil(g.at(10 * time.Minute))
		if got := g.serials(); fmt.Sprint(got) != fmt.Sprint([]string{s2.serial}) {
			t.Fatalf("applied %v, want [%s] only", got, s2.serial)
		}
		if got, want := g.callTimes(), []time.Duration{time.Minute}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("applies at %v, want %v", got, want)
		}
		if note := g.lastNote(); strings.Contains(note, "pending") {
			t.Fatalf("STATUS %q still shows a pending set", note)
		}
	})
	t.Run("unnoticed: the timer reads the source again", func(t *testing.T) {
		g, _ := servingRig(t)
		s1 := g.issueFrom(g.at(3*time.Minute), ServerValidity)
		g.writeSet(s1)
		g.runUntil(g.at(time.Minute))
		s2 := g.issue(ServerValidity)
		for name, data := range map[string][]byte{certstore.CAFile: s2.ca, certstore.CertFile: s2.cert, certstore.KeyFile: s2.key} {
			writeSource(t, g.src, name, data) // no event: a lost watch
		}
		g.runUntil(g.at(10 * time.Minute))
		if got := g.serials(); fmt.Sprint(got) != fmt.Sprint([]string{s2.serial}) {
			t.Fatalf("applied %v, want [%s]: what the source holds when the timer fires", got, s2.serial)
		}
	})
	t.Run("by an invalid set", func(t *testing.T) {
		g, s0 := servingRig(t)
		s1 := g.issueFrom(g.at(3*time.Minute), ServerValidity)
		g.writeSet(s1)
		g.runUntil(g.at(time.Minute))
		other := g.issue(ServerValidity)
		g.write(map[string][]byte{certstore.KeyFile: other.key})
		g.runUntil(g.at(10 * time.Minute))
		if n := len(g.app.Calls()); n != 0 {
			t.Fatalf("%d applies: the timer of the replaced pending set installed something", n)
		}
		if note := g.lastNote(); strings.Contains(note, "pending") || !strings.Contains(note, "does not match") || !strings.Contains(note, s0.serial) {
			t.Fatalf("STATUS %q", note)
		}
	})
}

// TestPendingSetInvalidOtherwise: a set whose notBefore is ahead and whose
// key does not match is not installed when notBefore passes, and what is
// recorded never says "not valid until" a time that has passed.
func TestPendingSetInvalidOtherwise(t *testing.T) {
	g, _ := servingRig(t)
	nb := g.at(3 * time.Minute)
	s1, s2 := g.issueFrom(nb, ServerValidity), g.issueFrom(nb, ServerValidity)
	g.writeSet(set{ca: s1.ca, cert: s1.cert, key: s2.key})
	g.runUntil(g.at(time.Minute))
	for _, want := range []string{"does not match", "not valid until " + nb.UTC().Format(time.RFC3339)} {
		if !strings.Contains(g.app.lastError, want) {
			t.Fatalf("recorded error %q does not contain %q", g.app.lastError, want)
		}
	}
	if strings.Contains(g.lastNote(), "pending") {
		t.Fatalf("STATUS %q calls an invalid set pending", g.lastNote())
	}
	g.runUntil(g.at(10 * time.Minute))
	if n := len(g.app.Calls()); n != 0 {
		t.Fatalf("an invalid set was applied %d times once its notBefore passed", n)
	}
	if !strings.Contains(g.app.lastError, "does not match") || strings.Contains(g.app.lastError, "not valid until") {
		t.Fatalf("recorded error after notBefore: %q", g.app.lastError)
	}
	if note := g.lastNote(); strings.Contains(note, "not valid until") {
		t.Fatalf("STATUS after notBefore: %q", note)
	}
}

// TestPendingStatus: `tlsdock status` over the real sequence shows the
// pending set while its notBefore is ahead, no "not valid until", and
// nothing pending once it is installed.
func TestPendingStatus(t *testing.T) {
	h := newFakeHost(t)
	g := newRig(t, func(c *RunConfig, o *RunOptions) { c.MinRestartInterval = 0 })
	a := h.agent(&fakeVerifier{}, func(o *Options) { o.Now = g.clock.Now })
	g.r.app = a
	s0 := g.issue(ServerValidity)
	g.prepare(s0)
	g.start()
	nb := g.at(3 * time.Minute)
	s1 := g.issueFrom(nb, ServerValidity)
	g.writeSet(s1)
	g.later(time.Minute)

	st, err := a.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Certificate == nil || st.Certificate.Serial != s0.serial {
		t.Fatalf("serving %+v, want serial %s", st.Certificate, s0.serial)
	}
	if strings.Contains(st.LastError, "not valid until") {
		t.Fatalf("status shows the pending set as an error: %q", st.LastError)
	}
	p := st.Pending
	if p == nil || p.Serial != s1.serial || !p.NotBefore.Equal(nb) || !p.InstallAt.Equal(nb.Add(notBeforeMargin)) || p.Source != g.src {
		t.Fatalf("pending %+v, want serial %s valid from %v", p, s1.serial, nb)
	}
	if want := fmt.Sprintf("serial %s, valid from 2026-11-01 12:03:00 UTC (in 2m)", s1.serial); p.Summary != want {
		t.Fatalf("summary %q, want %q", p.Summary, want)
	}
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"pending":{"serial":"`+s1.serial+`","not_before":"2026-11-01T12:03:00Z","install_at":"2026-11-01T12:03:05Z"`) {
		t.Fatalf("status JSON: %s", js)
	}

	g.later(5 * time.Minute)
	st, err = a.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Certificate == nil || st.Certificate.Serial != s1.serial || st.Pending != nil || st.LastError != "" {
		t.Fatalf("after notBefore: serving %+v, pending %+v, error %q; want serial %s and nothing pending", st.Certificate, st.Pending, st.LastError, s1.serial)
	}
	if stt, _ := a.loadState(); stt == nil || stt.Pending != nil {
		t.Fatalf("state.json after the install: %+v", stt)
	}
}

func TestPendingSummary(t *testing.T) {
	nb := fixedNow
	p := &PendingSet{Serial: "ab12", NotBefore: nb, InstallAt: nb.Add(notBeforeMargin)}
	tests := []struct {
		now  time.Time
		want string
	}{
		{nb.Add(-3 * time.Minute), "serial ab12, valid from 2026-11-01 12:00:00 UTC (in 3m)"},
		{nb.Add(-20 * time.Second), "serial ab12, valid from 2026-11-01 12:00:00 UTC (in 20s)"},
		{nb.Add(-50 * time.Hour), "serial ab12, valid from 2026-11-01 12:00:00 UTC (in 2 days)"},
		{nb.Add(2 * time.Second), "serial ab12, valid since 2026-11-01 12:00:00 UTC; installed at 2026-11-01 12:00:05 UTC (in 3s)"},
		{nb.Add(10 * time.Minute), "serial ab12, valid since 2026-11-01 12:00:00 UTC (10m ago) but not installed yet: `tlsdock run` was to install it at 2026-11-01 12:00:05 UTC; check that it runs (systemctl status tlsdock)"},
	}
	for _, tt := range tests {
		if got := p.summary(tt.now); got != tt.want {
			t.Errorf("at %v: %q, want %q", tt.now.Sub(nb), got, tt.want)
		}
	}
}

// TestInstallableFrom: when a set may be installed, for the certificates
// whose notBefore can hold it back.
func TestInstallableFrom(t *testing.T) {
	g := newRig(t)
	now := t0
	valid := g.issue(ServerValidity).parsed(t)
	aheadPEM := g.issueFrom(now.Add(3*time.Minute), ServerValidity)
	ahead := aheadPEM.parsed(t)
	justValid := g.issueFrom(now.Add(-2*time.Second), ServerValidity).parsed(t)
	mismatched := set{ca: aheadPEM.ca, cert: aheadPEM.cert, key: g.issue(ServerValidity).key}.parsed(t)
	// A CA valid only from 15 minutes on, and a leaf of it valid now.
	lateCA, err := certstore.NewCA(certstore.ECDSAP256, now.Add(15*time.Minute+certstore.Backdate), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := lateCA.Issue(certstore.IssueRequest{CommonName: "srv", DNSNames: []string{"localhost"}, KeyType: certstore.ECDSAP256,
		Now: now, Validity: ServerValidity, Server: true}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	underLateCA := set{ca: lateCA.CertPEM, cert: certPEM, key: keyPEM}.parsed(t)
	tests := []struct {
		name    string
		set     *certstore.Set
		names   []string
		want    time.Time
		wantErr string
	}{
		{"valid now", valid, nil, now, ""},
		{"notBefore ahead", ahead, nil, now.Add(3*time.Minute + notBeforeMargin), ""},
		{"valid for 2s: waits for the margin", justValid, nil, now.Add(3 * time.Second), ""},
		{"the CA's notBefore ahead", underLateCA, nil, now.Add(15*time.Minute + notBeforeMargin), ""},
		{"notBefore ahead and a key that does not match", mismatched, nil, time.Time{}, "does not match"},
		{"notBefore ahead and a name it does not cover", ahead, []string{"other.example"}, time.Time{}, "does not cover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := certstore.Requirements{DNSNames: append([]string{"localhost"}, tt.names...)}
			got, err := installableFrom(tt.set, req, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "not valid until") {
					t.Fatalf("err %v, want one containing %q and the notBefore", err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("installableFrom = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestJustIssuedSetWaitsForTheMargin: a set from an issuer that does not
// backdate, valid since a moment ago, is installed notBeforeMargin after
// its notBefore, not earlier.
func TestJustIssuedSetWaitsForTheMargin(t *testing.T) {
	g, _ := servingRig(t)
	g.runUntil(g.at(time.Minute))
	nb := g.at(time.Minute)
	s1 := g.issueFrom(nb, ServerValidity)
	g.writeSet(s1)
	g.runUntil(g.at(time.Minute + DefaultDebounce))
	if n := len(g.app.Calls()); n != 0 {
		t.Fatalf("installed %v after notBefore, before the margin of %v", DefaultDebounce, notBeforeMargin)
	}
	if note := g.lastNote(); !strings.Contains(note, "pending: serial "+s1.serial+", valid since ") {
		t.Fatalf("STATUS %q", note)
	}
	g.runUntil(g.at(time.Hour))
	if got, want := g.callTimes(), []time.Duration{time.Minute + notBeforeMargin}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("applies at %v, want %v", got, want)
	}
}

// TestRunInstallsPendingSetOnItsTimer: the daemon loop itself arms the
// timer for a pending set and installs it when the clock gets there, with
// no file event and no signal.
func TestRunInstallsPendingSetOnItsTimer(t *testing.T) {
	g := newRig(t)
	s0 := g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	nb := g.at(3 * time.Minute)
	s1 := g.issueFrom(nb, ServerValidity)
	g.prepare(s1) // in the source before the start: no event
	log := &eventLog{c: make(chan string, 100)}
	g.app.events = log
	g.r.o.Notify = func(s string) bool { log.add(s); return true }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx) }()
	wait := func(what string) {
		t.Helper()
		timeout := time.After(30 * time.Second) // a failure bound only
		for {
			select {
			case s := <-log.c:
				if strings.Contains(s, what) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q; events: %q", what, log.all())
			}
		}
	}
	wait("pending: serial " + s1.serial)
	wait("READY=1")
	g.clock.Set(nb) // valid, but within the margin: nothing yet
	g.clock.Set(nb.Add(notBeforeMargin))
	wait("provision " + s1.serial)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint([]time.Duration{3*time.Minute + notBeforeMargin}) {
		t.Fatalf("applies at %v", got)
	}
}
