package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// Server and client certificate lifetimes of the local CA.
const (
	ServerValidity = 90 * 24 * time.Hour
	ClientValidity = 365 * 24 * time.Hour
	ProbeValidity  = 10 * time.Minute
)

// FileChange is one file the plan writes or removes.
type FileChange struct {
	Path   string `json:"path"`   // host path
	Action string `json:"action"` // create, update or delete
	Diff   string `json:"diff,omitempty"`
	old    []byte
	new    []byte
	mode   os.FileMode
	// load: systemd loads the file (daemon-reload) as soon as it is
	// written, before the files without it are written.
	load bool
}

// Plan is what a provision would do. Computing it changes nothing.
type Plan struct {
	Mode      Mode
	Listeners []Listener
	// Set is the certificate set to serve; Install says whether it differs
	// from the installed one.
	Set     *certstore.Set
	Install bool
	// NewCA is a local CA to save first (with --generate on a new host).
	NewCA *certstore.CA
	CA    *certstore.CA
	Files []FileChange
	// LiveRestoreFirst: dockerd runs without live-restore; turn it on and
	// SIGHUP dockerd before the restart so running containers survive.
	LiveRestoreFirst bool
	// liveRestoreDoc is daemon.json with only live-restore added.
	liveRestoreDoc []byte
	DockerActive   bool
	Restart        bool
	Notes          []string
	// Hosts is the full list of listeners dockerd ends up with.
	Hosts []string
	// TCPHosts is the list of TLS listeners tlsdock manages.
	TCPHosts    []string
	changeNotes []string
	// ProbeClient is the client certificate verification uses with
	// --certs (the local CA mints its own).
	ProbeClient *tls.Certificate
	// srv is how the API is served; its serve step follows the write.
	srv server
	// restore, for revert, is the target written instead of Set and Files:
	// the original snapshot (Files then only describe the changes).
	restore *Snapshot
	// Warnings are shown on every run, dry or not, and recorded for
	// `tlsdock status` (allow-source-owner).
	Warnings []string
	// socket: who holds the TCP listeners in daemon-json mode (socket.go).
	socket socketChoice
	// TCPHeldBy is who holds the TCP listeners in daemon-json mode
	// (HeldBySocket or HeldByDockerd; "" in the other modes).
	TCPHeldBy string
	// socketRestart: docker.socket restarts on tlsdock's drop-in;
	// releaseSocket: it gives up tlsdock's listeners first.
	socketRestart, releaseSocket bool
	// interim are the states daemon.json and tlsdock's drop-in go
	// through, written before Files, when the TLS settings move between
	// them (planInterim). dropInFirst: tlsdock's drop-in is written
	// before daemon.json (writeOrder).
	interim     []FileChange
	dropInFirst bool
	// unitsStale: when the plan read them, systemd said that
	// docker.service's or docker.socket's files changed on disk since it
	// loaded them (NeedDaemonReload). forced: an interrupted run was
	// recovered, and what systemd has loaded is not known.
	unitsStale, forced bool
}

// Changed reports whether applying the plan changes anything.
func (p *Plan) Changed() bool {
	return p.Install || p.NewCA != nil || len(p.Files) > 0 || p.LiveRestoreFirst || p.socketRestart || p.releaseSocket
}

// needsReload reports whether systemd must reload its unit files
// (daemon-reload) before docker restarts: the plan writes or removes a
// unit file, docker.socket's drop-in is on disk but not loaded, systemd
// said a unit's files changed on disk since it loaded them, or the plan
// cannot tell (a revert restores a snapshot; a recovered interrupted run).
// A rotation that only installs a new certificate set needs none: dockerd
// reads daemon.json and the certificates itself when it starts, and
// systemd's copy of the units is the one on disk.
func (p *Plan) needsReload() bool {
	if p.restore != nil || p.forced || p.unitsStale || p.socketRestart && !p.socket.loaded {
		return true
	}
	if p.changes(unitPaths...) {
		return true
	}
	return slices.ContainsFunc(p.interim, func(f FileChange) bool { return contains(unitPaths, f.Path) })
}

// changes reports whether the plan writes or removes one of paths.
func (p *Plan) changes(paths ...string) bool {
	for _, f := range p.Files {
		if contains(paths, f.Path) {
			return true
		}
	}
	return false
}

