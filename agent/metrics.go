package agent

import (
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Metrics are the rotation daemon's Prometheus metrics. A nil *Metrics
// records nothing.
//
// They are written in Prometheus's text exposition format (version 0.0.4)
// by WriteTo: five families of plain gauges and counters need no client
// library, and the one that was used here (client_golang, with protobuf and
// procfs behind it) made up about 2 MB of a binary that stays resident in
// every idle `tlsdock run`. metrics_test.go checks the output against
// client_golang's, family by family.
type Metrics struct {
	mu              sync.Mutex
	expiry          float64
	rotations       map[string]float64
	lastSuccess     float64
	validationError float64
	pendingFrom     float64
	// crl are the --crl-url fetches by URL; empty without any URL.
	crl map[string]*crlFetchMetrics
	// now is the clock of the fetch ages; default time.Now.
	now func() time.Time
}

// crlFetchMetrics are one --crl-url's.
type crlFetchMetrics struct {
	lastSuccess time.Time // zero: none since the start
	failures    float64
	nextUpdate  float64
}

// RotationResults are the values of tlsdock_rotations_total's result label.
var RotationResults = []string{"ok", "rolled_back", "failed", "invalid"}

// The families, in the order Prometheus sorts them (by name). A family
// without value has one sample per label value (labeled); one without any
// label value is left out, as Prometheus's registry does.
var metricFamilies = []struct {
	name, help, typ string
	value           func(m *Metrics) float64
	labeled         func(m *Metrics) (label string, values map[string]float64)
}{
	{"tlsdock_certificate_expiry_timestamp_seconds", "NotAfter of the installed server certificate, in seconds since the epoch.", "gauge",
		func(m *Metrics) float64 { return m.expiry }, nil},
	{"tlsdock_crl_fetch_age_seconds", "Seconds since the last successful fetch of a --crl-url (its CRL verified and in force); +Inf before the first.", "gauge",
		nil, func(m *Metrics) (string, map[string]float64) {
			return "url", m.crlValues(func(c *crlFetchMetrics) float64 {
				if c.lastSuccess.IsZero() {
					return math.Inf(1)
				}
				return max(0, m.now().Sub(c.lastSuccess).Seconds())
			})
		}},
	{"tlsdock_crl_fetch_failures_total", "Fetches of a --crl-url that failed or brought a CRL that was refused (the last good one stays in force).", "counter",
		nil, func(m *Metrics) (string, map[string]float64) {
			return "url", m.crlValues(func(c *crlFetchMetrics) float64 { return c.failures })
		}},
	{"tlsdock_crl_next_update_timestamp_seconds", "NextUpdate of the CRL of a --crl-url in force, in seconds since the epoch; 0 when none is.", "gauge",
		nil, func(m *Metrics) (string, map[string]float64) {
			return "url", m.crlValues(func(c *crlFetchMetrics) float64 { return c.nextUpdate })
		}},
	{"tlsdock_last_rotation_success_timestamp_seconds", "When the last rotation succeeded, in seconds since the epoch; 0 before the first.", "gauge",
		func(m *Metrics) float64 { return m.lastSuccess }, nil},
	{"tlsdock_pending_not_before_timestamp_seconds", "NotBefore of the valid source set waiting to become valid before it is installed, in seconds since the epoch; 0 when none waits.", "gauge",
		func(m *Metrics) float64 { return m.pendingFrom }, nil},
	{"tlsdock_rotations_total", "Rotations by result: ok, rolled_back (docker is back on the previous set), failed, invalid (a source set or setting was refused; nothing changed).", "counter",
		nil, func(m *Metrics) (string, map[string]float64) { return "result", m.rotations }},
	{"tlsdock_validation_error", "1 while the certificate set in the source is invalid, else 0.", "gauge",
		func(m *Metrics) float64 { return m.validationError }, nil},
}

// NewMetrics returns the metrics, every counter at 0.
func NewMetrics() *Metrics {
	m := &Metrics{rotations: make(map[string]float64, len(RotationResults)), crl: map[string]*crlFetchMetrics{}, now: time.Now}
	for _, r := range RotationResults {
		m.rotations[r] = 0
	}
	return m
}

// WriteTo writes every family in the text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	b := make([]byte, 0, 2048)
	for _, f := range metricFamilies {
		if f.value != nil {
			b = appendFamilyHeader(b, f.name, f.help, f.typ)
			b = appendSample(b, f.name, "", "", f.value(m))
			continue
		}
		label, values := f.labeled(m)
		if len(values) == 0 {
			continue
		}
		b = appendFamilyHeader(b, f.name, f.help, f.typ)
		// Label values in sorted order, as Prometheus's registry
		// writes them.
		for _, r := range slices.Sorted(maps.Keys(values)) {
			b = appendSample(b, f.name, label, r, values[r])
		}
	}
	m.mu.Unlock()
	n, err := w.Write(b)
	return int64(n), err
}

