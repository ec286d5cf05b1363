package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/tlsdock/tlsdock/agent"
)

// report collects the results and renders docs/benchmarks.md.
type report struct {
	env    envInfo
	p      plan
	certs  *certResults
	prov   *provisionResults
	load   *loadResults
	rot    *rotateResults
	proxy  *proxyResults
	noRun  string // why rows 4 and 5 were not measured
	errors []string
}

// row is one line of the table.
type row struct {
	id, what, tlsdock, baseline, ratio, target, result string
}

// verdict is "met" or "MISSED".
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func notMeasured(id, what, target, why string) row {
	return row{id, what, "—", "—", "—", target, why}
}

const failedMsg = "not measured: failed (see below)"

func (r *report) rows() []row {
	var rows []row

	// 1. Certificate setup.
	const certTarget = "≥ 50x faster"
	if c := r.certs; c != nil {
		ratio := c.openssl.median() / c.inProcess.median()
		rows = append(rows, row{"1a", "Certificate setup: CA + server + client, in process (certstore calls)",
			c.inProcess.format(fmtMS), c.openssl.format(fmtMS), fmtRatio(ratio), certTarget, verdict(ratio >= 50)})
		ratio = c.openssl.median() / c.process.median()
		rows = append(rows, row{"1b", "Certificate setup: CA + server + client, fresh process writing the 6 files",
			c.process.format(fmtMS), c.openssl.format(fmtMS), fmtRatio(ratio), certTarget, verdict(ratio >= 50)})
	} else {
		rows = append(rows,
			notMeasured("1a", "Certificate setup: CA + server + client, in process (certstore calls)", certTarget, failedMsg),
			notMeasured("1b", "Certificate setup: CA + server + client, fresh process writing the 6 files", certTarget, failedMsg))
	}

	// 2. Provision.
	const provTarget = "≤ restart + 1 s"
	if p := r.prov; p != nil && len(p.provision) > 0 {
		over := p.provision.median() - p.restart.median()
		rows = append(rows, row{"2", "Provision a stock host to a verified mTLS endpoint (`tlsdock provision --generate`)",
			p.provision.format(fmtMS), p.restart.format(fmtMS) + " (bare restart)",
			fmt.Sprintf("+%s (%s)", fmtMS(over), fmtRatio(p.provision.median()/p.restart.median())),
			provTarget, verdict(over <= 1000)})
	} else {
		rows = append(rows, notMeasured("2", "Provision a stock host to a verified mTLS endpoint (`tlsdock provision --generate`)", provTarget, failedMsg))
	}

	// 3. New connections.
	whats := []string{
		"Fresh mTLS handshakes per second (4 concurrent clients)",
		"GET /_ping on a new connection, p50 latency",
		"GET /_ping on a new connection, p99 latency",
		"GET /_ping on a new connection, per second",
		"GET /_ping over 4 kept-alive connections, per second",
	}
	if l := r.load; l != nil {
		e, s := l.ecdsa.ops, l.rsa.ops
		ehs, shs := e["handshake"], s["handshake"]
		enc, snc := e["newconn"], s["newconn"]
		eka, ska := e["keepalive"], s["keepalive"]
		hs := ehs.rate.median() / shs.rate.median()
		ka := eka.rate.median() / ska.rate.median()
		rsaNote := "RSA-4096"
		rows = append(rows,
			row{"3a", whats[0], ehs.side(ehs.rate.format(fmtRate), "handshake"), shs.side(shs.rate.format(fmtRate), "handshake", rsaNote),
				fmtRatio(hs) + cpuRatio(ehs, shs, "handshake"), "≥ 10x", verdict(hs >= 10)},
			row{"3b", whats[1], enc.side(l.ecdsa.newconnP50.format(fmtMS), ""), snc.side(l.rsa.newconnP50.format(fmtMS), "", rsaNote),
				fmtRatio(l.rsa.newconnP50.median()/l.ecdsa.newconnP50.median()) + " lower", "—", "info"},
			row{"3c", whats[2], enc.side(l.ecdsa.newconnP99.format(fmtMS), ""), snc.side(l.rsa.newconnP99.format(fmtMS), "", rsaNote),
				fmtRatio(l.rsa.newconnP99.median()/l.ecdsa.newconnP99.median()) + " lower", "—", "info"},
			row{"3d", whats[3], enc.side(enc.rate.format(fmtRate), "request"), snc.side(snc.rate.format(fmtRate), "request", rsaNote),
				fmtRatio(enc.rate.median()/snc.rate.median()) + cpuRatio(enc, snc, "request"), "—", "info"},
			row{"3e", whats[4], eka.side(eka.rate.format(fmtRate), "request"), ska.side(ska.rate.format(fmtRate), "request", rsaNote),
				fmtRatio(ka) + cpuRatio(eka, ska, "request"), "match: 0.8x–1.25x", verdict(ka >= 0.8 && ka <= 1.25)},
		)
	} else {
		for i, w := range whats {
			target := "—"
			switch i {
			case 0:
				target = "≥ 10x"
			case 4:
				target = "match: 0.8x–1.25x"
			}
			rows = append(rows, notMeasured("3"+string(rune('a'+i)), w, target, failedMsg))
		}
	}

	// 4 and 5. tlsdock run.
	rotWhat := "Rotation: new set renamed into the watched source → new serial served (`tlsdock run`)"
	idleWhats := []string{"Idle `tlsdock run`: resident memory (VmRSS)", "Idle `tlsdock run`: CPU (utime + stime)", "Idle `tlsdock run`: wakeups (context switches, all threads)"}
	idleTargets := []string{"< 20 MiB", "< 0.1%", "≤ 1/s (no polling)"}
	why := r.noRun
	if why == "" {
		why = failedMsg
	}
	if t := r.rot; t != nil {
		limit := t.restart.median() + 300
		rows = append(rows, row{"4", rotWhat, t.rotation.format(fmtMS), t.restart.format(fmtMS) + " (bare restart, TLS dockerd)",
			fmtRatio(t.rotation.median() / t.restart.median()),
			fmt.Sprintf("≤ restart + 0.3 s (= %s)", fmtMS(limit)), verdict(t.rotation.median() <= limit)})
		window := fmt.Sprintf(" (whole %v window)", t.idleWindow)
		rows = append(rows,
			row{"5a", idleWhats[0], t.rssMiB.format(fmtMiB), "— (no daemon)", "—", idleTargets[0], verdict(t.rssMiB.max() < 20)},
			row{"5b", idleWhats[1], fmtPct(t.cpuTotal) + window + sliceNote(t.cpuPct, fmtPct, r.p.idleSlices), "— (no daemon)", "—", idleTargets[1], verdict(t.cpuTotal < 0.1)},
			row{"5c", idleWhats[2], fmtRate(t.wakeTotal) + window + sliceNote(t.wakeups, fmtRate, r.p.idleSlices), "— (no daemon)", "—", idleTargets[2], verdict(t.wakeTotal <= 1)},
		)
	} else {
		rows = append(rows, notMeasured("4", rotWhat, "≤ restart + 0.3 s", why))
		for i := range idleWhats {
			rows = append(rows, notMeasured("5"+string(rune('a'+i)), idleWhats[i], idleTargets[i], why))
		}
	}
	return append(rows, r.proxyRows()...)
}

