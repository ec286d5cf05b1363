package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// The timing sweep kills a tlsdock command after a delay, stepping the delay
// across the whole run, and then checks the host as a user would. Named
// pause points (crash_test.go) stop only between named steps; a delay also
// lands between two writes, inside an atomic write, or while systemd runs a
// restart job that tlsdock asked for.
//
// Three parts, and nothing else: sweepScenarios (what is killed, from which
// state), runKilled (run a command and kill it after d: SIGKILL of the
// command, or a power loss of the whole host) and checkRecovers (every
// invariant after a kill). TestFaultSweep and TestPowerLoss
// (powerloss_test.go) walk the table.
//
// `make test` runs a small fixed set of points (each scenario's quick
// fractions). TLSDOCK_FAULT_SWEEP=full (`make fault-sweep`) runs
// sweepSteps evenly spaced points over each command's measured duration plus
// sweepJitter random ones (seed TLSDOCK_FAULT_SEED, logged). Delays are the
// only timing here; no check is about how long anything took.

// Where the sweep keeps its inputs inside the host.
const (
	sweepSet1  = "/root/sweep/set1"
	sweepSet2  = "/root/sweep/set2"
	sweepProbe = "/root/sweep/probe"
)

// sweepScenario is one command that is killed, and the state it starts from.
type sweepScenario struct {
	name string
	// from is the tlsdock command that makes the state the killed command
	// starts from; nil: the host as the user had it, never provisioned.
	from []string
	// cmd is killed, then run again with the same flags as the recovery.
	cmd []string
	// quick and powerQuick are the delays of SIGKILL and of power loss in
	// the normal e2e run, as fractions of cmd's measured duration: a
	// few, placed where the full sweep found a window.
	quick, powerQuick []float64
}

func provisionArgs(set, mode string) []string {
	return []string{"provision", "--certs", set, "--probe-client", sweepProbe, "--mode", mode}
}

// sweepScenarios: provision in each mode, a rotation (a new set with
// --certs), and revert from each mode.
var sweepScenarios = []sweepScenario{
	{name: "provision-daemon-json", cmd: provisionArgs(sweepSet1, "daemon-json"), quick: []float64{0.45, 0.8}, powerQuick: []float64{0.5}},
	// --host with a name, not an IP: docker.socket cannot listen on it,
	// so dockerd holds the listener ("hosts" in daemon.json, -H dropped
	// from ExecStart by a drop-in).
	{name: "provision-daemon-json-dockerd-holds", cmd: append(provisionArgs(sweepSet1, "daemon-json"), "--host", "tcp://localhost:2376"), quick: []float64{0.16, 0.28}},
	{name: "revert-daemon-json-dockerd-holds", from: append(provisionArgs(sweepSet1, "daemon-json"), "--host", "tcp://localhost:2376"), cmd: []string{"revert"}, powerQuick: []float64{0.19}},
	{name: "provision-dropin", cmd: provisionArgs(sweepSet1, "dropin"), quick: []float64{0.6}},
	{name: "provision-proxy", cmd: provisionArgs(sweepSet1, "proxy"), quick: []float64{0.5}},
	{name: "rotate-daemon-json", from: provisionArgs(sweepSet1, "daemon-json"), cmd: provisionArgs(sweepSet2, "daemon-json"), quick: []float64{0.5}},
	{name: "revert-daemon-json", from: provisionArgs(sweepSet1, "daemon-json"), cmd: []string{"revert"}, quick: []float64{0.5}, powerQuick: []float64{0.5}},
	{name: "revert-dropin", from: provisionArgs(sweepSet1, "dropin"), cmd: []string{"revert"}, powerQuick: []float64{0.065}},
	{name: "revert-proxy", from: provisionArgs(sweepSet1, "proxy"), cmd: []string{"revert"}, quick: []float64{0.5}},
}

func (sc sweepScenario) reverts() bool { return sc.cmd[0] == "revert" }

// Points of the full sweep per scenario: evenly spaced, and random ones.
const (
	sweepSteps  = 16
	sweepJitter = 4
)

func sweepFull() bool { return os.Getenv("TLSDOCK_FAULT_SWEEP") == "full" }

