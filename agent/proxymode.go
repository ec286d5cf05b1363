package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// Proxy mode's files and unit.
const (
	// ProxyUnit is tlsdock's own unit; in proxy mode it serves the proxy.
	ProxyUnit = "tlsdock.service"
	// ProxyUnitPath is the unit provision writes when no package installed
	// one.
	ProxyUnitPath = "/etc/systemd/system/tlsdock.service"
	// ProxyDropInDir holds tlsdock.service's drop-ins.
	ProxyDropInDir = "/etc/systemd/system/tlsdock.service.d"
	// ProxyDropInPath makes tlsdock.service run `tlsdock run --mode proxy`
	// with the settings of the last provision.
	ProxyDropInPath = ProxyDropInDir + "/zz-proxy.conf"
	// LocalCRLPath is the local CA's CRL (`tlsdock certs revoke`). The proxy
	// loads it whenever it exists.
	LocalCRLPath = CADir + "/crl.pem"
	// ProxyStatusSocket is where the proxy daemon answers GET /status with
	// proxy.Status as JSON, for `tlsdock status` (root only, 0600).
	ProxyStatusSocket = "/run/tlsdock/proxy.sock"
)

// proxyUnitPaths are the proxy's unit files, backed up with the others.
var proxyUnitPaths = []string{ProxyUnitPath, ProxyDropInPath}

// packagedUnitPaths are where the .deb and .rpm install tlsdock.service.
var packagedUnitPaths = []string{"/lib/systemd/system/tlsdock.service", "/usr/lib/systemd/system/tlsdock.service"}

// proxyUnitMarker is the first line of a unit provision wrote; a
// tlsdock.service in /etc without it is the administrator's and is left
// alone.
const proxyUnitMarker = "# Written by `tlsdock provision --mode proxy`"

func (c Config) validateProxy() error {
	if c.AuditLog != "" && !filepath.IsAbs(c.AuditLog) {
		return inputErr("--audit-log", "%q is not an absolute path: give one such as %s, or \"\" to keep the audit records in the journal", c.AuditLog, DefaultAuditLog)
	}
	if c.AuditLogMaxSize < 0 {
		return inputErr("--audit-log-max-size", "must not be negative, got %d (0: never rotate)", c.AuditLogMaxSize)
	}
	if err := c.validateCRLURLs(); err != nil {
		return err
	}
	if c.Mode == ModeProxy {
		return nil
	}
	if c.Policy != "" {
		return inputErr("--policy", "a policy applies only in proxy mode (dockerd cannot tell clients apart): add --mode proxy, or remove policy %s", c.Policy)
	}
	if len(c.CRLs) > 0 {
		return inputErr("--crl", "a CRL applies only in proxy mode (dockerd cannot check revocation): add --mode proxy, or remove crl %s", strings.Join(c.CRLs, ", "))
	}
	if len(c.CRLURLs) > 0 {
		return inputErr("--crl-url", "a CRL applies only in proxy mode (dockerd cannot check revocation): add --mode proxy, or remove crl-url %s", strings.Join(c.CRLURLs, ", "))
	}
	return nil
}

// waitLock waits up to LockWait for the lock on f; it reports whether it
// got it. Stopping ends the wait early.
func (a *Agent) waitLock(f *os.File) bool {
	if a.o.LockWait <= 0 {
		return false
	}
	deadline := time.Now().Add(a.o.LockWait)
	a.o.Logger.Warn("another tlsdock holds the lock; waiting for it", "lock", lockPath, "max", a.o.LockWait)
	for time.Now().Before(deadline) {
		select {
		case <-a.o.Stopping:
			return false
		case <-time.After(50 * time.Millisecond):
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return true
		}
	}
	return false
}

// recorded returns the recorded state of a host path, and whether the
// snapshot recorded it at all.
func (s *Snapshot) recorded(hostPath string) (FileState, bool) {
	for _, f := range s.Files {
		if f.Path == hostPath {
			return f, true
		}
	}
	return FileState{}, false
}

func isTCPHost(h string) bool { return len(daemonjson.InsecureTCPHosts([]string{h}, false)) > 0 }

func nonTCP(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if !isTCPHost(h) {
			out = append(out, h)
		}
	}
	return out
}

