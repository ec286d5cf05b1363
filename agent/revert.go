package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// ErrNotProvisioned is returned by Revert on a host tlsdock never changed.
var ErrNotProvisioned = errors.New("tlsdock has not provisioned this host: nothing to revert")

// Revert restores the host exactly as it was before the first provision
// (daemon.json, tlsdock's drop-in, tlsdock.service's files, /etc/docker/ssl)
// and checks that the unix socket answers. It puts back only what tlsdock
// wrote (revertTarget): a file tlsdock never wrote is left alone, one
// changed since is kept (daemon.json loses only tlsdock's keys), each
// with a note. It leaves a record of the revert in state.json, so that
// the daemon (`tlsdock run`, still running or started at the next boot)
// does not provision the host again until `tlsdock provision` does.
//
// It is the sequence with the original snapshot as its target: the same
// backup, write, serve, verify and rollback as a provision. dockerd
// restarts only when its own files change (or the certificates they
// name); leaving proxy mode stops tlsdock.service first. On failure it
// goes back to the provisioned state.
//
// A dockerd that starts without live-restore stops the containers it finds
// running, so with cfg.LiveRestore the restored daemon.json keeps
// "live-restore": true and containers survive the revert.
func (a *Agent) Revert(ctx context.Context, cfg Config) (*Result, error) {
	res := &Result{}
	unlock, err := a.lock()
	if err != nil {
		return res, err
	}
	defer unlock()
	ctx, cancel := withBudget(ctx, cfg)
	defer cancel()
	a.removeTemps()
	forceRestart, _, _, recovered, err := a.recoverJournal(ctx)
	res.Notes = append(res.Notes, recovered...)
	if err != nil {
		return res, err
	}
	orig, err := LoadSnapshot(a.originalPath())
	if err != nil {
		return res, err
	}
	if orig == nil {
		return res, ErrNotProvisioned
	}
	st, err := a.loadState()
	if err != nil {
		return res, err
	}
	now := a.o.Now()
	cur, err := TakeSnapshot(a.o.Paths, now)
	if err != nil {
		return res, err
	}
	var written map[string]string
	if st != nil {
		written = st.Written
	}
	if written == nil {
		written = legacyWritten(orig, cur)
	}
	target, notes, err := revertTarget(orig, cur, written)
	if err != nil {
		return res, err
	}
	srv := originalServer{dockerdServer: dockerdServer{a: a}, orig: target}
	plan := &Plan{srv: srv, Restart: forceRestart}
	if err := srv.plan(plan, &hostConfig{cfg: cfg, ctx: ctx}); err != nil {
		return res, err
	}
	res.Files, res.Notes = plan.Files, append(append(res.Notes, notes...), plan.Notes...)
	res.Changed, res.Restarted = true, plan.Restart
	if err := a.change(ctx, cfg, plan, res, now); err != nil {
		return res, err
	}
	if a.daemonActive(ctx) {
		res.Notes = append(res.Notes, ProxyUnit+" keeps running, and does not provision this host again until `tlsdock provision` is run")
	}
	// The record first: a kill before the backups go leaves a host that
	// a second revert finds reverted already, never one the daemon
	// provisions again.
	if err := a.saveState(&State{RevertedAt: now, LastApply: Apply{Time: now, Result: "reverted", Changed: true, Notes: res.Notes}}); err != nil {
		return res, err
	}
	for _, p := range []string{a.journalPath(), a.originalPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, err
		}
		a.o.Step("remove " + p)
	}
	for _, n := range notes {
		a.o.Logger.Info(n)
	}
	a.o.Logger.Info("reverted", "unit", systemd.DockerUnit, "restarted", plan.Restart)
	return res, nil
}

// daemonActive reports whether tlsdock.service (the daemon) is active.
func (a *Agent) daemonActive(ctx context.Context) bool {
	if a.o.Systemd == nil {
		return false
	}
	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := a.o.Systemd.Unit(uctx, ProxyUnit)
	return err == nil && (info.ActiveState == "active" || info.ActiveState == "activating" || info.ActiveState == "reloading")
}

