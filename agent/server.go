package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// A server is how the Docker API is served over mutual TLS. It is chosen
// once per plan (Agent.server, from the mode and from how the agent was
// built), and the sequence never asks which one it holds:
//
//   - daemonJSONServer and dropInServer: dockerd serves TLS itself, with its
//     settings in daemon.json or in docker.service's drop-in. They differ
//     only in their plan (where the settings go); serving and undoing are
//     dockerdServer's, shared.
//   - proxyUnitServer: the CLI in proxy mode. tlsdock.service serves the
//     proxy; the serve step writes nothing of its own, it (re)starts the
//     unit whose files the plan wrote.
//   - inProcessServer: the proxy daemon itself (Options.Proxy). The serve
//     step swaps the set into the running proxy.
//   - originalServer: revert's target, dockerd as it was before the first
//     provision (the original snapshot); it serves like dockerdServer.
type server interface {
	// plan adds to p the files serving takes (dockerd's, tlsdock.service's)
	// and whether dockerd restarts. It changes nothing on the host.
	plan(p *Plan, h *hostConfig) error
	// serve puts the written files and p.Set into service. It records in
	// done each unit it restarts or stops, before it does.
	serve(ctx context.Context, cfg Config, p *Plan, done *served) error
	// again makes an unchanged p serve once more what verification found
	// not served, and says so in the returned note.
	again(p *Plan) string
	// undo, once the files are restored from snap, puts back into service
	// what serve changed (as recorded in done), and only that.
	undo(ctx context.Context, snap *Snapshot, done *served, res *Result) error
}

// server returns the server of mode m. Inside the proxy daemon only proxy
// mode can be served: a native mode would have dockerd take the listeners
// this process holds, and stopping tlsdock.service would stop the daemon
// itself.
func (a *Agent) server(m Mode) (server, error) {
	d := dockerdServer{a: a}
	switch {
	case m == ModeProxy && a.o.Proxy != nil:
		return inProcessServer{a: a, proxy: a.o.Proxy}, nil
	case m == ModeProxy:
		return proxyUnitServer{a: a}, nil
	case a.o.Proxy != nil:
		return nil, inputErr("--mode", "the proxy daemon (tlsdock run --mode proxy) serves only proxy mode, not %s: switch modes with `tlsdock provision --mode %s`", m, m)
	case m == ModeDropIn:
		return dropInServer{d}, nil
	default:
		return daemonJSONServer{d}, nil
	}
}

// hostConfig is what the plan read of dockerd's configuration.
type hostConfig struct {
	cfg Config
	// ctx bounds what a server's plan still asks systemd and dockerd
	// (revert's): the command's budget.
	ctx  context.Context
	doc  *daemonjson.Doc // daemon.json
	json []byte          // daemon.json as it is on disk (nil: absent)
	// exists says whether daemon.json exists.
	exists        bool
	svc           *systemd.Service
	st            *State
	swarm         bool
	liveRestoreOn bool
	// noLocalAPI: the running dockerd serves no local socket to ask
	// (localsock.go), so live-restore cannot be turned on first.
	noLocalAPI bool
}

// served records what a serve step did to the host's units, as it goes, so
// that a rollback undoes exactly that.
type served struct {
	// loaded: systemd loaded the target's unit files (daemon-reload).
	loaded bool
	// units restarted or stopped, in order.
	units []string
	// swapped: a set was handed to the in-process proxy.
	swapped bool
	// socketBack (rollback): the restore changes docker.socket's drop-in,
	// so docker restarts back through docker.socket.
	socketBack bool
}

func (d *served) touch(unit string)        { d.units = append(d.units, unit) }
func (d *served) touched(unit string) bool { return slices.Contains(d.units, unit) }

// dockerdPaths are dockerd's own files: a change to one restarts
// docker.service (and docker.socket, for its drop-in).
var dockerdPaths = []string{DaemonJSONPath, DropInPath, SocketDropInPath}

// unitPaths are the unit files tlsdock writes: a change to one needs a
// daemon-reload.
var unitPaths = append([]string{DropInPath, SocketDropInPath}, proxyUnitPaths...)

// dockerdServer serves the API from dockerd itself. Its serve step stops
// tlsdock.service first when the plan removes the proxy's files (leaving
// proxy mode: the proxy holds the TCP listeners dockerd takes), then
// restarts docker.service when the plan says so.
type dockerdServer struct{ a *Agent }