// removes reports whether the plan removes one of paths.
func (p *Plan) removes(paths ...string) bool {
	for _, f := range p.Files {
		if f.Action == "delete" && contains(paths, f.Path) {
			return true
		}
	}
	return false
}

func (p *Plan) note(format string, args ...any) {
	p.Notes = append(p.Notes, fmt.Sprintf(format, args...))
}

// changeNote describes a change to dockerd's configuration; it is shown
// only when the plan changes a file.
func (p *Plan) changeNote(format string, args ...any) {
	p.changeNotes = append(p.changeNotes, fmt.Sprintf(format, args...))
}

// Plan reads the host, validates every input and computes what a provision
// with cfg would change. It writes nothing.
func (a *Agent) Plan(ctx context.Context, cfg Config) (*Plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The D-Bus call and the dockerd query of the plan are bounded: a
	// systemd or dockerd that does not answer must not hang tlsdock.
	sctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	now := a.o.Now()
	ls, err := cfg.Listeners()
	if err != nil {
		return nil, err
	}
	plan := &Plan{Mode: cfg.Mode, Listeners: ls}
	if plan.srv, err = a.server(cfg.Mode); err != nil {
		return nil, err
	}
	for _, l := range ls {
		plan.TCPHosts = append(plan.TCPHosts, l.URL)
	}
	if err := a.planCerts(ctx, plan, cfg, now); err != nil {
		return nil, err
	}
	if cfg.ProbeClient != "" {
		c, err := tls.LoadX509KeyPair(filepath.Join(cfg.ProbeClient, "cert.pem"), filepath.Join(cfg.ProbeClient, "key.pem"))
		if err != nil {
			return nil, inputErr("--probe-client", "%v: give a directory with the cert.pem and key.pem of a client the CA in %s trusts", err, cfg.Certs)
		}
		plan.ProbeClient = &c
	}

	if err := a.checkTargets(); err != nil {
		return nil, err
	}
	doc, exists, err := daemonjson.Load(a.o.Paths.DaemonJSON())
	if err != nil {
		return nil, &InputError{Field: DaemonJSONPath, Err: err}
	}
	unitInfo, err := a.o.Systemd.Unit(sctx, systemd.DockerUnit)
	if err != nil {
		return nil, fmt.Errorf("asking systemd about %s (waited at most --timeout %v): %w: check that systemd answers (systemctl status)", systemd.DockerUnit, cfg.Timeout, err)
	}
	if err := preflightUnit(unitInfo); err != nil {
		return nil, err
	}
	plan.DockerActive = unitInfo.ActiveState == "active"
	plan.unitsStale = unitInfo.NeedDaemonReload
	dropIns := a.dropIns(unitInfo)
	later, err := systemd.LaterExecStart(a.o.Paths.Root, dropIns)
	if err != nil {
		return nil, &InputError{Field: systemd.DockerUnit, Err: err}
	}
	if len(later) > 0 {
		return nil, &InputError{Field: later[0], Err: fmt.Errorf("sets ExecStart after tlsdock's %s and would undo it: merge it into an override.conf (which tlsdock builds on) or remove it", systemd.DropInName)}
	}
	svc, err := systemd.ReadService(a.o.Paths.Root, unitInfo.FragmentPath, dropIns, DropInPath)
	if err != nil {
		return nil, &InputError{Field: systemd.DockerUnit, Err: err}
	}
	if svc.ExecStart == nil {
		return nil, &InputError{Field: unitInfo.FragmentPath, Err: errors.New("docker.service has no ExecStart: repair the docker package")}
	}
	if err := a.takeOverEnv(sctx, plan, svc); err != nil {
		return nil, err
	}
	if err := a.preflightStart(sctx, svc, doc); err != nil {
		return nil, err
	}

	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	swarm, liveRestoreOn, noLocalAPI := a.localDaemon(sctx, plan, svc, doc)

	if err := a.readSocket(sctx, plan, cfg); err != nil {
		return nil, err
	}
	h := &hostConfig{cfg: cfg, doc: doc, exists: exists, svc: svc, st: st, swarm: swarm, liveRestoreOn: liveRestoreOn, noLocalAPI: noLocalAPI}
	if exists {
		if h.json, err = os.ReadFile(a.o.Paths.DaemonJSON()); err != nil {
			return nil, fmt.Errorf("reading %s: %w", DaemonJSONPath, err)
		}
	}
	if err := plan.srv.plan(plan, h); err != nil {
		return nil, err
	}
	return plan, nil
}

