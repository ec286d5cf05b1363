package agenttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/systemd"
)

// Paths of a Debian 12 host with docker.io.
const (
	DockerFragment = "/lib/systemd/system/docker.service"
	SocketFragment = "/lib/systemd/system/docker.socket"
	DaemonJSON     = "/etc/docker/daemon.json"
	Dockerd        = "/usr/sbin/dockerd"
	DockerUnit     = "docker.service"
	SocketUnit     = "docker.socket"
)

// DebianUnit is docker.service as Debian 12's docker.io ships it.
const DebianUnit = `[Unit]
Description=Docker Application Container Engine
Requires=docker.socket

[Service]
Type=notify
EnvironmentFile=-/etc/default/docker
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
Restart=on-failure
StartLimitBurst=3
StartLimitInterval=60s
`

// DebianSocket is docker.socket as Debian 12's docker.io ships it.
const DebianSocket = `[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
`

// Host is a fake host under Root: systemd (Systemd's calls over D-Bus)
// and dockerd (its local API). Its methods are safe for concurrent use.
type Host struct {
	Root string

	mu    sync.Mutex
	now   func() time.Time
	calls []string
	// loaded is docker.service and docker.socket as systemd last loaded
	// them: at the first call, or at the last DaemonReload.
	loaded, loadedSocket *unitFiles
	// listening is what docker.socket holds: its ListenStream= values
	// when it was last started. A daemon-reload does not change them;
	// a restart of docker.socket does (systemd.socket(5)).
	listening []string
	loadState string
	units     map[string]*unitState
	// running is the configuration the running dockerd started with
	// (nil: not running); liveRestore what it serves now (a reload can
	// change it).
	running     *Daemon
	liveRestore bool
	lastErr     error
	swarm       bool
	failRestart func(daemonJSON string) bool
	version     string
	strict      bool
	// sockGone: a dockerd that listened on /run/docker.sock itself
	// deleted it when it stopped (ownsSocketFile); docker.socket's socket
	// has no path until docker.socket binds it again.
	sockGone bool
	// managerEnv is the service manager's environment
	// (DefaultEnvironment=, systemctl set-environment): every service
	// starts with it, under its own Environment=.
	managerEnv []string
}

// SetStrictSocket makes a host without a docker.socket unit behave as
// systemd and dockerd would: Requires=docker.socket fails the start, and
// -H fd:// finds no socket.
func (h *Host) SetStrictSocket(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.strict = on
}

// unitState is what systemd keeps of one unit.
type unitState struct {
	active string
	pid    uint32
	// starts are the start attempts in the current start-limit window.
	windowStart time.Time
	starts      int
}

// NewHost returns a host in a new t.TempDir: Debian's docker.service, the
// directories every host has, and docker running on the files as they are
// at the first call (tests set the host up first). The clock stands still
// unless SetClock gives another.
//
// It has no docker.socket unit unless the test writes one (DebianSocket at
// SocketFragment): tlsdock then keeps TCP listeners in daemon.json, which
// most tests expect. Real Debian always has docker.socket, so without the
// unit the fake still hands dockerd /run/docker.sock for -H fd:// and
// does not enforce Requires=docker.socket; SetStrictSocket(true) stops
// that.
func NewHost(t testing.TB) *Host {
	t.Helper()
	root := t.TempDir()
	WriteFile(t, root, DockerFragment, DebianUnit)
	// docker.io's dockerd, which the unit runs (a stub: it is never run).
	WriteFile(t, root, Dockerd, "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(root, Dockerd), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/etc/systemd/system", "/var/lib", "/run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	return &Host{
		Root:    root,
		now:     func() time.Time { return now },
		units:   map[string]*unitState{},
		version: "20.10.24+dfsg1",
	}
}

// WriteFile writes body at path under root, creating the directories.
func WriteFile(t testing.TB, root, path, body string) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// SetClock sets the clock docker.service's start limit is counted by.
func (h *Host) SetClock(now func() time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = now
}