// cpuRatio is ", CPU per OP 0.95x" (a's total against b's), or nothing
// without both readings.
func cpuRatio(a, b *opFigures, op string) string {
	v := a.cpuTotal() / b.cpuTotal()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return fmt.Sprintf(", CPU per %s %s", op, fmtRatio(v))
}

// The ids, whats and targets of section 6's rows.
var proxyRowIDs = []string{"6a", "6b", "6b'", "6c", "6d", "6e", "6f"}

var proxyWhats = []string{
	"Proxy mode: GET /_ping over 4 kept-alive connections, per second",
	"Proxy mode: fresh mTLS handshakes per second (4 concurrent clients)",
	"Proxy mode: fresh mTLS handshakes per second (4 concurrent clients), the client offering X25519 only",
	"Proxy mode: failed requests per rotation under load (4 clients, a new connection per GET /_ping), against native rotations and bare dockerd restarts",
	"Proxy mode: `tlsdock run --mode proxy` resident memory (VmRSS) under load",
	"Proxy mode: `tlsdock run --mode proxy` resident memory (VmRSS) at idle",
	"Proxy mode: CPU per kept-alive GET /_ping, by process in the path (µs of utime + stime per request)",
}

// hsTarget is rows 6b and 6b': rate and CPU per handshake, both against
// native's (see handshakeVerdict).
const hsTarget = "≥ 0.9x native: rate, and CPU per handshake ≤ native's ÷ 0.9"

// rotTarget is row 6c's: the proxy, and daemon-json mode with
// docker.socket holding the listener on a dockerd that drains the
// connections it accepted before it exits.
const rotTarget = "0 (proxy); 0 (native, docker.socket holding the listener, on a dockerd that drains accepted connections at exit: trixie's); " +
	"native on dockerd 20.10 (bookworm): shown against its bare restart"

var proxyTargets = []string{"≥ 1.2x nginx (access_log off), ≥ 1.0x nginx (access log), ≥ 0.6x native: rate, and CPU per request", hsTarget, hsTarget, rotTarget, "—", "—", "—"}

// hsMinRatio is the least share of native's handshake rate the proxy is
// to reach; its CPU per handshake may be at most native's ÷ hsMinRatio.
const hsMinRatio = 0.9

// handshakeVerdict is rows 6b' and 6b's: the proxy's handshake rate at
// least hsMinRatio of native's, and the CPU per handshake of the proxy's
// path (tlsdock, dockerd, journald) at most native's path's ÷
// hsMinRatio. On a shared machine the rate ratio swings from run to run
// while the CPU per handshake stays steady: both must hold.
func handshakeVerdict(proxy, native *opFigures) (rate, cpu float64, ok bool) {
	rate = proxy.rate.median() / native.rate.median()
	cpu = proxy.cpuTotal() / native.cpuTotal()
	return rate, cpu, rate >= hsMinRatio && cpu <= 1/hsMinRatio
}

// kaTargets are row 6a's: the least ratio of the proxy's to each
// terminator's keep-alive request rate, and of that terminator's CPU per
// request (its path's processes, cpuPaths) to the proxy's path's.
var kaTargets = []struct {
	term string
	min  float64
}{{termNginx, 1.2}, {termNginxLog, 1}, {termNative, 0.6}}

