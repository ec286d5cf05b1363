package agenttest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// LocalAPIHangs reports whether a client of /run/docker.sock would hang:
// docker.socket holds the path and the running dockerd does not serve it
// (Docker's docs recipe, `ExecStart=/usr/bin/dockerd -H=0.0.0.0:2376`).
// The kernel queues the connection on docker.socket's socket, and nobody
// accepts it: systemd does not while docker.service runs.
func (h *Host) LocalAPIHangs() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	if h.running == nil || h.sockGone {
		return false
	}
	held := false
	for _, l := range h.listening {
		held = held || runPath(l) == dockerSock
	}
	if !held {
		return false
	}
	for _, l := range h.running.Listeners {
		if l.Network == "unix" && runPath(l.Addr) == dockerSock {
			return false
		}
	}
	return true
}

// InjectListener makes the running dockerd hold one more TCP listener at
// addr ("0.0.0.0:2375"), plain or with TLS, until it stops: a listener
// tlsdock cannot see in any file (another program's socket dockerd
// inherited, a plugin's).
func (h *Host) InjectListener(addr string, tls, verifyClients bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	if h.running != nil {
		h.running.Listeners = append(h.running.Listeners, Listener{Network: "tcp", Addr: addr, From: "injected by the test", TLS: tls, VerifyClients: verifyClients})
	}
}

// Listeners lists the TCP listeners of the running dockerd, as
// /proc/PID/net/tcp shows them (a name such as localhost is an address
// there).
func (h *Host) Listeners(context.Context) ([]netip.AddrPort, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	if h.running == nil {
		return nil, fmt.Errorf("%s has no main PID (it is %s)", DockerUnit, h.unit(DockerUnit).active)
	}
	var out []netip.AddrPort
	for _, l := range h.running.TCP() {
		ap, err := addrPort(l.Addr)
		if err != nil {
			return nil, err
		}
		out = append(out, ap)
	}
	return out, nil
}

func addrPort(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if _, err := netip.ParseAddr(host); err != nil {
		// A name (localhost, the host's own): as resolved, loopback here.
		host = "127.0.0.1"
	}
	return netip.ParseAddrPort(net.JoinHostPort(host, port))
}

// probeAddr is where a client connects to a listener: loopback for a
// wildcard address.
func probeAddr(ap netip.AddrPort) string {
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		if ip.Is4() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		} else {
			ip = netip.IPv6Loopback()
		}
	}
	return netip.AddrPortFrom(ip, ap.Port()).String()
}

// Check is one attacker probe's outcome; it has the shape of agent.Check.
type Check struct {
	Endpoint string
	Name     string
	OK       bool
	Detail   string
}

// AttackChecks probes addr as an attacker would, from how the running
// dockerd serves the listener there: a plain listener answers plain
// HTTP, a TLS one without client verification answers a client without a
// certificate.
func (h *Host) AttackChecks(addr string) ([]Check, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	if h.running == nil {
		return nil, fmt.Errorf("%s: could not connect: dockerd does not run", addr)
	}
	for _, l := range h.running.TCP() {
		ap, err := addrPort(l.Addr)
		if err != nil || probeAddr(ap) != addr {
			continue
		}
		plain := Check{Endpoint: addr, Name: "plain HTTP is refused", OK: l.TLS}
		noCert := Check{Endpoint: addr, Name: "a client without a certificate is refused", OK: l.TLS && l.VerifyClients}
		foreign := Check{Endpoint: addr, Name: "a client certificate from a foreign CA is refused", OK: l.TLS && l.VerifyClients}
		checks := []Check{plain, noCert, foreign}
		var failed []string
		for i := range checks {
			if !checks[i].OK {
				checks[i].Detail = `the endpoint answered 200 "OK"`
				failed = append(failed, checks[i].Name+": "+checks[i].Detail)
			}
		}
		if len(failed) > 0 {
			return checks, fmt.Errorf("%s: %s", addr, strings.Join(failed, "; "))
		}
		return checks, nil
	}
	return nil, fmt.Errorf("%s: could not connect: connection refused", addr)
}
