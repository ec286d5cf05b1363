package agent

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// userHZ is the kernel's USER_HZ, the unit of /proc's clock ticks (100 on
// every Linux architecture Go supports).
const userHZ = 100

// WriteProcessMetrics writes the process_* families that Prometheus's
// process collector exports, with its names and help texts, read from
// proc (/proc on a host) at the time of the scrape:
// process_cpu_seconds_total, process_max_fds, process_open_fds,
// process_resident_memory_bytes, process_start_time_seconds,
// process_virtual_memory_bytes and process_virtual_memory_max_bytes.
func WriteProcessMetrics(w io.Writer, proc string) error {
	st, err := readProcStat(proc + "/self")
	if err != nil {
		return err
	}
	boot, err := bootTimes.get(proc + "/stat")
	if err != nil {
		return err
	}
	fds, err := os.ReadDir(proc + "/self/fd")
	if err != nil {
		return fmt.Errorf("counting open files: %w", err)
	}
	var nofile, as syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &as); err != nil {
		return fmt.Errorf("reading RLIMIT_AS: %w", err)
	}
	families := []struct {
		name, help, typ string
		v               float64
	}{
		{"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", float64(st.utime+st.stime) / userHZ},
		{"process_max_fds", "Maximum number of open file descriptors.", "gauge", float64(nofile.Cur)},
		{"process_open_fds", "Number of open file descriptors.", "gauge", float64(len(fds))},
		{"process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", float64(st.rss * uint64(os.Getpagesize()))},
		{"process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", float64(boot) + float64(st.start)/userHZ},
		{"process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", float64(st.vsize)},
		{"process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", "gauge", float64(as.Cur)},
	}
	b := make([]byte, 0, 1024)
	for _, f := range families {
		b = appendFamilyHeader(b, f.name, f.help, f.typ)
		b = appendSample(b, f.name, "", "", f.v)
	}
	_, err = w.Write(b)
	return err
}

type procStat struct {
	utime, stime, start, vsize, rss uint64
}

// readProcStat reads the fields of procDir/stat that the metrics need.
func readProcStat(procDir string) (procStat, error) {
	raw, err := os.ReadFile(procDir + "/stat")
	if err != nil {
		return procStat{}, fmt.Errorf("reading process status: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields start after its last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("reading %s/stat: no command name in %q", procDir, raw)
	}
	f := bytes.Fields(raw[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15, starttime 22,
	// vsize 23, rss 24 (proc(5)).
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("reading %s/stat: %d fields after the command name, want at least 22", procDir, len(f))
	}
	var st procStat
	for _, x := range []struct {
		p   *uint64
		idx int
	}{{&st.utime, 11}, {&st.stime, 12}, {&st.start, 19}, {&st.vsize, 20}, {&st.rss, 21}} {
		if *x.p, err = strconv.ParseUint(string(f[x.idx]), 10, 64); err != nil {
			return procStat{}, fmt.Errorf("reading %s/stat field %d: %w", procDir, x.idx+3, err)
		}
	}
	return st, nil
}

// bootTimes holds the boot time read from each stat file: it does not
// change while the machine runs, so a scrape reads it once, not every time.
var bootTimes bootTimeCache

type bootTimeCache struct {
	mu sync.Mutex
	by map[string]uint64
}

// get is bootTime(path), read on the first call that succeeds.
func (c *bootTimeCache) get(path string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.by[path]; ok {
		return v, nil
	}
	v, err := bootTime(path)
	if err != nil {
		return 0, err
	}
	if c.by == nil {
		c.by = map[string]uint64{}
	}
	c.by[path] = v
	return v, nil
}

// bootTime is btime of /proc/stat: the boot, in seconds since the epoch.
func bootTime(path string) (uint64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading the boot time: %w", err)
	}
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, fmt.Errorf("reading the boot time: no btime line in %s", path)
}
