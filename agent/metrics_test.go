package agent

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape parses m's output as a Prometheus server does.
func scrape(t testing.TB, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	var out bytes.Buffer
	if _, err := m.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(&out)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v\n%s", err, out.String())
	}
	return mfs
}

// clientGolangText is what Prometheus's Go client writes for the same
// families holding the same values.
func clientGolangText(t *testing.T, expiry, last, pending, invalid float64, results map[string]float64) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	var help = map[string]string{}
	for _, f := range metricFamilies {
		help[f.name] = f.help
	}
	gauge := func(name string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help[name]})
		g.Set(v)
		reg.MustRegister(g)
	}
	gauge("tlsdock_certificate_expiry_timestamp_seconds", expiry)
	gauge("tlsdock_last_rotation_success_timestamp_seconds", last)
	gauge("tlsdock_pending_not_before_timestamp_seconds", pending)
	gauge("tlsdock_validation_error", invalid)
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tlsdock_rotations_total", Help: help["tlsdock_rotations_total"]}, []string{"result"})
	for r, v := range results {
		c.WithLabelValues(r).Add(v)
	}
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&out, mf); err != nil {
			t.Fatal(err)
		}
	}
	return out.String()
}

// TestMetricsAsClientGolang writes the metrics after a few rotations and
// compares them, byte for byte, with what client_golang's registry writes
// for the same values.
func TestMetricsAsClientGolang(t *testing.T) {
	expiry := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	last := time.Date(2026, 12, 3, 9, 30, 15, 0, time.UTC)
	pending := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name                           string
		steps                          func(m *Metrics)
		results                        map[string]float64
		expiry, last, pending, invalid float64
	}{
		{"fresh", func(*Metrics) {}, map[string]float64{"ok": 0, "rolled_back": 0, "failed": 0, "invalid": 0}, 0, 0, 0, 0},
		{"after rotations", func(m *Metrics) {
			m.setExpiry(expiry)
			m.setLastSuccess(last)
			for range 3 {
				m.rotation("ok")
			}
			m.rotation("rolled_back")
			m.rotation("invalid")
			m.setValidationError(true)
			m.setPending(&PendingSet{NotBefore: pending})
		}, map[string]float64{"ok": 3, "rolled_back": 1, "failed": 0, "invalid": 1},
			float64(expiry.Unix()), float64(last.Unix()), float64(pending.Unix()), 1},
		{"error cleared, pending installed", func(m *Metrics) {
			m.setValidationError(true)
			m.setValidationError(false)
			m.setPending(&PendingSet{NotBefore: pending})
			m.setPending(nil)
			m.rotation("failed")
		}, map[string]float64{"ok": 0, "rolled_back": 0, "failed": 1, "invalid": 0}, 0, 0, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics()
			tt.steps(m)
			var got bytes.Buffer
			if _, err := m.WriteTo(&got); err != nil {
				t.Fatal(err)
			}
			want := clientGolangText(t, tt.expiry, tt.last, tt.pending, tt.invalid, tt.results)
			if got.String() != want {
				t.Errorf("metrics differ from client_golang's\n--- got\n%s--- client_golang\n%s", got.String(), want)
			}
		})
	}
}

func TestMetricsEscaping(t *testing.T) {
	var b []byte
	b = appendFamilyHeader(b, "x", "a \\ b\nc \"q\"", "gauge")
	b = appendSample(b, "x", "result", "a\\b\n\"c\"", math.Inf(1))
	b = appendSample(b, "x", "", "", math.NaN())
	b = appendSample(b, "x", "", "", math.Inf(-1))
	want := "# HELP x a \\\\ b\\nc \"q\"\n# TYPE x gauge\nx{result=\"a\\\\b\\n\\\"c\\\"\"} +Inf\nx NaN\nx -Inf\n"
	if string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := mfs["x"].GetHelp(); got != "a \\ b\nc \"q\"" {
		t.Errorf("help parsed as %q", got)
	}
	if got := mfs["x"].GetMetric()[0].GetLabel()[0].GetValue(); got != "a\\b\n\"c\"" {
		t.Errorf("label parsed as %q", got)
	}
}

// TestProcessMetricsAsClientGolang compares this process's metrics with
// what client_golang's process collector reports for it at the same time.
func TestProcessMetricsAsClientGolang(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	theirs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteProcessMetrics(&out, "/proc"); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	ours, err := p.TextToMetricFamilies(&out)
	if err != nil {
		t.Fatalf("process metrics do not parse: %v\n%s", err, out.String())
	}
	seen := 0
	for _, mf := range theirs {
		name := mf.GetName()
		if strings.HasPrefix(name, "process_network_") {
			continue // the network namespace's counters, not the process's
		}
		o, ok := ours[name]
		if !ok {
			t.Errorf("no %s", name)
			continue
		}
		seen++
		if o.GetHelp() != mf.GetHelp() || o.GetType() != mf.GetType() {
			t.Errorf("%s: help %q type %v, client_golang %q %v", name, o.GetHelp(), o.GetType(), mf.GetHelp(), mf.GetType())
		}
		v, w := value(o), value(mf)
		switch name {
		case "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes":
			// Read a moment apart: close, not equal.
			if v < w*0.5 || v > w*2+1 {
				t.Errorf("%s = %g, client_golang %g", name, v, w)
			}
		case "process_open_fds":
			if math.Abs(v-w) > 3 {
				t.Errorf("%s = %g, client_golang %g", name, v, w)
			}
		default:
			if v != w {
				t.Errorf("%s = %g, client_golang %g", name, v, w)
			}
		}
	}
	if seen != len(ours) {
		t.Errorf("wrote %d families, client_golang has %d of them", len(ours), seen)
	}
}

