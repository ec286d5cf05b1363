package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// The TLS terminators of row 6, all in front of a dockerd's unix socket
// and all with the same ECDSA P-256 set.
const (
	termProxy  = "tlsdock proxy"
	termNative = "native dockerd TLS"
	termNginx  = "nginx"
	// termNginxLog is the same nginx server with an access log (the
	// default combined format, one write per request).
	termNginxLog = "nginx (access log)"
	termSocat    = "socat"
)

var terminators = []string{termProxy, termNative, termNginx, termNginxLog, termSocat}

// termNativeTrixie is row 6c's second native host: Debian 13, whose
// dockerd (26.1) drains the connections it accepted before it exits.
const termNativeTrixie = "native dockerd TLS (trixie)"

// rotSides are the hosts rotated under load in row 6c; the native ones
// also get a bare `systemctl restart docker.service` under the same load.
var rotSides = []string{termProxy, termNative, termNativeTrixie}

// auditLogPath is the proxy's audit log on its host (the default).
const auditLogPath = "/var/log/tlsdock/audit.jsonl"

// The load runs of row 6, each against several terminators.
const (
	measKeepalive = "keepalive"        // 6a and 6f
	measHandshake = "handshake"        // 6b: the default client, X25519MLKEM768 first
	measX25519    = "handshake X25519" // 6b': the client offers X25519 alone
)

// proxyMeasure is one kind of load run of row 6.
type proxyMeasure struct {
	key    string // of proxyResults.runs
	mode   string // the load worker's -mode
	curves string // the load worker's -curves
	terms  []string
	// refusable: a terminator may refuse every connection of this client;
	// the row then says so.
	refusable bool
}

var proxyMeasures = []proxyMeasure{
	{key: measKeepalive, mode: "keepalive", terms: terminators},
	{key: measHandshake, mode: "handshake", terms: []string{termProxy, termNative, termNginx, termSocat}},
	{key: measX25519, mode: "handshake", curves: "X25519", terms: []string{termProxy, termNative, termNginx, termSocat}, refusable: true},
}

// proxyResults are the samples of row 6.
type proxyResults struct {
	// runs are each measurement's figures by terminator: requests or
	// handshakes per second, CPU per operation, what was negotiated.
	runs             map[string]map[string]*opFigures
	rotFailed, rotOK map[string]sample // failed and good requests per rotation (rotSides)
	rotNeg           map[string][]string
	rotLat           map[string]sample // ms from the change to the new serial served
	rotFirstErr      map[string]string
	// bareFailed and bareOK are the failed and good requests under the same
	// load during a bare `systemctl restart docker.service` of each native
	// host (termNative, termNativeTrixie), no tlsdock involved.
	bareFailed, bareOK map[string]sample
	bareNeg            map[string][]string
	bareFirstErr       map[string]string
	// dockerd is `dockerd --version` of each native host.
	dockerd map[string]string
	// trixieSkipped says why the trixie host was not measured.
	trixieSkipped    string
	rssLoad, rssIdle sample // the proxy's VmRSS in MiB
	idleAfter        time.Duration
	nginx, socat     string // versions
	// auditLines and auditRequests are the proxy's audit records written
	// during its keep-alive runs and the requests the load client counted.
	auditLines, auditRequests int64
	auditErr                  string
}

// fig is measurement key's figures against terminator t (empty ones when
// it was not measured).
func (x *proxyResults) fig(key, t string) *opFigures {
	f := x.runs[key][t]
	if f == nil {
		f = newOpFigures(cpuPaths[t])
		if x.runs[key] == nil {
			x.runs[key] = map[string]*opFigures{}
		}
		x.runs[key][t] = f
	}
	return f
}