func (s dockerdServer) serve(ctx context.Context, cfg Config, p *Plan, done *served) error {
	if p.removes(proxyUnitPaths...) {
		done.touch(ProxyUnit)
		if err := s.a.stopUnit(ctx, cfg, ProxyUnit); err != nil {
			return err
		}
	}
	if p.Restart {
		return s.a.restartDocker(ctx, cfg, p, done)
	}
	if !done.loaded && p.changes(unitPaths...) {
		done.loaded = true
		ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
		return s.a.o.Systemd.DaemonReload(ctx)
	}
	return nil
}

func (dockerdServer) again(p *Plan) string {
	p.Restart = true
	if p.socket.Held {
		// docker.socket may have the drop-in loaded and still not listen
		// on its addresses (an interrupted apply, a daemon-reload
		// without a restart): it restarts too.
		p.socketRestart = true
		return "the endpoint did not pass verification, so docker.socket and docker are restarted: "
	}
	return "the endpoint did not pass verification, so docker is restarted: "
}

func (s dockerdServer) undo(ctx context.Context, snap *Snapshot, done *served, _ *Result) error {
	if done.touched(systemd.DockerUnit) {
		if err := s.a.dockerBack(ctx, snap, done); err != nil {
			return err
		}
	}
	if done.touched(ProxyUnit) {
		// tlsdock.service was stopped to give dockerd the listeners.
		return s.a.proxyUnitBack(ctx, snap)
	}
	return nil
}

// daemonJSONServer: dockerd's TLS settings and hosts are in daemon.json.
type daemonJSONServer struct{ dockerdServer }

func (s daemonJSONServer) plan(p *Plan, h *hostConfig) error {
	if err := s.a.chooseSocket(p, h); err != nil {
		return err
	}
	// The drop-in (ExecStart without -H) is loaded before daemon.json gets
	// "hosts": dockerd refuses hosts both as a flag and in the file.
	return s.a.planNative(p, h, true, func(newDoc *daemonjson.Doc, rest systemd.Command, unitHosts, unitTLS []string) (systemd.Command, error) {
		if p.socket.Held {
			// docker.socket holds the TCP listeners (socket.go).
			return planSocketDockerd(p, newDoc, h.svc)
		}
		return s.a.daemonJSONSettings(p, h, newDoc, rest, unitHosts, unitTLS)
	})
}

// dropInServer: dockerd's TLS settings and hosts are flags in the drop-in.
type dropInServer struct{ dockerdServer }

func (s dropInServer) plan(p *Plan, h *hostConfig) error {
	// daemon.json (losing "hosts") is written before the drop-in (adding
	// -H), which is loaded at the restart.
	return s.a.planNative(p, h, false, func(newDoc *daemonjson.Doc, rest systemd.Command, _, _ []string) (systemd.Command, error) {
		return s.a.dropInSettings(p, h, newDoc, rest)
	})
}

// proxyUnitServer: proxy mode from the CLI. tlsdock.service serves the
// proxy; dockerd restarts only when its own files change.
type proxyUnitServer struct{ a *Agent }

func (s proxyUnitServer) plan(p *Plan, h *hostConfig) error {
	if err := s.a.planProxy(p, h); err != nil {
		return err
	}
	// Only a provision from the CLI fetches: the running proxy fetches on
	// its own schedule (fetchLoop).
	ctx := h.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkCRLURLs(ctx, s.a.o.Paths, s.a.o.Logger, h.cfg.CRLURLs, p.Set, s.a.o.Now()); err != nil {
		return err
	}
	return s.a.planProxyUnit(p, h.cfg)
}

func (s proxyUnitServer) serve(ctx context.Context, cfg Config, p *Plan, done *served) error {
	if p.Restart {
		if err := s.a.restartDocker(ctx, cfg, p, done); err != nil {
			return err
		}
	}
	done.touch(ProxyUnit)
	done.loaded = true
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := s.a.o.Systemd.DaemonReload(ctx); err != nil {
		return err
	}
	if err := s.a.o.Systemd.ResetFailed(ctx, ProxyUnit); err != nil {
		return err
	}
	if err := s.a.o.Systemd.Restart(ctx, ProxyUnit); err != nil {
		return fmt.Errorf("starting the proxy (%s): %w: see `journalctl -u %s`", ProxyUnit, err, ProxyUnit)
	}
	return nil
}

func (proxyUnitServer) again(*Plan) string {
	return "the endpoint did not pass verification, so the proxy serves the set again: "
}