func value(mf *dto.MetricFamily) float64 {
	m := mf.GetMetric()[0]
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

// fakeProc makes a /proc with stat and self/stat as given, and three open
// files.
func fakeProc(t *testing.T, stat, selfStat string) (proc string, write func(name, s string)) {
	t.Helper()
	proc = t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "self", "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0", "1", "2"} {
		if err := os.WriteFile(filepath.Join(proc, "self", "fd", name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write = func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(proc, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", stat)
	write("self/stat", selfStat)
	return proc, write
}

// TestProcessMetricsOddCommandName reads a stat line whose command name
// holds spaces and parentheses, and refuses a cut one.
func TestProcessMetricsOddCommandName(t *testing.T) {
	// utime 250, stime 50 ticks; starttime 1234 ticks; vsize; rss 1000 pages.
	const selfStat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1234 123456789 1000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	proc, write := fakeProc(t, "cpu  1 2 3\nbtime 1764700000\nprocesses 9\n", selfStat)
	var out bytes.Buffer
	if err := WriteProcessMetrics(&out, proc); err != nil {
		t.Fatal(err)
	}
	page := float64(os.Getpagesize())
	for _, want := range []string{
		"process_cpu_seconds_total 3\n",
		"process_open_fds 3\n",
		"process_start_time_seconds 1.76470001234e+09\n",
		"process_virtual_memory_bytes 1.23456789e+08\n",
		"process_resident_memory_bytes " + string(appendFloat(nil, 1000*page)) + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	write("self/stat", "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250\n")
	if err := WriteProcessMetrics(&out, proc); err == nil || !strings.Contains(err.Error(), "fields") {
		t.Errorf("a cut stat line: err = %v", err)
	}
	// The boot time is read once: a later scrape does not read stat again.
	write("self/stat", selfStat)
	write("stat", "cpu  1 2 3\nbtime 1\n")
	out.Reset()
	if err := WriteProcessMetrics(&out, proc); err != nil {
		t.Fatal(err)
	}
	if want := "process_start_time_seconds 1.76470001234e+09\n"; !strings.Contains(out.String(), want) {
		t.Errorf("the boot time was read again: no %q in\n%s", want, out.String())
	}
	noBtime, _ := fakeProc(t, "cpu  1 2 3\n", selfStat)
	if err := WriteProcessMetrics(&out, noBtime); err == nil || !strings.Contains(err.Error(), "btime") {
		t.Errorf("no btime: err = %v", err)
	}
}

// TestMetricsCRLFetches: the families of --crl-url appear only with a URL,
// ages count from the last success (+Inf before it), and a URL's quote and
// backslash are escaped so that Prometheus reads the label back.
func TestMetricsCRLFetches(t *testing.T) {
	m := NewMetrics()
	if mfs := scrape(t, m); mfs["tlsdock_crl_fetch_age_seconds"] != nil {
		t.Fatal("CRL fetch families without any URL")
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	odd := `http://ca/crl?a="b"\c`
	m.crlNextUpdate(odd, time.Time{})
	m.crlFetchFailed(odd)
	m.crlFetchSucceeded("https://ca:9000/crl", now.Add(-90*time.Second))
	m.crlNextUpdate("https://ca:9000/crl", now.Add(time.Hour))
	mfs := scrape(t, m)
	values := func(name string) map[string]float64 {
		out := map[string]float64{}
		for _, mt := range mfs[name].GetMetric() {
			v := mt.GetGauge().GetValue()
			if mt.GetCounter() != nil {
				v = mt.GetCounter().GetValue()
			}
			out[mt.GetLabel()[0].GetValue()] = v
		}
		return out
	}
	age := values("tlsdock_crl_fetch_age_seconds")
	if age["https://ca:9000/crl"] != 90 || !math.IsInf(age[odd], 1) || len(age) != 2 {
		t.Fatalf("ages %v", age)
	}
	if f := values("tlsdock_crl_fetch_failures_total"); f[odd] != 1 || f["https://ca:9000/crl"] != 0 {
		t.Fatalf("failures %v", f)
	}
	if n := values("tlsdock_crl_next_update_timestamp_seconds"); n["https://ca:9000/crl"] != float64(now.Add(time.Hour).Unix()) || n[odd] != 0 {
		t.Fatalf("next updates %v", n)
	}
}
