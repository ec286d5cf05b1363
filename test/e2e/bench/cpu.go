package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
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