// planNative is the plan of dockerd serving TLS itself: settings computes
// daemon.json and the drop-in's command from what planHosts left of the
// unit's; loadDropIn says whether the drop-in is loaded as soon as it is
// written. Leaving proxy mode, the proxy's files are removed.
func (a *Agent) planNative(plan *Plan, h *hostConfig, loadDropIn bool, settings func(newDoc *daemonjson.Doc, rest systemd.Command, unitHosts, unitTLS []string) (systemd.Command, error)) error {
	rest, unitHosts, unitTLS, err := a.planHosts(plan, h)
	if err != nil {
		return err
	}
	newDoc := h.doc.Clone()
	if h.cfg.LiveRestore && !hasFlag(h.svc.ExecStart, "--live-restore") {
		if h.swarm {
			plan.note("warning: this node is in swarm mode, which does not allow live-restore: containers will restart with dockerd")
		} else if err := daemonjson.SetLiveRestore(newDoc, true); err != nil {
			return err
		}
	}
	cmd, err := settings(newDoc, rest, unitHosts, unitTLS)
	if err != nil {
		return err
	}
	if err := checkConflicts(newDoc, h.svc, cmd); err != nil {
		return err
	}
	if err := a.planLiveRestoreFirst(plan, h); err != nil {
		return err
	}
	if err := a.planDockerdFiles(plan, h, newDoc, cmd, loadDropIn); err != nil {
		return err
	}
	plan.Restart = plan.Install || len(plan.Files) > 0 || !plan.DockerActive || plan.socketRestart || plan.releaseSocket
	return a.planLeaveProxy(plan)
}

// planLiveRestoreFirst turns live-restore on, and SIGHUPs dockerd, before
// the step that restarts dockerd, when it runs without.
func (a *Agent) planLiveRestoreFirst(plan *Plan, h *hostConfig) error {
	if !h.cfg.LiveRestore || h.swarm || !plan.DockerActive || h.liveRestoreOn || h.noLocalAPI || hasFlag(h.svc.ExecStart, "--live-restore") {
		return nil
	}
	plan.LiveRestoreFirst = true
	lr := h.doc.Clone()
	if err := daemonjson.SetLiveRestore(lr, true); err != nil {
		return err
	}
	plan.liveRestoreDoc = lr.Render()
	plan.note("live-restore: turning it on and reloading dockerd first, so running containers survive the restart")
	return nil
}

// planDockerdFiles plans daemon.json as newDoc and tlsdock's drop-in as
// cmd (none: removed). loadDropIn marks the drop-in to be loaded as soon as
// it is written.
func (a *Agent) planDockerdFiles(plan *Plan, h *hostConfig, newDoc *daemonjson.Doc, cmd systemd.Command, loadDropIn bool) error {
	if !newDoc.Equal(h.doc) {
		plan.addFile(DaemonJSONPath, h.json, h.exists, newDoc.Render(), 0o644, true)
	}
	oldDropIn, err := os.ReadFile(a.o.Paths.DropIn())
	dropInExists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", DropInPath, err)
	}
	if cmd != nil {
		want := systemd.RenderDropIn(cmd)
		if !bytes.Equal(want, oldDropIn) {
			plan.addFile(DropInPath, oldDropIn, dropInExists, want, 0o644, true)
		}
	} else if dropInExists {
		plan.addFile(DropInPath, oldDropIn, true, nil, 0, false)
	}
	if loadDropIn {
		for i := range plan.Files {
			plan.Files[i].load = plan.Files[i].Path == DropInPath
		}
	}
	// The drop-in comes first unless it adds TCP listeners or TLS flags:
	// then daemon.json has the TLS settings (or has lost them) first.
	plan.dropInFirst = cmd == nil || !passesTCPOrTLS(cmd)
	if plan.changes(DropInPath) && plan.changes(DaemonJSONPath) {
		a.planInterim(plan, h, oldDropIn, dropInExists, newDoc, cmd)
	}
	if err := a.planSocketFile(plan); err != nil {
		return err
	}
	if len(plan.Files) > 0 {
		plan.Notes = append(plan.Notes, plan.changeNotes...)
	}
	return nil
}

