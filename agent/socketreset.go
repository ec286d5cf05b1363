package agent

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/tlsdock/tlsdock/systemd"
)

// socketReset closes the TCP listeners that docker.socket holds besides
// tlsdock's own: a drop-in of the user's (`ListenStream=0.0.0.0:2375`, an
// old recipe) hands dockerd a TCP socket through -H fd:// that no -H flag
// and no daemon.json key shows. tlsdock's drop-in (want, or a new one)
// then resets the list and names what stays: the unix sockets, the TCP
// listeners asked for with --host that docker.socket already had, and
// tlsdock's. Without such a listener want is returned unchanged.
func (a *Agent) socketReset(plan *Plan, want []byte) ([]byte, error) {
	info := plan.socket.unit
	if info.LoadState != "loaded" {
		return want, nil
	}
	sock, err := systemd.ReadSocket(a.o.Paths.Root, info.FragmentPath, a.socketDropIns(info), SocketDropInPath)
	if err != nil {
		return nil, &InputError{Field: systemd.SocketUnit, Err: err}
	}
	var keep, dropped []string
	for _, l := range sock.ListenStream {
		switch {
		case !systemd.IsTCPListenStream(l):
			keep = append(keep, l)
		case plan.socket.Held && askedFor(plan, l):
			keep = append(keep, l)
		default:
			dropped = append(dropped, l)
		}
	}
	if len(dropped) == 0 {
		return want, nil
	}
	for _, l := range dropped {
		plan.changeNote("removed TCP listener %s from %s (ListenStream= in %s): it handed dockerd a TCP socket through -H fd://; pass it with --host to keep it", l, systemd.SocketUnit, strings.Join(sock.Files, ", "))
	}
	if len(keep) == 0 {
		// docker.socket held only TCP listeners: the local socket is
		// part of the target state.
		keep = append(keep, "/run/docker.sock")
		plan.changeNote("added ListenStream=/run/docker.sock to %s: it held no local socket", systemd.SocketUnit)
	}
	if plan.socket.Held {
		keep = append(keep, plan.socket.Addrs...)
	}
	return systemd.RenderSocketResetDropIn(dedup(keep)), nil
}

// askedFor reports whether a ListenStream= value is one of the plan's
// --host listeners.
func askedFor(plan *Plan, v string) bool {
	for _, l := range plan.Listeners {
		if s, ok := listenStream(l); ok && s == v {
			return true
		}
	}
	return false
}

// socketDropIns is docker.socket's drop-ins as systemd reported them,
// plus those in /etc/systemd/system/docker.socket.d on disk (written since
// the last daemon-reload: tlsdock's reload loads them).
func (a *Agent) socketDropIns(info systemd.UnitInfo) []string {
	out := append([]string(nil), info.DropInPaths...)
	entries, _ := os.ReadDir(a.o.Paths.Abs(systemd.SocketDropInDir))
	for _, e := range entries {
		p := systemd.SocketDropInDir + "/" + e.Name()
		if strings.HasSuffix(e.Name(), ".conf") && !e.IsDir() && !contains(out, p) {
			out = append(out, p)
		}
	}
	// A drop-in systemd reported that is gone from disk is not read.
	kept := out[:0]
	for _, p := range out {
		if _, err := os.Stat(filepath.Join(a.o.Paths.Root, p)); err == nil {
			kept = append(kept, p)
		}
	}
	return kept
}
