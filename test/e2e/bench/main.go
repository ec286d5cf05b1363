// Command bench measures tlsdock against the recipes it replaces, side by
// side in one run, and prints a table (also written to docs/benchmarks.md):
//
//  1. certificate setup: tlsdock's local CA, server and client certificate
//     (ECDSA P-256) against the openssl recipe of Docker's docs (RSA-4096);
//  2. a full provision of a fresh test host against a bare
//     `systemctl restart docker`;
//  3. new-connection cost (fresh mutual-TLS handshakes, /_ping on a new
//     connection, keep-alive requests) against dockerd with tlsdock's
//     defaults and with the recipe's RSA-4096 certificates;
//  4. rotation latency of `tlsdock run` against a bare restart;
//  5. the idle cost of `tlsdock run`;
//  6. proxy mode against native dockerd TLS, socat and nginx as TLS
//     terminators in front of the docker socket, with one ECDSA P-256 set:
//     keep-alive requests, fresh handshakes (with Go's default client and
//     with a client that offers X25519 only), failed requests per rotation
//     under load, and the proxy's RSS.
//
// Every TLS row names the key exchange and cipher suite each side
// negotiated, and the load rows give the CPU per operation of each process
// in the path, read from /proc.
//
// Every figure is the median of repeated runs with min and max, and every
// comparison a ratio of figures measured in the same run. The hosts are
// test hosts (package testhost: Debian 12, systemd, dockerd 20.10 in
// systemd-nspawn; row 6c boots a Debian 13 host, dockerd 26.1, as well,
// and also restarts each native host's dockerd bare under the same load);
// load and probes run in their private network namespaces
// and reach only 127.0.0.1 there. It needs root.
//
//	go run ./test/e2e/bench             # make bench: the full run (about 8 minutes)
//	go run ./test/e2e/bench -quick      # make bench-quick: one iteration of each
//
// Run it from the repository root: it builds ./cmd/tlsdock.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// plan is how much of each measurement to do.
type plan struct {
	quick         bool
	certRuns      int
	provisionRuns int
	loadRuns      int
	loadDur       time.Duration
	loadConc      int
	loadMax       int
	restartRuns   int
	rotationRuns  int
	idleWindow    time.Duration
	idleSlices    int

	proxyRuns      int           // row 6: runs of each load measurement
	proxyDur       time.Duration // row 6: per load measurement
	proxyRotations int           // row 6: rotations under load per terminator
	proxyIdle      time.Duration // row 6: wait before the idle RSS

	only       string // "proxy": row 6 alone
	hostPrefix string // of the test hosts' names
}

var (
	fullPlan = plan{
		certRuns: 5, provisionRuns: 5, loadRuns: 3, loadDur: 5 * time.Second, loadConc: 4, loadMax: 200000,
		restartRuns: 5, rotationRuns: 5, idleWindow: 60 * time.Second, idleSlices: 3,
		proxyRuns: 3, proxyDur: 3 * time.Second, proxyRotations: 3, proxyIdle: 10 * time.Second,
	}
	quickPlan = plan{
		quick: true, certRuns: 1, provisionRuns: 1, loadRuns: 1, loadDur: time.Second, loadConc: 4, loadMax: 200000,
		restartRuns: 1, rotationRuns: 1, idleWindow: 5 * time.Second, idleSlices: 1,
		proxyRuns: 1, proxyDur: time.Second, proxyRotations: 1, proxyIdle: 2 * time.Second,
	}
)

// envInfo describes the machine and the software measured.
type envInfo struct {
	cpu, kernel, goVersion, dockerd, systemd, openssl, tlsdock, date string
	loadStart, loadEnd                                               string
}

type bench struct {
	p       plan
	tmp     string
	self    string // this binary, started again for the workers
	tlsdock string // the tlsdock binary copied into every host
	env     envInfo
	start   time.Time
	verbose bool
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] "+format+"\n", append([]any{time.Since(b.start).Seconds()}, args...)...)
}