// passesTCPOrTLS reports whether cmd passes a TCP listener (-H) or a
// --tls* flag.
func passesTCPOrTLS(cmd systemd.Command) bool {
	_, hosts, tlsFlags := cmd.WithoutFlags(true)
	return len(tlsFlags) > 0 || len(hosts) != len(nonTCP(hosts))
}

// withoutTCP is cmd without its TCP -H flags (other flags kept).
func withoutTCP(cmd systemd.Command) systemd.Command {
	rest, hosts, _ := cmd.WithoutFlags(false)
	for _, h := range nonTCP(hosts) {
		rest = rest.Append("-H", h)
	}
	return rest
}

// docWithoutTCP is doc without the TCP listeners of its "hosts".
func docWithoutTCP(doc *daemonjson.Doc) *daemonjson.Doc {
	out := doc.Clone()
	hosts, err := out.Hosts()
	if err != nil || len(hosts) == len(nonTCP(hosts)) {
		return out
	}
	if keep := nonTCP(hosts); len(keep) > 0 {
		_ = out.Set("hosts", keep)
	} else {
		out.Delete("hosts")
	}
	return out
}

// hasTLSKeys reports whether doc sets any of dockerd's TLS settings.
func hasTLSKeys(doc *daemonjson.Doc) bool {
	for _, k := range daemonjson.TLSKeys {
		if _, ok := doc.Get(k); ok {
			return true
		}
	}
	return false
}

// passesTCP reports whether cmd passes a TCP listener (-H).
func passesTCP(cmd systemd.Command) bool {
	_, hosts, _ := cmd.WithoutFlags(false)
	return len(hosts) != len(nonTCP(hosts))
}

// planInterim plans the states daemon.json and tlsdock's drop-in go
// through when the TLS settings move from one to the other (the unit's
// --tls* flags into daemon.json, or daemon.json's into dropin mode's
// flags). Either order of the two writes has a state with them in both
// (dockerd refuses to start) or in neither (a TCP listener without TLS),
// so the TCP listeners go first, wherever they are; then the file that
// loses the TLS settings is written, then the one that gains them, and
// the final files (Files) bring the listeners back, with TLS. Each
// drop-in state is loaded as soon as it is written.
func (a *Agent) planInterim(plan *Plan, h *hostConfig, oldDropIn []byte, dropInExists bool, newDoc *daemonjson.Doc, cmd systemd.Command) {
	oldCmd := h.svc.ExecStart
	if dropInExists {
		files := append(append([]string{}, h.svc.Files[1:]...), DropInPath)
		if cur, err := systemd.ReadService(a.o.Paths.Root, h.svc.Files[0], files); err == nil && cur.ExecStart != nil {
			oldCmd = cur.ExecStart
		}
	}
	_, _, oldFlags := oldCmd.WithoutFlags(true)
	newFlags := cmd != nil && passesTLSFlags(cmd)
	toFlags := hasTLSKeys(h.doc) && !hasTLSKeys(newDoc) && newFlags
	toFile := len(oldFlags) > 0 && !newFlags && hasTLSKeys(newDoc)
	if !toFlags && !toFile {
		return
	}
	curJSON, curDropIn, dropInOn := h.json, oldDropIn, dropInExists
	addJSON := func(doc *daemonjson.Doc) {
		if b := doc.Render(); !bytes.Equal(b, curJSON) {
			plan.interim = append(plan.interim, FileChange{Path: DaemonJSONPath, Action: "update", new: b, mode: 0o644})
			curJSON = b
		}
	}
	addDropIn := func(c systemd.Command) {
		if c == nil {
			if dropInOn {
				plan.interim = append(plan.interim, FileChange{Path: DropInPath, Action: "delete", load: true})
				dropInOn = false
			}
			return
		}
		if b := systemd.RenderDropIn(c); !dropInOn || !bytes.Equal(b, curDropIn) {
			plan.interim = append(plan.interim, FileChange{Path: DropInPath, Action: "update", new: b, mode: 0o644, load: true})
			curDropIn, dropInOn = b, true
		}
	}
	// No TCP listener, the TLS settings where they were.
	if passesTCP(oldCmd) {
		addDropIn(withoutTCP(oldCmd))
	}
	addJSON(docWithoutTCP(h.doc))
	if toFlags {
		addJSON(docWithoutTCP(newDoc))
		return
	}
	if cmd == nil {
		addDropIn(nil)
	} else {
		addDropIn(withoutTCP(cmd))
	}
	addJSON(docWithoutTCP(newDoc))
}