// keepaliveVerdict is row 6a's: for each of kaTargets, the proxy's
// request rate against the terminator's and the terminator's CPU per
// request against the proxy's, both at least the target. As for the
// handshakes (handshakeVerdict), the rate ratio of the same code swings
// on a shared machine while the CPU per request stays steady: both must
// hold. It returns the ratio cell and the verdict.
func keepaliveVerdict(proxy *opFigures, others map[string]*opFigures) (cell string, ok bool) {
	ok = true
	var rates, cpus []string
	for _, k := range kaTargets {
		o := others[k.term]
		rate := proxy.rate.median() / o.rate.median()
		cpu := o.cpuTotal() / proxy.cpuTotal()
		ok = ok && rate >= k.min && cpu >= k.min
		rates = append(rates, fmt.Sprintf("%s of %s", fmtRatio(rate), sideNames[k.term]))
		cpus = append(cpus, fmt.Sprintf("%s %s", sideNames[k.term], fmtRatio(cpu)))
	}
	return "rate " + strings.Join(rates, ", ") + "; CPU per request (theirs ÷ the proxy's): " + strings.Join(cpus, ", "), ok
}

// cpuPaths are the processes shown for each terminator in row 6f and
// counted in rows 6b and 6b'.
var cpuPaths = map[string][]string{
	termProxy:    {procTlsdock, procDockerd, procJournald},
	termNative:   {procDockerd, procJournald},
	termNginx:    {procNginx, procDockerd, procJournald},
	termNginxLog: {procNginx, procDockerd, procJournald},
	termSocat:    {procSocat, procDockerd, procJournald},
}

// sideNames are the terminators as the baseline cells name them.
var sideNames = map[string]string{
	termNative: "native", termNginx: "nginx", termNginxLog: "nginx with an access log", termSocat: "socat",
}

// proxyRows are the rows of section 6: the tlsdock column is the proxy.
func (r *report) proxyRows() []row {
	x := r.proxy
	if x == nil {
		var rows []row
		for i, w := range proxyWhats {
			rows = append(rows, notMeasured(proxyRowIDs[i], w, proxyTargets[i], failedMsg))
		}
		return rows
	}
	ka := func(t string) *opFigures { return x.fig(measKeepalive, t) }
	var kaSides []string
	for _, t := range []string{termNginx, termNginxLog, termSocat, termNative} {
		kaSides = append(kaSides, sideNames[t]+" "+ka(t).side(ka(t).rate.format(fmtRate), ""))
	}
	var cpuSides []string
	for _, t := range []string{termNginx, termNginxLog, termSocat, termNative} {
		cpuSides = append(cpuSides, fmt.Sprintf("%s: %s (%s)", sideNames[t], ka(t).cpuSum(), negText(ka(t).neg)))
	}
	kaCPU := ka(termProxy).cpuTotal()
	kaRatios, kaOK := keepaliveVerdict(ka(termProxy), map[string]*opFigures{termNginx: ka(termNginx), termNginxLog: ka(termNginxLog), termNative: ka(termNative)})
	return []row{
		{proxyRowIDs[0], proxyWhats[0], ka(termProxy).side(ka(termProxy).rate.format(fmtRate), ""),
			strings.Join(kaSides, "; "), kaRatios, proxyTargets[0], verdict(kaOK)},
		x.handshakeRow(1, measHandshake),
		x.handshakeRow(2, measX25519),
		x.rotationRow(),
		{proxyRowIDs[4], proxyWhats[4], x.rssLoad.format(fmtMiB), "— (not measured for the others)", "—", proxyTargets[4], "info"},
		{proxyRowIDs[5], proxyWhats[5], x.rssIdle.format(fmtMiB) + fmt.Sprintf(" (%v after the load)", x.idleAfter), "— (not measured for the others)", "—", proxyTargets[5], "info"},
		{proxyRowIDs[6], proxyWhats[6], fmt.Sprintf("%s (%s)", ka(termProxy).cpuSum(), negText(ka(termProxy).neg)),
			strings.Join(cpuSides, "; "),
			fmt.Sprintf("%s of nginx's, %s of native's", fmtRatio(kaCPU/ka(termNginx).cpuTotal()), fmtRatio(kaCPU/ka(termNative).cpuTotal())),
			proxyTargets[6], "info"},
	}
}

// rotSide is a side of row 6c: failed requests per rotation of terminator
// t, of the good ones, and what was negotiated.
func (x *proxyResults) rotSide(t string) string {
	return fmt.Sprintf("%s (of %s; %s)", x.rotFailed[t].format(fmtCount), x.rotOK[t].format(fmtCount), negText(x.rotNeg[t]))
}

// bareSide is the same for the bare restart of native host t.
func (x *proxyResults) bareSide(t string) string {
	return fmt.Sprintf("%s (of %s; %s)", x.bareFailed[t].format(fmtCount), x.bareOK[t].format(fmtCount), negText(x.bareNeg[t]))
}

// nativeHosts are row 6c's native hosts and how its cells name them.
var nativeHosts = []struct{ term, suite string }{{termNative, "bookworm"}, {termNativeTrixie, "trixie"}}

