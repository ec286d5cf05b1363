package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
)

const operatorsJSON = `{"log-driver": "journald"}`

// liveRestoreJSON is operatorsJSON after live-restore's own step, which
// the TLS change's journal starts from (a rollback keeps live-restore).
const liveRestoreJSON = "{\n  \"log-driver\": \"journald\",\n  \"live-restore\": true\n}\n"

// crashAt makes the agent "die" at a pause point, as a SIGKILL there would.
func crashAt(step string) func(*Options) {
	return func(o *Options) {
		o.Pause = func(s string) {
			if s == step {
				panic("crash at " + s)
			}
		}
	}
}

// crashedProvision runs a provision of cfg that is killed at step, and
// checks that it left its journal.
func crashedProvision(t *testing.T, h *fakeHost, cfg Config, step string) {
	t.Helper()
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatalf("no crash at %s", step)
			}
		}()
		_, _ = h.agent(&fakeVerifier{}, crashAt(step)).Provision(context.Background(), cfg)
	}()
	if _, err := os.Stat(filepath.Join(h.root, StateDir, "journal.json")); err != nil {
		t.Fatalf("no journal after a crash at %s: %v", step, err)
	}
}

func certsCfg(dir string) Config {
	c := Defaults()
	c.Certs = dir
	return c
}

func installedSerial(t *testing.T, h *fakeHost) string {
	t.Helper()
	set, err := certstore.Store{Dir: filepath.Join(h.root, SSLDir)}.Load()
	if err != nil || set == nil {
		t.Fatalf("installed set: %v", err)
	}
	return set.Serial()
}

func loadTestState(t *testing.T, h *fakeHost) *State {
	t.Helper()
	st, err := h.agent(nil).loadState()
	if err != nil || st == nil {
		t.Fatalf("state: %v", err)
	}
	return st
}

// editDaemonJSON is the administrator's edit: one key more, by hand.
func editDaemonJSON(t *testing.T, h *fakeHost) string {
	t.Helper()
	doc, err := daemonjson.Parse([]byte(readFile(t, h.root, DaemonJSONPath)))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Set("debug", true); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.root, DaemonJSONPath, string(doc.Render()))
	return string(doc.Render())
}

func noJournal(t *testing.T, h *fakeHost) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(h.root, StateDir, "journal.json")); !os.IsNotExist(err) {
		t.Fatalf("journal.json is still there: %v", err)
	}
}

// TestRecoverUndoesAnInterruptedRotation: what `tlsdock run` does at
// start-up after it was killed mid-rotation. The rotation is undone (the
// set it was installing goes, docker restarts on the previous one), the
// journal goes, and state.json and the log say so.
func TestRecoverUndoesAnInterruptedRotation(t *testing.T) {
	for _, step := range []string{"backed-up", "certs-installed", "restarted"} {
		t.Run(step, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
			a := writeSet(t, h.root, "127.0.0.1")
			first := mustProvision(t, h.agent(&fakeVerifier{}), certsCfg(a))
			crashedProvision(t, h, certsCfg(writeSet(t, h.root, "127.0.0.1")), step)
			calls := len(h.Calls())

			var log bytes.Buffer
			ag := h.agent(&fakeVerifier{}, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
			res, err := ag.Recover(context.Background(), certsCfg(a))
			if err != nil || res == nil {
				t.Fatalf("recover: %v %+v", err, res)
			}
			noJournal(t, h)
			if got := installedSerial(t, h); got != first.Serial {
				t.Fatalf("installed serial %s after recovery, want the previous %s", got, first.Serial)
			}
			st := loadTestState(t, h)
			if st.LastApply.Result != "recovered" || len(st.LastApply.Notes) == 0 || !strings.Contains(st.LastApply.Notes[0], "undone") {
				t.Fatalf("last apply %+v, want recovered with a note", st.LastApply)
			}
			if !strings.Contains(log.String(), "msg=recovered") {
				t.Fatalf("no log line for the recovery:\n%s", log.String())
			}
			restarted := slices.Contains(h.Calls()[calls:], "restart docker.service")
			if restarted != (step != "backed-up") || res.Restarted != restarted {
				t.Fatalf("after a kill at %s: calls %q (result says restarted=%v)", step, h.Calls()[calls:], res.Restarted)
			}
			if h.Running() == nil {
				t.Fatal("dockerd does not run after the recovery")
			}
			if again, err := ag.Recover(context.Background(), certsCfg(a)); again != nil || err != nil {
				t.Fatalf("a second recovery: %+v, %v; want nothing to do", again, err)
			}
		})
	}
}

