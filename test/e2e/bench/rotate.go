package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// runUnit is the transient unit `tlsdock run` runs in on the rotation host.
const runUnit = "tlsdock-bench-run.service"

// errNoRun marks a tlsdock without the run command.
var errNoRun = errors.New("tlsdock run missing")

// rotateResults are the samples of rows 4 and 5.
type rotateResults struct {
	restart  sample // bare restarts of the provisioned (TLS) dockerd, ms
	rotation sample // new set renamed into the source → new serial served, ms
	downtime sample // no certificate served during the rotation, ms
	// Phases of each rotation from docker.service's journal, ms: first
	// rename → Stopping, Stopping → Started, Started → new serial seen.
	toStop, inner, toSeen sample
	debounce              time.Duration

	rssStart float64   // VmRSS one second after tlsdock run was ready, MiB
	rssAfter []float64 // VmRSS after each rotation, MiB

	idleWindow time.Duration
	rssMiB     sample  // VmRSS, sampled every second
	cpuPct     sample  // per slice
	cpuTotal   float64 // over the whole window, %
	cpuTicks   int64   // utime+stime ticks over the whole window
	wakeups    sample  // context switches per second, per slice
	wakeTotal  float64 // per second over the whole window
	threads    int
}

// benchRotate provisions a host from a source directory, times bare
// restarts of its TLS dockerd, then starts `tlsdock run` on it, times
// rotations and finally watches the idle daemon.
func benchRotate(ctx context.Context, b *bench) (*rotateResults, error) {
	b.progress("rotation: booting a host")
	h, err := b.bootHost(ctx, "rotate")
	if err != nil {
		return nil, err
	}
	defer b.closeHost(h)

	if _, _, err := h.Exec(ctx, nil, "tlsdock", "run", "--help"); err != nil {
		return nil, fmt.Errorf("%w (%v)", errNoRun, err)
	}

	bs, err := newBenchSet()
	if err != nil {
		return nil, err
	}
	ca, cert, key, clientCert, clientKey := bs.ca, bs.cert, bs.key, bs.clientCert, bs.clientKey
	for _, f := range []struct {
		path string
		data []byte
	}{
		{"/etc/tlsdock/certs/ca.pem", ca.CertPEM}, {"/etc/tlsdock/certs/server-cert.pem", cert}, {"/etc/tlsdock/certs/server-key.pem", key},
		{"/root/client/cert.pem", clientCert}, {"/root/client/key.pem", clientKey},
	} {
		if err := h.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	local := filepath.Join(b.tmp, "client-rotate")
	if err := fetch(h, "/root/client", local, "cert.pem", "key.pem"); err != nil {
		return nil, err
	}
	if _, _, err := provision(ctx, h, "--certs", "/etc/tlsdock/certs", "--probe-client", "/root/client"); err != nil {
		return nil, err
	}

	r := &rotateResults{debounce: agent.DefaultDebounce}
	for i := range b.p.restartRuns {
		d, err := timedRestart(ctx, h)
		if err != nil {
			return nil, err
		}
		b.progress("rotation: bare restart %d/%d of the TLS dockerd: %s", i+1, b.p.restartRuns, fmtMS(ms(d)))
		r.restart = append(r.restart, ms(d))
	}

	// tlsdock run as a Type=notify service: systemd-run returns once it
	// sent READY=1 (after its start-up reconcile).
	if _, _, err := h.Exec(ctx, nil, "systemd-run", "--unit", runUnit, "-p", "Type=notify",
		"tlsdock", "run", "--certs", "/etc/tlsdock/certs", "--probe-client", "/root/client",
		"--debounce", r.debounce.String()); err != nil {
		return nil, fmt.Errorf("starting tlsdock run: %w\n%s", err, h.Journal(ctx, runUnit, 30))
	}
	time.Sleep(time.Second)
	out, _, err := h.Exec(ctx, nil, "systemctl", "show", "-p", "MainPID", "--value", runUnit)
	if err != nil {
		return nil, err
	}
	pid := strings.TrimSpace(string(out))
	if pid == "" || pid == "0" {
		return nil, fmt.Errorf("%s has no main PID:\n%s", runUnit, h.Journal(ctx, runUnit, 30))
	}
	if s, err := readProc(h, pid); err == nil {
		r.rssStart = float64(s.rssKiB) / 1024
	}

	var lastSeen time.Time
	for i := range b.p.rotationRuns {
		if !lastSeen.IsZero() {
			// Rotations are at least --min-restart-interval apart; measure
			// one that is not held back by it.
			wait := time.Until(lastSeen.Add(agent.DefaultMinRestartInterval + 3*time.Second))
			b.progress("rotation %d/%d: waiting %v for the minimum restart interval", i+1, b.p.rotationRuns, wait.Round(time.Second))
			time.Sleep(wait)
		}
		serial, cert, key, err := issueServer(ca, "server")
		if err != nil {
			return nil, err
		}
		lat, down, seen, err := b.rotateOnce(ctx, h, local, ca.CertPEM, cert, key, serial, i)
		if err != nil {
			return nil, fmt.Errorf("%w\ntlsdock run:\n%s", err, h.Journal(ctx, runUnit, 40))
		}
		lastSeen = seen
		if ev := unitEvents(ctx, h, seen.Add(-lat), seen); !ev["Stopping"].IsZero() && !ev["Started"].IsZero() {
			r.toStop = append(r.toStop, ms(ev["Stopping"].Sub(seen.Add(-lat))))
			r.inner = append(r.inner, ms(ev["Started"].Sub(ev["Stopping"])))
			r.toSeen = append(r.toSeen, ms(seen.Sub(ev["Started"])))
		}
		b.progress("rotation %d/%d: new serial served after %s", i+1, b.p.rotationRuns, fmtMS(ms(lat)))
		r.rotation = append(r.rotation, ms(lat))
		r.downtime = append(r.downtime, ms(down))
		time.Sleep(time.Second) // past the verification and commit
		if s, err := readProc(h, pid); err == nil {
			r.rssAfter = append(r.rssAfter, float64(s.rssKiB)/1024)
		}
	}

	// Idle: let the last rotation settle, then watch the process.
	time.Sleep(2 * time.Second)
	if err := b.idle(ctx, h, pid, r); err != nil {
		return nil, err
	}
	if b.verbose {
		b.progress("tlsdock run's journal:\n%s", h.Journal(ctx, runUnit, 200))
	}
	return r, nil
}

// issueServer issues an ECDSA P-256 server certificate for localhost and
// 127.0.0.1 from ca ("client" issues a client certificate instead) and
// returns its serial in hex.
// benchSet is one local CA with a server and a client certificate.
type benchSet struct {
	ca                               *certstore.CA
	cert, key, clientCert, clientKey []byte
}

// newBenchSet issues a CA, a server certificate and a client certificate,
// all ECDSA P-256.
func newBenchSet() (*benchSet, error) {
	ca, err := certstore.NewCA(certstore.ECDSAP256, time.Now(), nil)
	if err != nil {
		return nil, err
	}
	bs := &benchSet{ca: ca}
	if _, bs.clientCert, bs.clientKey, err = issueServer(ca, "client"); err != nil {
		return nil, err
	}
	if _, bs.cert, bs.key, err = issueServer(ca, "server"); err != nil {
		return nil, err
	}
	return bs, nil
}

func issueServer(ca *certstore.CA, kind string) (serial string, certPEM, keyPEM []byte, err error) {
	req := certstore.IssueRequest{
		CommonName: "dockerhost", DNSNames: []string{"dockerhost", "localhost"}, IPs: loopbackIPs,
		KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: agent.ServerValidity, Server: true,
	}
	if kind == "client" {
		req = certstore.IssueRequest{CommonName: "bench-client", KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: agent.ClientValidity}
	}
	certPEM, keyPEM, err = ca.Issue(req, nil)
	if err != nil {
		return "", nil, nil, err
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return "", nil, nil, errors.New("issued certificate is not PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", nil, nil, err
	}
	return c.SerialNumber.Text(16), certPEM, keyPEM, nil
}

// rotateOnce writes a new set into a directory next to the source, starts
// the serial poller, renames the three files into the source one after
// the other (as Vault Agent or consul-template do) and returns the time
// from the first rename until the new serial is served, and how long no
// certificate was served in between.
func (b *bench) rotateOnce(ctx context.Context, h *testhost.Host, client string, caPEM, cert, key []byte, serial string, i int) (lat, down time.Duration, seen time.Time, err error) {
	incoming := fmt.Sprintf("/root/incoming-%d", i)
	files := []struct {
		name string
		data []byte
	}{{"ca.pem", caPEM}, {"server-key.pem", key}, {"server-cert.pem", cert}}
	for _, f := range files {
		if err := h.WriteFile(incoming+"/"+f.name, f.data, 0o600); err != nil {
			return 0, 0, time.Time{}, err
		}
	}

	type polled struct {
		r   serialResult
		err error
	}
	done := make(chan polled, 1)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	go func() {
		out, _, err := h.ExecNet(pctx, nil, nil, b.self, "worker", "serial", "-addr", "127.0.0.1:2376",
			"-want", serial, "-cert", filepath.Join(client, "cert.pem"), "-key", filepath.Join(client, "key.pem"),
			"-timeout", "2m")
		var p polled
		if jerr := json.Unmarshal(out, &p.r); jerr != nil && err == nil {
			err = fmt.Errorf("serial worker printed %q: %w", out, jerr)
		}
		p.err = err
		done <- p
	}()
	time.Sleep(500 * time.Millisecond) // the poller sees the old serial first

	start := time.Now()
	for _, f := range files {
		if err := os.Rename(guestFile(h, incoming+"/"+f.name), guestFile(h, "/etc/tlsdock/certs/"+f.name)); err != nil {
			return 0, 0, time.Time{}, err
		}
	}
	p := <-done
	if p.err != nil {
		return 0, 0, time.Time{}, p.err
	}
	if p.r.OldCount == 0 {
		return 0, 0, time.Time{}, fmt.Errorf("the poller never saw the old serial before the new one")
	}
	_ = os.Remove(guestFile(h, incoming))
	seen = time.Unix(0, p.r.SeenNS)
	if p.r.Fails > 0 {
		down = seen.Sub(time.Unix(0, p.r.LastOldNS))
	}
	return seen.Sub(start), down, seen, nil
}

// procSample is one reading of a process's /proc files.
type procSample struct {
	at       time.Time
	rssKiB   int64
	ticks    int64 // utime + stime
	switches int64 // voluntary + nonvoluntary, summed over threads
	threads  int
}

// readProc reads guest pid's status, stat and per-thread status through
// the guest's /proc, from this machine (no process is started inside).
func readProc(h *testhost.Host, pid string) (procSample, error) {
	s := procSample{at: time.Now()}
	base := guestFile(h, "/proc/"+pid)
	status, err := os.ReadFile(base + "/status")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	stat, err := os.ReadFile(base + "/stat")
	if err != nil {
		return s, err
	}
	st := string(stat)
	f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("short /proc/%s/stat: %q", pid, st)
	}
	// Fields after ")": state(0) ppid ... utime is field 14 of the line,
	// index 11 here; stime index 12.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	s.ticks = ut + stt
	tasks, err := os.ReadDir(base + "/task")
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(base + "/task/" + t.Name() + "/status")
		if err != nil {
			continue // the thread exited
		}
		s.threads++
		for _, line := range strings.Split(string(b), "\n") {
			for _, k := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
				if v, ok := strings.CutPrefix(line, k); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					s.switches += n
				}
			}
		}
	}
	return s, nil
}