// dockerdVersion is "20.10.24" of "Docker version 20.10.24+dfsg1, build
// 297e128", or the whole string.
func dockerdVersion(s string) string {
	f := strings.Fields(s)
	for i, w := range f {
		if w == "version" && i+1 < len(f) {
			v, _, _ := strings.Cut(strings.TrimSuffix(f[i+1], ","), "+")
			return v
		}
	}
	return s
}

// rotationRow is row 6c: failed requests per rotation under load, the
// proxy's against each native host's rotation and that host's bare
// restart. The verdict needs 0 from the proxy and from the native host
// whose dockerd drains the connections it accepted (trixie); bookworm's
// dockerd 20.10 closes them at exit, so its rotation is shown against its
// bare restart: tlsdock adds no failure when it is within the bare
// restart's.
func (x *proxyResults) rotationRow() row {
	var sides, added []string
	for _, n := range nativeHosts {
		name := "native (" + n.suite
		if v := x.dockerd[n.term]; v != "" {
			name += ", dockerd " + dockerdVersion(v)
		}
		name += ")"
		if n.term == termNativeTrixie && x.trixieSkipped != "" {
			sides = append(sides, fmt.Sprintf("%s not measured (%s)", name, x.trixieSkipped))
			added = append(added, n.suite+" —")
			continue
		}
		sides = append(sides, fmt.Sprintf("%s rotation %s, bare restart %s", name, x.rotSide(n.term), x.bareSide(n.term)))
		rot, bare := x.rotFailed[n.term], x.bareFailed[n.term]
		a := n.suite + " " + fmtSigned(rot.median()-bare.median())
		switch {
		case len(rot) == 0 || len(bare) == 0:
		case rot.median() <= bare.max():
			a += " (within the bare restart's " + bare.format(fmtCount) + ")"
		default:
			a += " (above the bare restart's " + bare.format(fmtCount) + ")"
		}
		added = append(added, a)
	}
	px, tx := x.rotFailed[termProxy], x.rotFailed[termNativeTrixie]
	ok := len(px) > 0 && px.max() == 0 && x.trixieSkipped == "" && len(tx) > 0 && tx.max() == 0
	return row{proxyRowIDs[3], proxyWhats[3], x.rotSide(termProxy), strings.Join(sides, "; "),
		"rotation − bare restart (medians): " + strings.Join(added, ", "), proxyTargets[3], verdict(ok)}
}

// fmtSigned is a count difference with its sign: "+2", "0", "−1".
func fmtSigned(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v > 0:
		return "+" + fmtCount(v)
	case v < 0:
		return "−" + fmtCount(-v)
	}
	return "0"
}

// handshakeRow is row 6b or 6b' (proxyRowIDs[i]) of measurement key.
func (x *proxyResults) handshakeRow(i int, key string) row {
	hs := func(t string) *opFigures { return x.fig(key, t) }
	var sides []string
	for _, t := range []string{termNative, termNginx, termSocat} {
		f := hs(t)
		if f.refused != "" {
			name := sideNames[t]
			if t == termSocat && x.socat != "" {
				name += " " + x.socat
			}
			why := f.refused
			if d := x.fig(measHandshake, t); d != f && len(d.neg) > 0 {
				why += "; with row 6b's default client it negotiates " + negText(d.neg)
			}
			sides = append(sides, fmt.Sprintf("%s refused every connection of this client (%s)", name, why))
			continue
		}
		sides = append(sides, sideNames[t]+" "+f.side(f.rate.format(fmtRate), "handshake"))
	}
	rate, cpu, ok := handshakeVerdict(hs(termProxy), hs(termNative))
	ratio := fmt.Sprintf("%s of native, CPU per handshake %s of native's; %s of nginx", fmtRatio(rate), fmtRatio(cpu),
		fmtRatio(hs(termProxy).rate.median()/hs(termNginx).rate.median()))
	p := hs(termProxy)
	tlsdock := p.side(p.rate.format(fmtRate), "handshake")
	if p.refused != "" {
		tlsdock = "refused every connection of this client (" + p.refused + ")"
	}
	return row{proxyRowIDs[i], proxyWhats[i], tlsdock, strings.Join(sides, "; "), ratio, proxyTargets[i], verdict(ok)}
}

func fmtCount(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.0f", v)
}

func sliceNote(s sample, f func(float64) string, n int) string {
	if n < 2 {
		return ""
	}
	return fmt.Sprintf("; per slice %s–%s", f(s.min()), f(s.max()))
}

func fmtMiB(v float64) string { return fmt.Sprintf("%.1f MiB", v) }

func fmtPct(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.3f%%", v)
}