// originalServer is revert's target: dockerd serving as it did before the
// first provision, from the original snapshot. It serves (and undoes) like
// dockerdServer: tlsdock.service stops when its files go, docker.service
// restarts when the plan says so.
type originalServer struct {
	dockerdServer
	orig *Snapshot
}

// plan makes the original snapshot the target (p.restore) and lists the
// files that change. dockerd restarts when one of its own files changes,
// or when the certificates change and its files name them; otherwise it
// keeps running, and its containers with it. When it restarts:
//   - with cfg.LiveRestore, the restored daemon.json keeps "live-restore":
//     true, and a running dockerd without live-restore gets it first
//     (p.LiveRestoreFirst: SIGHUP, as provision does), since only a
//     dockerd that has it when it stops leaves its containers running;
//   - without, the notes say plainly whether the restart stops containers.
func (s originalServer) plan(p *Plan, h *hostConfig) error {
	cfg := h.cfg
	cur, err := TakeSnapshot(s.a.o.Paths, s.a.o.Now())
	if err != nil {
		return err
	}
	forced := p.Restart
	// dockerd serves the installed certificates when its files name them
	// (not in proxy mode, where the proxy does).
	servesCerts := false
	for _, hp := range dockerdPaths {
		servesCerts = servesCerts || bytes.Contains(cur.File(hp).Content, []byte(SSLDir+"/"))
	}
	target := *s.orig
	target.Files = append([]FileState(nil), s.orig.Files...)
	s.diff(p, cur, &target)
	restarts := func() bool {
		certs := p.changes(SSLDir+"/"+certstore.CAFile, SSLDir+"/"+certstore.CertFile, SSLDir+"/"+certstore.KeyFile)
		return forced || p.changes(dockerdPaths...) || certs && servesCerts
	}
	p.Restart = restarts()
	if p.Restart && cfg.LiveRestore {
		if err := keepLiveRestore(&target); err != nil {
			return err
		}
		// The only difference may have been live-restore itself.
		s.diff(p, cur, &target)
		p.Restart = restarts()
	}
	p.restore = &target
	if p.Restart {
		if err := s.preflight(h, &target); err != nil {
			return err
		}
	}
	if err := s.planContainers(p, h, &target); err != nil {
		return err
	}
	if p.removes(ProxyDropInPath) {
		p.note("stopped " + ProxyUnit + ": proxy mode is reverted")
	}
	return nil
}

// preflight refuses a revert that restarts dockerd onto target when docker
// cannot start on this host (agent/preflight.go): the restart would fail,
// and so would its rollback's, leaving docker down. Nothing changes, and
// once the host is repaired the same revert goes through. A revert that
// leaves dockerd running does not depend on it and goes ahead.
func (s originalServer) preflight(h *hostConfig, target *Snapshot) error {
	ctx := h.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	u, err := s.a.o.Systemd.Unit(ctx, systemd.DockerUnit)
	if err != nil {
		return fmt.Errorf("asking systemd about %s (waited at most --timeout %v): %w: check that systemd answers (systemctl status)", systemd.DockerUnit, h.cfg.Timeout, err)
	}
	if err := preflightUnit(u); err != nil {
		return err
	}
	// The unit as the revert leaves it: without tlsdock's drop-in, which
	// the original snapshot never has.
	svc, err := systemd.ReadService(s.a.o.Paths.Root, u.FragmentPath, s.a.dropIns(u), DropInPath)
	if err != nil {
		return &InputError{Field: systemd.DockerUnit, Err: err}
	}
	if svc.ExecStart == nil {
		return &InputError{Field: u.FragmentPath, Err: errors.New("docker.service has no ExecStart: repair the docker package")}
	}
	doc, err := daemonjson.Parse([]byte(orWord(string(target.File(DaemonJSONPath).Content), "{}")))
	if err != nil {
		doc, _ = daemonjson.Parse([]byte("{}"))
	}
	return s.a.preflightStart(ctx, svc, doc)
}

