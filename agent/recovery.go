package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// What is restored of a journal or of the original snapshot, and onto
// what. The rule is the same everywhere: tlsdock puts a file back only
// when it is in a state tlsdock itself left it in; anything else is the
// administrator's and is left as it is, with a note.

// digest is how tlsdock records a file's content: SHA-256, in hex.
func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// digest of a recorded file: "" when it is absent.
func (f FileState) digest() string {
	if !f.Exists {
		return ""
	}
	return digest(f.Content)
}

// sameContent reports whether two states of a file hold the same content
// (or are both absent).
func sameContent(a, b FileState) bool {
	return a.Exists == b.Exists && (!a.Exists || bytes.Equal(a.Content, b.Content))
}

// sslPaths are the installed set's stable paths, restored as one unit.
var sslPaths = []string{SSLDir + "/" + certstore.CAFile, SSLDir + "/" + certstore.CertFile, SSLDir + "/" + certstore.KeyFile}

// ownFiles are tlsdock's own drop-ins, which only tlsdock writes: revert
// always puts them back.
var ownFiles = []string{DropInPath, SocketDropInPath, ProxyDropInPath}

// tlsdockKeys are the daemon.json keys tlsdock sets.
var tlsdockKeys = append(append([]string{}, daemonjson.TLSKeys...), "hosts", "live-restore")

// planTargets are what applying plan may write (Snapshot.Targets): the
// planned files, live-restore's intermediate daemon.json, the removal of
// docker.socket's drop-in, the certificate set; for revert, the original
// snapshot's files.
func planTargets(plan *Plan) map[string][]string {
	t := map[string][]string{}
	add := func(path, d string) {
		if !slices.Contains(t[path], d) {
			t[path] = append(t[path], d)
		}
	}
	if plan.restore != nil {
		for _, f := range plan.restore.Files {
			add(f.Path, f.digest())
		}
		if plan.restore.keepSSL {
			for _, p := range sslPaths {
				delete(t, p)
			}
		}
		add(SocketDropInPath, plan.restore.File(SocketDropInPath).digest())
		return t
	}
	for _, f := range plan.Files {
		if f.Action == "delete" {
			add(f.Path, "")
		} else {
			add(f.Path, digest(f.new))
		}
	}
	if plan.LiveRestoreFirst {
		add(DaemonJSONPath, digest(plan.liveRestoreDoc))
	}
	if plan.socketGoes() {
		add(SocketDropInPath, "")
	}
	if plan.Install && plan.Set != nil {
		for i, b := range [][]byte{plan.Set.CAPEM, plan.Set.CertPEM, plan.Set.KeyPEM} {
			add(sslPaths[i], digest(b))
		}
	}
	return t
}

// plannedWrites are the last content plan writes to each path it writes
// ("" for a removal), for State.Written.
func plannedWrites(plan *Plan) map[string]string {
	w := map[string]string{}
	if plan.LiveRestoreFirst {
		w[DaemonJSONPath] = digest(plan.liveRestoreDoc)
	}
	if plan.socketGoes() {
		w[SocketDropInPath] = ""
	}
	for _, f := range plan.Files {
		if f.Action == "delete" {
			w[f.Path] = ""
		} else {
			w[f.Path] = digest(f.new)
		}
	}
	if plan.Install && plan.Set != nil {
		for i, b := range [][]byte{plan.Set.CAPEM, plan.Set.CertPEM, plan.Set.KeyPEM} {
			w[sslPaths[i]] = digest(b)
		}
	}
	return w
}