// sweepDelays returns the kill delays for a command that takes about dur:
// the quick fractions, or in a full sweep steps evenly spaced points over
// it plus jitter random ones up to 1.1 dur (past the end too: a kill that
// comes after the command finished must change nothing either).
func sweepDelays(dur time.Duration, quick []float64, steps, jitter int, rng *mrand.Rand) []time.Duration {
	var ds []time.Duration
	if !sweepFull() {
		for _, f := range quick {
			ds = append(ds, time.Duration(f*float64(dur)).Round(time.Millisecond))
		}
		return ds
	}
	for i := range steps {
		ds = append(ds, (dur * time.Duration(2*i+1) / time.Duration(2*steps)).Round(time.Millisecond))
	}
	for range jitter {
		ds = append(ds, time.Duration(rng.Float64()*1.1*float64(dur)).Round(time.Millisecond))
	}
	return ds
}

func sweepRNG(t *testing.T) *mrand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TLSDOCK_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TLSDOCK_FAULT_SEED=%q: want a decimal number", s)
		}
		seed = v
	}
	t.Logf("jitter seed %d (TLSDOCK_FAULT_SEED=%d repeats these delays)", seed, seed)
	return mrand.New(mrand.NewPCG(seed, seed))
}

// fault is how a command is interrupted.
type fault string

const (
	sigkill   fault = "sigkill"   // SIGKILL of the tlsdock process
	powerLoss fault = "powerloss" // the whole host dies, then boots on the same disk
)

// killOutcome is what runKilled saw.
type killOutcome struct {
	killed  bool          // the command was still running when the fault came
	exit    int           // its exit code when it finished first
	elapsed time.Duration // from its start to its end or the fault
	output  string        // what it printed (a power loss loses it)
}

// runKilled runs tlsdock args inside h and interrupts it after d. A
// negative d never interrupts it (the normal duration is measured so). For
// sigkill a shell inside the host starts tlsdock, sleeps d and sends
// SIGKILL, so the delay does not depend on this machine's load. For
// powerLoss the delay is timed here, then the whole host is killed and
// booted again on its disk; the error is PowerOn's (docker.service not
// coming up by itself, for example).
func runKilled(ctx context.Context, h *testhost.Host, f fault, d time.Duration, args ...string) (killOutcome, error) {
	if f == sigkill || d < 0 {
		delay := "-"
		if d >= 0 {
			delay = strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
		}
		const script = `d=$1; shift
start=$(date +%s%N)
"$@" >/run/tlsdock-sweep.out 2>&1 &
pid=$!
if [ "$d" != - ]; then sleep "$d"; kill -KILL $pid 2>/dev/null; fi
wait $pid; rc=$?
end=$(date +%s%N)
echo $rc $(( (end - start) / 1000000 ))`
		out, errb, err := h.Exec(ctx, nil, append([]string{"sh", "-c", script, "sh", delay, "tlsdock"}, args...)...)
		if err != nil {
			return killOutcome{}, fmt.Errorf("running tlsdock %s: %v\n%s", strings.Join(args, " "), err, errb)
		}
		var rc, ms int
		if _, err := fmt.Sscan(string(out), &rc, &ms); err != nil {
			return killOutcome{}, fmt.Errorf("running tlsdock %s: unexpected %q", strings.Join(args, " "), out)
		}
		printed, _ := h.ReadFile("/run/tlsdock-sweep.out")
		return killOutcome{killed: rc == 128+9, exit: rc, elapsed: time.Duration(ms) * time.Millisecond, output: string(printed)}, nil
	}

	type result struct {
		stdout, stderr string
		code           int
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		o, e, c := tlsdock(ctx, h, args...)
		done <- result{o, e, c}
	}()
	select {
	case r := <-done:
		return killOutcome{exit: r.code, elapsed: time.Since(start), output: r.stdout + r.stderr}, nil
	case <-time.After(d):
	}
	o := killOutcome{killed: true, elapsed: time.Since(start)}
	if err := h.PowerLoss(); err != nil {
		return o, err
	}
	<-done // nsenter returns once the guest is gone
	return o, h.PowerOn(ctx)
}