// TestRecoveryKeepsAnEditMadeAfterTheKill: the administrator edits
// daemon.json after a rotation was killed and before it is recovered. The
// edit survives; the certificates go back.
func TestRecoveryKeepsAnEditMadeAfterTheKill(t *testing.T) {
	for _, step := range []string{"certs-installed", "written", "restarted"} {
		t.Run(step, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
			mustProvision(t, h.agent(&fakeVerifier{}), certsCfg(writeSet(t, h.root, "127.0.0.1")))
			b := certsCfg(writeSet(t, h.root, "127.0.0.1"))
			crashedProvision(t, h, b, step)
			edited := editDaemonJSON(t, h)

			res := mustProvision(t, h.agent(&fakeVerifier{}), b)
			if got := readFile(t, h.root, DaemonJSONPath); got != edited {
				t.Fatalf("daemon.json after recovery:\n%s\nwant the administrator's edit:\n%s", got, edited)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), "left "+DaemonJSONPath+" as it is") {
				t.Fatalf("notes do not say the edit was left: %q", res.Notes)
			}
			noJournal(t, h)
		})
	}
}

// TestRecoveryRestoresOnlyWhatTheApplyWrote: a first provision killed
// after it wrote daemon.json is undone byte for byte. When the drop-in
// was edited after the kill, the edit stays, and so does the rest of
// dockerd's configuration as the apply wrote it (a restored daemon.json
// next to an edited drop-in could keep dockerd from starting).
func TestRecoveryRestoresOnlyWhatTheApplyWrote(t *testing.T) {
	t.Run("nothing edited", func(t *testing.T) {
		h := newFakeHost(t)
		writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
		crashedProvision(t, h, generateCfg(), "written")
		if _, err := h.agent(&fakeVerifier{}).Recover(context.Background(), generateCfg()); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, h.root, DaemonJSONPath); got != liveRestoreJSON {
			t.Fatalf("daemon.json = %s, want it as before the TLS change", got)
		}
		if _, err := os.Stat(filepath.Join(h.root, DropInPath)); !os.IsNotExist(err) {
			t.Fatalf("tlsdock's drop-in is still there: %v", err)
		}
	})
	t.Run("drop-in edited", func(t *testing.T) {
		h := newFakeHost(t)
		writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
		crashedProvision(t, h, generateCfg(), "written")
		written := readFile(t, h.root, DaemonJSONPath)
		edited := readFile(t, h.root, DropInPath) + "# mine\n"
		writeFile(t, h.root, DropInPath, edited)
		res, err := h.agent(&fakeVerifier{}).Recover(context.Background(), generateCfg())
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, h.root, DropInPath); got != edited {
			t.Fatalf("the drop-in edited after the kill became %q", got)
		}
		if got := readFile(t, h.root, DaemonJSONPath); got != written {
			t.Fatalf("daemon.json = %s, want it as the apply wrote it, next to the edited drop-in", got)
		}
		notes := strings.Join(res.Notes, "\n")
		if !strings.Contains(notes, "left "+DropInPath+" as it is") || !strings.Contains(notes, "left "+DaemonJSONPath+" as the interrupted apply wrote it") {
			t.Fatalf("notes %q", res.Notes)
		}
		if _, err := h.WouldStartAfterReload(); err != nil {
			t.Fatalf("dockerd would not start on what recovery left: %v", err)
		}
	})
}