// FailRestart makes every Restart fail while fail returns true for
// daemon.json as it is on disk (nil: restarts follow the rules only). fail
// runs with the host locked: it must not call the host.
func (h *Host) FailRestart(fail func(daemonJSON string) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failRestart = fail
}

// SetSwarm makes dockerd report that the node is part of a swarm.
func (h *Host) SetSwarm(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.swarm = on
}

// SetLoadState makes systemd report docker.service with this LoadState
// ("bad-setting", "not-found"); "" is "loaded".
func (h *Host) SetLoadState(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.loadState = s
}

// Boot loads the units and starts dockerd from the files now on disk, as
// booting the host would, without recording a call or counting a start.
func (h *Host) Boot() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.loadLocked(); err != nil {
		return err
	}
	h.startSocketLocked()
	u := h.unit(DockerUnit)
	if u.pid == 0 {
		u.pid = 100
	}
	return h.startDockerd(u)
}

func (h *Host) record(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

// Record adds a call to what Calls returns, for a wrapper of Host that
// injects a failure in place of the call.
func (h *Host) Record(call string) { h.record(call) }

// Calls returns the systemd calls made, as "restart docker.service",
// "daemon-reload" and so on.
func (h *Host) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// MainPID is docker.service's main PID; every start attempt changes it.
func (h *Host) MainPID() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	return h.unit(DockerUnit).pid
}

// ActiveState is docker.service's ActiveState.
func (h *Host) ActiveState() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	return h.unit(DockerUnit).active
}

// LiveRestore reports whether the running dockerd has live-restore on.
func (h *Host) LiveRestore() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.running != nil && h.liveRestore
}

// Running is the configuration the running dockerd started with, nil if
// it does not run.
func (h *Host) Running() *Daemon {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	return h.running
}

// LastStartError is why the last start of dockerd failed, nil if it
// started.
func (h *Host) LastStartError() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr
}

// WouldStart judges a start of docker.service now: the unit as systemd
// has it loaded and every other file as it is on disk.
func (h *Host) WouldStart() (*Daemon, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	return h.judgeLocked(h.loaded, h.listening)
}

// WouldStartAfterReload judges a start after a daemon-reload: every file
// as it is on disk.
func (h *Host) WouldStartAfterReload() (*Daemon, error) {
	svc, err := findUnit(h.Root, DockerUnit)
	if err != nil {
		return nil, err
	}
	sock, err := findUnit(h.Root, SocketUnit)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	listen, err := listenStreams(sock)
	if err != nil {
		return nil, err
	}
	return h.judgeLocked(svc, listen)
}

// SocketListening is what docker.socket listens on (ListenStream=
// values), nil when it does not run.
func (h *Host) SocketListening() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	return append([]string(nil), h.listening...)
}

// listenStreams reads a socket unit's ListenStream= values; nil if the
// unit does not exist.
func listenStreams(sock *unitFiles) ([]string, error) {
	if sock == nil || sock.Fragment == "" {
		return nil, nil
	}
	ss, err := sock.parse()
	if err != nil {
		return nil, refuse(ReasonUnit, "%v", err)
	}
	return ss["Socket.ListenStream"], nil
}

func (h *Host) unit(name string) *unitState {
	u := h.units[name]
	if u == nil {
		u = &unitState{active: "inactive", pid: 0}
		h.units[name] = u
	}
	return u
}

// bootLocked boots the host at the first call: it loads the units and
// starts docker.service and docker.socket as systemd would at boot.
func (h *Host) bootLocked() {
	if h.loaded != nil {
		return
	}
	if err := h.loadLocked(); err != nil {
		h.lastErr = err
		return
	}
	h.startSocketLocked()
	u := h.unit(DockerUnit)
	u.pid = 100
	_ = h.startDockerd(u)
}

// startSocketLocked (re)binds docker.socket from the unit as loaded.
func (h *Host) startSocketLocked() {
	s := h.unit(SocketUnit)
	if h.loadedSocket == nil || h.loadedSocket.Fragment == "" || h.loadedSocket.Masked {
		s.active, h.listening = "inactive", nil
		return
	}
	listen, err := listenStreams(h.loadedSocket)
	if err != nil {
		s.active, h.listening = "failed", nil
		return
	}
	s.active, h.listening = "active", listen
	h.sockGone = false
}

