package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/systemd"
)

// Result is what a provision did, for people and for configuration
// management (--json).
type Result struct {
	Changed    bool     `json:"changed"`
	DryRun     bool     `json:"dry_run,omitempty"`
	Restarted  bool     `json:"restarted"`
	RolledBack bool     `json:"rolled_back,omitempty"`
	Mode       Mode     `json:"mode"`
	Hosts      []string `json:"hosts"`
	// TCPHeldBy is who holds the TCP listeners in daemon-json mode:
	// docker.socket or dockerd.
	TCPHeldBy string `json:"tcp_held_by,omitempty"`
	// SocketRestarted: docker.socket restarts on new listeners too.
	SocketRestarted bool         `json:"socket_restarted,omitempty"`
	Serial          string       `json:"serial,omitempty"`
	NotAfter        time.Time    `json:"not_after,omitzero"`
	Files           []FileChange `json:"files,omitempty"`
	Certs           string       `json:"certificates,omitempty"` // install, unchanged
	Notes           []string     `json:"notes,omitempty"`
	Warnings        []string     `json:"warnings,omitempty"`
	Checks          []Check      `json:"checks,omitempty"`
	ClientOut       string       `json:"client_out,omitempty"`
	Error           string       `json:"error,omitempty"`
	// Journal holds dockerd's last journal lines after a failed restart.
	Journal string `json:"journal,omitempty"`
	// Fingerprint is that of the set served (certstore.Set.Fingerprint).
	Fingerprint string `json:"fingerprint,omitempty"`
	// served is the set the result describes, for the rotation loop.
	served *certstore.Set
}

// ErrRolledBack marks a failure after which the host was put back as it
// was, with docker running.
var ErrRolledBack = errors.New("rolled back")

// ErrRollbackFailed marks a failure that the rollback could not undo: the
// host needs attention.
var ErrRollbackFailed = errors.New("rollback failed")

// lockPath serialises provision, run and revert on one host.
const lockPath = "/run/tlsdock/lock"

// errLockHeld: another tlsdock holds the lock.
var errLockHeld = errors.New("lock held")

func (a *Agent) lock() (func(), error) {
	path := a.o.Paths.Abs(lockPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", lockPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil && !a.waitLock(f) {
		f.Close()
		return nil, fmt.Errorf("another tlsdock is applying changes (lock %s is held): wait for it to finish: %w", lockPath, errLockHeld)
	}
	return func() { f.Close() }, nil
}

// Provision runs the whole sequence for cfg. With cfg.DryRun it stops after
// the plan. The result is filled in even when an error is returned.
func (a *Agent) Provision(ctx context.Context, cfg Config) (*Result, error) {
	res := &Result{Mode: cfg.Mode, DryRun: cfg.DryRun}
	if cfg.DryRun {
		plan, err := a.Plan(ctx, cfg)
		if err != nil {
			res.Error = err.Error()
			return res, err
		}
		a.describe(res, plan)
		res.Changed = plan.Changed()
		return res, nil
	}
	defer a.tellDaemon(ctx, cfg, res) // once the lock is released
	unlock, err := a.lock()
	if err != nil {
		res.Error = err.Error()
		return res, err
	}
	defer unlock()
	ctx, cancel := withBudget(ctx, cfg)
	defer cancel()
	a.removeTemps()
	forceRestart, _, _, recovered, err := a.recoverJournal(ctx)
	res.Notes = append(res.Notes, recovered...)
	if err != nil {
		res.Error = err.Error()
		return res, err
	}
	if cfg.daemon {
		if err := a.refuseReverted(); err != nil {
			res.Error = err.Error()
			return res, err
		}
	} else if err := a.clearReverted(); err != nil {
		res.Error = err.Error()
		return res, err
	}
	plan, err := a.Plan(ctx, cfg)
	if err != nil {
		res.Error = err.Error()
		return res, err
	}
	a.describe(res, plan)
	if forceRestart {
		// What docker.socket listens on after an interrupted apply is
		// unknown: a drop-in the apply wrote and loaded may never have
		// been listened on.
		plan.Restart, plan.socketRestart, plan.forced = true, plan.socketRestart || plan.socket.Held, true
		res.Restarted, res.SocketRestarted = true, res.SocketRestarted || plan.socketRestart
		res.Notes = append(res.Notes, "an earlier run was interrupted: its changes were undone and docker is restarted")
	}
	err = a.apply(ctx, cfg, plan, res)
	if err != nil {
		res.Error = err.Error()
	}
	return res, err
}