// sweepHost is a booted host with tlsdock, the sweep's inputs and the
// user's own files (baseline, as hashed by userTree before any provision).
// One host serves many kill points; a point that failed replaces it with a
// fresh one, so that the next point starts from a known state.
type sweepHost struct {
	h        *testhost.Host
	baseline string // userTree before the first provision
	userJSON []byte // the user's daemon.json
	logt     *testing.T
	sets     map[string]*pkgSet
	// probeCert and probeKey are a client of the sets' CA (PEM).
	probeCert, probeKey []byte
}

// The user's files before tlsdock: a daemon.json in a layout tlsdock does
// not render (byte-identity after revert is then a real check) and a
// drop-in of the operator's own.
var (
	userDaemonJSON = []byte("{\n    \"log-level\": \"info\",\n    \"max-concurrent-downloads\": 3\n}\n")
	userDropIn     = []byte("[Service]\nEnvironment=OPERATOR_NOTE=kept\n")
)

const userDropInPath = "/etc/systemd/system/docker.service.d/10-operator.conf"

// userFiles are what the user had and revert must give back byte for byte:
// docker's and systemd's configuration, and /etc/default/docker.
const userFiles = "/etc/docker /etc/systemd/system /etc/default/docker"

func userTree(ctx context.Context, h *testhost.Host) (string, error) {
	out, errb, err := h.Exec(ctx, nil, "sh", "-c",
		"{ find "+userFiles+" -printf '%y %m %U:%G %p %l\\n'; find "+userFiles+" -type f -exec sha256sum {} +; } 2>/dev/null | sort")
	if err != nil && len(out) == 0 {
		return "", fmt.Errorf("hashing the user's files: %v %s", err, errb)
	}
	return string(out), nil
}

func newSweepHost(t *testing.T, ctx context.Context) *sweepHost {
	t.Helper()
	testhost.SkipUnlessEnabled(t)
	ca, err := certstore.NewCA(certstore.ECDSAP256, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sh := &sweepHost{logt: t, sets: map[string]*pkgSet{sweepSet1: pkgIssueSet(t, ca), sweepSet2: pkgIssueSet(t, ca)}}
	sh.probeCert, sh.probeKey, err = ca.Issue(certstore.IssueRequest{CommonName: "sweep-probe", KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 24 * time.Hour}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sh.logt = t
		if sh.h != nil {
			if err := sh.h.Close(); err != nil {
				t.Error(err)
			}
		}
	})
	if err := sh.boot(ctx); err != nil {
		t.Fatal(err)
	}
	return sh
}

// boot replaces the host with a fresh one: tlsdock, the two sets, a probe
// client, the user's files, docker restarted on them.
func (sh *sweepHost) boot(ctx context.Context) error {
	if sh.h != nil {
		if err := sh.h.Close(); err != nil {
			sh.logt.Logf("closing the used host: %v", err)
		}
		sh.h = nil
	}
	bin := tlsdockBinary(sh.logt)
	h, err := testhost.Boot(ctx, testhost.Options{Logf: func(f string, a ...any) { sh.logt.Logf(f, a...) }})
	if err != nil {
		return err
	}
	sh.h = h
	if err := h.CopyIn(bin, "/usr/local/bin/tlsdock", 0o755); err != nil {
		return err
	}
	for dir, s := range sh.sets {
		for name, data := range map[string][]byte{"ca.pem": s.CA, "server-cert.pem": s.Cert, "server-key.pem": s.Key} {
			if err := h.WriteFile(dir+"/"+name, data, 0o600); err != nil {
				return err
			}
		}
	}
	if err := h.WriteFile(sweepProbe+"/cert.pem", sh.probeCert, 0o600); err != nil {
		return err
	}
	if err := h.WriteFile(sweepProbe+"/key.pem", sh.probeKey, 0o600); err != nil {
		return err
	}
	if err := h.WriteFile("/etc/docker/daemon.json", userDaemonJSON, 0o644); err != nil {
		return err
	}
	if err := h.WriteFile(userDropInPath, userDropIn, 0o644); err != nil {
		return err
	}
	for _, c := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "restart", "docker.service"}} {
		if _, errb, err := h.Exec(ctx, nil, c...); err != nil {
			return fmt.Errorf("%v: %s", err, errb)
		}
	}
	sh.userJSON = userDaemonJSON
	sh.baseline, err = userTree(ctx, h)
	return err
}

// failure is one check that did not hold at one kill point.
type failure struct {
	check  string // see the constants below
	detail string
}