func (h *Host) loadLocked() error {
	svc, err := findUnit(h.Root, DockerUnit)
	if err != nil {
		return err
	}
	sock, err := findUnit(h.Root, SocketUnit)
	if err != nil {
		return err
	}
	h.loaded, h.loadedSocket = svc, sock
	return nil
}

// judgeLocked reads the unit's settings and asks the dockerd rules;
// listening is what docker.socket passes (nil: no socket running).
func (h *Host) judgeLocked(svc *unitFiles, listening []string) (*Daemon, error) {
	if svc == nil || svc.Fragment == "" {
		return nil, refuse(ReasonUnit, "Unit docker.service not found.")
	}
	if svc.Masked {
		return nil, refuse(ReasonUnit, "Unit docker.service is masked.")
	}
	s, err := svc.parse()
	if err != nil {
		return nil, refuse(ReasonUnit, "%v", err)
	}
	in := startInput{root: h.Root, exec: s["Service.ExecStart"], socket: listening, socketUnit: listening != nil}
	noSocket := h.loadedSocket == nil || h.loadedSocket.Fragment == ""
	if noSocket && !h.strict {
		// See NewHost: the socket Debian would have.
		in.socket, in.socketUnit = []string{"/run/docker.sock"}, true
	}
	// systemd.unit(5), Requires=: the required unit must exist, or the
	// start job fails with a dependency error.
	for _, r := range s["Unit.Requires"] {
		if noSocket && !h.strict {
			break
		}
		for _, name := range strings.Fields(r) {
			if name == SocketUnit && (h.loadedSocket == nil || h.loadedSocket.Fragment == "") {
				return nil, refuse(ReasonUnit, "Unit docker.socket not found.")
			}
			if name == SocketUnit && h.loadedSocket.Masked {
				return nil, refuse(ReasonUnit, "Unit docker.socket is masked.")
			}
		}
	}
	in.env, err = s.environment(h.Root, h.managerEnv)
	if err != nil {
		return nil, refuse(ReasonUnit, "%v", err)
	}
	return judge(in)
}

// startDockerd starts dockerd from the loaded unit, or records why not.
func (h *Host) startDockerd(u *unitState) error {
	h.dockerdStopsLocked()
	d, err := h.judgeLocked(h.loaded, h.listening)
	if err == nil && h.failRestart != nil {
		js, _ := os.ReadFile(filepath.Join(h.Root, DaemonJSON))
		if h.failRestart(string(js)) {
			err = refuse(ReasonInjected, "the test made this start fail")
		}
	}
	h.lastErr = err
	if err != nil {
		u.active, h.running = "failed", nil
		return err
	}
	u.active, h.running, h.liveRestore = "active", d, d.LiveRestore
	if ownsSocketFile(d, h.socketListeningLocked()) {
		// Its own file is there while it runs.
		h.sockGone = false
	}
	return nil
}

// DaemonReload reloads the unit files (systemctl daemon-reload).
func (h *Host) DaemonReload(context.Context) error {
	h.record("daemon-reload")
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.loadLocked()
}

// ResetFailed clears a failed state and the start-limit counter
// (systemctl reset-failed; systemd's unit_reset_failed resets the start
// rate limit too).
func (h *Host) ResetFailed(_ context.Context, name string) error {
	h.record("reset-failed " + name)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	u := h.unit(name)
	u.starts, u.windowStart = 0, time.Time{}
	if u.active == "failed" {
		u.active = "inactive"
	}
	return nil
}

// errJobFailed is what systemd's restart job answers when the start
// fails: its result is "failed" (for a start limit hit too).
func jobFailed(name string, why error) error {
	return fmt.Errorf("job result \"failed\" (%s: %w)", name, why)
}

