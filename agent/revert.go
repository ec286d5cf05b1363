package agent

import (
	"bytes"
	"context"
	"errors"
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
	a.removeTemps()
	forceRestart, _, _, recovered, err := a.recoverJournal()
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
	if err := srv.plan(plan, &hostConfig{cfg: cfg}); err != nil {
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

// plan makes the original snapshot the target (p.restore), keeping
// live-restore on when dockerd restarts with cfg.LiveRestore, and lists the
// files that change. dockerd restarts when one of its own files changes,
// or when the certificates change and its files name them.
func (s originalServer) plan(p *Plan, h *hostConfig) error {
	cfg := h.cfg
	cur, err := TakeSnapshot(s.a.o.Paths, s.a.o.Now())
	if err != nil {
		return err
	}
	for _, f := range s.orig.Files {
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
	// dockerd serves the installed certificates when its files name them
	// (not in proxy mode, where the proxy does).
	servesCerts := false
	for _, hp := range dockerdPaths {
		servesCerts = servesCerts || bytes.Contains(cur.File(hp).Content, []byte(SSLDir+"/"))
	}
	certs := p.changes(SSLDir+"/"+certstore.CAFile, SSLDir+"/"+certstore.CertFile, SSLDir+"/"+certstore.KeyFile)
	p.Restart = p.Restart || p.changes(dockerdPaths...) || certs && servesCerts
	target := *s.orig
	target.Files = append([]FileState(nil), s.orig.Files...)
	if p.Restart && cfg.LiveRestore {
		if err := keepLiveRestore(&target); err != nil {
			return err
		}
	}
	p.restore = &target
	switch {
	case p.Restart && cfg.LiveRestore:
		p.note("kept \"live-restore\": true in daemon.json, so running containers survive")
	case p.Restart:
		p.note("dockerd restarts as it was before provision; without live-restore it stops running containers")
	default:
		p.note("dockerd keeps running: its own files are as they were before provision")
	}
	if p.removes(ProxyDropInPath) {
		p.note("stopped " + ProxyUnit + ": proxy mode is reverted")
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