func (r *report) markdown() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	mode := fmt.Sprintf("full (`make bench`): %d certificate setups, %d provisions, %d × %v per load measurement, %d bare restarts, %d rotations, %v idle window",
		r.p.certRuns, r.p.provisionRuns, r.p.loadRuns, r.p.loadDur, r.p.restartRuns, r.p.rotationRuns, r.p.idleWindow)
	if r.p.quick {
		mode = fmt.Sprintf("**quick** (`make bench-quick`): one iteration of each, %v per load measurement, %v idle window. Figures from one run; not for comparison.", r.p.loadDur, r.p.idleWindow)
	}
	p("# Benchmarks: tlsdock against the recipes it replaces\n\n")
	p("Generated by `make bench` (test/e2e/bench); do not edit by hand. Every figure is the\n")
	p("median of repeated runs as `median [min–max]`, and every ratio compares medians measured\n")
	p("side by side in the same run. A missed target says MISSED; nothing is tuned to pass.\n\n")
	p("| | |\n|---|---|\n")
	p("| date | %s |\n", r.env.date)
	p("| mode | %s |\n", mode)
	p("| CPU | %s |\n", r.env.cpu)
	p("| kernel | %s |\n", r.env.kernel)
	p("| Go | %s |\n", r.env.goVersion)
	tx := ""
	if x := r.proxy; x != nil && x.dockerd[termNativeTrixie] != "" {
		tx = "; row 6c also: " + x.dockerd[termNativeTrixie] + " (Debian 13 test host)"
	}
	p("| dockerd | %s (Debian 12 test host in systemd-nspawn, %s)%s |\n", orDash(r.env.dockerd), orDash(r.env.systemd), tx)
	p("| openssl | %s |\n", orDash(r.env.openssl))
	p("| tlsdock | %s |\n", orDash(r.env.tlsdock))
	p("| load average (1, 5, 15 min) | %s at the start, %s at the end (the CPUs are shared; other work on the machine shows here) |\n\n", orDash(r.env.loadStart), orDash(r.env.loadEnd))

	p("| # | What | tlsdock | Baseline (recipe) | Ratio | Target | Result |\n")
	p("|---|---|---|---|---|---|---|\n")
	for _, x := range r.rows() {
		p("| %s | %s | %s | %s | %s | %s | %s |\n", x.id, x.what, x.tlsdock, x.baseline, x.ratio, x.target, x.result)
	}
	p("\n")

	if len(r.errors) > 0 {
		p("## Failed measurements\n\n")
		for _, e := range r.errors {
			p("- %s\n", strings.ReplaceAll(strings.TrimSpace(e), "\n", "\n  "))
		}
		p("\n")
	}

	p("## What each row times\n\n")
	p("**1. Certificate setup.** The baseline is the recipe of Docker's documentation (\"Protect the Docker\n")
	p("daemon socket\") run as a bash script of real `openssl` commands in a new directory: three RSA-4096\n")
	p("keys (the CA key with `-aes256`), the self-signed CA, a server CSR with an extfile (SANs, serverAuth)\n")
	p("signed by the CA, a client CSR with an extfile (clientAuth) signed by the CA, then the `rm` and\n")
	p("`chmod` steps; the passphrase and subjects are given on the command line instead of prompts. It is\n")
	p("timed from the start of bash to its exit. tlsdock's side is its default setup, ECDSA P-256\n")
	p("throughout: `certstore.NewCA` and two `CA.Issue` calls (server for dockerhost, localhost, 127.0.0.1\n")
	p("and ::1; client), with tlsdock's lifetimes. Row 1a times those calls in this process (keys, signing,\n")
	p("PEM encoding, no files). Row 1b starts a fresh process (this program as a worker) that does the same\n")
	p("and writes the same six files the recipe leaves with tlsdock's atomic writer (temp file, fchmod,\n")
	p("fsync, rename, fsync of the directory), timed from fork to exit: process against process, files\n")
	p("against files. 1b is the fair comparison; 1a shows the cryptography alone.\n\n")

	p("**2. Provision.** Each run boots a fresh stock test host (Debian 12, docker.io, no daemon.json),\n")
	p("times one `systemctl restart docker` on it (the baseline; `systemctl reset-failed` runs first,\n")
	p("untimed, so the start limit never trips), then times `tlsdock provision --generate --client-out\n")
	p("/root/client --json` until it exits 0 with every check passed. Both commands run inside the host\n")
	p("through the same `nsenter`, so its few milliseconds are on both sides. Provision includes creating\n")
	p("the CA and the certificates, the backup, the live-restore step (write `live-restore`, SIGHUP over\n")
	p("`ReloadUnit`, check `GET /info`) that keeps containers alive, writing daemon.json and the drop-in,\n")
	p("daemon-reload, reset-failed, the restart and the verification (plain HTTP, no client certificate,\n")
	p("a foreign CA and TLS 1.1 refused; the new serial presented; `/_ping` with a client certificate).\n")
	if pr := r.prov; pr != nil && len(pr.inner) > 0 {
		p("From docker.service's journal (systemd's own lines), the median provision splits into: %s before\n", fmtMS(pr.before.median()))
		p("the live-restore reload (start-up, plan, CA and certificates, backup), %s for the reload,\n", fmtMS(pr.reload.median()))
		p("%s from the reload to the restart (check `/info`, write the TLS configuration, daemon-reload,\n", fmtMS(pr.between.median()))
		p("reset-failed), %s for the restart itself (Stopping → Started) and %s after it\n", fmtMS(pr.inner.median()), fmtMS(pr.after.median()))
		p("(verification and commit). The bare restart measured on the same hosts took %s.\n", fmtMS(pr.restart.median()))
	}
	p("\n")

	p("**3. New-connection cost.** Two test hosts side by side: one provisioned with tlsdock's defaults\n")
	p("(`provision --generate`: ECDSA P-256 CA, server and client), one provisioned with the recipe's\n")
	p("RSA-4096 set (`provision --certs` of the set from row 1, client probe with the recipe's RSA-4096\n")
	p("client certificate). A Go load client (this program as a worker, started in the host's private\n")
	p("network namespace with `nsenter -n`, so it reaches only that dockerd on 127.0.0.1:2376) runs %d\n", r.p.loadConc)
	p("concurrent workers for %v per measurement (at most %d operations), with the matching client\n", r.p.loadDur, r.p.loadMax)
	p("certificate and full verification of the server, and no session cache: every new connection is a\n")
	p("full handshake, as every docker CLI command makes one. 3a: TCP connect + mutual-TLS handshake +\n")
	p("close. 3b–3d: a new connection for each `GET /_ping` (handshake included). 3e: `GET /_ping` over\n")
	p("4 kept-alive connections opened before the clock starts. The two hosts alternate which goes first,\n")
	p("after an uncounted warm-up. Client and dockerd share the machine's CPUs, as they would on a\n")
	p("docker host used locally; the recipe's client also signs with its RSA-4096 key in every handshake.\n")
	p("In TLS 1.3 the client's handshake ends before dockerd has checked the client certificate, so 3a\n")
	p("counts what the client waits for (the server's signature is on that path); 3b–3d wait for dockerd's\n")
	p("answer and so include all of its work.\n")
	p("Each side's figure names in parentheses the key exchange and cipher suite its connections\n")
	p("negotiated (`tls.ConnectionState.CurveID` and `CipherSuite`, as the load client saw them; the client\n")
	p("offers Go's defaults, the X25519MLKEM768 hybrid first). 3a, 3d and 3e also give the CPU per\n")
	p("operation of each process in the path, dockerd and systemd-journald of the host: utime + stime\n")
	p("from their /proc/PID/stat (through the host's /proc from this machine) before the run and %s\n", fmtMS(ms(cpuSettle)))
	p("after it, in µs per operation the client counted (%d ticks per second). The load client's own CPU\n", clockTicks)
	p("is not counted.\n")
	if l := r.load; l != nil {
		p("Negotiated: tlsdock defaults: %s; recipe: %s.\n", orDash(l.ecdsa.ops["handshake"].desc), orDash(l.rsa.ops["handshake"].desc))
	}
	p("\n")

	p("**4. Rotation.** A test host provisioned with `--certs /etc/tlsdock/certs` (an ECDSA P-256 set from\n")
	p("a CA made for the run), then `tlsdock run --certs /etc/tlsdock/certs --probe-client /root/client\n")
	p("--debounce %v` started with `systemd-run -p Type=notify` (the other settings are the defaults:\n", agent.DefaultDebounce)
	p("max wait %v, minimum restart interval %v). For each rotation a new server certificate from\n", agent.DefaultMaxWait, agent.DefaultMinRestartInterval)
	p("the same CA is written into a directory next to the source, a poller in the host's network\n")
	p("namespace starts handshaking every 20 ms and reads the serial of the certificate served, and the\n")
	p("three files are renamed into the source one after the other (as Vault Agent or consul-template do).\n")
	p("The figure runs from the first rename to the end of the first handshake that shows the new serial;\n")
	p("it includes the validation (a whole, valid set is acted on at once: the debounce waits only while\n")
	p("the set is incomplete, here between the renames), the backup, the restart of docker.service and tlsdock's\n")
	p("verification of the new endpoint before it commits (the poller may see the new serial while the\n")
	p("verification still runs). Rotations are spaced by more than the minimum restart interval, so none\n")
	p("is held back by the rate limit. The baseline is a bare `systemctl restart docker` of the same,\n")
	p("already TLS-configured, dockerd before `tlsdock run` starts (reset-failed first, untimed): what a\n")
	p("rotation by hand costs once the files are in place.\n")
	if t := r.rot; t != nil && len(t.toStop) > 0 {
		p("From docker.service's journal, the median rotation splits into %s from the first rename to\n", fmtMS(t.toStop.median()))
		p("the restart (validation, backup, install, reset-failed, and a daemon-reload only when a unit file\n")
		p("changed, never in these rotations; debounce %v, waited only\n", t.debounce)
		p("while the set was incomplete),\n")
		p("%s for the restart itself (Stopping → Started) and %s until the poller saw the new serial.\n", fmtMS(t.inner.median()), fmtMS(t.toSeen.median()))
	}
	if t := r.rot; t != nil && len(t.downtime) > 0 {
		p("While dockerd restarted, the endpoint served no certificate for %s.\n", t.downtime.format(fmtMS))
	}
	p("\n")

	p("**5. Idle cost.** After the last rotation settled (3 s), the `tlsdock run` process is watched for\n")
	p("%v in %d slice(s), from this machine through the host's /proc (nothing is started inside the\n", r.p.idleWindow, r.p.idleSlices)
	p("host while it runs): VmRSS from /proc/PID/status every second; CPU from utime + stime of\n")
	p("/proc/PID/stat (all threads, %d ticks per second) as a share of one CPU; wakeups as the sum of\n", clockTicks)
	p("voluntary and nonvoluntary context switches over every thread's /proc/PID/task/TID/status.\n")
	p("The wakeup target is this report's reading of \"no polling\": a daemon that polls wakes at least\n")
	p("once a second. There is no baseline: the recipe runs no daemon, and it rotates by hand.\n")
	if t := r.rot; t != nil && t.idleWindow > 0 {
		p("Over the whole window: %d ticks of CPU, %d threads at the end.\n", t.cpuTicks, t.threads)
		after := make([]string, len(t.rssAfter))
		for i, v := range t.rssAfter {
			after[i] = fmtMiB(v)
		}
		p("VmRSS one second after `tlsdock run` was ready: %s; one second after each rotation: %s.\n", fmtMiB(t.rssStart), orDash(strings.Join(after, ", ")))
	}
	if r.p.quick {
		p("In quick mode the window is short and one CPU tick is %s of it: the CPU figure is coarse.\n", fmtPct(100/r.p.idleWindow.Seconds()/clockTicks))
	}
	p("\n")

	r.proxyText(p)

	if missed := r.missed(); len(missed) > 0 {
		p("## Missed targets\n\n")
		for _, m := range missed {
			p("- %s\n", m)
		}
		p("\n")
	}
	return w.String()
}

