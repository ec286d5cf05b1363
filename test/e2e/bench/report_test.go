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

// withRotations adds row 6c's samples to x: failed requests per rotation
// of the proxy, per rotation and per bare restart of each native host.
func withRotations(x *proxyResults, proxy, bookworm, bookwormBare, trixie, trixieBare []float64) *proxyResults {
	x.rotFailed, x.rotOK, x.rotNeg = map[string]sample{}, map[string]sample{}, map[string][]string{}
	x.bareFailed, x.bareOK, x.bareNeg = map[string]sample{}, map[string]sample{}, map[string][]string{}
	x.dockerd = map[string]string{
		termNative:       "Docker version 20.10.24+dfsg1, build 297e128",
		termNativeTrixie: "Docker version 26.1.5+dfsg1, build a72d7cd",
	}
	set := func(failed, ok map[string]sample, neg map[string][]string, t string, v []float64) {
		if v == nil {
			return
		}
		failed[t] = v
		for range v {
			ok[t] = append(ok[t], 300)
		}
		neg[t] = []string{x25519}
	}
	set(x.rotFailed, x.rotOK, x.rotNeg, termProxy, proxy)
	x.rotNeg[termProxy] = []string{hybrid}
	set(x.rotFailed, x.rotOK, x.rotNeg, termNative, bookworm)
	set(x.bareFailed, x.bareOK, x.bareNeg, termNative, bookwormBare)
	set(x.rotFailed, x.rotOK, x.rotNeg, termNativeTrixie, trixie)
	set(x.bareFailed, x.bareOK, x.bareNeg, termNativeTrixie, trixieBare)
	return x
}

// TestRotationRow checks row 6c: met only with 0 failed from the proxy and
// from the trixie native rotations, whatever bookworm's dockerd 20.10
// fails; bookworm's rotation shown against its bare restart.
func TestRotationRow(t *testing.T) {
	for _, tc := range []struct {
		name                                          string
		proxy, bookworm, bookwormBare, trixie, txBare []float64
		want                                          string
		wantRatio                                     string
	}{
		{"all 0 but bookworm", []float64{0, 0, 0}, []float64{2, 1, 4}, []float64{3, 2, 3}, []float64{0, 0, 0}, []float64{0, 0, 0}, "met",
			"rotation − bare restart (medians): bookworm −1 (within the bare restart's 3 [2–3]), trixie 0 (within the bare restart's 0 [0–0])"},
		{"bookworm above its bare restart", []float64{0}, []float64{6}, []float64{2}, []float64{0}, []float64{0}, "met",
			"bookworm +4 (above the bare restart's 2)"},
		{"trixie fails one", []float64{0}, []float64{1}, []float64{1}, []float64{1}, []float64{0}, "MISSED", "trixie +1 (above the bare restart's 0)"},
		{"trixie fails in one rotation of three", []float64{0, 0, 0}, []float64{1, 1, 1}, []float64{1, 1, 1}, []float64{0, 2, 0}, []float64{0, 0, 0}, "MISSED", "trixie 0"},
		{"proxy fails one", []float64{1}, []float64{1}, []float64{1}, []float64{0}, []float64{0}, "MISSED", "bookworm 0"},
		{"no trixie rotation", []float64{0}, []float64{1}, []float64{1}, nil, nil, "MISSED", "trixie —"},
		{"no proxy rotation", nil, []float64{1}, []float64{1}, []float64{0}, []float64{0}, "MISSED", "trixie 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := withRotations(fakeProxy(693, 914), tc.proxy, tc.bookworm, tc.bookwormBare, tc.trixie, tc.txBare)
			got := rowsByID(&report{proxy: x})["6c"]
			if got.result != tc.want {
				t.Errorf("result %q, want %q (row %+v)", got.result, tc.want, got)
			}
			if !strings.Contains(got.ratio, tc.wantRatio) {
				t.Errorf("ratio %q lacks %q", got.ratio, tc.wantRatio)
			}
			if got.target != rotTarget {
				t.Errorf("target %q, want %q", got.target, rotTarget)
			}
		})
	}
}