// planProxy is the plan of both proxy servers: the CRLs are checked, and
// dockerd keeps only its local listeners; it restarts only when that changes
// its files.
func (a *Agent) planProxy(plan *Plan, h *hostConfig) error {
	if err := checkCRLs(a.o.Paths, h.cfg.CRLs, plan.Set, a.o.Now()); err != nil {
		return err
	}
	rest, unitHosts, unitTLS, err := a.planHosts(plan, h)
	if err != nil {
		return err
	}
	newDoc := h.doc.Clone()
	cmd, changes, err := a.planProxyDockerd(plan, h.cfg, newDoc, h.svc, rest, unitHosts, unitTLS, h.swarm)
	if err != nil {
		return err
	}
	if err := checkConflicts(newDoc, h.svc, cmd); err != nil {
		return err
	}
	if changes {
		if err := a.planLiveRestoreFirst(plan, h); err != nil {
			return err
		}
	}
	if err := a.planDockerdFiles(plan, h, newDoc, cmd, false); err != nil {
		return err
	}
	// A new set never restarts dockerd: only a change of its own files
	// (a TCP listener removed) does.
	plan.Restart = plan.changes(dockerdPaths...) || plan.releaseSocket || !plan.DockerActive
	return nil
}

// planProxyDockerd leaves dockerd its local listeners only: TLS keys and TCP
// hosts leave daemon.json, -H tcp:// and --tls* flags leave the unit (the
// drop-in repeats the rest only when the unit had them). Non-TCP hosts stay
// where they are. Only when this changes dockerd's configuration is
// live-restore turned on too, and dockerd restarted; changes reports
// whether it does.
func (a *Agent) planProxyDockerd(plan *Plan, cfg Config, newDoc *daemonjson.Doc, svc *systemd.Service, rest systemd.Command, unitHosts, unitTLS []string, swarm bool) (systemd.Command, bool, error) {
	orig := newDoc.Clone()
	for _, k := range daemonjson.TLSKeys {
		newDoc.Delete(k)
	}
	docHosts, _ := newDoc.Hosts()
	keep := nonTCP(docHosts)
	// dockerd refuses hosts both in daemon.json and as -H (a native mode
	// moved the unit's fd:// into daemon.json): then daemon.json keeps them
	// all and the drop-in repeats the unit without -H, as daemon-json mode
	// does.
	inDoc := len(keep) > 0 && len(unitHosts) > 0
	if inDoc {
		for _, h := range nonTCP(unitHosts) {
			if !contains(keep, h) {
				keep = append(keep, h)
			}
		}
	}
	if len(keep) != len(docHosts) || inDoc {
		if len(keep) == 0 {
			newDoc.Delete("hosts")
		} else if err := newDoc.Set("hosts", keep); err != nil {
			return nil, false, err
		}
	}
	var cmd systemd.Command
	if inDoc {
		if err := checkProgram(svc); err != nil {
			return nil, false, err
		}
		cmd = rest
	} else if len(nonTCP(unitHosts)) != len(unitHosts) || len(unitTLS) > 0 {
		if err := checkProgram(svc); err != nil {
			return nil, false, err
		}
		cmd = rest
		for _, h := range nonTCP(unitHosts) {
			cmd = cmd.Append("-H", h)
		}
	}
	oldDropIn, err := os.ReadFile(a.o.Paths.DropIn())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("reading %s: %w", DropInPath, err)
	}
	dropInChanges := (cmd == nil && err == nil) || (cmd != nil && !bytes.Equal(systemd.RenderDropIn(cmd), oldDropIn))
	changes := !newDoc.Equal(orig) || dropInChanges
	if changes {
		plan.changeNote("dockerd keeps only its local socket (%s): tlsdock.service serves %s", orWord(strings.Join(nonTCP(plan.Hosts), " "), "unix:///var/run/docker.sock"), strings.Join(plan.TCPHosts, " "))
		if cfg.LiveRestore && !hasFlag(svc.ExecStart, "--live-restore") {
			if swarm {
				plan.note("warning: this node is in swarm mode, which does not allow live-restore: containers will restart with dockerd")
			} else if err := daemonjson.SetLiveRestore(newDoc, true); err != nil {
				return nil, false, err
			}
		}
	}
	return cmd, changes, nil
}