// clockTicks is USER_HZ, the unit of utime and stime (getconf CLK_TCK is
// 100 on every Linux architecture Go supports here).
const clockTicks = 100

// idle watches the daemon for the idle window, split into slices.
func (b *bench) idle(ctx context.Context, h *testhost.Host, pid string, r *rotateResults) error {
	r.idleWindow = b.p.idleWindow
	slice := b.p.idleWindow / time.Duration(b.p.idleSlices)
	b.progress("idle: watching tlsdock run (pid %s inside) for %v", pid, b.p.idleWindow)
	first, err := readProc(h, pid)
	if err != nil {
		return err
	}
	prev := first
	last := first
	r.rssMiB = append(r.rssMiB, float64(first.rssKiB)/1024)
	for range b.p.idleSlices {
		end := prev.at.Add(slice)
		for time.Now().Before(end) {
			time.Sleep(min(time.Second, time.Until(end)))
			s, err := readProc(h, pid)
			if err != nil {
				return err
			}
			r.rssMiB = append(r.rssMiB, float64(s.rssKiB)/1024)
			last = s
		}
		el := last.at.Sub(prev.at).Seconds()
		r.cpuPct = append(r.cpuPct, float64(last.ticks-prev.ticks)/clockTicks/el*100)
		r.wakeups = append(r.wakeups, float64(last.switches-prev.switches)/el)
		prev = last
	}
	el := last.at.Sub(first.at).Seconds()
	r.cpuTicks = last.ticks - first.ticks
	r.cpuTotal = float64(r.cpuTicks) / clockTicks / el * 100
	r.wakeTotal = float64(last.switches-first.switches) / el
	r.threads = last.threads
	return nil
}