// onto returns the journal j as it may be restored onto the host as it is
// now (cur), the paths that restoring it changes, and notes. A file goes
// back to its state before the interrupted apply only when it is in a
// state that apply was writing (j.Targets); one that is in any other
// state was changed by someone else after the apply began, and is left as
// it is. The certificate set is one unit, and so are dockerd's files: if
// one of them is someone else's, the others are left as they are too (and
// the set, when dockerd's files name it and restoring would remove it). A
// journal of an older tlsdock, without Targets, is judged by
// legacyTlsdocks.
func (j *Snapshot) onto(cur *Snapshot) (target *Snapshot, restored, notes []string) {
	theirs := map[string]bool{}
	for _, f := range j.Files {
		if c := cur.File(f.Path); !sameContent(c, f) && !j.wrote(f.Path, c, f) {
			theirs[f.Path] = true
		}
	}
	sslTheirs := slices.ContainsFunc(sslPaths, func(p string) bool { return theirs[p] })
	dockerdTheirs := slices.ContainsFunc(dockerdPaths, func(p string) bool { return theirs[p] })
	namesSSL := slices.ContainsFunc(dockerdPaths, func(p string) bool { return bytes.Contains(cur.File(p).Content, []byte(SSLDir+"/")) })
	sslGoes := slices.ContainsFunc(sslPaths, func(p string) bool { return !j.File(p).Exists })
	sslFollows := !sslTheirs && dockerdTheirs && namesSSL && sslGoes
	t := *j
	t.Files = nil
	for _, f := range j.Files {
		c := cur.File(f.Path)
		switch {
		case theirs[f.Path]:
			t.Files = append(t.Files, c)
			notes = append(notes, fmt.Sprintf("left %s as it is: it changed after the interrupted apply began, not into what tlsdock was writing, so the change is someone else's", f.Path))
		case (sslTheirs || sslFollows) && slices.Contains(sslPaths, f.Path):
			t.Files = append(t.Files, c)
		case dockerdTheirs && slices.Contains(dockerdPaths, f.Path):
			// dockerd's files go together: its edited file next to
			// restored others could make a configuration dockerd
			// refuses (hosts both as a flag and in daemon.json).
			t.Files = append(t.Files, c)
			if !sameContent(c, f) {
				notes = append(notes, fmt.Sprintf("left %s as the interrupted apply wrote it, to match the edited file of dockerd's", f.Path))
			}
		default:
			t.Files = append(t.Files, f)
			if !sameContent(c, f) {
				restored = append(restored, f.Path)
			}
		}
	}
	switch {
	case sslTheirs:
		t.keepSSL = true
		notes = append(notes, "left the certificate set in "+SSLDir+" as it is: it is not the one tlsdock was installing")
	case sslFollows:
		t.keepSSL = true
		notes = append(notes, "left the certificate set in "+SSLDir+" as the interrupted apply installed it: dockerd's files, left as they are, name it")
	}
	return &t, restored, notes
}

// wrote reports whether c, the state of path now, is one the journal's
// apply was writing (pre is the state before it).
func (j *Snapshot) wrote(path string, c, pre FileState) bool {
	if j.Targets == nil {
		return legacyTlsdocks(path, c, pre)
	}
	return slices.Contains(j.Targets[path], c.digest())
}

// legacyTlsdocks judges a change from pre to c when tlsdock has no record
// of what it wrote (a journal or a state of an older tlsdock): daemon.json
// is tlsdock's when only the keys tlsdock sets differ, tlsdock.service
// when it carries the mark of a unit tlsdock wrote (or is gone); the files
// only tlsdock writes (its drop-ins, the certificate set) always are.
func legacyTlsdocks(path string, c, pre FileState) bool {
	switch path {
	case DaemonJSONPath:
		return c.Exists && onlyTlsdockKeysDiffer(pre, c)
	case ProxyUnitPath:
		return !c.Exists || bytes.HasPrefix(c.Content, []byte(proxyUnitMarker))
	}
	return true
}

// onlyTlsdockKeysDiffer reports whether two daemon.json contents (absent:
// {}) differ only in the keys tlsdock sets.
func onlyTlsdockKeysDiffer(a, b FileState) bool {
	parse := func(f FileState) *daemonjson.Doc {
		content := []byte("{}")
		if f.Exists {
			content = f.Content
		}
		doc, err := daemonjson.Parse(content)
		if err != nil {
			return nil
		}
		for _, k := range tlsdockKeys {
			doc.Delete(k)
		}
		return doc
	}
	da, db := parse(a), parse(b)
	return da != nil && db != nil && da.Equal(db)
}

// unknownWrite is State.Written's digest for a file tlsdock wrote with a
// content it did not record (an older tlsdock): it matches no content.
const unknownWrite = "unknown"

// legacyWritten is State.Written for a host an older tlsdock provisioned,
// which recorded nothing of its writes: every file that differs from the
// original snapshot and that legacyTlsdocks takes as tlsdock's; daemon.json,
// when other keys differ too, as written with an unknown content.
func legacyWritten(orig, cur *Snapshot) map[string]string {
	w := map[string]string{}
	for _, f := range orig.Files {
		c := cur.File(f.Path)
		switch {
		case sameContent(c, f):
		case legacyTlsdocks(f.Path, c, f):
			w[f.Path] = c.digest()
		case f.Path == DaemonJSONPath && c.Exists:
			w[f.Path] = unknownWrite
		}
	}
	return w
}

