package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// SocketDropInPath is tlsdock's drop-in for docker.socket: in daemon-json
// mode it adds the TCP listeners, which dockerd takes with `-H fd://`.
const SocketDropInPath = systemd.SocketDropInPath

// Who holds the TCP listeners in daemon-json mode (State.TCPHeldBy).
const (
	HeldBySocket  = "docker.socket"
	HeldByDockerd = "dockerd"
)

// socketChoice is how daemon-json mode serves its TCP listeners, chosen
// once by the plan. With Held, docker.socket listens (a ListenStream=
// drop-in) and dockerd serves what it is handed with the TLS settings of
// daemon.json: the kernel queues new connections while dockerd restarts,
// so a rotation refuses none. Otherwise dockerd listens itself ("hosts" in
// daemon.json) and Why says why.
type socketChoice struct {
	Held  bool
	Addrs []string // ListenStream= values
	Why   string
	// unit is what systemd said of docker.socket.
	unit systemd.UnitInfo
	// loaded: systemd has tlsdock's docker.socket drop-in loaded, so
	// docker.socket may hold a TCP listener although the file is gone.
	loaded bool
}

// readSocket asks systemd about docker.socket, in every mode: a plan
// that does not want tlsdock's drop-in removes it (its port would clash
// with dockerd's -H or the proxy), and daemon-json mode's server decides
// from it who holds the TCP listeners (chooseSocket).
func (a *Agent) readSocket(ctx context.Context, plan *Plan, cfg Config) error {
	info, err := a.o.Systemd.Unit(ctx, systemd.SocketUnit)
	if err != nil {
		return fmt.Errorf("asking systemd about %s (waited at most --timeout %v): %w: check that systemd answers (systemctl status)", systemd.SocketUnit, cfg.Timeout, err)
	}
	plan.socket.unit = info
	plan.socket.loaded = contains(info.DropInPaths, SocketDropInPath)
	plan.unitsStale = plan.unitsStale || info.NeedDaemonReload
	return nil
}

// chooseSocket decides who holds daemon-json mode's TCP listeners:
// docker.socket where it is used, dockerd ("hosts" in daemon.json)
// otherwise.
func (a *Agent) chooseSocket(plan *Plan, h *hostConfig) error {
	c := &plan.socket
	info, doc, svc := c.unit, h.doc, h.svc
	_, unitHosts, _ := svc.ExecStart.WithoutFlags(true)
	docHosts, _ := doc.Hosts() // planDockerd reports a bad "hosts"
	var sock *systemd.Socket
	if info.LoadState == "loaded" {
		var err error
		if sock, err = systemd.ReadSocket(a.o.Paths.Root, info.FragmentPath, info.DropInPaths, SocketDropInPath); err != nil {
			return &InputError{Field: systemd.SocketUnit, Err: err}
		}
	}
	switch {
	case info.LoadState != "loaded":
		c.Why = fmt.Sprintf("%s is %s", systemd.SocketUnit, orWord(info.LoadState, "unknown"))
	case !contains(unitHosts, "fd://"):
		c.Why = fmt.Sprintf("docker.service's ExecStart (%s) does not pass -H fd://", svc.ExecStartFrom)
	case checkProgram(svc) != nil:
		c.Why = fmt.Sprintf("docker.service's ExecStart runs %s, not dockerd", svc.ExecStart.Program())
	}
	for _, h := range nonTCP(docHosts) {
		if c.Why == "" && !contains(unitHosts, h) {
			c.Why = fmt.Sprintf("daemon.json's hosts has %s, which docker.service's ExecStart does not pass", h)
		}
	}
	for _, l := range plan.Listeners {
		addr, ok := listenStream(l)
		if !ok {
			if c.Why == "" {
				c.Why = fmt.Sprintf("--host %s names no IP address, and a socket unit listens on addresses", l.URL)
			}
			continue
		}
		if sock != nil && contains(sock.ListenStream, addr) {
			plan.note("%s already listens on %s (not tlsdock's drop-in); dockerd serves it with mutual TLS", systemd.SocketUnit, addr)
			continue
		}
		c.Addrs = append(c.Addrs, addr)
	}
	c.Held = c.Why == ""
	plan.TCPHeldBy = HeldByDockerd
	if c.Held {
		plan.TCPHeldBy = HeldBySocket
		plan.changeNote("TCP listeners: %s holds %s and hands them to dockerd (-H fd://), which serves them with the TLS settings of daemon.json; connections wait in the kernel's queue while dockerd restarts", systemd.SocketUnit, strings.Join(c.Addrs, " "))
	} else {
		plan.changeNote("TCP listeners: dockerd holds them (on the -H flags or in daemon.json's hosts, wherever it takes its listeners from now), because %s; connections are refused while dockerd restarts", c.Why)
	}
	return nil
}