func (b *bench) logf(format string, args ...any) {
	if b.verbose {
		b.progress(format, args...)
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		os.Exit(worker(os.Args[2:]))
	}
	quick := flag.Bool("quick", false, "one iteration of everything, 1 s load runs and a 5 s idle window (what CI runs)")
	out := flag.String("out", "docs/benchmarks.md", "write the report (Markdown) to this file as well as to stdout; empty: stdout only")
	verbose := flag.Bool("v", false, "log the test hosts' progress too")
	only := flag.String("only", "", "measure only this section: \"proxy\" (row 6); the other rows say not measured")
	prefix := flag.String("host-prefix", "bench-", "prefix of the test hosts' names (runs side by side use their own)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	p := fullPlan
	if *quick {
		p = quickPlan
	}
	if *only != "" && *only != "proxy" {
		fmt.Fprintf(os.Stderr, "bench: -only %q: the only section that runs alone is \"proxy\"\n", *only)
		os.Exit(2)
	}
	p.only, p.hostPrefix = *only, *prefix
	code, err := run(p, *out, *verbose)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
	os.Exit(code)
}

// run measures everything, prints and writes the report. It returns 1 when
// a measurement failed (the report then says which), 0 otherwise: a missed
// target is a result, not a failure.
func run(p plan, out string, verbose bool) (int, error) {
	if os.Geteuid() != 0 {
		return 2, errors.New("run as root: the test hosts are systemd-nspawn containers")
	}
	if _, err := os.Stat("cmd/tlsdock"); err != nil {
		return 2, errors.New("run from the repository root (it builds ./cmd/tlsdock)")
	}
	b := &bench{p: p, start: time.Now(), verbose: verbose}
	self, err := os.Executable()
	if err != nil {
		return 1, err
	}
	b.self = self
	b.tmp, err = os.MkdirTemp("", "tlsdock-bench-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(b.tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	b.env = machineInfo(ctx)
	b.progress("building tlsdock")
	b.tlsdock = filepath.Join(b.tmp, "tlsdock")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", b.tlsdock, "./cmd/tlsdock")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := build.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("go build ./cmd/tlsdock: %v\n%s", err, o)
	}
	if err := testhost.CleanupStale(); err != nil {
		b.progress("cleaning up earlier test hosts: %v", err)
	}

	rep := &report{env: b.env, p: p}
	failed := false
	fail := func(what string, err error) {
		failed = true
		b.progress("%s failed: %v", what, err)
		rep.errors = append(rep.errors, fmt.Sprintf("%s: %v", what, err))
	}

	if p.only == "proxy" {
		rep.noRun = "not measured: -only proxy"
		rep.errors = append(rep.errors, "rows 1 to 5: not measured (-only proxy)")
	} else {
		b.progress("1. certificate setup")
		certs, err := benchCerts(ctx, b)
		if err != nil {
			fail("certificate setup", err)
		}
		rep.certs = certs

		b.progress("2. provision")
		prov, err := benchProvision(ctx, b)
		if err != nil {
			fail("provision", err)
		}
		rep.prov = prov

		b.progress("3. new-connection cost")
		rsaDir := ""
		if certs != nil {
			rsaDir = certs.rsaDir
		} else if dir, _, err := runOpenSSLRecipe(ctx, b.tmp); err == nil {
			rsaDir = dir
		}
		if rsaDir == "" {
			fail("new-connection cost", errors.New("no RSA-4096 set from the openssl recipe"))
		} else if load, err := benchLoad(ctx, b, rsaDir); err != nil {
			fail("new-connection cost", err)
		} else {
			rep.load = load
		}

		b.progress("4 and 5. rotation and idle cost of tlsdock run")
		rot, err := benchRotate(ctx, b)
		switch {
		case errors.Is(err, errNoRun):
			rep.noRun = "not measured: tlsdock run missing"
			b.progress("%v", err)
		case err != nil:
			fail("rotation and idle", err)
		}
		rep.rot = rot
	}

	b.progress("6. proxy mode against native TLS, socat and nginx")
	px, err := benchProxy(ctx, b)
	if err != nil {
		fail("proxy mode", err)
	}
	rep.proxy = px

	b.env.loadEnd = loadAvg()
	rep.env = b.env // dockerd and systemd come from the first host
	md := rep.markdown()
	fmt.Print(md)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return 1, err
		}
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			return 1, err
		}
		b.progress("wrote %s", out)
	}
	b.progress("done in %v", time.Since(b.start).Round(time.Second))
	if failed {
		return 1, errors.New("some measurements failed; see the report")
	}
	return 0, nil
}

// machineInfo describes this machine; dockerd and systemd are filled in
// from the first test host.
func machineInfo(ctx context.Context) envInfo {
	e := envInfo{goVersion: runtime.Version(), date: time.Now().UTC().Format("2006-01-02 15:04 MST")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	e.cpu = fmt.Sprintf("%s, %d logical CPUs", e.cpu, runtime.NumCPU())
	e.loadStart = loadAvg()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.kernel = strings.TrimSpace(string(b))
	}
	if o, err := exec.CommandContext(ctx, "openssl", "version").Output(); err == nil {
		e.openssl = strings.TrimSpace(string(o))
	}
	if o, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		e.tlsdock = strings.TrimSpace(string(o))
	}
	return e
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], ", ")
}