// diff lists in p.Files the files that restoring target changes.
func (originalServer) diff(p *Plan, cur, target *Snapshot) {
	p.Files = nil
	for _, f := range target.Files {
		c := cur.File(f.Path)
		if c.Exists != f.Exists || !bytes.Equal(c.Content, f.Content) {
			action := "update"
			if !f.Exists {
				action = "delete"
			} else if !c.Exists {
				action = "create"
			}
			p.Files = append(p.Files, FileChange{Path: f.Path, Action: action})
		}
	}
}

// planContainers decides what a revert's restart does to the running
// containers: it asks the running dockerd whether it has live-restore
// (and is in a swarm, which does not allow it), turns it on first when
// cfg.LiveRestore asks to keep containers, and says which it is.
func (s originalServer) planContainers(p *Plan, h *hostConfig, target *Snapshot) error {
	if !p.Restart {
		p.note("dockerd keeps running, and its containers with it: its own files are as they were before provision")
		return nil
	}
	ctx := h.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	unit, err := s.a.o.Systemd.Unit(ctx, systemd.DockerUnit)
	if err != nil {
		return fmt.Errorf("asking systemd about %s (waited at most --timeout %v): %w: check that systemd answers (systemctl status)", systemd.DockerUnit, h.cfg.Timeout, err)
	}
	p.DockerActive = unit.ActiveState == "active"
	var info DockerInfo
	if p.DockerActive {
		ictx, icancel := context.WithTimeout(ctx, localAPIWait)
		info, err = s.a.o.Docker.Info(ictx)
		icancel()
		if err != nil {
			s.a.o.Logger.Warn("dockerd's local API did not answer; assuming no live-restore", "err", err)
		}
	}
	restored := string(target.File(DaemonJSONPath).Content)
	restoredHasIt := false
	if doc, err := daemonjson.Parse([]byte(orWord(restored, "{}"))); err == nil {
		restoredHasIt, _, _ = doc.Bool("live-restore")
	}
	after := "the restored dockerd runs without live-restore, as before provision"
	if restoredHasIt {
		after = "the restored dockerd keeps \"live-restore\": true"
	}
	switch {
	case !p.DockerActive:
		p.note("dockerd starts as it was before provision (it is not running now)")
	case info.LiveRestoreEnabled:
		p.note("dockerd restarts as it was before provision; running containers survive (the running dockerd has live-restore on); %s", after)
	case info.SwarmActive():
		p.note("warning: dockerd restarts as it was before provision, and this node is in swarm mode, which does not allow live-restore: the restart stops every running container")
	case h.cfg.LiveRestore:
		doc, _, err := daemonjson.Load(s.a.o.Paths.DaemonJSON())
		if err != nil {
			return &InputError{Field: DaemonJSONPath, Err: err}
		}
		if err := daemonjson.SetLiveRestore(doc, true); err != nil {
			return err
		}
		p.LiveRestoreFirst, p.liveRestoreDoc = true, doc.Render()
		p.note("live-restore: turning it on and reloading dockerd first, so running containers survive the restart; %s", after)
	default:
		p.note("dockerd restarts as it was before provision, and the running dockerd has no live-restore: the restart stops every running container (pass --keep-live-restore to keep them running)")
	}
	return nil
}

// keepLiveRestore sets "live-restore": true in the snapshot's daemon.json
// (creating one when there was none).
func keepLiveRestore(s *Snapshot) error {
	for i, f := range s.Files {
		if f.Path != DaemonJSONPath {
			continue
		}
		content := f.Content
		if !f.Exists {
			content = []byte("{}")
		}
		doc, err := daemonjson.Parse(content)
		if err != nil {
			return &InputError{Field: DaemonJSONPath, Err: err}
		}
		if on, _, _ := doc.Bool("live-restore"); on {
			return nil
		}
		if err := daemonjson.SetLiveRestore(doc, true); err != nil {
			return err
		}
		if !f.Exists {
			f.Exists, f.Mode, f.UID, f.GID = true, 0o644, 0, 0
		}
		f.Content = doc.Render()
		s.Files[i] = f
		return nil
	}
	return nil
}
