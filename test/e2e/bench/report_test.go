package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// fakeFigures is one side of a load measurement: a run per rate, each
// process at the same µs per operation in every run.
func fakeFigures(t string, rates []float64, cpu map[string]float64, neg ...string) *opFigures {
	f := newOpFigures(cpuPaths[t])
	for _, r := range rates {
		f.rate = append(f.rate, r)
		for p, us := range cpu {
			f.cpu[p] = append(f.cpu[p], us)
		}
	}
	f.neg = neg
	return f
}

const (
	hybrid = "X25519MLKEM768, TLS_AES_128_GCM_SHA256"
	x25519 = "X25519, TLS_AES_128_GCM_SHA256"
	p256   = "P-256, TLS_AES_128_GCM_SHA256"
)

// fakeProxy is row 6's results with the proxy's handshake rate and CPU
// per handshake (tlsdock's) as given, native at 700/s and 850 µs.
func fakeProxy(rate, tlsdockUS float64) *proxyResults {
	x := &proxyResults{runs: map[string]map[string]*opFigures{}, socat: "1.7.4.4"}
	for _, key := range []string{measHandshake, measX25519} {
		neg := hybrid
		if key == measX25519 {
			neg = x25519
		}
		x.runs[key] = map[string]*opFigures{
			termProxy:  fakeFigures(termProxy, []float64{rate}, map[string]float64{procTlsdock: tlsdockUS, procDockerd: 0, procJournald: 0}, neg),
			termNative: fakeFigures(termNative, []float64{700}, map[string]float64{procDockerd: 850, procJournald: 0}, x25519),
			termNginx:  fakeFigures(termNginx, []float64{600}, map[string]float64{procNginx: 900, procDockerd: 0, procJournald: 0}, x25519),
		}
	}
	x.runs[measHandshake][termSocat] = fakeFigures(termSocat, []float64{200}, map[string]float64{procSocat: 3000, procDockerd: 0, procJournald: 0}, p256)
	refused := newOpFigures(cpuPaths[termSocat])
	refused.refused = "remote error: tls: handshake failure"
	x.runs[measX25519][termSocat] = refused
	x.runs[measKeepalive] = map[string]*opFigures{}
	for _, t := range terminators {
		x.runs[measKeepalive][t] = fakeFigures(t, []float64{5000, 5200, 4800}, map[string]float64{procDockerd: 80, procJournald: 0, procTlsdock: 90, procNginx: 75, procSocat: 78}, x25519)
	}
	x.runs[measKeepalive][termProxy].neg = []string{hybrid}
	return x
}

func rowsByID(r *report) map[string]row {
	out := map[string]row{}
	for _, x := range r.rows() {
		out[x.id] = x
	}
	return out
}

// TestHandshakeVerdict checks that rows 6b and 6b' pass only when both the
// rate and the CPU per handshake are within 0.9x of native's.
func TestHandshakeVerdict(t *testing.T) {
	for _, tc := range []struct {
		name        string
		rate, cpuUS float64
		want        string
	}{
		{"both hold", 693, 914, "met"},
		{"rate ahead, CPU too dear", 760, 950, "MISSED"}, // 950/850 = 1.12 > 1/0.9
		{"CPU fine, rate behind", 620, 800, "MISSED"},    // 620/700 = 0.886
		{"on the bounds", 630, 850 / 0.9, "met"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := rowsByID(&report{proxy: fakeProxy(tc.rate, tc.cpuUS)})
			for _, id := range []string{"6b", "6b'"} {
				if got := rows[id].result; got != tc.want {
					t.Errorf("row %s: %s, want %s (%s)", id, got, tc.want, rows[id].ratio)
				}
			}
		})
	}
}

func TestHandshakeRows(t *testing.T) {
	rows := rowsByID(&report{proxy: fakeProxy(693, 914)})
	b := rows["6b"]
	if want := "693/s (" + hybrid + "; CPU per handshake: tlsdock 914.0 + dockerd 0.0 + journald 0.0 = 914.0 µs)"; b.tlsdock != want {
		t.Errorf("6b tlsdock:\n got %s\nwant %s", b.tlsdock, want)
	}
	for _, want := range []string{
		"native 700/s (" + x25519 + "; CPU per handshake: dockerd 850.0 + journald 0.0 = 850.0 µs)",
		"; nginx 600/s (" + x25519 + "; CPU per handshake: nginx 900.0 + dockerd 0.0 + journald 0.0 = 900.0 µs)",
		"; socat 200/s (" + p256 + ";",
	} {
		if !strings.Contains(b.baseline, want) {
			t.Errorf("6b baseline lacks %q:\n%s", want, b.baseline)
		}
	}
	if want := "0.99x of native, CPU per handshake 1.08x of native's; 1.16x of nginx"; b.ratio != want {
		t.Errorf("6b ratio %q, want %q", b.ratio, want)
	}
	x := rows["6b'"]
	if !strings.HasPrefix(x.tlsdock, "693/s ("+x25519+";") {
		t.Errorf("6b' tlsdock %q: want the X25519 figure", x.tlsdock)
	}
	want := "; socat 1.7.4.4 refused every connection of this client (remote error: tls: handshake failure; with row 6b's default client it negotiates " + p256 + ")"
	if !strings.HasSuffix(x.baseline, want) {
		t.Errorf("6b' baseline lacks %q:\n%s", want, x.baseline)
	}
	if strings.Contains(x.baseline, "MLKEM") {
		t.Errorf("6b' baseline names a hybrid: %s", x.baseline)
	}
	for _, id := range []string{"6a", "6f"} {
		if !strings.Contains(rows[id].tlsdock, hybrid) || !strings.Contains(rows[id].baseline, "nginx with an access log") || !strings.Contains(rows[id].baseline, x25519) {
			t.Errorf("row %s does not name each side's key exchange: %q | %q", id, rows[id].tlsdock, rows[id].baseline)
		}
	}
}