// stripJournalTargets makes the journal one of an older tlsdock.
func stripJournalTargets(t *testing.T, h *fakeHost) {
	t.Helper()
	path := filepath.Join(h.root, StateDir, "journal.json")
	var m map[string]any
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["targets"]; !ok {
		t.Fatal("the journal records no targets")
	}
	delete(m, "targets")
	data, _ = json.Marshal(m)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryOfAnOlderJournal: a journal without targets (an older
// tlsdock) is undone where the change is tlsdock's kind of change, and an
// edit of other keys of daemon.json is left.
func TestRecoveryOfAnOlderJournal(t *testing.T) {
	t.Run("tlsdock's keys only", func(t *testing.T) {
		h := newFakeHost(t)
		writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
		crashedProvision(t, h, generateCfg(), "written")
		stripJournalTargets(t, h)
		if _, err := h.agent(&fakeVerifier{}).Recover(context.Background(), generateCfg()); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, h.root, DaemonJSONPath); got != liveRestoreJSON {
			t.Fatalf("daemon.json = %s, want it as before the TLS change", got)
		}
		if _, err := os.Stat(filepath.Join(h.root, DropInPath)); !os.IsNotExist(err) {
			t.Fatalf("tlsdock's drop-in was not removed: %v", err)
		}
	})
	t.Run("an administrator's key", func(t *testing.T) {
		h := newFakeHost(t)
		writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
		mustProvision(t, h.agent(&fakeVerifier{}), certsCfg(writeSet(t, h.root, "127.0.0.1")))
		b := certsCfg(writeSet(t, h.root, "127.0.0.1"))
		crashedProvision(t, h, b, "certs-installed")
		stripJournalTargets(t, h)
		edited := editDaemonJSON(t, h)
		mustProvision(t, h.agent(&fakeVerifier{}), b)
		if got := readFile(t, h.root, DaemonJSONPath); got != edited {
			t.Fatalf("daemon.json:\n%s\nwant the administrator's edit:\n%s", got, edited)
		}
	})
}

// operatorUnit is a tlsdock.service the administrator installed.
const operatorUnit = "[Unit]\nDescription=tlsdock\n[Service]\nType=notify\nExecStart=/usr/bin/tlsdock run\nRestart=always\n"

// TestRevertLeavesWhatTlsdockNeverWrote: in daemon-json mode tlsdock never
// writes tlsdock.service; one the administrator installed after the first
// provision stays through revert, which is otherwise byte-identical.
func TestRevertLeavesWhatTlsdockNeverWrote(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		name := "state records the writes"
		if legacy {
			name = "state of an older tlsdock"
		}
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
			before := treeHash(t, h.root)
			mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
			writeFile(t, h.root, ProxyUnitPath, operatorUnit)
			if legacy {
				st := loadTestState(t, h)
				st.Written = nil
				if err := h.agent(nil).saveState(st); err != nil {
					t.Fatal(err)
				}
			}
			res, err := h.agent(nil).Revert(context.Background(), exactRevert())
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, h.root, ProxyUnitPath); got != operatorUnit {
				t.Fatalf("tlsdock.service = %q, want the administrator's", got)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), "left "+ProxyUnitPath+" as it is: tlsdock never wrote it") {
				t.Fatalf("notes %q", res.Notes)
			}
			after := treeHash(t, h.root)
			for _, p := range []string{"etc/systemd/system/tlsdock.service"} {
				delete(after, p)
			}
			if d := diffTrees(before, after); len(d) > 0 {
				t.Fatalf("revert left differences: %q", d)
			}
		})
	}
}

// exactRevert is revert without keeping live-restore, so that the host
// comes back byte for byte.
func exactRevert() Config {
	c := Defaults()
	c.LiveRestore = false
	return c
}