func (a *Agent) describe(res *Result, plan *Plan) {
	res.Hosts = plan.Hosts
	res.TCPHeldBy = plan.TCPHeldBy
	res.SocketRestarted = plan.socketRestart || plan.socketGoes()
	res.Files = plan.Files
	res.Notes = append(res.Notes, plan.Notes...)
	res.Warnings = append(res.Warnings, plan.Warnings...)
	res.Restarted = plan.Restart
	if plan.Set != nil {
		res.Serial, res.Fingerprint, res.served = plan.Set.Serial(), plan.Set.Fingerprint(), plan.Set
		res.NotAfter = plan.Set.Cert.NotAfter
	}
	res.Certs = "unchanged"
	if plan.Install {
		res.Certs = "install"
	}
}

// apply runs the plan: it is a no-op when nothing changed and the endpoint
// passes verification; otherwise it changes the host and commits.
func (a *Agent) apply(ctx context.Context, cfg Config, plan *Plan, res *Result) error {
	now := a.o.Now()
	if !plan.Changed() && !plan.Restart {
		checks, err := a.verify(ctx, plan)
		res.Checks = checks
		if err == nil {
			res.Changed, res.Restarted = false, false
			if err := a.writeClientBundle(cfg, plan, res, now); err != nil {
				return err
			}
			a.recordApplyAnd(Apply{Time: now, Result: "unchanged", Serial: res.Serial, Warnings: plan.Warnings}, func(st *State) {
				st.Source = sourceRecord(cfg, st, now)
			})
			a.o.Logger.Info("no changes", "serial", res.Serial)
			return nil
		}
		res.Notes = append(res.Notes, plan.srv.again(plan)+err.Error())
	}
	res.Changed, res.Restarted = true, plan.Restart
	if err := a.change(ctx, cfg, plan, res, now); err != nil {
		return err
	}
	return a.commit(cfg, plan, res, now)
}

// change is the sequence between the plan and the commit, one step after
// the other: back up → save a new local CA → turn live-restore on first →
// write → serve → verify. A failure after the backup rolls back. The steps
// end rollbackReserve before the command's deadline (ctx's), so that a
// step that hangs leaves the rollback time to put the host back.
func (a *Agent) change(ctx context.Context, cfg Config, plan *Plan, res *Result, now time.Time) error {
	snap, err := a.backUp(plan, now)
	if err != nil {
		return err
	}
	var done served
	whole := ctx
	fail := func(err error) error { return a.rollback(whole, cfg, plan, snap, res, err, &done) }
	ctx, cancel := context.WithDeadline(ctx, commandEnd(ctx, cfg).Add(-rollbackReserve(cfg)))
	defer cancel()
	if plan.NewCA != nil {
		if err := plan.NewCA.Save(a.o.Paths.CA()); err != nil {
			return fail(fmt.Errorf("saving the local CA: %w", err))
		}
		a.o.Step("save the local CA in " + CADir)
	}
	if plan.LiveRestoreFirst {
		if err := a.enableLiveRestore(ctx, plan); err != nil {
			return fail(err)
		}
		// live-restore is a step of its own: a rollback of the TLS change
		// keeps it, or the restart back would stop every container.
		if snap, err = TakeSnapshot(a.o.Paths, now); err != nil {
			return err
		}
		snap.Targets = planTargets(plan)
		if err := snap.Save(a.journalPath()); err != nil {
			return err
		}
		a.o.Step("write " + StateDir + "/journal.json")
		a.o.Pause("live-restore")
	}
	if err := a.write(ctx, cfg, plan, &done); err != nil {
		return fail(err)
	}
	a.o.Pause("written")
	if err := plan.srv.serve(ctx, cfg, plan, &done); err != nil {
		return fail(err)
	}
	a.o.Pause("restarted")
	checks, err := a.verify(ctx, plan)
	res.Checks = checks
	if err != nil {
		return fail(err)
	}
	return nil
}

// backUp saves the rollback journal, with what plan may write (its
// Targets), and the original snapshot (what revert restores) before the
// first change.
func (a *Agent) backUp(plan *Plan, now time.Time) (*Snapshot, error) {
	snap, err := TakeSnapshot(a.o.Paths, now)
	if err != nil {
		return nil, err
	}
	if orig, err := LoadSnapshot(a.originalPath()); err != nil {
		return nil, err
	} else if orig == nil {
		if err := snap.Save(a.originalPath()); err != nil {
			return nil, err
		}
		a.o.Step("write " + StateDir + "/original.json")
	}
	snap.Targets = planTargets(plan)
	if err := snap.Save(a.journalPath()); err != nil {
		return nil, err
	}
	a.o.Step("write " + StateDir + "/journal.json")
	a.o.Pause("backed-up")
	return snap, nil
}