// proxyConf is the nginx recipe: an http {} TLS terminator with client
// certificates required, proxying to dockerd's socket over kept-alive
// upstream connections. %[1]s is the work directory, %[2]s the socket,
// %[3]s the certificate directory.
const nginxConf = `user root;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	upstream dockerd {
		server unix:%[2]s;
		keepalive 16;
	}
	server {
		listen 127.0.0.1:2378 ssl;
		ssl_certificate %[3]s/server-cert.pem;
		ssl_certificate_key %[3]s/server-key.pem;
		ssl_client_certificate %[3]s/ca.pem;
		ssl_verify_client on;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_session_cache off;
		ssl_session_tickets off;
		location / {
			proxy_pass http://dockerd;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
	server {
		listen 127.0.0.1:2379 ssl;
		access_log %[1]s/access.log;
		ssl_certificate %[3]s/server-cert.pem;
		ssl_certificate_key %[3]s/server-key.pem;
		ssl_client_certificate %[3]s/ca.pem;
		ssl_verify_client on;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_session_cache off;
		ssl_session_tickets off;
		location / {
			proxy_pass http://dockerd;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
}
`

// bgProc is a process of this machine running in a host's network
// namespace, stopped by the PID in its pid file.
type bgProc struct {
	name    string
	pidFile string
	cancel  context.CancelFunc
	done    chan error
	stderr  []byte
}

func startBG(ctx context.Context, h *testhost.Host, name, pidFile string, args ...string) *bgProc {
	ctx, cancel := context.WithCancel(ctx)
	p := &bgProc{name: name, pidFile: pidFile, cancel: cancel, done: make(chan error, 1)}
	go func() {
		_, errb, err := h.ExecNet(ctx, nil, nil, args...)
		p.stderr = errb
		p.done <- err
	}()
	return p
}

// stop sends SIGTERM to the PID in the pid file and waits up to 5 s before
// killing what ExecNet started.
func (p *bgProc) stop() {
	if b, err := os.ReadFile(p.pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	select {
	case <-p.done: //nolint:errcheck // the exit status of the proxy killed above does not matter
	case <-time.After(5 * time.Second):
	}
	p.cancel()
}

func (p *bgProc) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		if err == nil {
			err = errors.New("exited")
		}
		return fmt.Errorf("%s: %w", p.name, err)
	default:
		return nil
	}
}

// provisionChecked runs `tlsdock provision --json ARGS` in h and checks
// that every verification passed.
func provisionChecked(ctx context.Context, h *testhost.Host, args ...string) error {
	out, errb, err := h.Exec(ctx, nil, append([]string{"tlsdock", "provision", "--json"}, args...)...)
	if err != nil {
		return fmt.Errorf("tlsdock provision %s: %w\n%s\n%s", strings.Join(args, " "), err, out, errb)
	}
	var r provisionResult
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("tlsdock provision --json printed %q: %w", out, err)
	}
	for _, c := range r.Checks {
		if !c.OK {
			return fmt.Errorf("tlsdock provision %s: check %q failed: %s", strings.Join(args, " "), c.Name, c.Detail)
		}
	}
	return nil
}