// undo stops the proxy first (it may hold a TCP listener the old dockerd
// needs back), puts dockerd back if it was restarted, then starts
// tlsdock.service again on its restored files, if it had any.
func (s proxyUnitServer) undo(ctx context.Context, snap *Snapshot, done *served, res *Result) error {
	if done.touched(ProxyUnit) {
		if err := s.a.o.Systemd.Stop(ctx, ProxyUnit); err != nil {
			res.Notes = append(res.Notes, "stopping "+ProxyUnit+" for the rollback failed: "+err.Error())
		}
	}
	if done.touched(systemd.DockerUnit) {
		if err := s.a.dockerBack(ctx, snap, done); err != nil {
			return err
		}
	}
	if done.touched(ProxyUnit) {
		return s.a.proxyUnitBack(ctx, snap)
	}
	return nil
}

// inProcessServer: proxy mode inside the proxy daemon. The set is swapped
// into the running proxy; tlsdock.service is this process, so its files are
// not planned.
type inProcessServer struct {
	a     *Agent
	proxy InProcessProxy
}

func (s inProcessServer) plan(p *Plan, h *hostConfig) error { return s.a.planProxy(p, h) }

func (s inProcessServer) serve(ctx context.Context, cfg Config, p *Plan, done *served) error {
	if p.Restart {
		if err := s.a.restartDocker(ctx, cfg, p, done); err != nil {
			return err
		}
	}
	done.swapped = true
	if err := s.proxy.Reload(p.Set); err != nil {
		return fmt.Errorf("serving serial %s in the proxy: %w", p.Set.Serial(), err)
	}
	return nil
}

func (inProcessServer) again(*Plan) string {
	return "the endpoint did not pass verification, so the proxy serves the set again: "
}

// undo puts dockerd back if it was restarted and swaps the restored set
// back into the proxy.
func (s inProcessServer) undo(ctx context.Context, snap *Snapshot, done *served, _ *Result) error {
	if done.touched(systemd.DockerUnit) {
		if err := s.a.dockerBack(ctx, snap, done); err != nil {
			return err
		}
	}
	if !done.swapped {
		return nil
	}
	set, err := certstore.Store{Dir: s.a.o.Paths.SSL()}.Load()
	if err != nil || set == nil {
		return nil // nothing was installed before: the proxy keeps what it had
	}
	if err := s.proxy.Reload(set); err != nil {
		return notServedError{err}
	}
	return nil
}

// notServedError is an undo that restored the files and dockerd, but could
// not make the proxy serve them.
type notServedError struct{ err error }

func (e notServedError) Error() string {
	return "the files are restored, but the proxy does not serve them: " + e.err.Error()
}
func (e notServedError) Unwrap() error { return e.err }

// restartDocker is every server's docker restart: docker.service, or
// docker.socket then docker.service when the plan changes the listeners
// docker.socket holds. It records the restart in done before it starts,
// and reloads systemd first unless the new unit files are loaded already
// or no unit file changed (Plan.needsReload).
func (a *Agent) restartDocker(ctx context.Context, cfg Config, p *Plan, done *served) error {
	done.touch(systemd.DockerUnit)
	reload := !done.loaded && p.needsReload()
	done.loaded = true
	if p.socketRestart {
		return a.restartSocket(ctx, cfg, reload)
	}
	return a.restart(ctx, cfg, reload)
}

// stopUnit stops a unit and waits for it to be gone.
func (a *Agent) stopUnit(ctx context.Context, cfg Config, unit string) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := a.o.Systemd.Stop(ctx, unit); err != nil {
		return fmt.Errorf("stopping %s: %w", unit, err)
	}
	return nil
}

// dockerBack restarts docker.service on the restored files (through
// docker.socket when its drop-in comes back) and checks that it answers.
func (a *Agent) dockerBack(ctx context.Context, snap *Snapshot, done *served) error {
	if err := a.o.Systemd.DaemonReload(ctx); err != nil {
		return err
	}
	if err := a.o.Systemd.ResetFailed(ctx, systemd.DockerUnit); err != nil {
		return err
	}
	if err := a.restartAfterRestore(ctx, snap, done.socketBack); err != nil {
		return err
	}
	return a.localSocketBack(ctx)
}

// proxyUnitBack starts tlsdock.service again when the restored files make
// it serve the proxy.
func (a *Agent) proxyUnitBack(ctx context.Context, snap *Snapshot) error {
	if !snap.File(ProxyDropInPath).Exists {
		return nil
	}
	if err := a.o.Systemd.DaemonReload(ctx); err != nil {
		return notServedError{err}
	}
	if err := a.o.Systemd.Restart(ctx, ProxyUnit); err != nil {
		return notServedError{err}
	}
	return nil
}