func passesTLSFlags(cmd systemd.Command) bool {
	_, _, tlsFlags := cmd.WithoutFlags(true)
	return len(tlsFlags) > 0
}

// dropIns lists docker.service's drop-ins as systemd will load them at
// tlsdock's daemon-reload. systemd reports the ones it loaded; when the
// files changed since (NeedDaemonReload), the drop-in directory on disk is
// what counts, or a drop-in written without a daemon-reload would escape
// the checks and take effect at the restart.
func (a *Agent) dropIns(u systemd.UnitInfo) []string {
	if !u.NeedDaemonReload {
		return u.DropInPaths
	}
	return a.dropInsOnDisk(u.DropInPaths)
}

// checkTargets refuses, before anything changes, a file or directory that
// tlsdock would replace but cannot: a symlink (tlsdock never writes through
// one) or something that is not a regular file. Found only half-way through
// the sequence, it would also defeat the rollback.
func (a *Agent) checkTargets() error {
	for _, p := range []string{DaemonJSONPath, DropInPath} {
		fi, err := os.Lstat(a.o.Paths.Abs(p))
		if err != nil {
			continue
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(a.o.Paths.Abs(p))
			return inputErr(p, "is a symlink to %s, and tlsdock never writes through a symlink: replace the link with a copy of the file it points to (cp --remove-destination %s %s) and run tlsdock again", target, target, p)
		case fi.IsDir():
			return inputErr(p, "is a directory, not a regular file: move it away and run tlsdock again")
		case !fi.Mode().IsRegular():
			return inputErr(p, "is not a regular file (mode %v): move it away and run tlsdock again", fi.Mode())
		}
	}
	fi, err := os.Lstat(a.o.Paths.SSL())
	switch {
	case err != nil:
	case fi.Mode()&os.ModeSymlink != 0:
		return inputErr(SSLDir, "is a symlink, and tlsdock installs certificates into a real directory: replace the link with a directory (mkdir) and run tlsdock again")
	case !fi.IsDir():
		return inputErr(SSLDir, "is not a directory (mode %v): move it away and run tlsdock again", fi.Mode())
	case fi.Mode().Perm()&0o022 != 0:
		return inputErr(SSLDir, "is writable by group or others (mode %v): chmod 0755 %s and run tlsdock again", fi.Mode().Perm(), SSLDir)
	}
	return nil
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (p *Plan) addFile(path string, old []byte, existed bool, new []byte, mode os.FileMode, keep bool) {
	fc := FileChange{Path: path, old: old, new: new, mode: mode}
	switch {
	case !keep:
		fc.Action = "delete"
	case existed:
		fc.Action = "update"
	default:
		fc.Action = "create"
	}
	fc.Diff, _ = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(new)),
		FromFile: "a" + path, ToFile: "b" + path, Context: 3,
	})
	p.Files = append(p.Files, fc)
}