// appendFamilyHeader appends a family's HELP and TYPE lines.
func appendFamilyHeader(b []byte, name, help, typ string) []byte {
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = appendEscaped(b, help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	return append(b, '\n')
}

// appendSample appends one sample line, with at most one label.
func appendSample(b []byte, name, label, value string, v float64) []byte {
	b = append(b, name...)
	if label != "" {
		b = append(b, '{')
		b = append(b, label...)
		b = append(b, `="`...)
		b = appendEscaped(b, value, true)
		b = append(b, `"}`...)
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// appendEscaped escapes a HELP text (backslash, newline) or a label value
// (also the double quote), as the text format asks.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat writes a value as Prometheus's Go client does: the shortest
// 'g' form, and +Inf, -Inf, NaN spelled out.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func (m *Metrics) set(p *float64, v float64) {
	if m != nil {
		m.mu.Lock()
		*p = v
		m.mu.Unlock()
	}
}

func (m *Metrics) setExpiry(t time.Time) {
	if m != nil {
		m.set(&m.expiry, float64(t.Unix()))
	}
}

func (m *Metrics) rotation(result string) {
	if m != nil {
		m.mu.Lock()
		m.rotations[result]++
		m.mu.Unlock()
	}
}

func (m *Metrics) setLastSuccess(t time.Time) {
	if m != nil {
		m.set(&m.lastSuccess, float64(t.Unix()))
	}
}

func (m *Metrics) setValidationError(on bool) {
	if m == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.set(&m.validationError, v)
}

func (m *Metrics) setPending(p *PendingSet) {
	if m == nil {
		return
	}
	v := 0.0
	if p != nil {
		v = float64(p.NotBefore.Unix())
	}
	m.set(&m.pendingFrom, v)
}

// crlValues is one value of every --crl-url (under m.mu).
func (m *Metrics) crlValues(v func(*crlFetchMetrics) float64) map[string]float64 {
	out := make(map[string]float64, len(m.crl))
	for u, c := range m.crl {
		out[u] = v(c)
	}
	return out
}

// crlURL is the metrics of a URL, made on first use (under m.mu).
func (m *Metrics) crlURL(u string) *crlFetchMetrics {
	c := m.crl[u]
	if c == nil {
		c = &crlFetchMetrics{}
		m.crl[u] = c
	}
	return c
}

func (m *Metrics) crlFetchSucceeded(u string, at time.Time) {
	if m != nil {
		m.mu.Lock()
		m.crlURL(u).lastSuccess = at
		m.mu.Unlock()
	}
}

func (m *Metrics) crlFetchFailed(u string) {
	if m != nil {
		m.mu.Lock()
		m.crlURL(u).failures++
		m.mu.Unlock()
	}
}

// crlNextUpdate records the next update of the CRL of u in force (zero:
// none is).
func (m *Metrics) crlNextUpdate(u string, next time.Time) {
	if m == nil {
		return
	}
	v := 0.0
	if !next.IsZero() {
		v = float64(next.Unix())
	}
	m.mu.Lock()
	m.crlURL(u).nextUpdate = v
	m.mu.Unlock()
}
