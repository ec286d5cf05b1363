package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the rotation daemon's Prometheus metrics. A nil *Metrics
// records nothing.
type Metrics struct {
	expiry          prometheus.Gauge
	rotations       *prometheus.CounterVec
	lastSuccess     prometheus.Gauge
	validationError prometheus.Gauge
	pendingFrom     prometheus.Gauge
}

// RotationResults are the values of tlsdock_rotations_total's result label.
var RotationResults = []string{"ok", "rolled_back", "failed", "invalid"}

// NewMetrics creates the metrics and registers them with reg (use a
// private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tlsdock_certificate_expiry_timestamp_seconds",
			Help: "NotAfter of the installed server certificate, in seconds since the epoch.",
		}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tlsdock_rotations_total",
			Help: "Rotations by result: ok, rolled_back (docker is back on the previous set), failed, invalid (a source set or setting was refused; nothing changed).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tlsdock_last_rotation_success_timestamp_seconds",
			Help: "When the last rotation succeeded, in seconds since the epoch; 0 before the first.",
		}),
		validationError: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tlsdock_validation_error",
			Help: "1 while the certificate set in the source is invalid, else 0.",
		}),
		pendingFrom: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tlsdock_pending_not_before_timestamp_seconds",
			Help: "NotBefore of the valid source set waiting to become valid before it is installed, in seconds since the epoch; 0 when none waits.",
		}),
	}
	for _, r := range RotationResults {
		m.rotations.WithLabelValues(r)
	}
	reg.MustRegister(m.expiry, m.rotations, m.lastSuccess, m.validationError, m.pendingFrom)
	return m
}

func (m *Metrics) setExpiry(t time.Time) {
	if m != nil {
		m.expiry.Set(float64(t.Unix()))
	}
}

func (m *Metrics) rotation(result string) {
	if m != nil {
		m.rotations.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) setLastSuccess(t time.Time) {
	if m != nil {
		m.lastSuccess.Set(float64(t.Unix()))
	}
}

func (m *Metrics) setValidationError(on bool) {
	if m == nil {
		return
	}
	if on {
		m.validationError.Set(1)
	} else {
		m.validationError.Set(0)
	}
}

func (m *Metrics) setPending(p *PendingSet) {
	if m == nil {
		return
	}
	if p == nil {
		m.pendingFrom.Set(0)
	} else {
		m.pendingFrom.Set(float64(p.NotBefore.Unix()))
	}
}