// listenStream is a listener as a ListenStream= value: "ADDR:PORT", or the
// port alone for tcp://:PORT (every address, as dockerd reads it).
func listenStream(l Listener) (string, bool) {
	if l.Host == "" {
		return strconv.Itoa(l.Port), true
	}
	if net.ParseIP(l.Host) == nil {
		return "", false
	}
	return net.JoinHostPort(l.Host, strconv.Itoa(l.Port)), true
}

// planSocketDockerd is daemon-json mode with docker.socket holding the TCP
// listeners: daemon.json gets the TLS settings and no "hosts" (the unit
// keeps its -H flags), and docker.service's ExecStart is rewritten only if
// it carries TLS flags or TCP listeners of its own. On a host whose
// daemon.json has "hosts" (an earlier tlsdock put fd:// there, with a
// drop-in without -H), the local listeners stay there: moving fd:// to
// the unit's -H has no order that a kill cannot split (in both files
// dockerd refuses to start; in neither it replaces docker.socket's
// /run/docker.sock with its own).
func planSocketDockerd(plan *Plan, newDoc *daemonjson.Doc, svc *systemd.Service) (systemd.Command, error) {
	rest, unitHosts, unitTLS := svc.ExecStart.WithoutFlags(true)
	ssl := certstore.Store{Dir: SSLDir}
	caPath, certPath, keyPath := ssl.Paths()
	if docHosts, _ := newDoc.Hosts(); len(docHosts) > 0 {
		keep := dedup(nonTCP(append(append([]string{}, unitHosts...), docHosts...)))
		if err := daemonjson.SetTLS(newDoc, daemonjson.TLS{Hosts: keep, CACert: caPath, Cert: certPath, Key: keyPath}); err != nil {
			return nil, err
		}
		plan.Hosts = append(keep, plan.TCPHosts...)
		if len(unitHosts) == 0 && len(unitTLS) == 0 {
			return nil, nil
		}
		return rest, nil
	}
	// SetTLS sets "hosts" too; the unit's -H flags are the hosts here.
	if err := daemonjson.SetTLS(newDoc, daemonjson.TLS{Hosts: []string{"fd://"}, CACert: caPath, Cert: certPath, Key: keyPath}); err != nil {
		return nil, err
	}
	newDoc.Delete("hosts")
	keep := nonTCP(unitHosts)
	plan.Hosts = append(append([]string{}, keep...), plan.TCPHosts...)
	if len(keep) == len(unitHosts) && len(unitTLS) == 0 {
		return nil, nil
	}
	cmd := rest
	for _, h := range keep {
		cmd = cmd.Append("-H", h)
	}
	return cmd, nil
}