// TestRevertKeepsAnEditMadeSinceProvision: daemon.json edited after
// provision keeps the edit; only tlsdock's keys go back, and dockerd
// starts on the result.
func TestRevertKeepsAnEditMadeSinceProvision(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	editDaemonJSON(t, h)
	res, err := h.agent(nil).Revert(context.Background(), exactRevert())
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"log-driver\": \"journald\",\n  \"debug\": true\n}\n"
	if got := readFile(t, h.root, DaemonJSONPath); got != want {
		t.Fatalf("daemon.json after revert:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "kept the changes made to "+DaemonJSONPath) {
		t.Fatalf("notes %q", res.Notes)
	}
	if d := h.Running(); d == nil {
		t.Fatal("dockerd does not run after revert")
	}
}

// TestDaemonDoesNotProvisionAfterRevert: after revert, the daemon's
// provisions are refused (and status says why) until an explicit
// provision; nothing on the host changes meanwhile.
func TestDaemonDoesNotProvisionAfterRevert(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if _, err := h.agent(nil).Revert(context.Background(), Defaults()); err != nil {
		t.Fatal(err)
	}
	before, calls := treeHash(t, h.root), len(h.Calls())
	daemon := daemonApplier{h.agent(&fakeVerifier{})}
	_, err := daemon.Provision(context.Background(), generateCfg())
	var ie *InputError
	if !errors.Is(err, ErrReverted) || !errors.As(err, &ie) {
		t.Fatalf("the daemon's provision after revert: %v, want ErrReverted as bad input", err)
	}
	if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 || len(h.Calls()) != calls {
		t.Fatalf("the refused provision changed the host: %q, calls %q", d, h.Calls()[calls:])
	}
	st, err := h.agent(nil).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.LastApply.Result != "reverted" || !strings.Contains(st.LastError, "`tlsdock provision`") {
		t.Fatalf("status after the refusal: last apply %+v, error %q", st.LastApply, st.LastError)
	}

	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if res, err := daemon.Provision(context.Background(), generateCfg()); err != nil || res.Changed {
		t.Fatalf("the daemon after an explicit provision: %v %+v", err, res)
	}
}

// TestNoTemporaryFileOutlivesTheNextRun: what a kill inside an atomic
// write leaves (tlsdock's temporary files, some a copy of the backup with
// the server key, and a half-written generation of the set) is removed by
// the next run, and revert is byte-identical again. Files that are not
// tlsdock's stay.
func TestNoTemporaryFileOutlivesTheNextRun(t *testing.T) {
	leftovers := []string{
		"/etc/docker/" + certstore.TempPrefix + "daemon.json.0123456789abcdef",
		"/etc/docker/.daemon.json.tmp-0123456789abcdef", // an older tlsdock's
		filepath.Dir(DropInPath) + "/" + certstore.TempPrefix + filepath.Base(DropInPath) + ".1",
		StateDir + "/" + certstore.TempPrefix + "journal.json.2",
		StateDir + "/.original.json.tmp-00112233445566ff",
		SSLDir + "/" + certstore.TempPrefix + "ca.pem.3",
		SSLDir + "/" + certstore.GenerationPrefix + "dead/" + certstore.TempPrefix + "server-key.pem.4",
	}
	notOurs := []string{"/etc/docker/.daemon.json.swp", "/etc/docker/" + "tlsdock-tmp.notes"}
	plant := func(t *testing.T, h *fakeHost) {
		for _, p := range append(append([]string{}, leftovers...), notOurs...) {
			writeFile(t, h.root, p, `{"content": "-----BEGIN PRIVATE KEY-----"}`)
		}
	}
	check := func(t *testing.T, h *fakeHost) {
		t.Helper()
		for _, p := range leftovers {
			if _, err := os.Lstat(filepath.Join(h.root, p)); !os.IsNotExist(err) {
				t.Errorf("%s outlived the next run: %v", p, err)
			}
		}
		if _, err := os.Lstat(filepath.Join(h.root, SSLDir, certstore.GenerationPrefix+"dead")); !os.IsNotExist(err) {
			t.Errorf("the half-written generation outlived the next run: %v", err)
		}
		for _, p := range notOurs {
			if _, err := os.Lstat(filepath.Join(h.root, p)); err != nil {
				t.Errorf("%s is not tlsdock's, and is gone: %v", p, err)
			}
		}
	}
	for _, run := range []string{"provision", "revert", "recover"} {
		t.Run(run, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
			before := treeHash(t, h.root)
			mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
			plant(t, h)
			var err error
			switch run {
			case "provision":
				_, err = h.agent(&fakeVerifier{}).Provision(context.Background(), generateCfg())
			case "revert":
				_, err = h.agent(nil).Revert(context.Background(), exactRevert())
			case "recover":
				_, err = h.agent(nil).Recover(context.Background(), generateCfg())
			}
			if err != nil {
				t.Fatal(err)
			}
			check(t, h)
			if run != "revert" {
				return
			}
			after := treeHash(t, h.root)
			for _, p := range notOurs {
				delete(after, strings.TrimPrefix(p, "/"))
			}
			if d := diffTrees(before, after); len(d) > 0 {
				t.Fatalf("revert is not byte-identical: %q", d)
			}
		})
	}
}