// commit ends a provision: the journal goes, the state records what is
// served and what tlsdock wrote (State.Written), and the client bundle is
// written.
func (a *Agent) commit(cfg Config, plan *Plan, res *Result, now time.Time) error {
	written, err := a.written(plan)
	if err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	if err := os.Remove(a.journalPath()); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	a.o.Step("remove " + StateDir + "/journal.json")
	prev, err := a.loadState()
	if err != nil {
		prev = nil // a damaged state is rebuilt: the record of the source goes with it
	}
	st := &State{Source: sourceRecord(cfg, prev, now), Mode: plan.Mode, Hosts: plan.Hosts, TCPHosts: plan.TCPHosts, TCPHeldBy: plan.TCPHeldBy, Fingerprint: plan.Set.Fingerprint(), Serial: plan.Set.Serial(), NotAfter: plan.Set.Cert.NotAfter,
		LastApply: Apply{Time: now, Result: "ok", Changed: true, Serial: plan.Set.Serial(), Warnings: plan.Warnings}, Written: written}
	if err := a.saveState(st); err != nil {
		return err
	}
	a.o.Step("write " + StateDir + "/state.json")
	a.o.Logger.Info("applied", "serial", st.Serial, "restarted", plan.Restart, "hosts", strings.Join(plan.Hosts, ","))
	return a.writeClientBundle(cfg, plan, res, now)
}

// enableLiveRestore turns live-restore on in daemon.json and has dockerd
// reload it (SIGHUP through the unit's ExecReload), before any TLS change:
// only a dockerd that already runs with live-restore keeps containers alive
// across the restart.
func (a *Agent) enableLiveRestore(ctx context.Context, plan *Plan) error {
	if err := a.writeFile(DaemonJSONPath, plan.liveRestoreDoc, 0o644); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, a.o.LiveRestoreWait)
	defer cancel()
	if err := a.o.Systemd.Reload(rctx, systemd.DockerUnit); err != nil {
		return fmt.Errorf("reloading dockerd to turn on live-restore: %w", err)
	}
	for {
		info, err := a.o.Docker.Info(rctx)
		if err == nil && info.LiveRestoreEnabled {
			a.o.Logger.Info("live-restore is on")
			return nil
		}
		select {
		case <-rctx.Done():
			return fmt.Errorf("dockerd did not turn on live-restore after a reload (last error: %v): check `journalctl -u docker`", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// write puts the target in place: the certificate set, then the planned
// files in writeOrder, those marked load loaded (daemon-reload) as soon as
// they are written; or, for revert, the original snapshot as a whole.
//
// The order keeps docker startable if tlsdock is killed at any point:
// dockerd refuses "hosts" in daemon.json while the loaded unit passes -H.
// In daemon-json mode the drop-in (ExecStart without -H) is written and
// loaded before daemon.json gets "hosts"; in dropin mode daemon.json
// (losing "hosts") is written before the drop-in (adding -H), which is
// loaded at the restart. done.loaded records that systemd loaded (or was
// asked to load) a new file.
func (a *Agent) write(ctx context.Context, cfg Config, plan *Plan, done *served) error {
	if plan.restore != nil {
		if err := a.releaseBeforeRestore(ctx, plan.restore, cfg.Timeout); err != nil {
			return err
		}
		return plan.restore.Restore(a.o.Paths)
	}
	if plan.Install {
		if err := os.MkdirAll(filepath.Dir(a.o.Paths.SSL()), 0o755); err != nil {
			return err
		}
		if _, err := (certstore.Store{Dir: a.o.Paths.SSL()}).Install(plan.Set); err != nil {
			return fmt.Errorf("installing certificates in %s: %w", SSLDir, err)
		}
		a.o.Step("install the certificate set in " + SSLDir)
	}
	a.o.Pause("certs-installed")
	// docker.socket gives up tlsdock's listeners first. Its reload
	// does not count: the unit files written below still need one.
	if plan.socketGoes() {
		if err := a.releaseSocket(ctx, cfg.Timeout); err != nil {
			return err
		}
	}
	for _, f := range writeOrder(plan) {
		if f.Action == "delete" {
			if err := os.Remove(a.o.Paths.Abs(f.Path)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", f.Path, err)
			}
			a.o.Step("remove " + f.Path)
		} else if err := a.writeFile(f.Path, f.new, f.mode); err != nil {
			return err
		}
		// A unit file written after a load is loaded too: the serve step
		// reloads only when nothing was loaded yet.
		if f.load || done.loaded && contains(unitPaths, f.Path) {
			done.loaded = true
			rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			err := a.o.Systemd.DaemonReload(rctx)
			cancel()
			if err != nil {
				return fmt.Errorf("loading %s (systemd daemon-reload): %w", f.Path, err)
			}
		}
	}
	return nil
}

func (a *Agent) writeFile(hostPath string, data []byte, mode os.FileMode) error {
	abs := a.o.Paths.Abs(hostPath)
	if _, err := os.Stat(filepath.Dir(abs)); err != nil {
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(hostPath), err)
		}
		a.o.Step("mkdir " + filepath.Dir(hostPath))
	}
	if err := certstore.WriteFileAtomic(abs, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", hostPath, err)
	}
	a.o.Step("write " + hostPath)
	return nil
}

// restart reloads systemd (unless reload is false: the unit files are
// already loaded) and restarts docker.service, clearing its start limit
// first.
func (a *Agent) restart(ctx context.Context, cfg Config, reload bool) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if reload {
		if err := a.o.Systemd.DaemonReload(ctx); err != nil {
			return err
		}
	}
	if err := a.o.Systemd.ResetFailed(ctx, systemd.DockerUnit); err != nil {
		return err
	}
	if err := a.o.Systemd.Restart(ctx, systemd.DockerUnit); err != nil {
		return fmt.Errorf("restarting docker: %w", err)
	}
	return nil
}

