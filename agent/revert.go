package agent

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// ErrNotProvisioned is returned by Revert on a host tlsdock never changed.
var ErrNotProvisioned = errors.New("tlsdock has not provisioned this host: nothing to revert")

// Revert restores the host exactly as it was before the first provision
// (daemon.json, tlsdock's drop-in, /etc/docker/ssl), restarts docker and
// checks that the unix socket answers. On failure it goes back to the
// provisioned state.
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
	if _, err := a.recoverJournal(); err != nil {
		return res, err
	}
	orig, err := LoadSnapshot(a.originalPath())
	if err != nil {
		return res, err
	}
	if orig == nil {
		return res, ErrNotProvisioned
	}
	now := a.o.Now()
	snap, err := TakeSnapshot(a.o.Paths, now)
	if err != nil {
		return res, err
	}
	if err := snap.Save(a.journalPath()); err != nil {
		return res, err
	}
	for _, f := range orig.Files {
		cur := snap.File(f.Path)
		if cur.Exists != f.Exists || string(cur.Content) != string(f.Content) {
			action := "update"
			if !f.Exists {
				action = "delete"
			} else if !cur.Exists {
				action = "create"
			}
			res.Files = append(res.Files, FileChange{Path: f.Path, Action: action})
		}
	}
	if err := a.releaseBeforeRestore(ctx, orig, cfg.Timeout); err != nil {
		return res, a.rollback(ctx, snap, res, err, true)
	}
	if err := orig.Restore(a.o.Paths); err != nil {
		return res, a.rollback(ctx, snap, res, err, true)
	}
	if cfg.LiveRestore {
		if err := a.keepLiveRestore(); err != nil {
			return res, a.rollback(ctx, snap, res, err, false)
		}
		res.Notes = append(res.Notes, "kept \"live-restore\": true in daemon.json, so running containers survive")
	} else {
		res.Notes = append(res.Notes, "dockerd restarts as it was before provision; without live-restore it stops running containers")
	}
	res.Changed, res.Restarted = true, true
	rollback := a.rollback
	if snap.File(ProxyDropInPath).Exists {
		// Proxy mode: the proxy gives up the TCP listeners first, and a
		// rollback from here on starts it again.
		if err := a.stopProxyUnit(ctx, cfg); err != nil {
			return res, a.rollback(ctx, snap, res, err, false)
		}
		rollback = a.rollbackProxy
		res.Notes = append(res.Notes, "stopped "+ProxyUnit+": proxy mode is reverted")
	}
	if err := a.restart(ctx, cfg, true); err != nil {
		return res, rollback(ctx, snap, res, err, true)
	}
	if err := a.o.Docker.Ping(ctx); err != nil {
		return res, rollback(ctx, snap, res, fmt.Errorf("after revert: %w", err), true)
	}
	res.Checks = []Check{{Endpoint: DockerSocket, Name: "the local socket answers", OK: true}}
	for _, p := range []string{a.journalPath(), a.originalPath(), a.statePath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, err
		}
	}
	a.o.Logger.Info("reverted", "unit", systemd.DockerUnit)
	return res, nil
}

func (a *Agent) keepLiveRestore() error {
	doc, _, err := daemonjson.Load(a.o.Paths.DaemonJSON())
	if err != nil {
		return err
	}
	if on, _, _ := doc.Bool("live-restore"); on {
		return nil
	}
	if err := daemonjson.SetLiveRestore(doc, true); err != nil {
		return err
	}
	return a.writeFile(DaemonJSONPath, doc.Render(), 0o644)
}