func dedup(list []string) []string {
	var out []string
	for _, s := range list {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// planSocketFile plans docker.socket's drop-in: written when docker.socket
// holds the listeners, removed otherwise. Leaving docker.socket restarts
// dockerd, in every mode.
func (a *Agent) planSocketFile(plan *Plan) error {
	old, err := os.ReadFile(a.o.Paths.Abs(SocketDropInPath))
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", SocketDropInPath, err)
	}
	var want []byte
	if plan.socket.Held {
		want = systemd.RenderSocketDropIn(plan.socket.Addrs)
	}
	if want, err = a.socketReset(plan, want); err != nil {
		return err
	}
	switch {
	case want != nil && !bytes.Equal(want, old):
		plan.addFile(SocketDropInPath, old, exists, want, 0o644, true)
		plan.Files[len(plan.Files)-1].load = true
		plan.socketRestart = true
	case want != nil && !plan.socket.loaded:
		// On disk but not loaded by systemd (an interrupted run, or a
		// daemon-reload never made): docker.socket may not listen yet.
		plan.socketRestart = true
	case want == nil && exists:
		plan.addFile(SocketDropInPath, old, true, nil, 0, false)
		plan.changeNote("removed tlsdock's %s drop-in: %s gives up the TCP listeners first", systemd.SocketUnit, systemd.SocketUnit)
	case want == nil && plan.socket.loaded:
		// The file is gone but systemd still has it loaded: an
		// interrupted run. Releasing the listeners is a change.
		plan.releaseSocket = true
	}
	return nil
}

// socketGoes reports whether the plan removes docker.socket's listeners.
func (p *Plan) socketGoes() bool {
	if p.releaseSocket {
		return true
	}
	for _, f := range p.Files {
		if f.Path == SocketDropInPath && f.Action == "delete" {
			return true
		}
	}
	return false
}

// writeOrder is the order write() takes the plan's files in, so that a
// kill between any two writes leaves a dockerd that starts, with its local
// socket and no plain TCP listener, on disk or in systemd. The interim
// states come first (planInterim). Then tlsdock's drop-in, when it adds no
// TCP listener and no TLS flag (it takes -H or --tls* flags away, or
// repeats ExecStart without -H for "hosts" in daemon.json), before
// daemon.json; otherwise after it, once daemon.json has the TLS settings
// (or, for dropin mode, has lost them). docker.socket's drop-in comes last,
// after daemon.json's TLS settings; it is removed before any of them, by
// releaseSocket.
func writeOrder(plan *Plan) []FileChange {
	rank := func(f FileChange) int {
		switch {
		case f.Path == SocketDropInPath:
			return 3
		case f.Path == DropInPath && plan.dropInFirst:
			return 0
		case f.Path == DaemonJSONPath:
			return 1
		}
		return 2
	}
	files := append([]FileChange{}, plan.interim...)
	for r := 0; r <= 3; r++ {
		for _, f := range plan.Files {
			if rank(f) == r {
				files = append(files, f)
			}
		}
	}
	return files
}

// releaseSocket takes tlsdock's TCP listeners away from docker.socket
// before anything else changes: it removes the drop-in, reloads systemd and
// restarts docker.socket (and, through its Requires=, docker.service, still
// on daemon.json's TLS settings). Only then may daemon.json lose them: a
// dockerd started by systemd on a socket-held TCP listener without TLS
// would serve the API in plain text.
func (a *Agent) releaseSocket(ctx context.Context, timeout time.Duration) error {
	if err := os.Remove(a.o.Paths.Abs(SocketDropInPath)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", SocketDropInPath, err)
	}
	a.o.Step("remove " + SocketDropInPath)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := a.o.Systemd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("unloading %s (systemd daemon-reload): %w", SocketDropInPath, err)
	}
	info, err := a.o.Systemd.Unit(ctx, systemd.SocketUnit)
	if err != nil {
		return fmt.Errorf("asking systemd about %s: %w", systemd.SocketUnit, err)
	}
	// A masked or removed docker.socket listens on nothing.
	if info.LoadState == "loaded" {
		for _, u := range []string{systemd.SocketUnit, systemd.DockerUnit} {
			if err := a.o.Systemd.ResetFailed(ctx, u); err != nil {
				return err
			}
		}
		if err := a.o.Systemd.Restart(ctx, systemd.SocketUnit); err != nil {
			return fmt.Errorf("restarting %s without tlsdock's TCP listeners: %w", systemd.SocketUnit, err)
		}
	}
	a.o.Pause("socket-released")
	return nil
}

// releaseBeforeRestore runs releaseSocket when restoring snap would remove
// docker.socket's drop-in that is on disk or loaded. A snapshot taken by an
// older tlsdock has no record of it: tlsdock had not written it then.
func (a *Agent) releaseBeforeRestore(ctx context.Context, snap *Snapshot, timeout time.Duration) error {
	if snap.File(SocketDropInPath).Exists {
		return nil
	}
	_, err := os.Lstat(a.o.Paths.Abs(SocketDropInPath))
	onDisk := err == nil
	loaded := false
	uctx, cancel := context.WithTimeout(ctx, timeout)
	if info, err := a.o.Systemd.Unit(uctx, systemd.SocketUnit); err == nil {
		loaded = contains(info.DropInPaths, SocketDropInPath)
	}
	cancel()
	if !onDisk && !loaded {
		return nil
	}
	return a.releaseSocket(ctx, timeout)
}