// benchProxy boots a native host (dockerd serving TLS, daemon-json mode)
// and a proxy host (tlsdock.service in front of the socket), runs socat and
// nginx from this machine in the proxy host's network namespace in front
// of the same socket, and measures all four with one certificate set.
func benchProxy(ctx context.Context, b *bench) (*proxyResults, error) {
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx not installed (test/e2e/setup-host.sh installs it): %w", err)
	}
	socatBin, err := exec.LookPath("socat")
	if err != nil {
		return nil, fmt.Errorf("socat not installed (test/e2e/setup-host.sh installs it): %w", err)
	}
	r := &proxyResults{
		runs:      map[string]map[string]*opFigures{},
		rotFailed: map[string]sample{}, rotOK: map[string]sample{}, rotNeg: map[string][]string{}, rotLat: map[string]sample{}, rotFirstErr: map[string]string{},
		bareFailed: map[string]sample{}, bareOK: map[string]sample{}, bareNeg: map[string][]string{}, bareFirstErr: map[string]string{},
		dockerd: map[string]string{},
	}
	if o, err := exec.CommandContext(ctx, nginxBin, "-v").CombinedOutput(); err == nil {
		r.nginx = strings.TrimSpace(strings.TrimPrefix(string(o), "nginx version: "))
	}
	if o, err := exec.CommandContext(ctx, socatBin, "-V").Output(); err == nil {
		for _, l := range strings.Split(string(o), "\n") {
			if v, ok := strings.CutPrefix(l, "socat version "); ok {
				r.socat, _, _ = strings.Cut(v, " on ")
				break
			}
		}
	}

	// One set for everything: CA, server and client, ECDSA P-256.
	bs, err := newBenchSet()
	if err != nil {
		return nil, err
	}
	ca, cert, key, clientCert, clientKey := bs.ca, bs.cert, bs.key, bs.clientCert, bs.clientKey
	local := filepath.Join(b.tmp, "proxy-set")
	if err := os.MkdirAll(local, 0o700); err != nil {
		return nil, err
	}
	set := map[string][]byte{"ca.pem": ca.CertPEM, "server-cert.pem": cert, "server-key.pem": key, "cert.pem": clientCert, "key.pem": clientKey}
	for n, data := range set {
		if err := os.WriteFile(filepath.Join(local, n), data, 0o600); err != nil {
			return nil, err
		}
	}

	b.progress("proxy: booting two hosts")
	native, err := b.bootHost(ctx, "native")
	if err != nil {
		return nil, err
	}
	defer b.closeHost(native)
	px, err := b.bootHost(ctx, "proxy")
	if err != nil {
		return nil, err
	}
	defer b.closeHost(px)
	// Row 6c's second native host, Debian 13: only for the rotations.
	var nativeTx *testhost.Host
	if err := testhost.Trixie.Ready(); err != nil {
		r.trixieSkipped = err.Error()
		b.progress("proxy: no trixie host: %v", err)
	} else {
		b.progress("proxy: booting a trixie host for row 6c")
		if nativeTx, err = b.bootHostFrom(ctx, "native-tx", testhost.Trixie.RootFS); err != nil {
			return nil, err
		}
		defer b.closeHost(nativeTx)
	}
	natives := map[string]*testhost.Host{termNative: native}
	if nativeTx != nil {
		natives[termNativeTrixie] = nativeTx
	}
	for t, h := range natives {
		out, _, err := h.Exec(ctx, nil, "dockerd", "--version")
		if err != nil {
			return nil, err
		}
		r.dockerd[t] = strings.TrimSpace(string(out))
	}
	for _, h := range []*testhost.Host{native, px, nativeTx} {
		if h == nil {
			continue
		}
		for n, guest := range map[string]string{
			"ca.pem": "/etc/tlsdock/certs/ca.pem", "server-cert.pem": "/etc/tlsdock/certs/server-cert.pem", "server-key.pem": "/etc/tlsdock/certs/server-key.pem",
			"cert.pem": "/root/client/cert.pem", "key.pem": "/root/client/key.pem",
		} {
			if err := h.WriteFile(guest, set[n], 0o600); err != nil {
				return nil, err
			}
		}
	}
	for _, h := range natives {
		if err := provisionChecked(ctx, h, "--certs", "/etc/tlsdock/certs", "--probe-client", "/root/client"); err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	if err := provisionChecked(ctx, px, "--mode", "proxy", "--certs", "/etc/tlsdock/certs", "--probe-client", "/root/client"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, px.Journal(ctx, "tlsdock.service", 30))
	}
	out, _, err := px.Exec(ctx, nil, "systemctl", "show", "-p", "MainPID", "--value", "tlsdock.service")
	if err != nil {
		return nil, err
	}
	proxyPID := strings.TrimSpace(string(out))
	if proxyPID == "" || proxyPID == "0" {
		return nil, fmt.Errorf("tlsdock.service has no main PID:\n%s", px.Journal(ctx, "tlsdock.service", 30))
	}

	// socat and nginx: this machine's binaries in the proxy host's network
	// namespace, in front of the same dockerd socket.
	sock := guestFile(px, "/run/docker.sock")
	work := filepath.Join(b.tmp, "terminators")
	for _, d := range []string{work, filepath.Join(work, "body"), filepath.Join(work, "proxy")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	socatPid := filepath.Join(work, "socat.pid")
	socat := startBG(ctx, px, "socat", socatPid, "sh", "-c", `echo $$ >"$0"; exec "$@"`, socatPid, socatBin,
		"OPENSSL-LISTEN:2377,bind=127.0.0.1,fork,reuseaddr,cert="+filepath.Join(local, "server-cert.pem")+
			",key="+filepath.Join(local, "server-key.pem")+",cafile="+filepath.Join(local, "ca.pem")+",verify=1",
		"UNIX-CONNECT:"+sock)
	defer socat.stop()
	conf := filepath.Join(work, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, work, sock, local), 0o600); err != nil {
		return nil, err
	}
	nginx := startBG(ctx, px, "nginx", filepath.Join(work, "nginx.pid"), nginxBin, "-p", work, "-e", filepath.Join(work, "error.log"), "-c", conf, "-g", "daemon off;")
	defer nginx.stop()

	client := filepath.Join(b.tmp, "proxy-client")
	if err := os.MkdirAll(client, 0o700); err != nil {
		return nil, err
	}
	for _, n := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(client, n), set[n], 0o600); err != nil {
			return nil, err
		}
	}
	targets := map[string]loadTarget{
		termProxy:    {name: termProxy, h: px, dir: client},
		termNative:   {name: termNative, h: native, dir: client},
		termSocat:    {name: termSocat, h: px, dir: client, addr: "127.0.0.1:2377"},
		termNginx:    {name: termNginx, h: px, dir: client, addr: "127.0.0.1:2378"},
		termNginxLog: {name: termNginxLog, h: px, dir: client, addr: "127.0.0.1:2379"},
	}
	if nativeTx != nil {
		targets[termNativeTrixie] = loadTarget{name: termNativeTrixie, h: nativeTx, dir: client}
	}

	// The processes in each terminator's path, read from /proc before
	// and after each load run.
	hostProcs := map[*testhost.Host][]cpuProc{}
	for _, h := range []*testhost.Host{native, px} {
		if hostProcs[h], err = hostCPU(ctx, h); err != nil {
			return nil, err
		}
	}
	tlsdockProc := cpuProc{procTlsdock, procTicks(guestFile(px, "/proc"), proxyPID)}
	nginxProc := cpuProc{procNginx, treeTicks(filepath.Join(work, "nginx.pid"))}
	socatProc := cpuProc{procSocat, treeTicks(socatPid)}
	paths := map[string][]cpuProc{
		termProxy:    append([]cpuProc{tlsdockProc}, hostProcs[px]...),
		termNative:   hostProcs[native],
		termNginx:    append([]cpuProc{nginxProc}, hostProcs[px]...),
		termNginxLog: append([]cpuProc{nginxProc}, hostProcs[px]...),
		termSocat:    append([]cpuProc{socatProc}, hostProcs[px]...),
	}
	auditFile := guestFile(px, auditLogPath)

	// Warm-up (not counted); socat and nginx may still be starting.
	warm := terminators
	if nativeTx != nil {
		warm = append(slices.Clip(warm), termNativeTrixie)
	}
	for _, name := range warm {
		t := targets[name]
		deadline := time.Now().Add(15 * time.Second)
		for _, m := range []string{"handshake", "keepalive"} {
			for {
				_, err := b.runLoad(ctx, t, m, 300*time.Millisecond)
				if err == nil {
					break
				}
				if e := errors.Join(socat.exited(), nginx.exited()); e != nil || time.Now().After(deadline) {
					return nil, fmt.Errorf("warm-up of %s: %v (%v)\nsocat: %s\nnginx: %s", name, err, e, socat.stderr, nginx.stderr)
				}
				time.Sleep(300 * time.Millisecond)
			}
		}
	}

	for i := range b.p.proxyRuns {
		for _, m := range proxyMeasures {
			for j := range m.terms {
				name := m.terms[(i+j)%len(m.terms)] // rotate who goes first
				f := r.fig(m.key, name)
				if f.refused != "" {
					continue
				}
				b.progress("proxy %d/%d: %s against %s", i+1, b.p.proxyRuns, m.key, name)
				var stopRSS func()
				if name == termProxy {
					stopRSS = b.sampleRSS(px, proxyPID, &r.rssLoad)
				}
				audit := m.key == measKeepalive && name == termProxy
				var linesBefore int64
				if audit {
					linesBefore, _ = countLines(auditFile)
				}
				t := targets[name]
				t.curves = m.curves
				res, cpu, err := b.measuredRun(ctx, t, m.mode, b.p.proxyDur, paths[name])
				if stopRSS != nil {
					stopRSS()
				}
				var refused *refusedError
				if m.refusable && errors.As(err, &refused) {
					f.refused = refused.first
					b.progress("proxy: %s refuses the client of %q: %s", name, m.key, refused.first)
					continue
				}
				if err != nil {
					return nil, err
				}
				f.add(res, cpu)
				if audit {
					lines, err := countLines(auditFile)
					switch {
					case err != nil:
						r.auditErr = err.Error()
					case lines < linesBefore:
						r.auditErr = "the audit log was rotated during a run"
					default:
						r.auditLines += lines - linesBefore
						r.auditRequests += res.Count
					}
				}
			}
		}
	}

	// Idle RSS: the proxy after the load, with nothing connected.
	r.idleAfter = b.p.proxyIdle
	b.progress("proxy: idle for %v", r.idleAfter)
	time.Sleep(r.idleAfter)
	for range 3 {
		if s, err := readProc(px, proxyPID); err == nil {
			r.rssIdle = append(r.rssIdle, float64(s.rssKiB)/1024)
		}
		time.Sleep(time.Second)
	}

	// Rotations under load: proxy through its daemon's watched source,
	// native through `tlsdock provision --certs` of the changed source;
	// after each native rotation a bare restart of the same host under the
	// same load.
	for i := range b.p.proxyRotations {
		for _, name := range rotSides {
			t, ok := targets[name]
			if !ok {
				continue
			}
			h := t.h
			kinds := []rotKind{rotProxy}
			if name != termProxy {
				kinds = []rotKind{rotNative, rotBare}
			}
			for _, kind := range kinds {
				what := "rotation"
				if kind == rotBare {
					what = "bare restart"
				}
				b.progress("proxy: %s %d/%d under load, %s", what, i+1, b.p.proxyRotations, name)
				res, lat, err := b.rotateUnderLoad(ctx, h, kind, client, ca, i)
				if err != nil {
					j := "tlsdock.service"
					if kind != rotProxy {
						j = "docker.service"
					}
					return nil, fmt.Errorf("%s under load, %s: %w\n%s", what, name, err, h.Journal(ctx, j, 30))
				}
				b.progress("proxy: %s %d/%d, %s: %d failed, %d good requests, after %s", what, i+1, b.p.proxyRotations, name, res.Errors, res.Count, fmtMS(ms(lat)))
				failed, good, neg, firstErr := r.rotFailed, r.rotOK, r.rotNeg, r.rotFirstErr
				if kind == rotBare {
					failed, good, neg, firstErr = r.bareFailed, r.bareOK, r.bareNeg, r.bareFirstErr
				} else {
					r.rotLat[name] = append(r.rotLat[name], ms(lat))
				}
				failed[name] = append(failed[name], float64(res.Errors))
				good[name] = append(good[name], float64(res.Count))
				if n := negotiated(res); n != "" && !slices.Contains(neg[name], n) {
					neg[name] = append(neg[name], n)
				}
				if res.FirstErr != "" && firstErr[name] == "" {
					firstErr[name] = res.FirstErr
				}
			}
		}
	}
	if e := errors.Join(socat.exited(), nginx.exited()); e != nil {
		return nil, fmt.Errorf("a terminator exited during the run: %w", e)
	}
	return r, nil
}

