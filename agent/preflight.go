package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// The preflight refuses, before anything changes, a docker.service that
// cannot start as the host is now: tlsdock would restart it, fail, and its
// rollback's restart would fail the same way, leaving docker down. Each
// refusal is bad input (exit 2) naming the unit or file and what to do.

// preflightUnit refuses a docker.service that systemd cannot start at all:
// masked, not found, or with unit files it refuses.
func preflightUnit(u systemd.UnitInfo) error {
	switch u.LoadState {
	case "loaded":
		return nil
	case "masked":
		return inputErr(systemd.DockerUnit, "is masked, so systemd never starts it: run `systemctl unmask %s` (and `systemctl start %s`), then tlsdock again", systemd.DockerUnit, systemd.DockerUnit)
	case "bad-setting", "error":
		return &InputError{Field: systemd.DockerUnit, Err: fmt.Errorf("systemd refuses its unit files (load state %s; %s): see why with `systemctl status docker.service`, fix them and run systemctl daemon-reload", u.LoadState, strings.Join(append([]string{u.FragmentPath}, u.DropInPaths...), ", "))}
	default:
		return inputErr(systemd.DockerUnit, "is %s: install docker.io (Debian, Ubuntu) or docker-ce first", orWord(u.LoadState, "unknown"))
	}
}

// execPath is the search path systemd uses for an ExecStart= program
// given without a directory (systemd.service(5), "Command lines").
var execPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// preflightStart refuses a docker.service whose start would fail on this
// host whatever tlsdock writes: the program of its ExecStart is missing
// or not executable, or docker.socket is masked while docker.service
// requires it or takes its sockets (-H fd://, which dockerd refuses to
// start with when systemd passes none).
func (a *Agent) preflightStart(ctx context.Context, svc *systemd.Service, doc *daemonjson.Doc) error {
	if err := a.preflightProgram(svc); err != nil {
		return err
	}
	sock, err := a.o.Systemd.Unit(ctx, systemd.SocketUnit)
	if err != nil {
		return fmt.Errorf("asking systemd about %s: %w: check that systemd answers (systemctl status)", systemd.SocketUnit, err)
	}
	if sock.LoadState != "masked" {
		return nil
	}
	_, flagHosts, _ := svc.ExecStart.WithoutFlags(false)
	docHosts, _ := doc.Hosts()
	why := ""
	switch {
	case slices.Contains(svc.Requires, systemd.SocketUnit):
		why = "docker.service requires it (Requires= in " + strings.Join(svc.Files, ", ") + "), so systemd refuses to start docker"
	case hasFD(flagHosts):
		why = "docker.service's ExecStart (" + svc.ExecStartFrom + ") passes -H fd://, and dockerd does not start without the sockets docker.socket hands it"
	case hasFD(docHosts):
		why = DaemonJSONPath + " has \"hosts\": [\"fd://\"], and dockerd does not start without the sockets docker.socket hands it"
	default:
		return nil
	}
	return inputErr(systemd.SocketUnit, "is masked, and %s: run `systemctl unmask %s`, then tlsdock again", why, systemd.SocketUnit)
}

func hasFD(hosts []string) bool {
	for _, h := range hosts {
		if strings.HasPrefix(h, "fd://") {
			return true
		}
	}
	return false
}

// preflightProgram refuses an ExecStart whose program is missing or not
// executable.
func (a *Agent) preflightProgram(svc *systemd.Service) error {
	prog := svc.ExecStart.Program()
	candidates := []string{prog}
	if !strings.HasPrefix(prog, "/") {
		candidates = nil
		for _, d := range execPath {
			candidates = append(candidates, path.Join(d, prog))
		}
	}
	var found string
	var fi os.FileInfo
	for _, c := range candidates {
		var err error
		if fi, err = os.Stat(a.o.Paths.Abs(c)); err == nil {
			found = c
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("checking %s, the program of docker.service's ExecStart: %w", c, err)
		}
	}
	switch {
	case found == "":
		return inputErr(svc.ExecStartFrom, "ExecStart runs %s, which does not exist, so docker cannot start: install docker.io (Debian, Ubuntu) or docker-ce, or fix the path in ExecStart", prog)
	case !fi.Mode().IsRegular():
		return inputErr(svc.ExecStartFrom, "ExecStart runs %s, which is not a regular file (mode %v), so docker cannot start: reinstall docker.io or docker-ce, or fix the path in ExecStart", found, fi.Mode())
	case fi.Mode().Perm()&0o111 == 0:
		return inputErr(svc.ExecStartFrom, "ExecStart runs %s, which is not executable (mode %v), so docker cannot start: chmod 0755 %s, or reinstall docker.io or docker-ce", found, fi.Mode().Perm(), found)
	}
	return nil
}