func hasFlag(cmd systemd.Command, name string) bool {
	for _, a := range cmd.Args() {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// planHosts computes the hosts dockerd ends up with (plan.Hosts): every
// non-TCP listener of the unit and daemon.json, and the TCP listeners asked
// for. It returns the unit's ExecStart without -H and --tls* flags, and the
// flags it removed.
func (a *Agent) planHosts(plan *Plan, h *hostConfig) (rest systemd.Command, unitHosts, unitTLS []string, err error) {
	doc, svc, st := h.doc, h.svc, h.st
	rest, unitHosts, unitTLS = svc.ExecStart.WithoutFlags(true)
	docHosts, err := doc.Hosts()
	if err != nil {
		return nil, nil, nil, &InputError{Field: DaemonJSONPath, Err: fmt.Errorf("%w: fix it or remove the key (tlsdock writes \"hosts\" itself) and run tlsdock again", err)}
	}
	unitHosts, docHosts = a.withLocalSocket(plan, h, unitHosts, docHosts)
	if len(unitTLS) > 0 {
		plan.changeNote("removed TLS flags %s from docker.service's ExecStart: tlsdock sets TLS", strings.Join(unitTLS, " "))
	}
	// Keep every non-TCP listener (fd://, unix://) from the unit and
	// daemon.json; drop TCP listeners that are not asked for.
	var keep []string
	seen := map[string]bool{}
	for _, h := range append(append([]string{}, unitHosts...), docHosts...) {
		if seen[h] {
			continue
		}
		seen[h] = true
		// dockerd reads a host without a scheme (":2375") as TCP.
		if len(daemonjson.InsecureTCPHosts([]string{h}, false)) == 0 {
			keep = append(keep, h)
			continue
		}
		if contains(plan.TCPHosts, normaliseTCP(h)) || st != nil && contains(st.TCPHosts, h) {
			continue
		}
		tlsVerify, _, _ := doc.Bool("tlsverify")
		if !tlsVerify || hasFlag(svc.ExecStart, "--tlsverify") {
			plan.changeNote("removed plaintext listener %s: it served the Docker API without authentication", h)
		} else {
			plan.changeNote("removed TCP listener %s: pass it with --host to keep it", h)
		}
	}
	if len(unitHosts) == 0 && len(docHosts) == 0 {
		// dockerd's default when no host is configured.
		keep = append(keep, "unix:///var/run/docker.sock")
	}
	plan.Hosts = append(append([]string{}, keep...), plan.TCPHosts...)
	return rest, unitHosts, unitTLS, nil
}

// daemonJSONSettings is daemon-json mode with dockerd holding the TCP
// listeners (the fallback). The TLS settings go into daemon.json; the
// listeners stay where dockerd already takes them from, so that no write
// moves them between two files (a kill in between would leave them in
// both, which dockerd refuses, or in neither, and a dockerd without -H
// replaces docker.socket's /run/docker.sock with its own):
//
//   - daemon.json has "hosts", or the unit passes no -H at all: "hosts"
//     (with the TCP listeners) and the TLS settings change in one write;
//   - the unit passes -H (Debian's -H fd://): tlsdock's drop-in repeats
//     ExecStart with the full -H list, and daemon.json gets the TLS
//     settings only.
//
// The unit's own --tls* flags are dropped either way (daemon.json has the
// TLS settings); planDockerdFiles plans that move through states valid
// on their own.
func (a *Agent) daemonJSONSettings(plan *Plan, h *hostConfig, newDoc *daemonjson.Doc, rest systemd.Command, unitHosts, unitTLS []string) (systemd.Command, error) {
	caPath, certPath, keyPath := certstore.Store{Dir: SSLDir}.Paths()
	docHosts, _ := newDoc.Hosts() // planHosts reported a bad "hosts"
	if len(docHosts) > 0 || len(unitHosts) == 0 {
		if err := daemonjson.SetTLS(newDoc, daemonjson.TLS{Hosts: plan.Hosts, CACert: caPath, Cert: certPath, Key: keyPath}); err != nil {
			return nil, err
		}
		if len(unitHosts) == 0 && len(unitTLS) == 0 {
			return nil, nil
		}
		if err := checkProgram(h.svc); err != nil {
			return nil, err
		}
		if len(unitHosts) > 0 {
			plan.changeNote("dropped %s from docker.service's ExecStart (tlsdock's drop-in): the listeners are in daemon.json's hosts, and dockerd refuses hosts given both as a flag and in the file", strings.Join(unitHosts, " "))
		}
		return rest, nil
	}
	// SetTLS sets "hosts" too; the drop-in's -H flags are the hosts here.
	if err := daemonjson.SetTLS(newDoc, daemonjson.TLS{Hosts: []string{"fd://"}, CACert: caPath, Cert: certPath, Key: keyPath}); err != nil {
		return nil, err
	}
	newDoc.Delete("hosts")
	if err := checkProgram(h.svc); err != nil {
		return nil, err
	}
	cmd := rest
	for _, host := range plan.Hosts {
		cmd = cmd.Append("-H", host)
	}
	plan.changeNote("TCP listeners: passed with -H on docker.service's ExecStart (tlsdock's drop-in), next to its own %s", strings.Join(unitHosts, " "))
	return cmd, nil
}

// dropInSettings puts the hosts and TLS flags on the drop-in's ExecStart and
// takes them out of daemon.json.
func (a *Agent) dropInSettings(plan *Plan, h *hostConfig, newDoc *daemonjson.Doc, rest systemd.Command) (systemd.Command, error) {
	caPath, certPath, keyPath := certstore.Store{Dir: SSLDir}.Paths()
	if err := checkProgram(h.svc); err != nil {
		return nil, err
	}
	removed := daemonjson.RemoveTLS(newDoc)
	if len(removed) > 0 {
		plan.changeNote("moved %s from daemon.json into the drop-in: dropin mode keeps them on dockerd's command line", strings.Join(removed, ", "))
	}
	cmd := rest
	for _, host := range plan.Hosts {
		cmd = cmd.Append("-H", host)
	}
	return cmd.Append("--tlsverify", "--tlscacert="+caPath, "--tlscert="+certPath, "--tlskey="+keyPath), nil
}

// checkConflicts refuses a daemon.json that sets what the ExecStart dockerd
// will run with (cmd, or the unit's own) also passes as a flag.
func checkConflicts(newDoc *daemonjson.Doc, svc *systemd.Service, cmd systemd.Command) error {
	args := svc.ExecStart.Args()
	if cmd != nil {
		args = cmd.Args()
	}
	if c := daemonjson.Conflicts(newDoc, args); len(c) > 0 {
		return &InputError{Field: DaemonJSONPath, Err: fmt.Errorf("sets %s, which docker.service's ExecStart (%s) also passes as a flag; dockerd refuses to start like that: remove one of them", strings.Join(c, ", "), svc.ExecStartFrom)}
	}
	return nil
}

func checkProgram(svc *systemd.Service) error {
	if filepath.Base(svc.ExecStart.Program()) != "dockerd" {
		return &InputError{Field: svc.ExecStartFrom, Err: fmt.Errorf("ExecStart runs %s, not dockerd, so tlsdock cannot rewrite its flags: remove -H and --tls flags from it yourself and use --mode daemon-json", svc.ExecStart.Program())}
	}
	return nil
}

func normaliseTCP(h string) string {
	if !strings.Contains(h, "://") {
		h = "tcp://" + h // dockerd reads "0.0.0.0:2376" (-H=0.0.0.0:2376) as TCP
	}
	if l, err := ParseHost(h); err == nil {
		return l.URL
	}
	return h
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// requiredNames is what the server certificate must cover: every --san and
// every listener that names a specific address.
func requiredNames(cfg Config, ls []Listener) certstore.Requirements {
	var req certstore.Requirements
	add := func(s string) {
		if ip := net.ParseIP(s); ip != nil {
			req.IPs = append(req.IPs, ip)
		} else {
			req.DNSNames = append(req.DNSNames, s)
		}
	}
	for _, s := range cfg.SANs {
		add(s)
	}
	for _, l := range ls {
		if !l.Wildcard() {
			add(l.Host)
		}
	}
	return req
}

func (a *Agent) planCerts(ctx context.Context, plan *Plan, cfg Config, now time.Time) error {
	req := requiredNames(cfg, plan.Listeners)
	req.Now, req.ServerRoots = now, serverRoots(a.o.SystemRoots, a.o.Logger)
	store := certstore.Store{Dir: a.o.Paths.SSL()}
	installed, err := store.Load()
	if err != nil {
		a.o.Logger.Warn("the installed set does not load; it will be replaced", "dir", SSLDir, "err", err)
		installed = nil
	}
	if cfg.Certs != "" || cfg.SourceSet != nil {
		if !cfg.daemon {
			if err := a.checkSandbox(cfg); err != nil {
				return err
			}
		}
		set := cfg.SourceSet
		if set == nil {
			var err error
			if set, err = a.loadSource(cfg); err != nil {
				return &InputError{Field: "--certs", Err: err}
			}
		}
		if err := set.Validate(req); err != nil {
			return &InputError{Field: "--certs", Err: err}
		}
		plan.Set = set
		// An installed set whose file starts with an intermediate (put
		// there before tlsdock ordered chains leaf first, served by proxy
		// mode) has the source's fingerprint, but dockerd cannot load it:
		// install it again, leaf first.
		plan.Install = installed == nil || installed.Fingerprint() != set.Fingerprint() || installed.CertReordered
		if set.CertReordered && plan.Install {
			plan.note("%s starts with an intermediate, not the server certificate: installed leaf first into %s, as dockerd takes the first certificate as its own (the source file stays as it is)", set.Names.Cert, SSLDir)
		}
		if w := cfg.SourceWarning(); w != "" {
			plan.Warnings = append(plan.Warnings, w)
		}
		return nil
	}
	// The local CA.
	ca, err := certstore.LoadCA(a.o.Paths.CA())
	switch {
	case errors.Is(err, os.ErrNotExist):
		if ca, err = certstore.NewCA(cfg.KeyType, now, a.o.Rand); err != nil {
			return err
		}
		plan.NewCA = ca
	case err != nil:
		return fmt.Errorf("loading the local CA in %s: %w", CADir, err)
	}
	plan.CA = ca
	names, ips := a.defaultNames(ctx, req)
	full := certstore.Requirements{Now: now, DNSNames: names, IPs: ips}
	if installed != nil && plan.NewCA == nil && reusable(installed, ca, cfg.KeyType, full, now, cfg.RenewBefore) {
		plan.Set = installed
		return nil
	}
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{
		CommonName: firstOr(names, "localhost"), DNSNames: names, IPs: ips,
		KeyType: cfg.KeyType, Now: now, Validity: ServerValidity, Server: true,
	}, a.o.Rand)
	if err != nil {
		return fmt.Errorf("issuing the server certificate: %w", err)
	}
	set, err := certstore.ParseSet(ca.CertPEM, certPEM, keyPEM, certstore.SetNames{CA: CADir + "/ca.pem", Cert: "issued server certificate", Key: "issued server key"})
	if err != nil {
		return err
	}
	if err := set.Validate(full); err != nil {
		return err
	}
	plan.Set, plan.Install = set, true
	return nil
}

// loadSource reads the --certs source with its trust checks: only root
// (or the allow-source-owner account) may be able to change it, and its key
// is readable by nobody else. A set that passed is warned about when an
// account besides root is trusted.
func (a *Agent) loadSource(cfg Config) (*certstore.Set, error) {
	trust, err := cfg.SourceTrust()
	if err != nil {
		return nil, err
	}
	set, err := certstore.LoadSourceFiles(cfg.SourcePaths(), trust)
	if err != nil {
		return nil, err
	}
	if w := cfg.SourceWarning(); w != "" {
		a.o.Logger.Warn(w, "source", cfg.Certs)
	}
	return set, nil
}

// dnsWait bounds the lookup of the host's FQDN.
const dnsWait = 5 * time.Second

// defaultNames is what a server certificate of the local CA covers: the
// host's name, FQDN and addresses, localhost and loopback, and req.
func (a *Agent) defaultNames(ctx context.Context, req certstore.Requirements) ([]string, []net.IP) {
	names := []string{}
	seenName := map[string]bool{}
	addName := func(n string) {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		if n != "" && !seenName[n] {
			seenName[n] = true
			names = append(names, n)
		}
	}
	if h, err := a.o.Hostname(); err == nil {
		addName(h)
		// Bounded: a host without working DNS must not stall the plan.
		lctx, cancel := context.WithTimeout(ctx, dnsWait)
		cname, err := net.DefaultResolver.LookupCNAME(lctx, h)
		cancel()
		if err == nil {
			addName(cname)
		}
	}
	addName("localhost")
	for _, n := range req.DNSNames {
		addName(n)
	}
	var ips []net.IP
	seenIP := map[string]bool{}
	addIP := func(ip net.IP) {
		if !seenIP[ip.String()] {
			seenIP[ip.String()] = true
			ips = append(ips, ip)
		}
	}
	addIP(net.IPv4(127, 0, 0, 1))
	addIP(net.IPv6loopback)
	if addrs, err := a.o.Addrs(); err == nil {
		for _, ip := range addrs {
			addIP(ip)
		}
	}
	for _, ip := range req.IPs {
		addIP(ip)
	}
	sort.SliceStable(ips[2:], func(i, j int) bool { return ips[2+i].String() < ips[2+j].String() })
	return names, ips
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// reusable reports whether an installed set of the local CA can stay: it is
// valid, covers the names, has the asked key type and is not yet due for
// renewal (two thirds of its lifetime).
func reusable(set *certstore.Set, ca *certstore.CA, kt certstore.KeyType, req certstore.Requirements, now time.Time, renewBefore time.Duration) bool {
	if set.Cert.CheckSignatureFrom(ca.Cert) != nil {
		return false
	}
	if set.Validate(req) != nil || certstore.KeyTypeOf(set.Key) != kt {
		return false
	}
	return now.Before(renewTime(set.Cert, renewBefore))
}

// RenewAt is when a local-CA certificate is due for renewal: two thirds of
// the way through its lifetime.
func RenewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(life * 2 / 3)
}