// Restart restarts a unit (systemctl restart). For docker.service the
// start counts against the unit's start limit, and dockerd starts from
// the unit as loaded and the files on disk, or fails as dockerd would.
// Other units start unless FailRestart says otherwise.
func (h *Host) Restart(_ context.Context, name string) error {
	h.record("restart " + name)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	u := h.unit(name)
	if name == SocketUnit {
		// Restarting docker.socket binds its ListenStream= values as
		// loaded now, and restarts docker.service, which requires it (a
		// restart propagates along Requires=, systemd.unit(5)): dockerd
		// stops first.
		if h.unit(DockerUnit).active == "active" {
			h.dockerdStopsLocked()
		}
		h.startSocketLocked()
		if h.listening == nil {
			return jobFailed(name, refuse(ReasonUnit, "docker.socket cannot listen"))
		}
		d := h.unit(DockerUnit)
		if d.active != "active" {
			return nil
		}
		d.pid++
		if err := h.startLimitLocked(d); err != nil {
			d.active, h.running, h.lastErr = "failed", nil, err
			return nil
		}
		_ = h.startDockerd(d)
		return nil
	}
	u.pid++
	if name != DockerUnit {
		if h.failRestart != nil {
			js, _ := os.ReadFile(filepath.Join(h.Root, DaemonJSON))
			if h.failRestart(string(js)) {
				u.active = "failed"
				return jobFailed(name, refuse(ReasonInjected, "the test made this start fail"))
			}
		}
		u.active = "active"
		return nil
	}
	if err := h.startLimitLocked(u); err != nil {
		h.dockerdStopsLocked()
		u.active = "failed"
		h.lastErr = err
		return jobFailed(name, err)
	}
	// Starting docker.service starts docker.socket too when it requires
	// it (systemd.unit(5), Requires=), binding the socket as loaded.
	if h.requiresSocketLocked() && h.unit(SocketUnit).active != "active" && h.loadedSocket != nil && h.loadedSocket.Fragment != "" {
		h.startSocketLocked()
	}
	if err := h.startDockerd(u); err != nil {
		return jobFailed(name, err)
	}
	return nil
}

// requiresSocketLocked reports whether docker.service, as loaded,
// requires or wants docker.socket.
func (h *Host) requiresSocketLocked() bool {
	s, err := h.loaded.parse()
	if err != nil {
		return false
	}
	for _, key := range []string{"Unit.Requires", "Unit.Wants", "Unit.BindsTo"} {
		for _, v := range s[key] {
			for _, name := range strings.Fields(v) {
				if name == SocketUnit {
					return true
				}
			}
		}
	}
	return false
}

// startLimitLocked counts a start of docker.service: systemd refuses a
// start when StartLimitBurst= starts happened within
// StartLimitIntervalSec= (systemd.unit(5); the unit is then failed with
// result "start-limit-hit", "start of the service was attempted too
// often").
func (h *Host) startLimitLocked(u *unitState) error {
	interval, burst := 10*time.Second, 5
	if s, err := h.loaded.parse(); err == nil {
		interval, burst = s.startLimit()
	}
	now := h.now()
	if u.windowStart.IsZero() || now.Sub(u.windowStart) >= interval {
		u.windowStart, u.starts = now, 0
	}
	if burst > 0 && u.starts >= burst {
		return refuse(ReasonStartRate, "start-limit-hit: start of the service was attempted too often (%d starts within %v)", u.starts, interval)
	}
	u.starts++
	return nil
}

// Stop stops a unit (systemctl stop).
func (h *Host) Stop(_ context.Context, name string) error {
	h.record("stop " + name)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	u := h.unit(name)
	u.active = "inactive"
	switch name {
	case SocketUnit:
		// docker.service requires the socket: it stops too.
		h.dockerdStopsLocked()
		h.listening = nil
		h.unit(DockerUnit).active = "inactive"
	case DockerUnit:
		h.dockerdStopsLocked()
	}
	return nil
}