// TestRotatorAfterRevert: the daemon's provision refused on a reverted
// host is not retried (no backoff storm), and the log and STATUS say why
// and what to run.
func TestRotatorAfterRevert(t *testing.T) {
	g := newRig(t)
	s0, s1 := g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.app.fail = func(int) error {
		return &InputError{Field: StateDir + "/state.json", Err: fmt.Errorf("%w at 2026-11-01T12:00:00Z: tlsdock run does not provision it again until `tlsdock provision` is run", ErrReverted)}
	}
	g.prepare(s1)
	g.start()
	g.runUntil(g.at(time.Hour))
	if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint([]time.Duration{0}) {
		t.Fatalf("attempts at %v, want only the first", got)
	}
	if last := g.notes[len(g.notes)-1]; !strings.Contains(last, "not provisioning") || !strings.Contains(last, "`tlsdock provision`") {
		t.Fatalf("STATUS = %q", last)
	}
	if !strings.Contains(g.logs.String(), "the host was reverted") || strings.Contains(g.logs.String(), "bad input") {
		t.Fatalf("log:\n%s", g.logs.String())
	}
}

// TestRecoverLeavesTheJournalToTheLockHolder: in proxy mode a provision
// starts tlsdock.service while it holds the lock and waits for it. The
// daemon's start-up then neither waits for the lock nor fails: the
// provision recovers the journal itself.
func TestRecoverLeavesTheJournalToTheLockHolder(t *testing.T) {
	h := newFakeHost(t)
	crashedProvision(t, h, generateCfg(), "written")
	unlock, err := h.agent(nil).lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	res, err := h.agent(nil, func(o *Options) { o.LockWait = time.Hour }).Recover(context.Background(), generateCfg())
	if res != nil || err != nil {
		t.Fatalf("recover with the lock held: %+v, %v; want nothing done", res, err)
	}
	if _, err := os.Stat(filepath.Join(h.root, StateDir, "journal.json")); err != nil {
		t.Fatalf("the journal is gone: %v", err)
	}
}

// TestRecoveryKeepsAnEditAfterAKilledFirstProvision is the sweep's S1: a
// first provision killed anywhere between its journal and its commit,
// then an edit of daemon.json. The next provision keeps the edit and
// converges.
func TestRecoveryKeepsAnEditAfterAKilledFirstProvision(t *testing.T) {
	for _, step := range []string{"backed-up", "live-restore", "certs-installed", "written", "restarted"} {
		t.Run(step, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
			cfg := certsCfg(writeSet(t, h.root, "127.0.0.1"))
			crashedProvision(t, h, cfg, step)
			editDaemonJSON(t, h)
			mustProvision(t, h.agent(&fakeVerifier{}), cfg)
			doc, err := daemonjson.Parse([]byte(readFile(t, h.root, DaemonJSONPath)))
			if err != nil {
				t.Fatal(err)
			}
			if on, _, _ := doc.Bool("debug"); !on {
				t.Fatalf("the edit is lost:\n%s", readFile(t, h.root, DaemonJSONPath))
			}
			if again := mustProvision(t, h.agent(&fakeVerifier{}), cfg); again.Changed {
				t.Fatal("not converged: a third run still changes things")
			}
			noJournal(t, h)
		})
	}
}

// TestRevertTakesTlsdocksOwnDropInEvenEdited: tlsdock's drop-in says that
// revert removes it and that edits are overwritten; an edited one goes
// too (with a note), so that dockerd gets its unit's -H back.
func TestRevertTakesTlsdocksOwnDropInEvenEdited(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
	before := treeHash(t, h.root)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	writeFile(t, h.root, DropInPath, readFile(t, h.root, DropInPath)+"# edited\n")
	res, err := h.agent(nil).Revert(context.Background(), exactRevert())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "put tlsdock's "+DropInPath+" back") {
		t.Fatalf("notes %q", res.Notes)
	}
	if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
		t.Fatalf("revert left differences: %q", d)
	}
	if err := h.LocalSocket(); err != nil {
		t.Fatalf("after revert: %v", err)
	}
}