// restartSocket restarts docker.socket on its new listeners and then
// docker.service: docker.socket is stopped (which stops docker.service, by
// its Requires=, and frees a port dockerd held itself), started (it binds
// the TCP listeners; daemon.json already has the TLS settings) and
// docker.service is started and waited for.
func (a *Agent) restartSocket(ctx context.Context, cfg Config, reload bool) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if reload {
		if err := a.o.Systemd.DaemonReload(ctx); err != nil {
			return err
		}
	}
	for _, u := range []string{systemd.SocketUnit, systemd.DockerUnit} {
		if err := a.o.Systemd.ResetFailed(ctx, u); err != nil {
			return err
		}
	}
	if err := a.o.Systemd.Stop(ctx, systemd.SocketUnit); err != nil {
		return fmt.Errorf("stopping %s: %w", systemd.SocketUnit, err)
	}
	if err := a.o.Systemd.Restart(ctx, systemd.SocketUnit); err != nil {
		jctx, jcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer jcancel()
		return &socketStartError{err: err, hint: socketJournalHint(a.o.Journal(jctx, systemd.SocketUnit, 10))}
	}
	if err := a.o.Systemd.Restart(ctx, systemd.DockerUnit); err != nil {
		return fmt.Errorf("restarting docker: %w", err)
	}
	return nil
}

// socketRestored reports whether restoring snap changes docker.socket's
// drop-in (on disk, or as systemd loaded it): the restart after the restore
// is then restartSocket.
func (a *Agent) socketRestored(snap *Snapshot) bool {
	f := snap.File(SocketDropInPath)
	cur, err := readFileState(a.o.Paths, SocketDropInPath)
	if err != nil {
		return true
	}
	return cur.Exists != f.Exists || !bytes.Equal(cur.Content, f.Content)
}

// restartAfterRestore restarts docker after a rollback restored snap:
// through restartSocket when docker.socket gets tlsdock's drop-in back
// (releaseBeforeRestore already handled the other direction), else
// docker.service alone.
func (a *Agent) restartAfterRestore(ctx context.Context, snap *Snapshot, socketBack bool) error {
	if socketBack && snap.File(SocketDropInPath).Exists {
		return a.restartSocket(ctx, Config{Timeout: timeUntil(ctx)}, false)
	}
	return a.o.Systemd.Restart(ctx, systemd.DockerUnit)
}

// timeUntil is what is left of ctx's deadline (two minutes without one).
func timeUntil(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return 2 * time.Minute
}

// restoreSocketFile restores docker.socket's drop-in from s at the right
// moment: first is true before daemon.json and docker.service's drop-in are
// restored, false after. A drop-in that goes is removed first; one that
// comes back is written last, after daemon.json has its TLS settings again.
func (s *Snapshot) restoreSocketFile(p Paths, first bool) error {
	f := s.File(SocketDropInPath)
	if f.Exists == first {
		return nil
	}
	return restoreFile(p, f)
}

// socketStartError is docker.socket failing to start on its listeners,
// with what its journal says about why.
type socketStartError struct {
	err  error
	hint string
}

func (e *socketStartError) Error() string {
	msg := fmt.Sprintf("starting %s on its new listeners: %v", systemd.SocketUnit, e.err)
	if e.hint != "" {
		msg += ": " + e.hint
	}
	return msg
}

func (e *socketStartError) Unwrap() error { return e.err }

// noteSocketFailure adds to a rolled-back result why docker.socket did not
// start, which docker.service's journal does not show.
func noteSocketFailure(res *Result, cause error) {
	var se *socketStartError
	if errors.As(cause, &se) && se.hint != "" {
		res.Notes = append(res.Notes, se.hint)
	}
}

// socketJournalHint names the cause when docker.socket could not bind a
// listener, from its journal.
func socketJournalHint(journal string) string {
	if strings.Contains(journal, "Address already in use") {
		return "docker.socket cannot listen: address already in use (another program holds the port: find it with `ss -ltnp`)"
	}
	return ""
}