// verify probes every TLS listener of the plan.
func (a *Agent) verify(ctx context.Context, plan *Plan) ([]Check, error) {
	roots := x509.NewCertPool()
	var expect *x509.Certificate
	if plan.Set != nil { // revert serves no TLS listener of tlsdock's
		roots, expect = plan.Set.ServerRoots(serverRoots(a.o.SystemRoots, a.o.Logger)), plan.Set.Cert
	}
	var client *tls.Certificate
	if plan.CA != nil {
		certPEM, keyPEM, err := plan.CA.Issue(certstore.IssueRequest{
			CommonName: "tlsdock-probe", KeyType: certstore.ECDSAP256, Now: a.o.Now(), Validity: ProbeValidity,
		}, a.o.Rand)
		if err != nil {
			return nil, fmt.Errorf("issuing the probe's client certificate: %w", err)
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, err
		}
		client = &c
	} else if plan.ProbeClient != nil {
		client = plan.ProbeClient
	}
	var all []Check
	var errs []error
	for _, l := range plan.Listeners {
		checks, err := a.o.Verifier.Verify(ctx, Probe{Addr: l.ProbeAddr(), Roots: roots, Expect: expect, Client: client, Wait: a.o.ProbeWait})
		all = append(all, checks...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	all, errs = a.verifyDockerd(ctx, plan, all, errs)
	return all, errors.Join(errs...)
}

// withBudget gives a command its one deadline: --timeout from now (or
// ctx's own, when that is earlier). The plan, every step and the rollback
// share it, so the command ends within --timeout, its rollback included.
func withBudget(ctx context.Context, cfg Config) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, cfg.Timeout)
}

// commandEnd is the command's deadline: ctx's, or --timeout from now for a
// sequence run without a budget.
func commandEnd(ctx context.Context, cfg Config) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(cfg.Timeout)
}

// rollbackReserve is the share of --timeout that the steps leave to a
// rollback: half. A rollback restarts the same units as the step that
// failed, often for the same reason (a docker.service slow to start, a
// containerd that comes back late), so it gets as long as the steps had:
// a restart that hangs until the steps' deadline still leaves the rollback
// time to restore the files, queue the restart back and wait for it. A
// step that fails early leaves the rollback the rest of the budget too.
func rollbackReserve(cfg Config) time.Duration {
	return cfg.Timeout / 2
}

