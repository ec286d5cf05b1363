package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// loadTarget is one provisioned host and the client bundle (on this
// machine) that the load worker uses against it.
type loadTarget struct {
	name string
	h    *testhost.Host
	dir  string // ca.pem, cert.pem, key.pem
	addr string // in h's network namespace; empty: 127.0.0.1:2376
	// curves restricts the client's key exchanges (the worker's -curves);
	// empty: Go's defaults.
	curves string
}

// runLoad runs the load worker in t's network namespace. The result comes
// with checkLoad's error.
func (b *bench) runLoad(ctx context.Context, t loadTarget, mode string, d time.Duration) (*loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	addr := t.addr
	if addr == "" {
		addr = "127.0.0.1:2376"
	}
	args := []string{b.self, "worker", "load", "-mode", mode,
		"-addr", addr,
		"-ca", filepath.Join(t.dir, "ca.pem"), "-cert", filepath.Join(t.dir, "cert.pem"), "-key", filepath.Join(t.dir, "key.pem"),
		"-c", strconv.Itoa(b.p.loadConc), "-d", d.String(), "-n", strconv.Itoa(b.p.loadMax)}
	if t.curves != "" {
		args = append(args, "-curves", t.curves)
	}
	out, _, err := t.h.ExecNet(ctx, nil, nil, args...)
	if err != nil {
		return nil, err
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("load worker printed %q: %w", out, err)
	}
	return &r, checkLoad(&r, t.name, mode)
}

// refusedError is a load run in which every operation failed: the server
// refuses this client, as socat 1.7.4 (P-256 only) refuses a client that
// offers X25519 alone.
type refusedError struct {
	target, mode, first string
	errors              int64
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("load worker against %s (%s): all %d operations failed, first: %s", e.target, e.mode, e.errors, e.first)
}

// checkLoad accepts a load run in which every operation succeeded. One in
// which every operation failed is a *refusedError.
func checkLoad(r *loadResult, target, mode string) error {
	switch {
	case r.Count == 0 && r.Errors > 0:
		return &refusedError{target: target, mode: mode, first: r.FirstErr, errors: r.Errors}
	case r.Errors > 0:
		return fmt.Errorf("load worker against %s (%s): %d errors, first: %s", target, mode, r.Errors, r.FirstErr)
	case r.Count == 0:
		return fmt.Errorf("load worker against %s (%s): no operation completed", target, mode)
	}
	return nil
}

// loadFigures are one host's samples of row 3.
type loadFigures struct {
	ops                    map[string]*opFigures // by load mode
	newconnP50, newconnP99 sample
}

type loadResults struct {
	ecdsa, rsa loadFigures
}

var loadModes = []string{"handshake", "newconn", "keepalive"}

// loadProcs are the processes in the path of row 3's connections whose
// CPU is counted per operation.
var loadProcs = []string{procDockerd, procJournald}

// hostCPU is dockerd's and systemd-journald's CPU time on h.
func hostCPU(ctx context.Context, h *testhost.Host) ([]cpuProc, error) {
	var procs []cpuProc
	for _, u := range []struct{ name, unit string }{{procDockerd, "docker.service"}, {procJournald, "systemd-journald.service"}} {
		pid, err := mainPID(ctx, h, u.unit)
		if err != nil {
			return nil, err
		}
		procs = append(procs, cpuProc{u.name, procTicks(guestFile(h, "/proc"), pid)})
	}
	return procs, nil
}

// mainPID is the main PID of unit in h.
func mainPID(ctx context.Context, h *testhost.Host, unit string) (string, error) {
	out, _, err := h.Exec(ctx, nil, "systemctl", "show", "-p", "MainPID", "--value", unit)
	pid := strings.TrimSpace(string(out))
	if err == nil && (pid == "" || pid == "0") {
		err = fmt.Errorf("%s has no main PID", unit)
	}
	return pid, err
}

// cpuSettle is the wait after a load run before the CPU is read again:
// socat's forks exit and are reaped once their connections close, and the
// proxy's audit log flushes within 100 ms.
const cpuSettle = 300 * time.Millisecond