// TestRowsNotMeasured checks the ids and the verdicts of a run in which
// rows 3 and 6 failed.
func TestRowsNotMeasured(t *testing.T) {
	rows := rowsByID(&report{})
	for _, id := range []string{"3a", "3b", "3c", "3d", "3e", "6a", "6b", "6b'", "6c", "6d", "6e", "6f"} {
		if r, ok := rows[id]; !ok || r.result != failedMsg {
			t.Errorf("row %s: %+v, want %q", id, r, failedMsg)
		}
	}
}

func TestLoadRows(t *testing.T) {
	fig := func(rate, us float64, neg string) *opFigures {
		f := fakeFigures(termNative, []float64{rate}, map[string]float64{procDockerd: us, procJournald: 1}, neg)
		f.procs = loadProcs
		return f
	}
	l := &loadResults{
		ecdsa: loadFigures{ops: map[string]*opFigures{"handshake": fig(1200, 400, x25519), "newconn": fig(660, 500, x25519), "keepalive": fig(12000, 60, x25519)},
			newconnP50: sample{5}, newconnP99: sample{20}},
		rsa: loadFigures{ops: map[string]*opFigures{"handshake": fig(97, 4000, x25519), "newconn": fig(91, 4100, x25519), "keepalive": fig(10500, 61, x25519)},
			newconnP50: sample{42}, newconnP99: sample{83}},
	}
	rows := rowsByID(&report{load: l})
	if want := "1200/s (" + x25519 + "; CPU per handshake: dockerd 400.0 + journald 1.0 = 401.0 µs)"; rows["3a"].tlsdock != want {
		t.Errorf("3a tlsdock %q, want %q", rows["3a"].tlsdock, want)
	}
	if want := "97.0/s (RSA-4096; " + x25519 + "; CPU per handshake: dockerd 4000.0 + journald 1.0 = 4001.0 µs)"; rows["3a"].baseline != want {
		t.Errorf("3a baseline %q, want %q", rows["3a"].baseline, want)
	}
	if want := "12x, CPU per handshake 0.10x"; rows["3a"].ratio != want || rows["3a"].result != "met" {
		t.Errorf("3a ratio %q (%s), want %q (met)", rows["3a"].ratio, rows["3a"].result, want)
	}
	for _, id := range []string{"3b", "3c"} {
		if !strings.Contains(rows[id].tlsdock, x25519) || strings.Contains(rows[id].tlsdock, "CPU") {
			t.Errorf("row %s: %q, want the key exchange and no CPU", id, rows[id].tlsdock)
		}
	}
	for _, id := range []string{"3d", "3e"} {
		if !strings.Contains(rows[id].tlsdock, "CPU per request: dockerd") || !strings.Contains(rows[id].baseline, "CPU per request: dockerd") {
			t.Errorf("row %s: %q | %q, want the CPU per request on both sides", id, rows[id].tlsdock, rows[id].baseline)
		}
	}
}

func TestOpFigures(t *testing.T) {
	f := newOpFigures(cpuPaths[termProxy])
	if !math.IsNaN(f.cpuTotal()) || f.cpuSum() != "—" || cpuRatio(f, f, "request") != "" {
		t.Errorf("no reading: total %v, sum %q", f.cpuTotal(), f.cpuSum())
	}
	for _, r := range []struct {
		kx  string
		cpu float64
	}{{"X25519MLKEM768", 100}, {"X25519MLKEM768", 300}, {"X25519", 200}} {
		f.add(&loadResult{Count: 10, Elapsed: time.Second, KeyExchange: r.kx, Cipher: "TLS_AES_128_GCM_SHA256"}, map[string]float64{procTlsdock: r.cpu, procDockerd: 1})
	}
	if got := f.cpuTotal(); got != 201 {
		t.Errorf("cpuTotal %v, want 201 (the median of the runs' sums)", got)
	}
	if got, want := negText(f.neg), hybrid+" / "+x25519; got != want {
		t.Errorf("negotiated %q, want %q", got, want)
	}
	if got := f.rate.format(fmtRate); got != "10.0/s [10.0/s–10.0/s]" {
		t.Errorf("rate %q", got)
	}
}

// TestMarkdownProxyOnly renders a report of -only proxy: every row and the
// text of rows 6b and 6b'.
func TestMarkdownProxyOnly(t *testing.T) {
	md := (&report{proxy: fakeProxy(693, 914), p: quickPlan, noRun: "not measured: -only proxy"}).markdown()
	for _, want := range []string{"| 6b' | ", "| 6b | ", "| 6f | ", "**Their\nverdict needs both ratios:**", "`-curves X25519`"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| 6") && strings.Count(line, "|") != 8 {
			t.Errorf("row with a stray |: %s", line)
		}
	}
}