// listeningVerifier passes a probe only where the fake host's
// docker.socket listens, as a real client's connection would.
type listeningVerifier struct{ h *fakeHost }

func (v listeningVerifier) Verify(_ context.Context, p Probe) ([]Check, error) {
	_, port, _ := net.SplitHostPort(p.Addr)
	for _, l := range v.h.SocketListening() {
		if l == port || strings.HasSuffix(l, ":"+port) {
			return []Check{{Endpoint: p.Addr, Name: "listening", OK: true}}, nil
		}
	}
	err := fmt.Errorf("%s: connection refused", p.Addr)
	return []Check{{Endpoint: p.Addr, Name: "listening", Detail: err.Error()}}, err
}

// TestRecoveryRestartsTheSocketItLeftLoaded: a first provision in
// daemon-json mode is killed after docker.socket's drop-in was written
// and loaded, before docker.socket restarted on it; the administrator
// then edits daemon.json, so the recovery leaves dockerd's files (the
// drop-in with them) as the apply wrote them. The plan sees nothing to
// change, yet docker.socket never listened on the drop-in's address: the
// recovery's restart takes docker.socket along.
func TestRecoveryRestartsTheSocketItLeftLoaded(t *testing.T) {
	h := newFakeHost(t)
	withSocket(t, h)
	writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
	cfg := certsCfg(writeSet(t, h.root, "127.0.0.1"))
	crashedProvision(t, h, cfg, "written")
	editDaemonJSON(t, h)
	res, err := h.agent(listeningVerifier{h}).Provision(context.Background(), cfg)
	if err != nil {
		t.Fatalf("recovery provision: %v\nnotes %q", err, res.Notes)
	}
	if !res.SocketRestarted {
		t.Errorf("result says docker.socket did not restart")
	}
}

// TestUnchangedPlanFailingVerificationRestartsTheSocket: the same state,
// recovered by `tlsdock run`'s start-up (which restarts nothing when it
// leaves dockerd's files as the apply wrote them): the daemon's next
// provision finds nothing to change, fails verification, and restarts
// docker.socket with docker.
func TestUnchangedPlanFailingVerificationRestartsTheSocket(t *testing.T) {
	h := newFakeHost(t)
	withSocket(t, h)
	writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
	cfg := certsCfg(writeSet(t, h.root, "127.0.0.1"))
	crashedProvision(t, h, cfg, "written")
	editDaemonJSON(t, h)
	if _, err := h.agent(&fakeVerifier{}).Recover(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	res, err := h.agent(listeningVerifier{h}).Provision(context.Background(), cfg)
	if err != nil {
		t.Fatalf("provision after the start-up recovery: %v\nnotes %q", err, res.Notes)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "docker.socket and docker are restarted") {
		t.Errorf("notes %q do not say docker.socket restarted", res.Notes)
	}
}

// TestRevertKeepsAnEditTlsdockWroteAround: the first provision is killed
// at each step, the administrator adds a key to daemon.json, and the
// next provision recovers and writes daemon.json around that edit. It is
// tlsdock's write now, but revert still keeps the administrator's key and
// takes out only tlsdock's.
func TestRevertKeepsAnEditTlsdockWroteAround(t *testing.T) {
	for _, step := range []string{"live-restore", "written"} {
		t.Run(step, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, operatorsJSON)
			cfg := certsCfg(writeSet(t, h.root, "127.0.0.1"))
			crashedProvision(t, h, cfg, step)
			editDaemonJSON(t, h)
			mustProvision(t, h.agent(&fakeVerifier{}), cfg)
			if _, err := h.agent(nil).Revert(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			doc, err := daemonjson.Parse([]byte(readFile(t, h.root, DaemonJSONPath)))
			if err != nil {
				t.Fatal(err)
			}
			if on, _, _ := doc.Bool("debug"); !on {
				t.Fatalf("daemon.json after revert lost the administrator's key:\n%s", doc.Render())
			}
			if _, ok := doc.Get("tlscacert"); ok {
				t.Fatalf("daemon.json after revert keeps tlsdock's keys:\n%s", doc.Render())
			}
		})
	}
}