// missed explains each missed target with the figures of this run.
func (r *report) missed() []string {
	var out []string
	for _, x := range r.rows() {
		if x.result != "MISSED" {
			continue
		}
		s := fmt.Sprintf("**%s** %s: %s against %s (%s); target %s.", x.id, x.what, x.tlsdock, x.baseline, x.ratio, x.target)
		if x.id == "2" && r.prov != nil && len(r.prov.inner) > 0 {
			pr := r.prov
			s += fmt.Sprintf(" The restart inside provision took %s against %s for the bare restart; the rest is the live-restore reload (%s), the steps around it (%s before, %s between) and the verification (%s).",
				fmtMS(pr.inner.median()), fmtMS(pr.restart.median()), fmtMS(pr.reload.median()), fmtMS(pr.before.median()), fmtMS(pr.between.median()), fmtMS(pr.after.median()))
		}
		if x.id == "4" && r.rot != nil && len(r.rot.toStop) > 0 {
			t := r.rot
			s += fmt.Sprintf(" Of the rotation, %s passed before the restart (the debounce %v waits only while the set is incomplete), the restart took %s (the bare one %s) and %s passed until the new serial was seen.",
				fmtMS(t.toStop.median()), t.debounce, fmtMS(t.inner.median()), fmtMS(t.restart.median()), fmtMS(t.toSeen.median()))
		}
		out = append(out, s)
	}
	return out
}