// TestRotationRowSides checks the cells of row 6c: the proxy's count, and
// each native host's rotation and bare restart with its dockerd version
// and what was negotiated.
func TestRotationRowSides(t *testing.T) {
	x := withRotations(fakeProxy(693, 914), []float64{0}, []float64{3}, []float64{2}, []float64{0}, []float64{0})
	got := rowsByID(&report{proxy: x})["6c"]
	if want := "0 (of 300; " + hybrid + ")"; got.tlsdock != want {
		t.Errorf("tlsdock cell %q, want %q", got.tlsdock, want)
	}
	want := "native (bookworm, dockerd 20.10.24) rotation 3 (of 300; " + x25519 + "), bare restart 2 (of 300; " + x25519 + "); " +
		"native (trixie, dockerd 26.1.5) rotation 0 (of 300; " + x25519 + "), bare restart 0 (of 300; " + x25519 + ")"
	if got.baseline != want {
		t.Errorf("baseline cell\n%q, want\n%q", got.baseline, want)
	}

	x.trixieSkipped = "the trixie rootfs is not ready"
	got = rowsByID(&report{proxy: x})["6c"]
	if !strings.Contains(got.baseline, "native (trixie, dockerd 26.1.5) not measured (the trixie rootfs is not ready)") || got.result != "MISSED" {
		t.Errorf("without the trixie host: %+v", got)
	}
}

// TestDockerdVersion checks the version shown for each native host.
func TestDockerdVersion(t *testing.T) {
	for in, want := range map[string]string{
		"Docker version 20.10.24+dfsg1, build 297e128": "20.10.24",
		"Docker version 26.1.5+dfsg1, build a72d7cd":   "26.1.5",
		"Docker version 28.0.1, build 068a01e":         "28.0.1",
		"something else":                               "something else",
	} {
		if got := dockerdVersion(in); got != want {
			t.Errorf("dockerdVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMarkdownRotationText checks that row 6's text explains the bare
// restart and why dockerd 20.10's rotation cannot reach 0.
func TestMarkdownRotationText(t *testing.T) {
	x := withRotations(fakeProxy(693, 914), []float64{0}, []float64{3}, []float64{2}, []float64{0}, []float64{0})
	x.bareFirstErr = map[string]string{termNative: "EOF"}
	md := (&report{proxy: x, p: quickPlan, noRun: "not measured: -only proxy"}).markdown()
	for _, want := range []string{
		"**bare\nrestart**", "dockerd 20.10 closes the connections it accepted", "moby PR #45314",
		"**the verdict needs 0 from the proxy and from the Debian 13\nnative rotations**",
		"dockerd of the trixie native host: Docker version 26.1.5",
		"First failure during a bare restart, native dockerd TLS: `EOF`.",
		"; row 6c also: Docker version 26.1.5+dfsg1, build a72d7cd (Debian 13 test host) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(md, "**6c**") {
		t.Errorf("row 6c missed with every figure met:\n%s", md)
	}
}

// TestKeepaliveVerdict: row 6a passes only when the rate and the CPU per
// request both reach each target; a rate ratio alone does not pass.
func TestKeepaliveVerdict(t *testing.T) {
	// The proxy's path: tlsdock 60 + dockerd 80 = 140 µs at 6000/s.
	proxy := fakeFigures(termProxy, []float64{6000}, map[string]float64{procTlsdock: 60, procDockerd: 80, procJournald: 0}, hybrid)
	others := func(nginxRate, nginxUS float64) map[string]*opFigures {
		return map[string]*opFigures{
			termNginx:    fakeFigures(termNginx, []float64{nginxRate}, map[string]float64{procNginx: nginxUS, procDockerd: 100, procJournald: 0}, x25519),
			termNginxLog: fakeFigures(termNginxLog, []float64{5000}, map[string]float64{procNginx: 70, procDockerd: 100, procJournald: 0}, x25519),
			termNative:   fakeFigures(termNative, []float64{9000}, map[string]float64{procDockerd: 90, procJournald: 0}, x25519),
		}
	}
	for _, tc := range []struct {
		name      string
		nginxRate float64 // against the proxy's 6000/s
		nginxUS   float64 // nginx's own; its path adds dockerd's 100
		want      bool
	}{
		{"rate and CPU reach every target", 4800, 80, true},        // 1.25x, 180/140 = 1.29x
		{"the rate reaches it, the CPU does not", 4800, 60, false}, // 1.25x, 160/140 = 1.14x
		{"the CPU reaches it, the rate does not", 5500, 80, false}, // 1.09x, 1.29x
	} {
		cell, ok := keepaliveVerdict(proxy, others(tc.nginxRate, tc.nginxUS))
		if ok != tc.want {
			t.Errorf("%s: verdict %v, want %v (%s)", tc.name, ok, tc.want, cell)
		}
		for _, want := range []string{"of nginx,", "of nginx with an access log,", "of native;", "CPU per request", "native 0.64x"} {
			if !strings.Contains(cell, want) {
				t.Errorf("%s: no %q in %q", tc.name, want, cell)
			}
		}
	}
}