// proxyUnitFiles reads tlsdock.service's files in /etc; ours says whether
// the unit is the one provision writes.
func (a *Agent) proxyUnitFiles() (unit []byte, unitExists, ours bool, dropIn []byte, dropInExists bool, err error) {
	unit, err = os.ReadFile(a.o.Paths.Abs(ProxyUnitPath))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, false, nil, false, fmt.Errorf("reading %s: %w", ProxyUnitPath, err)
	}
	unitExists = err == nil
	ours = unitExists && bytes.HasPrefix(unit, []byte(proxyUnitMarker))
	dropIn, err = os.ReadFile(a.o.Paths.Abs(ProxyDropInPath))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, false, nil, false, fmt.Errorf("reading %s: %w", ProxyDropInPath, err)
	}
	return unit, unitExists, ours, dropIn, err == nil, nil
}

// planLeaveProxy, in a native mode, removes tlsdock.service's drop-in (and
// its unit, when provision wrote it): the native server's serve step then
// stops tlsdock.service before dockerd takes the TCP listeners.
func (a *Agent) planLeaveProxy(plan *Plan) error {
	oldUnit, _, ours, oldDropIn, dropInExists, err := a.proxyUnitFiles()
	if err != nil || !dropInExists {
		return err
	}
	plan.addFile(ProxyDropInPath, oldDropIn, true, nil, 0, false)
	if ours {
		plan.addFile(ProxyUnitPath, oldUnit, true, nil, 0, false)
	}
	plan.Notes = append(plan.Notes, "leaving proxy mode: "+ProxyUnit+" stops serving the proxy before dockerd takes the TCP listeners")
	return nil
}

// planProxyUnit plans tlsdock.service's files in proxy mode from the CLI:
// the unit itself when no package installed one, and the drop-in that runs
// `tlsdock run --mode proxy` with the effective settings.
func (a *Agent) planProxyUnit(plan *Plan, cfg Config) error {
	oldUnit, unitExists, ours, oldDropIn, dropInExists, err := a.proxyUnitFiles()
	if err != nil {
		return err
	}
	for _, p := range []string{ProxyUnitPath, ProxyDropInPath} {
		if fi, err := os.Lstat(a.o.Paths.Abs(p)); err == nil && !fi.Mode().IsRegular() {
			return inputErr(p, "is not a regular file (mode %v), and tlsdock never writes through one: move it away and run tlsdock again", fi.Mode())
		}
	}
	exe, err := a.o.Executable()
	if err != nil {
		return fmt.Errorf("finding tlsdock's own executable for %s: %w", ProxyUnit, err)
	}
	packaged := false
	for _, p := range packagedUnitPaths {
		if _, err := os.Stat(a.o.Paths.Abs(p)); err == nil {
			packaged = true
		}
	}
	if !packaged && (!unitExists || ours) {
		if want := RenderProxyUnit(exe); !bytes.Equal(want, oldUnit) {
			plan.addFile(ProxyUnitPath, oldUnit, unitExists, want, 0o644, true)
		}
	}
	if want := RenderProxyDropIn(exe, cfg); !bytes.Equal(want, oldDropIn) {
		plan.addFile(ProxyDropInPath, oldDropIn, dropInExists, want, 0o644, true)
	}
	return nil
}

// RenderProxyUnit is the tlsdock.service provision writes when no package
// installed one.
func RenderProxyUnit(exe string) []byte {
	opts := []*unit.UnitOption{
		unit.NewUnitOption("Unit", "Description", "tlsdock: mutual-TLS proxy in front of dockerd's socket"),
		unit.NewUnitOption("Unit", "After", "docker.service network-online.target"),
		unit.NewUnitOption("Unit", "Wants", "network-online.target"),
		unit.NewUnitOption("Service", "Type", "notify"),
		unit.NewUnitOption("Service", "ExecStart", systemd.Command{}.Append(exe, "run").String()),
		unit.NewUnitOption("Service", "ExecReload", "/bin/kill -HUP $MAINPID"),
		unit.NewUnitOption("Service", "Restart", "on-failure"),
		unit.NewUnitOption("Service", "RestartSec", "2s"),
		unit.NewUnitOption("Service", "TimeoutStartSec", "5min"),
		unit.NewUnitOption("Service", "RuntimeDirectory", "tlsdock"),
		unit.NewUnitOption("Service", "RuntimeDirectoryPreserve", "yes"),
		unit.NewUnitOption("Install", "WantedBy", "multi-user.target"),
	}
	body, _ := io.ReadAll(unit.Serialize(opts))
	return append([]byte(proxyUnitMarker+" (no tlsdock package is installed). `tlsdock revert` removes it.\n"), body...)
}

