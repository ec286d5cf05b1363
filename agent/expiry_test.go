package agent

import (
	"strings"
	"testing"
	"time"
)

func TestScaleThresholds(t *testing.T) {
	day := 24 * time.Hour
	for _, tt := range []struct {
		life time.Duration
		th   []time.Duration
		want []time.Duration
	}{
		{365 * day, expiryThresholds, expiryThresholds},
		{120 * day, expiryThresholds, expiryThresholds},
		{90 * day, expiryThresholds, []time.Duration{22*day + 12*time.Hour, 5*day + 6*time.Hour, 18 * time.Hour}},
		{24 * time.Hour, expiryThresholds, []time.Duration{6 * time.Hour, 84 * time.Minute, 12 * time.Minute}},
		{90 * day, expiryThresholdsLocalCA, []time.Duration{5*day + 6*time.Hour, 18 * time.Hour}},
	} {
		got := scaleThresholds(tt.th, tt.life)
		if len(got) != len(tt.want) {
			t.Fatalf("lifetime %v: %v, want %v", tt.life, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("lifetime %v: %v, want %v", tt.life, got, tt.want)
				break
			}
		}
	}
}

// TestShortLivedCertificateNoStandingWarning: step-ca's 24-hour leaves,
// renewed by `step ca renew --daemon` at two thirds of their lifetime,
// never put status in "attention"; one left unrenewed is warned about
// when a quarter of its lifetime is left.
func TestShortLivedCertificateNoStandingWarning(t *testing.T) {
	g := newRig(t)
	s := g.issue(24 * time.Hour)
	g.app.installed = s.parsed(t)
	g.prepare(s)
	g.start()
	na := g.app.installed.Cert.NotAfter
	if g.app.lastError != "" {
		t.Fatalf("a fresh 24-hour certificate is warned about: %q", g.app.lastError)
	}
	// step renews at two thirds: nothing is wrong until then.
	g.runUntil(na.Add(-8 * time.Hour))
	if g.app.lastError != "" || strings.Contains(g.logs.String(), "certificate expires soon") {
		t.Fatalf("warned 8 hours before a 24-hour certificate expires: %q", g.app.lastError)
	}
	g.runUntil(na.Add(-6 * time.Hour))
	if !strings.Contains(g.app.lastError, "in 6 hours") {
		t.Fatalf("6 hours before expiry: recorded %q, want a warning", g.app.lastError)
	}
	g.runUntil(na.Add(-12 * time.Minute))
	if !strings.Contains(g.app.lastError, "in 12 minutes") {
		t.Fatalf("12 minutes before expiry: recorded %q, want a warning in minutes", g.app.lastError)
	}
}