// measuredRun runs the load worker against t with the CPU of procs read
// before the run and cpuSettle after it, and returns the result and each
// process's µs per operation.
func (b *bench) measuredRun(ctx context.Context, t loadTarget, mode string, d time.Duration, procs []cpuProc) (*loadResult, map[string]float64, error) {
	before, err := readCPU(procs)
	if err != nil {
		return nil, nil, err
	}
	res, err := b.runLoad(ctx, t, mode, d)
	if err != nil {
		return res, nil, err
	}
	time.Sleep(cpuSettle)
	after, err := readCPU(procs)
	if err != nil {
		return nil, nil, err
	}
	return res, usPerRequest(before, after, res.Count), nil
}

// benchLoad provisions two hosts, one with tlsdock's defaults and one with
// the openssl recipe's RSA-4096 set, and measures them in alternation.
func benchLoad(ctx context.Context, b *bench, rsaDir string) (*loadResults, error) {
	b.progress("new-connection cost: booting two hosts")
	ecdsaHost, err := b.bootHost(ctx, "ecdsa")
	if err != nil {
		return nil, err
	}
	defer b.closeHost(ecdsaHost)
	rsaHost, err := b.bootHost(ctx, "rsa")
	if err != nil {
		return nil, err
	}
	defer b.closeHost(rsaHost)

	if _, _, err := provision(ctx, ecdsaHost, "--generate", "--client-out", "/root/client"); err != nil {
		return nil, err
	}
	ecdsa := loadTarget{name: "tlsdock defaults (ECDSA P-256)", h: ecdsaHost, dir: filepath.Join(b.tmp, "client-ecdsa")}
	if err := fetch(ecdsaHost, "/root/client", ecdsa.dir, "ca.pem", "cert.pem", "key.pem"); err != nil {
		return nil, err
	}

	for _, f := range []struct{ from, to string }{
		{"ca.pem", "/root/certs/ca.pem"}, {"server-cert.pem", "/root/certs/server-cert.pem"}, {"server-key.pem", "/root/certs/server-key.pem"},
		{"cert.pem", "/root/client/cert.pem"}, {"key.pem", "/root/client/key.pem"},
	} {
		if err := rsaHost.CopyIn(filepath.Join(rsaDir, f.from), f.to, 0o600); err != nil {
			return nil, err
		}
	}
	if _, _, err := provision(ctx, rsaHost, "--certs", "/root/certs", "--probe-client", "/root/client"); err != nil {
		return nil, err
	}
	rsa := loadTarget{name: "openssl recipe (RSA-4096)", h: rsaHost, dir: rsaDir}
	procs := map[*testhost.Host][]cpuProc{}
	for _, h := range []*testhost.Host{ecdsaHost, rsaHost} {
		if procs[h], err = hostCPU(ctx, h); err != nil {
			return nil, err
		}
	}

	// Warm up both (first connections, lazy initialisation): not counted.
	for _, t := range []loadTarget{ecdsa, rsa} {
		for _, m := range loadModes {
			if _, err := b.runLoad(ctx, t, m, 300*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}

	r := &loadResults{}
	for _, fig := range []*loadFigures{&r.ecdsa, &r.rsa} {
		fig.ops = map[string]*opFigures{}
		for _, m := range loadModes {
			fig.ops[m] = newOpFigures(loadProcs)
		}
	}
	for i := range b.p.loadRuns {
		for _, m := range loadModes {
			// Alternate which host goes first.
			order := []loadTarget{ecdsa, rsa}
			if i%2 == 1 {
				order = []loadTarget{rsa, ecdsa}
			}
			for _, t := range order {
				b.progress("new-connection cost %d/%d: %s against %s", i+1, b.p.loadRuns, m, t.name)
				res, cpu, err := b.measuredRun(ctx, t, m, b.p.loadDur, procs[t.h])
				if err != nil {
					return nil, err
				}
				fig := &r.ecdsa
				if t.h == rsaHost {
					fig = &r.rsa
				}
				fig.ops[m].add(res, cpu)
				if m == "newconn" {
					fig.newconnP50 = append(fig.newconnP50, ms(res.P50))
					fig.newconnP99 = append(fig.newconnP99, ms(res.P99))
				}
			}
		}
	}
	return r, nil
}