// The checks of checkRecovers.
const (
	chkBoots       = "boots"          // power loss: docker.service comes up by itself
	chkSocket      = "socket"         // docker version over the local socket after the kill
	chkSocketDisk  = "socket-restart" // ... and after systemctl restart docker (what is on disk)
	chkRecovery    = "recovery"       // the next run (same flags) exits 0
	chkConverged   = "converged"      // and the one after changes nothing
	chkEditKept    = "edit-kept"      // the operator's edit made after the kill is still there
	chkTempFiles   = "temp-files"     // no .*tmp* file of tlsdock's is left
	chkRevert      = "revert"         // the final revert exits 0
	chkIdentical   = "identical"      // after it, the user's files are byte-identical
	chkDockerAfter = "docker-after"   // docker answers after recovery
)

// knownFindings are failures that happen today for a known defect (filed
// as an issue) that is not fixed yet: by scenario
// prefix, check, and a text the failure's detail contains. A point whose
// every failure is known is skipped with the finding's id; any other
// failure fails the test. Remove an entry when its fix is merged.
var knownFindings = []struct {
	id, scenario, check, detail string
}{
	// None open: S1 (a journal restored over a later edit), S2 (temporary
	// files left by a kill inside a write), S3/S5 (a revert's restore
	// naming a removed set) and S4 (the daemon-json fallback's window)
	// are fixed, and their points fail again if they come back.
}

// consequences are the checks that fail after an earlier check failed
// (docker down, a recovery or revert that did not finish): at a point with
// a known finding they count as that finding.
var consequences = []string{chkSocket, chkSocketDisk, chkRecovery, chkConverged, chkDockerAfter, chkEditKept, chkTempFiles, chkRevert, chkIdentical}

func knownFinding(scenario string, f failure) string {
	for _, k := range knownFindings {
		if strings.HasPrefix(scenario, k.scenario) && k.check == f.check && strings.Contains(f.detail, k.detail) {
			return k.id
		}
	}
	return ""
}

// labelEdit is the operator's edit after a kill: a "labels" key (unknown
// to tlsdock, valid for dockerd) added at the end of daemon.json, as an
// editor would. It returns nil when daemon.json is not a JSON object.
func labelEdit(daemonJSON []byte, label string) []byte {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(daemonJSON)) == 0 {
		daemonJSON = []byte("{}\n")
	}
	if json.Unmarshal(daemonJSON, &m) != nil {
		return nil
	}
	i := bytes.LastIndexByte(daemonJSON, '}')
	add := `"labels": ["` + label + `"]`
	if len(m) > 0 {
		add = ",\n    " + add + "\n"
		body := bytes.TrimRight(daemonJSON[:i], " \t\r\n")
		return append(append(append([]byte{}, body...), add...), daemonJSON[i:]...)
	}
	return append(append(append([]byte{}, daemonJSON[:i]...), add...), daemonJSON[i:]...)
}

// hostState is what the files looked like right after a kill, for the
// reproduction of a failure.
func hostState(ctx context.Context, h *testhost.Host) string {
	out, _, _ := h.Exec(ctx, nil, "sh", "-c", `
for f in /etc/docker/daemon.json /etc/systemd/system/docker.service.d/* /etc/systemd/system/docker.socket.d/* /etc/systemd/system/tlsdock.service.d/* /etc/systemd/system/tlsdock.service; do
  [ -f "$f" ] && { echo "== $f"; cat "$f"; }
done
echo "== files"; ls -la /etc/docker /etc/docker/ssl /var/lib/tlsdock /etc/systemd/system/docker.service.d /etc/systemd/system/docker.socket.d 2>&1 | grep -v '^total'
echo "== units"; systemctl is-active docker.service docker.socket tlsdock.service 2>&1 | tr '\n' ' '
echo; echo "== /run/docker.sock"; ss -Hxlp src /run/docker.sock`)
	return string(out)
}

// settle waits (bounded) until systemd has no job left: a killed tlsdock
// may have left a restart of docker running.
func settle(ctx context.Context, h *testhost.Host) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		out, _, err := h.Exec(ctx, nil, "systemctl", "list-jobs", "--no-legend")
		if err == nil && strings.TrimSpace(string(out)) == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// localDocker runs `docker version` inside over the local socket, with a
