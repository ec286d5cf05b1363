package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// The local socket is part of tlsdock's target state. Docker's docs recipe
// edits the shipped unit to `ExecStart=/usr/bin/dockerd -H=0.0.0.0:2376`:
// dockerd then serves no local socket, while docker.socket still holds
// /run/docker.sock and nobody accepts on it, so a local client hangs
// instead of failing. tlsdock gives the host its local socket back, never
// waits on one for long, and confirms nothing through a socket that the
// running dockerd does not serve.

// localAPIWait bounds each call over the unix socket made by the plan and
// the checks around the restart: a socket that nobody accepts on must fail
// fast, not after --timeout.
const localAPIWait = 3 * time.Second

// localPingWait bounds the check of the local socket after a restart: the
// restart job has waited for dockerd's READY already.
const localPingWait = 10 * time.Second

// localHost is the listener that gives dockerd its local socket: fd:// when
// docker.socket hands dockerd its sockets (it runs, or docker.service
// requires it, so that systemd starts it first), else dockerd's own
// unix:///var/run/docker.sock.
func localHost(sock systemd.UnitInfo, svc *systemd.Service) string {
	if sock.LoadState == "loaded" && (sock.ActiveState == "active" || slices.Contains(svc.Requires, systemd.SocketUnit)) {
		return "fd://"
	}
	return "unix://" + DockerSocket
}

// servesLocal reports whether dockerd, configured with the unit's -H flags
// and daemon.json's hosts, serves a local socket: a non-TCP listener, or
// no host at all (dockerd's default, unix:///var/run/docker.sock).
func servesLocal(unitHosts, docHosts []string) bool {
	all := append(append([]string{}, unitHosts...), docHosts...)
	return len(all) == 0 || len(nonTCP(all)) > 0
}

// withLocalSocket adds the local socket to the hosts planHosts starts from
// when dockerd is configured without one: on the unit's -H flags when the
// unit passes -H (docs recipe), else in daemon.json's hosts.
func (a *Agent) withLocalSocket(plan *Plan, h *hostConfig, unitHosts, docHosts []string) ([]string, []string) {
	if servesLocal(unitHosts, docHosts) {
		return unitHosts, docHosts
	}
	local := localHost(plan.socket.unit, h.svc)
	plan.changeNote("added the local socket %s: dockerd served none (only %s), so local clients such as `docker ps` hung on /run/docker.sock", local, strings.Join(append(append([]string{}, unitHosts...), docHosts...), " "))
	if len(unitHosts) > 0 {
		return append(append([]string{}, unitHosts...), local), docHosts
	}
	return unitHosts, append(append([]string{}, docHosts...), local)
}

// localDaemon asks the running dockerd over its unix socket whether it is
// in a swarm and runs with live-restore, within localAPIWait. A dockerd
// whose configuration serves no local socket is not asked (noLocalAPI):
// its live-restore is read from its files, and live-restore cannot be
// turned on first (there is no API to confirm the SIGHUP through), which
// the warning says.
func (a *Agent) localDaemon(ctx context.Context, plan *Plan, svc *systemd.Service, doc *daemonjson.Doc) (swarm, liveRestoreOn, noLocalAPI bool) {
	if !plan.DockerActive {
		return false, false, false
	}
	_, unitHosts, _ := svc.ExecStart.WithoutFlags(false)
	docHosts, _ := doc.Hosts()
	if !servesLocal(unitHosts, docHosts) {
		on, _, _ := doc.Bool("live-restore")
		on = on || hasFlag(svc.ExecStart, "--live-restore")
		if on {
			plan.note("dockerd serves no local socket, so tlsdock cannot ask it; live-restore is on in its configuration (%s), so running containers survive the restart", orWord(liveRestoreFrom(svc, doc), DaemonJSONPath))
		} else {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("dockerd serves no local socket (only %s), so tlsdock cannot turn live-restore on and confirm it before the restart: the restart stops every running container. To keep them, add \"live-restore\": true to %s, run `systemctl reload %s`, then run tlsdock again", strings.Join(append(append([]string{}, unitHosts...), docHosts...), " "), DaemonJSONPath, systemd.DockerUnit))
		}
		return false, on, true
	}
	ictx, cancel := context.WithTimeout(ctx, localAPIWait)
	defer cancel()
	info, err := a.o.Docker.Info(ictx)
	if err != nil {
		a.o.Logger.Warn("dockerd's local API did not answer; assuming no swarm and no live-restore", "socket", DockerSocket, "waited", localAPIWait, "err", err)
		return false, false, false
	}
	return info.SwarmActive(), info.LiveRestoreEnabled, false
}

func liveRestoreFrom(svc *systemd.Service, doc *daemonjson.Doc) string {
	if hasFlag(svc.ExecStart, "--live-restore") {
		return svc.ExecStartFrom
	}
	if on, _, _ := doc.Bool("live-restore"); on {
		return DaemonJSONPath
	}
	return ""
}

// configuredLocal reports whether docker.service and daemon.json, as they
// are on disk now, give dockerd a local socket. It reads the unit as
// systemd reports it (fragment and drop-ins) and daemon.json; a file it
// cannot read counts as serving one, so that the check of the socket runs.
func (a *Agent) configuredLocal(ctx context.Context) bool {
	uctx, cancel := context.WithTimeout(ctx, localAPIWait)
	u, err := a.o.Systemd.Unit(uctx, systemd.DockerUnit)
	cancel()
	if err != nil {
		return true
	}
	svc, err := systemd.ReadService(a.o.Paths.Root, u.FragmentPath, a.dropInsForStart(u))
	if err != nil || svc.ExecStart == nil {
		return true
	}
	doc, _, err := daemonjson.Load(a.o.Paths.DaemonJSON())
	if err != nil {
		return true
	}
	_, unitHosts, _ := svc.ExecStart.WithoutFlags(false)
	docHosts, err := doc.Hosts()
	if err != nil {
		return true
	}
	return servesLocal(unitHosts, docHosts)
}

// dropInsForStart is docker.service's drop-ins as a start now would load
// them, after the daemon-reload it takes (dropInsOnDisk).
func (a *Agent) dropInsForStart(u systemd.UnitInfo) []string {
	u.NeedDaemonReload = true
	return a.dropIns(u)
}

// checkLocalSocket is verification's check of the local socket, each
// call bounded by localPingWait. A provision's target always serves one
// (withLocalSocket). A revert gives the host back its files as they were:
// when they serve no local socket (the docs recipe), the check is skipped
// and says so, since waiting on /run/docker.sock would only hang.
func (a *Agent) checkLocalSocket(ctx context.Context, plan *Plan) (Check, error) {
	c := Check{Endpoint: DockerSocket, Name: "the local socket answers"}
	if plan.restore != nil && !a.configuredLocal(ctx) {
		c.OK, c.Detail = true, "skipped: the restored configuration serves no local socket, as before the first provision"
		return c, nil
	}
	pctx, cancel := context.WithTimeout(ctx, localPingWait)
	defer cancel()
	if err := a.o.Docker.Ping(pctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(pctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w: nothing answered on %s within %v (is dockerd serving it? check its -H flags and daemon.json's hosts)", err, DockerSocket, localPingWait)
		}
		c.Detail = err.Error()
		return c, err
	}
	c.OK = true
	return c, nil
}

// localSocketBack checks, after a rollback restarted dockerd on the
// restored files, that the local socket answers, when those files serve
// one.
func (a *Agent) localSocketBack(ctx context.Context) error {
	if !a.configuredLocal(ctx) {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, localPingWait)
	defer cancel()
	return a.o.Docker.Ping(pctx)
}