// revertTarget is what revert puts back of the original snapshot orig onto
// the host as it is (cur), given what tlsdock wrote (written, State.Written),
// and notes. A file whose content is what tlsdock last wrote there goes
// back to the original; a file tlsdock never wrote is left alone; one that
// changed since tlsdock wrote it is the administrator's and is kept, except
// daemon.json, whose keys tlsdock sets go back to the original (the rest
// of the administrator's edit stays), so that dockerd starts on the
// restored unit, and tlsdock's own drop-ins (ownFiles), which always go. The certificate set goes back as one unit, or not at all.
func revertTarget(orig, cur *Snapshot, written map[string]string) (*Snapshot, []string, error) {
	type fate int
	const (
		restore fate = iota
		untouched
		theirs
	)
	fates := map[string]fate{}
	var notes []string
	for _, f := range orig.Files {
		c := cur.File(f.Path)
		w, ok := written[f.Path]
		switch {
		case sameContent(c, f):
			fates[f.Path] = restore
		case f.Path == DaemonJSONPath && ok && c.Exists && !onlyTlsdockKeysDiffer(f, c):
			// Keys other than tlsdock's changed since the original
			// snapshot: an administrator's edit, even when tlsdock's
			// last write carried it (one a recovery kept, then
			// provisioned around). Only tlsdock's keys go back.
			fates[f.Path] = theirs
		case ok && c.digest() == w:
			fates[f.Path] = restore
		case slices.Contains(ownFiles, f.Path):
			// tlsdock's own drop-ins: their first line says that
			// revert removes them and that edits are overwritten.
			fates[f.Path] = restore
			notes = append(notes, fmt.Sprintf("put tlsdock's %s back as before provision although it changed since tlsdock wrote it: it is tlsdock's own drop-in, whose edits revert does not keep", f.Path))
		case !ok:
			fates[f.Path] = untouched
		default:
			fates[f.Path] = theirs
		}
	}
	keepSSL := slices.ContainsFunc(sslPaths, func(p string) bool { return fates[p] != restore })
	t := *orig
	t.Files = nil
	for _, f := range orig.Files {
		c := cur.File(f.Path)
		switch {
		case slices.Contains(sslPaths, f.Path) && keepSSL:
			t.Files = append(t.Files, c)
		case fates[f.Path] == restore:
			t.Files = append(t.Files, f)
		case fates[f.Path] == untouched:
			t.Files = append(t.Files, c)
			notes = append(notes, fmt.Sprintf("left %s as it is: tlsdock never wrote it", f.Path))
		case f.Path == DaemonJSONPath && c.Exists:
			merged, err := undoTlsdockKeys(f, c)
			if err != nil {
				return nil, nil, err
			}
			m := c
			m.Content = merged
			t.Files = append(t.Files, m)
			notes = append(notes, fmt.Sprintf("kept the changes made to %s since before provision; only the keys tlsdock sets (%s) are as before provision", DaemonJSONPath, strings.Join(tlsdockKeys, ", ")))
		default:
			t.Files = append(t.Files, c)
			notes = append(notes, fmt.Sprintf("kept %s as it is: it changed since tlsdock wrote it, so it is someone else's now", f.Path))
		}
	}
	if keepSSL {
		t.keepSSL = true
		if slices.ContainsFunc(sslPaths, func(p string) bool { return !sameContent(cur.File(p), orig.File(p)) }) {
			notes = append(notes, "kept the certificate set in "+SSLDir+" as it is: it is not the one tlsdock installed last")
		}
	}
	return &t, notes, nil
}

// undoTlsdockKeys is daemon.json as it is (c) with the keys tlsdock sets
// as they were in the original (o).
func undoTlsdockKeys(o, c FileState) ([]byte, error) {
	content := []byte("{}")
	if o.Exists {
		content = o.Content
	}
	od, err := daemonjson.Parse(content)
	if err != nil {
		return nil, fmt.Errorf("the backup of %s is damaged: %w", DaemonJSONPath, err)
	}
	cd, err := daemonjson.Parse(c.Content)
	if err != nil {
		return nil, &InputError{Field: DaemonJSONPath, Err: fmt.Errorf("%w: fix it, then run revert again", err)}
	}
	for _, k := range tlsdockKeys {
		if v, ok := od.Get(k); ok {
			if err := cd.Set(k, v); err != nil {
				return nil, err
			}
		} else {
			cd.Delete(k)
		}
	}
	return cd.Render(), nil
}