// proxyText explains section 6.
func (r *report) proxyText(p func(string, ...any)) {
	p("**6. Proxy mode against native TLS, socat and nginx.** One ECDSA P-256 set (CA, server certificate\n")
	p("for localhost and 127.0.0.1, client certificate), issued once with certstore, serves all five TLS\n")
	p("terminators in front of a dockerd unix socket. Two test hosts: one provisioned natively\n")
	p("(`tlsdock provision --certs /etc/tlsdock/certs`, daemon-json mode: dockerd serves TLS on :2376),\n")
	p("one in proxy mode (`provision --mode proxy --certs /etc/tlsdock/certs`: `tlsdock.service` serves\n")
	p("mutual TLS on :2376 and watches the source). On the proxy host's network namespace, this machine's\n")
	p("socat (127.0.0.1:2377: `OPENSSL-LISTEN,fork,reuseaddr,cert,key,cafile,verify=1` to\n")
	p("`UNIX-CONNECT:/proc/PID/root/run/docker.sock`) and nginx (127.0.0.1:2378: an `http {}` server with\n")
	p("`ssl_verify_client on`, session cache and tickets off, `proxy_pass` to an upstream on the same\n")
	p("socket with 16 kept-alive upstream connections, `worker_processes auto`) terminate TLS for the same\n")
	p("dockerd as the proxy, with the same server certificate, key and CA files. The Go load client of\n")
	p("row 3 runs %d workers for %v per measurement, %d run(s) of each, the terminators in turn with the\n", r.p.loadConc, r.p.proxyDur, r.p.proxyRuns)
	p("first one rotating between runs, after an uncounted warm-up. 6a is row 3e's measurement and 6b row\n")
	p("3a's against each terminator (nginx with an access log is left out of 6b: its handshake is nginx's).\n")
	p("6b' repeats 6b with the client restricted to X25519 (the worker's `-curves X25519`: its only key\n")
	p("share and supported group), where 6b's client offers Go's defaults with the X25519MLKEM768 hybrid\n")
	p("first: the proxy (Go) takes the hybrid, a server without it takes X25519 or P-256 (each side says\n")
	p("which). A terminator that refuses every connection of the X25519-only client (socat 1.7.4\n")
	p("offers P-256 alone) is reported as refusing, with its first error, and not measured again.\n")
	p("Every side names the key exchange and cipher suite negotiated, as in row 3. 6b and 6b' also give\n")
	p("the CPU per handshake of each process in the terminator's path, read as for 6f below. **Their\n")
	p("verdict needs both ratios:** the proxy's handshake rate at least %.1fx native's, and the CPU per\n", hsMinRatio)
	p("handshake of the proxy's path (tlsdock + dockerd + journald) at most native's (dockerd +\n")
	p("journald) ÷ %.1f. On shared CPUs the rate ratio of the same code swings from run to run with\n", hsMinRatio)
	p("the other work on the machine, while the CPU per handshake stays steady: a rate ratio alone does\n")
	p("not pass.\n")
	p("**6a's verdict needs both ratios too:** against each of nginx, nginx with an access log and native,\n")
	p("the proxy's request rate over theirs and their path's CPU per request (row 6f) over the proxy's path's\n")
	p("must each reach the target (1.2, 1.0 and 0.6).\n")
	p("6c: for each rotation the load client opens a new connection for\n")
	p("every `GET /_ping` (4 workers; a worker pauses 20 ms after a failed request, as a retrying client\n")
	p("would, so a refused port is not counted thousands of times), a new server set from the same CA is\n")
	p("renamed into the source, and the load stops one second after a poller sees the new serial. The proxy\n")
	p("picks the set up from its watched source (default debounce); each native host gets\n")
	p("`tlsdock provision --certs` of the changed source (daemon-json mode, docker.socket holding the TCP\n")
	p("listener, so connections queue in the kernel while dockerd restarts), which restarts dockerd. There\n")
	p("are two native hosts, provisioned alike: Debian 12 (dockerd 20.10) and Debian 13 (dockerd 26.1, a\n")
	p("third host booted for this row only). After each native rotation the same host gets a **bare\n")
	p("restart** under the same load, no tlsdock involved: `systemctl reset-failed docker.service`\n")
	p("(untimed), `systemctl restart docker.service`, the load stopped one second after it returned. The\n")
	p("bare restart is what dockerd's own restart costs; the rotation's figure over it is what tlsdock adds.\n")
	p("dockerd 20.10 closes the connections it accepted but has not answered when it exits, so on Debian\n")
	p("12 the bare restart fails requests too and no rotation that restarts dockerd can reach 0 there:\n")
	p("its rotation is shown against its bare restart, and tlsdock adds no failure when the rotation's\n")
	p("figure is within the bare restart's. Newer dockerd (moby PR #45314, in Debian 13's 26.1) drains\n")
	p("those connections before it exits: **the verdict needs 0 from the proxy and from the Debian 13\n")
	p("native rotations**. The figure is the number of failed requests per rotation or restart, next to\n")
	p("the requests that succeeded in the same window; %d\n", r.p.proxyRotations)
	p("rotation(s) each. 6d: VmRSS of the proxy process (through the host's /proc) every 200 ms during the\n")
	p("proxy's load runs; 6e: three readings one second apart after %v without load.\n", r.p.proxyIdle)
	p("6f: for each keep-alive run of 6a, utime + stime of each process in the request's path from /proc/PID/stat\n")
	p("(the hosts' processes through their /proc from this machine) before the run and %s after it, in µs per\n", fmtMS(ms(cpuSettle)))
	p("request counted (%d ticks per second: one tick over a run is 10 ms divided by its requests): tlsdock's\n", clockTicks)
	p("process, dockerd and systemd-journald of the host served, nginx's master and workers, socat's listener with\n")
	p("its forks (live and reaped). The load client's own CPU is not counted. nginx (access log) is a second server\n")
	p("of the same nginx on 127.0.0.1:2379 with `access_log` to a file in the default combined format; the proxy\n")
	p("writes its default audit log (%s, one JSON record per request, batched).\n", auditLogPath)
	if x := r.proxy; x != nil {
		if x.auditErr != "" {
			p("Audit records during the proxy's keep-alive runs: not counted (%s).\n", x.auditErr)
		} else {
			p("Audit records during the proxy's keep-alive runs: %d lines in %s for %d requests the load client counted.\n", x.auditLines, auditLogPath, x.auditRequests)
		}
	}
	if x := r.proxy; x != nil {
		p("Versions: %s; socat %s. Negotiated: ", orDash("nginx "+x.nginx), orDash(x.socat))
		var neg []string
		for _, t := range terminators {
			neg = append(neg, fmt.Sprintf("%s: %s", t, orDash(x.fig(measKeepalive, t).desc)))
		}
		p("%s.\n", strings.Join(neg, "; "))
		p("New serial served after %s (proxy), %s (native, Debian 12) and %s (native, Debian 13) from the first rename.\n",
			x.rotLat[termProxy].format(fmtMS), x.rotLat[termNative].format(fmtMS), x.rotLat[termNativeTrixie].format(fmtMS))
		for _, n := range nativeHosts {
			if v := x.dockerd[n.term]; v != "" {
				p("dockerd of the %s native host: %s.\n", n.suite, v)
			}
		}
		if x.trixieSkipped != "" {
			p("The Debian 13 host was not measured: %s.\n", x.trixieSkipped)
		}
		for _, t := range rotSides {
			if e := x.rotFirstErr[t]; e != "" {
				p("First failure during a rotation, %s: `%s`.\n", t, strings.ReplaceAll(e, "`", "'"))
			}
			if e := x.bareFirstErr[t]; e != "" {
				p("First failure during a bare restart, %s: `%s`.\n", t, strings.ReplaceAll(e, "`", "'"))
			}
		}
	}
	p("\n")
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}