// Reload reloads a unit (systemctl reload). docker.service's ExecReload
// sends SIGHUP, on which dockerd re-reads its configuration file
// (daemon/config/config.go, Reload): the same checks as at start against
// the flags it runs with, and when any fails nothing is reloaded (dockerd
// logs the error and keeps running; the job itself succeeds). Of what
// tlsdock cares about only live-restore is reloadable, and only when the
// file sets it (daemon/reload.go, reloadLiveRestore); TLS is not.
func (h *Host) Reload(_ context.Context, name string) error {
	h.record("reload " + name)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	u := h.unit(name)
	if u.active != "active" && name == DockerUnit {
		return fmt.Errorf("job for %s canceled: unit is not active", name)
	}
	if name != DockerUnit || h.running == nil {
		return nil
	}
	flags := newDockerdFlags(nil)
	_ = flags.fs.Parse(h.running.Args[1:])
	data, err := os.ReadFile(filepath.Join(h.Root, h.running.ConfigFile))
	if err != nil {
		return nil
	}
	var fc fileConfig
	set, err := decodeConfig(data, &fc)
	if err != nil {
		return nil
	}
	if err := flags.conflicts(set); err != nil {
		return nil
	}
	if _, ok := set["live-restore"]; ok {
		h.liveRestore = fc.LiveRestore
	}
	return nil
}

// Unit reports a unit as systemd does over D-Bus: the files it loaded,
// and NeedDaemonReload when they changed on disk since.
func (h *Host) Unit(_ context.Context, name string) (systemd.UnitInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	u := h.unit(name)
	info := systemd.UnitInfo{LoadState: "loaded", ActiveState: u.active, SubState: subState(u.active), MainPID: u.pid}
	loaded := map[string]*unitFiles{DockerUnit: h.loaded, SocketUnit: h.loadedSocket}[name]
	if name == DockerUnit && h.loadState != "" {
		info.LoadState = h.loadState
	}
	if loaded != nil {
		if loaded.Fragment == "" {
			info.LoadState = "not-found"
		}
		if loaded.Masked {
			info.LoadState = "masked"
		}
		info.FragmentPath = loaded.Fragment
		info.DropInPaths = append([]string(nil), loaded.DropIns...)
		disk, err := findUnit(h.Root, name)
		info.NeedDaemonReload = err != nil || !disk.same(loaded)
	}
	if u.active != "active" || name == SocketUnit {
		info.MainPID = 0
	}
	if name == SocketUnit && u.active == "active" {
		info.SubState = "listening"
	}
	return info, nil
}

func subState(active string) string {
	switch active {
	case "active":
		return "running"
	case "failed":
		return "failed"
	}
	return "dead"
}

// Info is the part of dockerd's GET /info a test reads. It has the shape of
// agent.DockerInfo, so a test converts it with agent.DockerInfo(i).
type Info struct {
	ServerVersion      string
	LiveRestoreEnabled bool
	Swarm              struct{ LocalNodeState string }
}

// errNotRunning is what the local API answers while dockerd is down.
var errNotRunning = errors.New("cannot connect to the Docker daemon at unix:///var/run/docker.sock: is the docker daemon running")

// Info answers GET /info from the running dockerd.
func (h *Host) Info(context.Context) (Info, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	var i Info
	if h.running == nil {
		return i, errNotRunning
	}
	i.ServerVersion = h.version
	i.LiveRestoreEnabled = h.liveRestore
	i.Swarm.LocalNodeState = "inactive"
	if h.swarm {
		i.Swarm.LocalNodeState = "active"
	}
	return i, nil
}

// Ping answers GET /_ping.
func (h *Host) Ping(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	if h.running == nil {
		return fmt.Errorf("docker is %s: %w", h.unit(DockerUnit).active, errNotRunning)
	}
	if h.sockGone {
		return fmt.Errorf("dial unix /var/run/docker.sock: connect: no such file or directory (a dockerd that listened on it itself deleted docker.socket's file when it stopped): %w", errNotRunning)
	}
	return nil
}

// SetManagerEnvironment is `systemctl set-environment NAME=VALUE...`:
// every service started from now on has these variables, under its own
// Environment= and EnvironmentFile= settings.
func (h *Host) SetManagerEnvironment(kv ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.managerEnv = append(h.managerEnv, kv...)
}

// ManagerEnvironment is systemd's Manager.Environment property.
func (h *Host) ManagerEnvironment(context.Context) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.managerEnv...), nil
}
