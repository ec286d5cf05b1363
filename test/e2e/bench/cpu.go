package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Processes in the path of row 6's requests whose CPU is counted per
// request.
const (
	procTlsdock  = "tlsdock"
	procDockerd  = "dockerd"
	procJournald = "journald"
	procNginx    = "nginx"
	procSocat    = "socat"
)

// cpuProc is one process (or process group) whose CPU time is read before
// and after a load run.
type cpuProc struct {
	name  string
	ticks func() (int64, error) // utime + stime so far, in clockTicks
}

// statTicks reads utime+stime and cutime+cstime (children already
// reaped) of the /proc/PID/stat at path.
func statTicks(path string) (own, children, ppid int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	st := string(b)
	f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("short %s: %q", path, st)
	}
	// After ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	return n(11) + n(12), n(13) + n(14), n(1), nil
}

// procTicks counts one process of a guest (root is the guest's /proc, as
// seen from this machine) or of this machine (root "/proc").
func procTicks(root, pid string) func() (int64, error) {
	return func() (int64, error) {
		own, _, _, err := statTicks(filepath.Join(root, pid, "stat"))
		return own, err
	}
}

// treeTicks counts a process of this machine and its live children, plus
// the children it already reaped: nginx's workers, socat's forks (one per
// connection, reaped when it closes).
func treeTicks(pidFile string) func() (int64, error) {
	return func() (int64, error) {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return 0, err
		}
		pid := strings.TrimSpace(string(b))
		own, reaped, _, err := statTicks("/proc/" + pid + "/stat")
		if err != nil {
			return 0, err
		}
		total := own + reaped
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return 0, err
		}
		want, _ := strconv.ParseInt(pid, 10, 64)
		for _, e := range ents {
			if e.Name()[0] < '0' || e.Name()[0] > '9' {
				continue
			}
			c, _, ppid, err := statTicks("/proc/" + e.Name() + "/stat")
			if err == nil && ppid == want {
				total += c
			}
		}
		return total, nil
	}
}

// cpuReading is every process's ticks at one moment.
type cpuReading map[string]int64

func readCPU(procs []cpuProc) (cpuReading, error) {
	r := cpuReading{}
	for _, p := range procs {
		t, err := p.ticks()
		if err != nil {
			return nil, fmt.Errorf("CPU time of %s: %w", p.name, err)
		}
		r[p.name] = t
	}
	return r, nil
}

// usPerRequest is each process's CPU between two readings in µs per
// request.
func usPerRequest(before, after cpuReading, requests int64) map[string]float64 {
	out := map[string]float64{}
	for n, a := range after {
		out[n] = float64(a-before[n]) * 1e6 / clockTicks / float64(max(requests, 1))
	}
	return out
}

// countLines counts the newlines of a file (the audit log's records).
func countLines(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return int64(bytes.Count(b, []byte{'\n'})), nil
}

// opFigures are one side's samples of one kind of load run: the rate, the
// CPU per operation of each process in its path, and what its connections
// negotiated.
type opFigures struct {
	rate  sample
	procs []string          // the processes in the path, in the order shown
	cpu   map[string]sample // µs of utime + stime per operation, by process
	neg   []string          // "key exchange, cipher suite": each distinct one seen
	desc  string            // describeTLS of one connection
	// refused is the client's first error when the server refused every
	// connection of a run (a key exchange it does not offer).
	refused string
}

func newOpFigures(procs []string) *opFigures {
	return &opFigures{procs: procs, cpu: map[string]sample{}}
}

// add records one run: its result and each process's µs per operation
// (nil when CPU was not read).
func (f *opFigures) add(res *loadResult, cpu map[string]float64) {
	f.rate = append(f.rate, res.rate())
	for p, us := range cpu {
		f.cpu[p] = append(f.cpu[p], us)
	}
	f.addNeg(res)
}

// addNeg records what res's connections negotiated.
func (f *opFigures) addNeg(res *loadResult) {
	if n := negotiated(res); n != "" && !slices.Contains(f.neg, n) {
		f.neg = append(f.neg, n)
	}
	if f.desc == "" {
		f.desc = res.TLS
	}
}

// negotiated is "key exchange, cipher suite" of a load run; empty without
// a handshake.
func negotiated(r *loadResult) string {
	if r.KeyExchange == "" && r.Cipher == "" {
		return ""
	}
	return orDash(r.KeyExchange) + ", " + orDash(r.Cipher)
}

// negText is every distinct key exchange and cipher suite seen.
func negText(neg []string) string {
	if len(neg) == 0 {
		return "negotiated: —"
	}
	return strings.Join(neg, " / ")
}

// cpuTotal is the median over runs of the summed µs per operation of the
// processes in the path; NaN without a reading.
func (f *opFigures) cpuTotal() float64 {
	var runs sample
	for i := range f.cpu[f.procs[0]] {
		var sum float64
		for _, p := range f.procs {
			if s := f.cpu[p]; i < len(s) {
				sum += s[i]
			}
		}
		runs = append(runs, sum)
	}
	return runs.median()
}

// cpuSum is each process's median µs per operation and the total, as
// "tlsdock 96.2 + dockerd 82.7 + journald 0.0 = 178.8 µs".
func (f *opFigures) cpuSum() string {
	if len(f.cpu[f.procs[0]]) == 0 {
		return "—"
	}
	var parts []string
	for _, p := range f.procs {
		parts = append(parts, fmt.Sprintf("%s %.1f", p, f.cpu[p].median()))
	}
	return fmt.Sprintf("%s = %.1f µs", strings.Join(parts, " + "), f.cpuTotal())
}

// side is one side's figure in a table cell: figure, then in parentheses
// the notes, the key exchange and cipher suite negotiated and, when per is
// not empty, the CPU per operation ("handshake", "request") of each
// process in the path.
func (f *opFigures) side(figure, per string, notes ...string) string {
	parts := append(slices.Clone(notes), negText(f.neg))
	if per != "" {
		parts = append(parts, "CPU per "+per+": "+f.cpuSum())
	}
	return figure + " (" + strings.Join(parts, "; ") + ")"
}