// bound: a socket nobody accepts on hangs instead of failing.
func localDocker(ctx context.Context, h *testhost.Host) error {
	_, errb, err := h.Exec(ctx, nil, "timeout", "30", "docker", "version", "--format", "{{.Server.Version}}")
	if err != nil {
		return fmt.Errorf("%v %s", err, errb)
	}
	return nil
}

// checkRecovers checks a host after a fault interrupted sc.cmd: (a) docker
// answers on its local socket, also after `systemctl restart docker`, twice
// (what the files on disk give); (b) the next run of the same command
// exits 0, and the one after changes nothing; (c) an operator's edit of
// daemon.json made right after the fault is still there; (d) no temporary
// file of tlsdock's is left; (e) after a final revert the user's files are
// byte-identical to before the first provision (plus the edit, when the
// fault came before tlsdock had recorded the host: the edit is then the
// user's own). It returns what failed, and the host's files right after
// the fault.
func checkRecovers(ctx context.Context, sh *sweepHost, sc sweepScenario, o killOutcome, label string) (fails []failure, state string) {
	h := sh.h
	fail := func(check, format string, args ...any) {
		fails = append(fails, failure{check, fmt.Sprintf(format, args...)})
	}
	settle(ctx, h)
	state = hostState(ctx, h)
	_, err := h.ReadFile("/var/lib/tlsdock/original.json")
	recorded := err == nil

	// (c) first: the operator edits daemon.json right away.
	cur, _ := h.ReadFile("/etc/docker/daemon.json")
	edited := labelEdit(cur, label)
	if edited == nil {
		fail(chkEditKept, "daemon.json after the fault is not a JSON object:\n%s", cur)
	} else if err := h.WriteFile("/etc/docker/daemon.json", edited, 0o644); err != nil {
		fail(chkEditKept, "editing daemon.json: %v", err)
	}

	// (a) docker answers on the local socket, now and after a restart.
	if err := localDocker(ctx, h); err != nil {
		fail(chkSocket, "docker version over /run/docker.sock after the fault: %v\n%s", err, h.Journal(ctx, "docker.service", 15))
	}
	// Twice: a dockerd started from these files must also leave them
	// (and docker.socket's socket file) fit for the next start.
	for i := range 2 {
		_, _, _ = h.Exec(ctx, nil, "systemctl", "reset-failed", "docker.service", "docker.socket")
		if _, errb, err := h.Exec(ctx, nil, "timeout", "120", "systemctl", "restart", "docker.service"); err != nil {
			fail(chkSocketDisk, "systemctl restart docker (%d of 2): %v %s\n%s", i+1, err, errb, h.Journal(ctx, "docker.service", 15))
			break
		}
		if err := localDocker(ctx, h); err != nil {
			fail(chkSocketDisk, "docker version after systemctl restart docker (%d of 2): %v\n%s", i+1, err, h.Journal(ctx, "docker.service", 15))
			break
		}
	}

	// (b) the next run converges.
	recoverable := !(sc.reverts() && !recorded) // a revert that finished has nothing left to do
	if recoverable {
		out, errb, code := tlsdock(ctx, h, sc.cmd...)
		if code != 0 {
			fail(chkRecovery, "tlsdock %s: exit %d\n%s%s\n%s", strings.Join(sc.cmd, " "), code, out, errb, h.Journal(ctx, "docker.service", 15))
		} else if !sc.reverts() {
			if out, errb, code := tlsdock(ctx, h, sc.cmd...); code != 0 || !strings.Contains(out, "No changes") {
				fail(chkConverged, "tlsdock %s after the recovery: exit %d, want no changes:\n%s%s", strings.Join(sc.cmd, " "), code, out, errb)
			}
		}
		if err := localDocker(ctx, h); err != nil {
			fail(chkDockerAfter, "docker version after the recovery: %v", err)
		}
	}

	// (c) the edit survived (for revert, (e) checks it).
	if !sc.reverts() && edited != nil {
		if got, _ := h.ReadFile("/etc/docker/daemon.json"); !bytes.Contains(got, []byte(label)) {
			fail(chkEditKept, "the label %q added to daemon.json right after the fault is gone after the recovery:\n%s", label, got)
		}
	}

	// (d) no temporary files.
	if out, _, _ := h.Exec(ctx, nil, "sh", "-c", "find /etc/docker /etc/systemd/system /etc/tlsdock /var/lib/tlsdock -name '.*tmp*' 2>/dev/null"); strings.TrimSpace(string(out)) != "" {
		fail(chkTempFiles, "left behind after the recovery:\n%s", out)
	}

	// (e) revert gives the user's files back.
	if !sc.reverts() {
		if out, errb, code := tlsdock(ctx, h, "revert"); code != 0 {
			fail(chkRevert, "tlsdock revert: exit %d\n%s%s", code, out, errb)
		}
	}
	want := sh.baseline
	if !recorded && edited != nil {
		// The fault came before tlsdock recorded the host: the edit
		// is part of what the user had.
		userEdited := labelEdit(sh.userJSON, label)
		tree := strings.Replace(want, sha256Line(sh.userJSON), sha256Line(userEdited), 1)
		lines := strings.Split(strings.TrimSuffix(tree, "\n"), "\n")
		slices.Sort(lines) // as userTree's sort (LANG=C) does
		want = strings.Join(lines, "\n") + "\n"
	}
	if recorded && edited != nil {
		// The edit came while tlsdock had the host recorded: revert
		// takes out tlsdock's keys and keeps the operator's, so
		// daemon.json is the user's plus the label, as a JSON object
		// (revert renders the file it edits).
		got, _ := h.ReadFile("/etc/docker/daemon.json")
		if sameObject(got, labelEdit(sh.userJSON, label)) {
			want = strings.Replace(want, sha256Line(sh.userJSON), sha256Line(got), 1)
			lines := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
			slices.Sort(lines)
			want = strings.Join(lines, "\n") + "\n"
		} else {
			fail(chkIdentical, "daemon.json after revert is not the user's plus the operator's label:\n%s", got)
		}
	}
	if got, err := userTree(ctx, h); err != nil {
		fail(chkIdentical, "%v", err)
	} else if got != want {
		fail(chkIdentical, "the user's files after revert differ from before the first provision:\n%s", lineDiff(want, got))
	}
	return fails, state
}