// recoverJournal undoes an apply that was interrupted (its journal is
// still there): the files it was writing go back to their state before
// it, and what changed otherwise since is left alone (Snapshot.onto). It
// reports whether there was a journal, what the undo restored and notes.
//
// Recovery undoes rather than finishes: the state before the apply is
// the one that was verified serving, while finishing needs the apply's
// inputs (a set, the settings), which the journal does not hold and which
// may have changed since. The next apply (the daemon's first step, or the
// provision at hand) then installs what the source holds now, verified.
// It is bounded by ctx, the command's budget.
func (a *Agent) recoverJournal(ctx context.Context) (found bool, target *Snapshot, restored, notes []string, err error) {
	j, err := LoadSnapshot(a.journalPath())
	if err != nil || j == nil {
		return false, nil, nil, nil, err
	}
	cur, err := TakeSnapshot(a.o.Paths, a.o.Now())
	if err != nil {
		return true, nil, nil, nil, fmt.Errorf("undoing an interrupted apply from %s: %w", StateDir+"/journal.json", err)
	}
	target, restored, notes = j.onto(cur)
	a.o.Logger.Warn("an earlier apply was interrupted; undoing it", "journal", a.journalPath(), "taken", j.Taken, "restoring", strings.Join(restored, ","), "targets_recorded", j.Targets != nil)
	for _, n := range notes {
		a.o.Logger.Warn(n, "journal", a.journalPath())
	}
	if err := a.releaseBeforeRestore(ctx, target, timeUntil(ctx)); err != nil {
		return true, nil, nil, nil, fmt.Errorf("undoing an interrupted apply from %s: %w", StateDir+"/journal.json", err)
	}
	if err := target.Restore(a.o.Paths); err != nil {
		return true, nil, nil, nil, fmt.Errorf("undoing an interrupted apply from %s: %w", StateDir+"/journal.json", err)
	}
	if err := os.Remove(a.journalPath()); err != nil {
		return true, target, restored, notes, err
	}
	a.o.Step("remove " + StateDir + "/journal.json")
	return true, target, restored, notes, nil
}