// rollback restores the snapshot and has the plan's server put back into
// service what its serve step changed (done): only a unit that was
// restarted or stopped is restarted. It runs even when ctx is cancelled,
// until the command's deadline (commandEnd); when that comes first, the
// error says what systemd is still doing and where the backup is.
func (a *Agent) rollback(ctx context.Context, cfg Config, plan *Plan, snap *Snapshot, res *Result, cause error, done *served) error {
	a.o.Logger.Error("apply failed; rolling back", "err", cause)
	rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), commandEnd(ctx, cfg))
	defer cancel()
	if done.touched(systemd.DockerUnit) {
		jctx, cancel := context.WithTimeout(rctx, 5*time.Second)
		res.Journal = a.o.Journal(jctx, systemd.DockerUnit, 20)
		cancel()
		noteSocketFailure(res, cause)
	}
	restored := false
	failed := func(err error) error {
		a.recordApply(Apply{Time: a.o.Now(), Result: "failed", Error: cause.Error() + "; rollback: " + err.Error()})
		if rctx.Err() != nil {
			return fmt.Errorf("%w (%w: --timeout %v ran out: %v; %s; backup kept in %s)", cause, ErrRollbackFailed, cfg.Timeout, err, a.pending(done, restored), StateDir+"/journal.json")
		}
		return fmt.Errorf("%w (%w: %v; backup kept in %s)", cause, ErrRollbackFailed, err, StateDir+"/journal.json")
	}
	// Restoring docker.socket's drop-in restarts docker through
	// docker.socket; removing it releases the listeners first.
	if done.socketBack = a.socketRestored(snap); done.socketBack && !done.touched(systemd.DockerUnit) {
		done.touch(systemd.DockerUnit)
	}
	if err := a.releaseBeforeRestore(rctx, snap, timeUntil(rctx)); err != nil {
		return failed(err)
	}
	if err := snap.Restore(a.o.Paths); err != nil {
		return failed(err)
	}
	restored = true
	var notServed notServedError
	uerr := plan.srv.undo(rctx, snap, done, res)
	if uerr != nil && !errors.As(uerr, &notServed) {
		return failed(uerr)
	}
	if uerr == nil && done.loaded && len(done.units) == 0 {
		// systemd loaded the new files, and nothing restarted: load the
		// restored ones.
		if err := a.o.Systemd.DaemonReload(rctx); err != nil {
			res.Notes = append(res.Notes, "run `systemctl daemon-reload`: systemd still has tlsdock's drop-in loaded ("+err.Error()+")")
		}
	}
	if err := os.Remove(a.journalPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return failed(err)
	}
	a.o.Step("remove " + StateDir + "/journal.json")
	if uerr != nil {
		return fmt.Errorf("%w (%w: %v)", cause, ErrRollbackFailed, uerr)
	}
	res.RolledBack = true
	a.recordApply(Apply{Time: a.o.Now(), Result: "rolled-back", Changed: false, Error: cause.Error()})
	return fmt.Errorf("%w (%w: docker is active on its previous configuration)", cause, ErrRolledBack)
}

// pendingWait bounds the questions pending asks systemd once the budget
// is spent: the command still ends within a few seconds of --timeout.
const pendingWait = 2 * time.Second

// pending says, for a rollback that ran out of time, whether the files
// are restored and what each unit it puts back is doing now: a restart
// job that systemd queued runs on after tlsdock exits.
func (a *Agent) pending(done *served, restored bool) string {
	parts := []string{"the files are not restored yet (the next tlsdock provision or revert restores them)"}
	if restored {
		parts[0] = "the files are restored"
	}
	units := append([]string(nil), done.units...)
	if done.socketBack && !slices.Contains(units, systemd.SocketUnit) {
		units = append(units, systemd.SocketUnit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pendingWait)
	defer cancel()
	seen := map[string]bool{}
	for _, u := range units {
		if seen[u] {
			continue
		}
		seen[u] = true
		info, err := a.o.Systemd.Unit(ctx, u)
		if err != nil {
			parts = append(parts, fmt.Sprintf("systemd did not say what %s is doing (%v): check `systemctl status %s`", u, err, u))
			continue
		}
		switch info.ActiveState {
		case "activating", "reloading":
			parts = append(parts, fmt.Sprintf("%s is still %s: its restart job was queued and systemd carries it on after tlsdock exits; check `systemctl status %s`", u, info.ActiveState, u))
		case "deactivating":
			parts = append(parts, fmt.Sprintf("%s is still stopping: its restart job was queued; check `systemctl status %s`", u, u))
		case "active":
			parts = append(parts, u+" is active")
		default:
			parts = append(parts, fmt.Sprintf("%s is %s (%s): see `journalctl -u %s`, then `systemctl restart %s`", u, orWord(info.ActiveState, "unknown"), info.SubState, u, u))
		}
	}
	return strings.Join(parts, "; ")
}