// sameObject reports whether a and b are JSON objects with the same keys
// and values.
func sameObject(a, b []byte) bool {
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return false
	}
	return reflect.DeepEqual(ma, mb)
}

// sha256Line is daemon.json's line in userTree for content b.
func sha256Line(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) + "  /etc/docker/daemon.json"
}

// resetUser puts the user's files back as they were (a fault before
// tlsdock recorded the host made the edit part of them).
func (sh *sweepHost) resetUser(ctx context.Context) error {
	if got, err := sh.h.ReadFile("/etc/docker/daemon.json"); err == nil && bytes.Equal(got, sh.userJSON) {
		return nil
	}
	if err := sh.h.WriteFile("/etc/docker/daemon.json", sh.userJSON, 0o644); err != nil {
		return err
	}
	_, _, _ = sh.h.Exec(ctx, nil, "systemctl", "reset-failed", "docker.service", "docker.socket")
	_, errb, err := sh.h.Exec(ctx, nil, "systemctl", "restart", "docker.service")
	if err != nil {
		return fmt.Errorf("%v %s", err, errb)
	}
	return nil
}

// measure runs sc once without a fault, from its start state, and returns
// how long cmd took; the host is then as the user had it again.
func (sh *sweepHost) measure(t *testing.T, ctx context.Context, sc sweepScenario) time.Duration {
	t.Helper()
	sh.start(t, ctx, sc)
	o, err := runKilled(ctx, sh.h, sigkill, -1, sc.cmd...)
	if err != nil || o.exit != 0 {
		t.Fatalf("tlsdock %s without a fault: exit %d %v\n%s", strings.Join(sc.cmd, " "), o.exit, err, o.output)
	}
	if !sc.reverts() {
		mustTlsdock(t, ctx, sh.h, "revert")
	}
	t.Logf("tlsdock %s takes %v on this host", strings.Join(sc.cmd, " "), o.elapsed)
	return o.elapsed
}

// start brings the host to the state sc's command starts from.
func (sh *sweepHost) start(t *testing.T, ctx context.Context, sc sweepScenario) {
	t.Helper()
	if sc.from != nil {
		_, _, _ = sh.h.Exec(ctx, nil, "systemctl", "reset-failed", "docker.service", "docker.socket")
		mustTlsdock(t, ctx, sh.h, sc.from...)
	}
}