// Recover is what `tlsdock run` does before anything else: under the lock
// it removes tlsdock's leftover temporary files and undoes an apply that
// a kill interrupted (recoverJournal). When the undo changed dockerd's
// files, or the certificates they name, docker restarts on them and its
// local socket must answer. The result is recorded in state.json (last
// apply "recovered", or "failed") and logged. It returns nil, nil when
// there was nothing to undo, or when another tlsdock holds the lock (it
// recovers the journal itself, under the lock). It never waits for the
// lock.
func (a *Agent) Recover(ctx context.Context, cfg Config) (*Result, error) {
	o := a.o
	o.LockWait = 0
	unlock, err := (&Agent{o: o}).lock()
	if errors.Is(err, errLockHeld) {
		// A provision or a revert runs (in proxy mode, the one that
		// starts this daemon and waits for it): it recovers itself.
		a.o.Logger.Info("another tlsdock holds the lock; it undoes an interrupted apply itself", "lock", lockPath)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Bounded by --timeout, and not cut short by SIGTERM.
	ctx, cancel := withBudget(context.WithoutCancel(ctx), cfg)
	defer cancel()
	a.removeTemps()
	found, target, restored, notes, err := a.recoverJournal(ctx)
	if !found {
		return nil, err
	}
	now := a.o.Now()
	res := &Result{Mode: cfg.Mode, Changed: len(restored) > 0, RolledBack: true, Notes: notes}
	fail := func(err error) (*Result, error) {
		res.Error = err.Error()
		a.recordApply(Apply{Time: now, Result: "failed", Error: "undoing an interrupted apply: " + err.Error(), Notes: notes})
		a.o.Logger.Error("undoing an interrupted apply failed", "err", err)
		return res, err
	}
	if err != nil {
		return fail(err)
	}
	cur, err := TakeSnapshot(a.o.Paths, now)
	if err != nil {
		return fail(err)
	}
	servesCerts := slices.ContainsFunc(dockerdPaths, func(p string) bool { return bytes.Contains(cur.File(p).Content, []byte(SSLDir+"/")) })
	dockerd := slices.ContainsFunc(restored, func(p string) bool {
		return slices.Contains(dockerdPaths, p) || servesCerts && slices.Contains(sslPaths, p)
	})
	units := slices.ContainsFunc(restored, func(p string) bool { return slices.Contains(unitPaths, p) })
	switch {
	case dockerd:
		res.Restarted = true
		done := &served{socketBack: slices.Contains(restored, SocketDropInPath)}
		if err := a.dockerBack(ctx, target, done); err != nil {
			return fail(fmt.Errorf("restarting docker on the restored files: %w", err))
		}
	case units:
		if err := a.o.Systemd.DaemonReload(ctx); err != nil {
			return fail(fmt.Errorf("loading the restored unit files (systemd daemon-reload): %w", err))
		}
	}
	what := "an interrupted apply was undone: nothing it wrote was left"
	if len(restored) > 0 {
		what = "an interrupted apply was undone: restored " + strings.Join(restored, ", ")
		if res.Restarted {
			what += "; docker restarted on them"
		}
	}
	res.Notes = append([]string{what}, res.Notes...)
	a.recordApply(Apply{Time: now, Result: "recovered", Changed: len(restored) > 0, Notes: res.Notes})
	a.o.Logger.Info("recovered", "undone", true, "restored", strings.Join(restored, ","), "restarted", res.Restarted, "kept", len(notes))
	return res, nil
}

// removeTemps removes, best effort, the temporary files a killed tlsdock
// left in the directories it writes, and the set's half-written
// generations. The caller holds the lock.
func (a *Agent) removeTemps() {
	dirs := map[string][]string{
		"/etc/docker":               {filepath.Base(DaemonJSONPath)},
		filepath.Dir(DropInPath):    {filepath.Base(DropInPath)},
		systemd.SocketDropInDir:     {filepath.Base(SocketDropInPath)},
		filepath.Dir(ProxyUnitPath): {filepath.Base(ProxyUnitPath)},
		ProxyDropInDir:              {filepath.Base(ProxyDropInPath)},
		StateDir:                    {"state.json", "journal.json", "original.json"},
		CADir:                       {certstore.CACertFile, certstore.CAKeyFile, filepath.Base(LocalCRLPath)},
	}
	var removed []string
	var errs []error
	for dir, legacy := range dirs {
		r, err := certstore.RemoveTemps(a.o.Paths.Abs(dir), legacy...)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	r, err := certstore.Store{Dir: a.o.Paths.SSL()}.Cleanup()
	removed = append(removed, r...)
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range removed {
		a.o.Logger.Info("removed a leftover temporary file of an interrupted run", "path", p)
	}
	if err := errors.Join(errs...); err != nil {
		a.o.Logger.Warn("removing leftover temporary files", "err", err)
	}
}

// ErrReverted is the daemon's error on a host that `tlsdock revert` put
// back: the daemon provisions it again only after an explicit
// `tlsdock provision`.
var ErrReverted = errors.New("`tlsdock revert` put this host back")

// refuseReverted returns ErrReverted, as an InputError on state.json (the
// daemon retries it only when the source changes or on SIGHUP), when the
// state records a revert.
func (a *Agent) refuseReverted() error {
	st, err := a.loadState()
	if err != nil || st == nil || st.RevertedAt.IsZero() {
		return err
	}
	err = &InputError{Field: StateDir + "/state.json", Err: fmt.Errorf("%w at %s: tlsdock run does not provision it again until `tlsdock provision` is run", ErrReverted, st.RevertedAt.UTC().Format(time.RFC3339))}
	if st.LastError != err.Error() {
		st.LastError = err.Error()
		if serr := a.saveState(st); serr != nil {
			a.o.Logger.Warn("saving state", "err", serr)
		}
	}
	return err
}

// daemonApplier is the daemon's Applier: its provisions are marked as the
// daemon's (Config.daemon), which a reverted host refuses.
type daemonApplier struct{ Applier }

func (d daemonApplier) Provision(ctx context.Context, cfg Config) (*Result, error) {
	cfg.daemon = true
	return d.Applier.Provision(ctx, cfg)
}

// written is State.Written after plan: what the state recorded, or for a
// host an older tlsdock provisioned what legacyWritten makes of the
// journal (the host before this apply), updated with plan's writes.
func (a *Agent) written(plan *Plan) (map[string]string, error) {
	w := map[string]string{}
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	if st != nil && st.Written != nil {
		for p, d := range st.Written {
			w[p] = d
		}
	} else {
		orig, err := LoadSnapshot(a.originalPath())
		if err != nil {
			return nil, err
		}
		j, err := LoadSnapshot(a.journalPath())
		if err != nil {
			return nil, err
		}
		if orig != nil && j != nil {
			w = legacyWritten(orig, j)
		}
	}
	for p, d := range plannedWrites(plan) {
		w[p] = d
	}
	return w, nil
}

// clearReverted removes the record of a revert: an explicit provision
// lets the daemon provision again.
func (a *Agent) clearReverted() error {
	st, err := a.loadState()
	if err != nil || st == nil || st.RevertedAt.IsZero() {
		return err
	}
	st.RevertedAt = time.Time{}
	if strings.Contains(st.LastError, ErrReverted.Error()) {
		st.LastError = ""
	}
	return a.saveState(st)
}