// sampleRSS reads pid's VmRSS every 200 ms into s until the returned
// function is called.
func (b *bench) sampleRSS(h *testhost.Host, pid string, s *sample) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if p, err := readProc(h, pid); err == nil {
					*s = append(*s, float64(p.rssKiB)/1024)
				}
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}

// rotKind is what rotateUnderLoad does under the load.
type rotKind int

const (
	// rotProxy: a new set renamed into the proxy daemon's watched source.
	rotProxy rotKind = iota
	// rotNative: a new set renamed into the source, then `tlsdock
	// provision --certs` of it (daemon-json mode), which restarts dockerd.
	rotNative
	// rotBare: no tlsdock at all: `systemctl reset-failed` (untimed), then
	// `systemctl restart docker.service`, as an operator runs it.
	rotBare
)

// rotateUnderLoad runs the load worker (a new connection per GET /_ping, 4
// workers, each pausing 20 ms after a failure) against h's 127.0.0.1:2376,
// does what kind says and stops the load one second after it is done:
// after the new serial is served for a rotation (the duration returned is
// from the first rename to then), after `systemctl restart` returned for a
// bare restart (the duration is the restart's).
func (b *bench) rotateUnderLoad(ctx context.Context, h *testhost.Host, kind rotKind, client string, ca *certstore.CA, i int) (*loadResult, time.Duration, error) {
	native := kind == rotNative
	serial, cert, key, err := issueServer(ca, "server")
	if err != nil {
		return nil, 0, err
	}
	incoming := fmt.Sprintf("/root/incoming-%d", i)
	files := []struct {
		name string
		data []byte
	}{{"ca.pem", ca.CertPEM}, {"server-key.pem", key}, {"server-cert.pem", cert}}
	for _, f := range files {
		if err := h.WriteFile(incoming+"/"+f.name, f.data, 0o600); err != nil {
			return nil, 0, err
		}
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	loadDone := make(chan loaded, 1)
	go func() {
		out, _, err := h.ExecNet(lctx, nil, pr, b.self, "worker", "load", "-mode", "newconn", "-addr", "127.0.0.1:2376",
			"-ca", filepath.Join(client, "ca.pem"), "-cert", filepath.Join(client, "cert.pem"), "-key", filepath.Join(client, "key.pem"),
			"-c", strconv.Itoa(b.p.loadConc), "-d", "4m", "-n", "100000000", "-stdin-stop", "-err-pause", "20ms")
		loadDone <- loaded{out, err}
	}()
	time.Sleep(time.Second)

	if kind == rotBare {
		lat, err := timedRestart(ctx, h)
		if err != nil {
			return nil, 0, fmt.Errorf("systemctl restart docker.service: %w", err)
		}
		time.Sleep(time.Second)
		pw.Close()
		res, err := loadOutcome(<-loadDone)
		return res, lat, err
	}

	type polled struct {
		r   serialResult
		err error
	}
	pollDone := make(chan polled, 1)
	go func() {
		out, _, err := h.ExecNet(lctx, nil, nil, b.self, "worker", "serial", "-addr", "127.0.0.1:2376",
			"-want", serial, "-cert", filepath.Join(client, "cert.pem"), "-key", filepath.Join(client, "key.pem"), "-timeout", "2m")
		var p polled
		if jerr := json.Unmarshal(out, &p.r); jerr != nil && err == nil {
			err = fmt.Errorf("serial worker printed %q: %w", out, jerr)
		}
		p.err = err
		pollDone <- p
	}()
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	for _, f := range files {
		if err := os.Rename(guestFile(h, incoming+"/"+f.name), guestFile(h, "/etc/tlsdock/certs/"+f.name)); err != nil {
			return nil, 0, err
		}
	}
	if native {
		if err := provisionChecked(ctx, h, "--certs", "/etc/tlsdock/certs", "--probe-client", "/root/client"); err != nil {
			return nil, 0, err
		}
	}
	p := <-pollDone
	if p.err != nil {
		return nil, 0, p.err
	}
	lat := time.Unix(0, p.r.SeenNS).Sub(start)
	_ = os.Remove(guestFile(h, incoming))
	time.Sleep(time.Second)
	pw.Close()
	res, err := loadOutcome(<-loadDone)
	return res, lat, err
}

// loaded is what the load worker of rotateUnderLoad printed.
type loaded struct {
	out []byte
	err error
}

// loadOutcome is the load worker's result from its output.
func loadOutcome(l loaded) (*loadResult, error) {
	if l.err != nil {
		return nil, l.err
	}
	var res loadResult
	if err := json.Unmarshal(l.out, &res); err != nil {
		return nil, fmt.Errorf("load worker printed %q: %w", l.out, err)
	}
	if res.Count == 0 {
		return nil, errors.New("load worker: no request completed")
	}
	return &res, nil
}