// sweepPoint runs one kill point of sc at delay d and reports what failed:
// known findings skip the point, anything else fails it. A point that
// failed replaces the host.
func sweepPoint(t *testing.T, ctx context.Context, sh *sweepHost, sc sweepScenario, f fault, d time.Duration) {
	sh.logt = t
	defer func() { sh.logt = t }()
	if err := sh.resetUser(ctx); err != nil {
		t.Fatalf("putting the user's files back: %v", err)
	}
	sh.start(t, ctx, sc)
	label := fmt.Sprintf("sweep.point=%s-%s-%dms", sc.name, f, d.Milliseconds())
	o, err := runKilled(ctx, sh.h, f, d, sc.cmd...)
	var fails []failure
	state := ""
	switch {
	case err != nil && f == sigkill:
		t.Fatal(err)
	case err != nil && sh.h.PID == 0:
		fails = append(fails, failure{chkBoots, err.Error()})
	case err != nil:
		fails = append(fails, failure{chkBoots, err.Error()})
		fallthrough
	default:
		var more []failure
		more, state = checkRecovers(ctx, sh, sc, o, label)
		fails = append(fails, more...)
	}
	what := fmt.Sprintf("finished first with exit %d after %v", o.exit, o.elapsed)
	if o.killed {
		what = fmt.Sprintf("%s after %v", f, o.elapsed)
	}
	if len(fails) == 0 {
		t.Logf("%s at %v: %s; recovered", sc.name, d, what)
		return
	}
	var known, unknown []string
	cause := ""
	for _, fl := range fails {
		line := fmt.Sprintf("[%s] %s", fl.check, fl.detail)
		id := knownFinding(sc.name, fl)
		if id == "" && cause != "" && slices.Contains(consequences, fl.check) {
			id = cause + " (a consequence)"
		}
		if id != "" && fl.check != chkEditKept && fl.check != chkTempFiles && cause == "" {
			cause = id
		}
		if id != "" {
			known = append(known, id+" "+line)
		} else {
			unknown = append(unknown, line)
		}
	}
	t.Logf("REPRO fault=%s scenario=%s from=%q cmd=%q delay=%v: %s\nstate right after the fault:\n%s",
		f, sc.name, strings.Join(sc.from, " "), strings.Join(sc.cmd, " "), d, what, state)
	if err := sh.boot(ctx); err != nil {
		t.Fatalf("booting a fresh host after a failed point: %v", err)
	}
	for _, u := range unknown {
		t.Error(u)
	}
	if len(unknown) == 0 {
		t.Skipf("known findings, not fixed yet:\n%s", strings.Join(known, "\n"))
	}
	for _, k := range known {
		t.Log("known: " + k)
	}
}

// TestFaultSweep SIGKILLs each scenario's command at delays across its
// measured duration, on one host per scenario, and checks after each kill
// that the host recovers (checkRecovers). The normal run takes the
// scenarios' quick points; TLSDOCK_FAULT_SWEEP=full the whole sweep.
func TestFaultSweep(t *testing.T) {
	sweep(t, sigkill, sweepSteps, sweepJitter, func(sc sweepScenario) []float64 { return sc.quick })
}

// sweep walks sweepScenarios with fault f: steps evenly spaced and jitter
// random delays per scenario in a full sweep, quick(sc) otherwise.
func sweep(t *testing.T, f fault, steps, jitter int, quick func(sweepScenario) []float64) {
	testhost.SkipUnlessEnabled(t)
	rng := sweepRNG(t)
	for _, sc := range sweepScenarios {
		t.Run(sc.name, func(t *testing.T) {
			if !sweepFull() && len(quick(sc)) == 0 {
				t.Skip("only in the full sweep (TLSDOCK_FAULT_SWEEP=full)")
			}
			ctx := ctxFor(t, 90*time.Minute)
			sh := newSweepHost(t, ctx)
			dur := sh.measure(t, ctx, sc)
			for _, d := range sweepDelays(dur, quick(sc), steps, jitter, rng) {
				t.Run(d.String(), func(t *testing.T) { sweepPoint(t, ctx, sh, sc, f, d) })
			}
		})
	}
}