// ProxyArgs are the arguments of `tlsdock run` that carry cfg's settings,
// so that a provision by flags alone works without a config file.
func ProxyArgs(cfg Config) []string {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	args := []string{"run", "--mode", string(ModeProxy)}
	for _, h := range cfg.Hosts {
		args = append(args, "--host", h)
	}
	if cfg.Generate {
		args = append(args, "--generate")
	} else {
		args = append(args, "--certs", abs(cfg.Certs))
		for _, f := range []struct{ flag, name string }{{"--ca-file", cfg.CAFile}, {"--cert-file", cfg.CertFile}, {"--key-file", cfg.KeyFile}} {
			if f.name != "" {
				args = append(args, f.flag, f.name)
			}
		}
	}
	for _, s := range cfg.SANs {
		args = append(args, "--san", s)
	}
	args = append(args, "--key-type", string(cfg.KeyType), "--timeout", cfg.Timeout.String(), fmt.Sprintf("--live-restore=%v", cfg.LiveRestore))
	if cfg.ProbeClient != "" {
		args = append(args, "--probe-client", abs(cfg.ProbeClient))
	}
	if cfg.RenewBefore != 0 {
		args = append(args, "--renew-before", cfg.RenewBefore.String())
	}
	if cfg.Policy != "" {
		args = append(args, "--policy", abs(cfg.Policy))
	}
	for _, c := range cfg.CRLs {
		args = append(args, "--crl", abs(c))
	}
	for _, u := range cfg.CRLURLs {
		args = append(args, "--crl-url", u)
	}
	if cfg.crlRefresh() != DefaultCRLRefresh {
		args = append(args, "--crl-refresh", cfg.CRLRefresh.String())
	}
	if cfg.AuditLog != DefaultAuditLog {
		args = append(args, "--audit-log="+cfg.AuditLog)
	}
	if cfg.AuditLogMaxSize != DefaultAuditLogMaxSize {
		args = append(args, "--audit-log-max-size", FormatSize(cfg.AuditLogMaxSize))
	}
	return args
}

// RenderProxyDropIn is tlsdock.service's drop-in in proxy mode. It also
// clears the packaged unit's ConditionPathExists=, since state.json is
// written only once the provision that starts the unit commits.
func RenderProxyDropIn(exe string, cfg Config) []byte {
	opts := []*unit.UnitOption{
		unit.NewUnitOption("Unit", "ConditionPathExists", ""),
		unit.NewUnitOption("Service", "ExecStart", ""),
		unit.NewUnitOption("Service", "ExecStart", systemd.Command{}.Append(exe).Append(ProxyArgs(cfg)...).String()),
	}
	body, _ := io.ReadAll(unit.Serialize(opts))
	return append([]byte("# Written by `tlsdock provision --mode proxy`: tlsdock.service serves the proxy. `tlsdock revert` removes it; edits are overwritten.\n"), body...)
}

// InstalledMode is the mode of the last provision ("" when none).
func (a *Agent) InstalledMode() Mode {
	st, err := a.loadState()
	if err != nil || st == nil {
		return ""
	}
	return st.Mode
}

// ProxyStatus asks the running proxy daemon for its status over
// ProxyStatusSocket.
func (a *Agent) ProxyStatus(ctx context.Context) (*ProxyDaemonStatus, error) {
	sock := a.o.Paths.Abs(ProxyStatusSocket)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://proxy/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the proxy does not answer on %s (%w): is %s running? see `systemctl status %s`", ProxyStatusSocket, err, ProxyUnit, ProxyUnit)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the proxy's status: HTTP %d", resp.StatusCode)
	}
	var st ProxyDaemonStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("the proxy's status: %w", err)
	}
	return &st, nil
}

// proxyStatusHandler serves GET /status for ProxyStatus.
func proxyStatusHandler(status func() ProxyDaemonStatus) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status())
	})
}
