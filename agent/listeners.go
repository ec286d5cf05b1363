package agent

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/systemd"
)

// DockerdListeners finds the TCP sockets the running dockerd listens on,
// wherever they were configured (-H, daemon.json's hosts, $DOCKER_OPTS, a
// socket systemd handed it). procListeners reads them from /proc.
type DockerdListeners interface {
	Listeners(ctx context.Context) ([]netip.AddrPort, error)
}

// Attacker probes a TCP listener the way an attacker would, without a
// client certificate tlsdock's CA signed: plain HTTP, TLS without a
// client certificate, a client certificate from a foreign CA, TLS 1.1.
// probeAttacker runs Probe.Attack.
type Attacker interface {
	Attack(ctx context.Context, addr string) ([]Check, error)
}

type probeAttacker struct{ now func() time.Time }

func (p probeAttacker) Attack(ctx context.Context, addr string) ([]Check, error) {
	var now time.Time
	if p.now != nil {
		now = p.now()
	}
	return Probe{Addr: addr, Now: now}.Attack(ctx)
}

// verifyDockerd is the part of verification that looks at dockerd beyond
// the listeners tlsdock serves: after a provision, every other TCP
// listener dockerd has is probed as an attacker would (one that answers
// without mutual TLS fails verification, naming it), and the local socket
// must answer (checkLocalSocket).
func (a *Agent) verifyDockerd(ctx context.Context, plan *Plan, all []Check, errs []error) ([]Check, []error) {
	if plan.restore == nil {
		checks, err := a.attackOthers(ctx, plan)
		all = append(all, checks...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	c, err := a.checkLocalSocket(ctx, plan)
	all = append(all, c)
	if err != nil {
		errs = append(errs, err)
	}
	return all, errs
}

// attackOthers probes each TCP listener of dockerd that is not one of the
// plan's --host listeners (those had the full probe).
func (a *Agent) attackOthers(ctx context.Context, plan *Plan) ([]Check, error) {
	found, err := a.o.Listeners.Listeners(ctx)
	if errors.Is(err, fs.ErrPermission) {
		// tlsdock.service's CapabilityBoundingSet has no CAP_SYS_PTRACE,
		// which reading another process's open files takes when that
		// process has more capabilities (dockerd). A rotation changes
		// no listener; the provision that set them up probed them all.
		// Expected in tlsdock.service: said once per run, at info level,
		// without the errno text a clean journal must not have.
		a.o.Logger.Info("dockerd's other TCP listeners are not probed: this process may not read dockerd's open files (no CAP_SYS_PTRACE); `tlsdock provision` as root probes them")
		return []Check{{Endpoint: systemd.DockerUnit, Name: "every other TCP listener of dockerd refuses an attacker", OK: true,
			Detail: "skipped: cannot read dockerd's open files (" + err.Error() + "); run `tlsdock provision` as root to probe them"}}, nil
	}
	if err != nil {
		c := Check{Endpoint: systemd.DockerUnit, Name: "dockerd's TCP listeners are found", Detail: err.Error()}
		return []Check{c}, fmt.Errorf("finding dockerd's TCP listeners, to probe each one: %w", err)
	}
	var all []Check
	var errs []error
	seen := map[string]bool{}
	for _, ap := range found {
		addr := probeAddr(ap)
		if seen[addr] || servedByPlan(plan, ap) {
			continue
		}
		seen[addr] = true
		checks, err := a.o.Attacker.Attack(ctx, addr)
		all = append(all, checks...)
		if err != nil {
			errs = append(errs, fmt.Errorf("dockerd also listens on %s, which tlsdock does not manage and which answers without mutual TLS: %w: remove it from docker.service, daemon.json, $DOCKER_OPTS, docker.socket or a socket unit that hands it to docker.service (Service=docker.service), or pass it with --host", ap, err))
		}
	}
	return all, errors.Join(errs...)
}

// probeAddr is where to connect to a listener: loopback for a wildcard.
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

// servedByPlan reports whether ap is one of the plan's --host listeners:
// the same port, and the same address or both wildcards (dockerd binds
// tcp://0.0.0.0 and tcp://:PORT on [::], dual stack).
func servedByPlan(plan *Plan, ap netip.AddrPort) bool {
	ip := ap.Addr().Unmap()
	for _, l := range plan.Listeners {
		if l.Port != int(ap.Port()) {
			continue
		}
		if l.Wildcard() && ip.IsUnspecified() {
			return true
		}
		if lip, err := netip.ParseAddr(l.Host); err == nil && lip.Unmap() == ip {
			return true
		}
	}
	return false
}

// Attack runs the attacker's checks of Probe.Run against p.Addr: plain
// HTTP, no client certificate, a foreign client certificate and TLS 1.1
// must all be refused. err names the listener and what answered.
func (p Probe) Attack(ctx context.Context) ([]Check, error) {
	checks := []Check{
		p.check(ctx, "plain HTTP is refused", p.plainHTTP),
		p.check(ctx, "a client without a certificate is refused", p.noClientCert),
		p.check(ctx, "a client certificate from a foreign CA is refused", p.foreignClient),
		p.check(ctx, "TLS 1.1 is refused", p.oldTLS),
	}
	var failed []string
	for _, c := range checks {
		if !c.OK {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	if len(failed) > 0 {
		return checks, fmt.Errorf("%s: %s", p.Addr, strings.Join(failed, "; "))
	}
	return checks, nil
}

// procListeners reads dockerd's TCP listeners from /proc: docker.service's
// MainPID (systemd), the socket inodes among its open files
// (/proc/PID/fd), matched against the LISTEN entries of /proc/PID/net/tcp
// and tcp6 (its network namespace).
type procListeners struct {
	systemd Systemd
	proc    string // "/proc", under the root
}

func (l procListeners) Listeners(ctx context.Context) ([]netip.AddrPort, error) {
	u, err := l.systemd.Unit(ctx, systemd.DockerUnit)
	if err != nil {
		return nil, fmt.Errorf("asking systemd for %s's main PID: %w", systemd.DockerUnit, err)
	}
	if u.MainPID == 0 {
		return nil, fmt.Errorf("%s has no main PID (it is %s)", systemd.DockerUnit, orWord(u.ActiveState, "unknown"))
	}
	dir := filepath.Join(l.proc, strconv.FormatUint(uint64(u.MainPID), 10))
	inodes, err := socketInodes(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	for _, f := range []string{"tcp", "tcp6"} {
		ls, err := readListening(filepath.Join(dir, "net", f))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // no IPv6
			}
			return nil, err
		}
		for _, e := range ls {
			if inodes[e.inode] {
				out = append(out, e.addr)
			}
		}
	}
	return out, nil
}

// socketInodes lists the inodes of the sockets among the open files in
// fdDir ("socket:[INODE]" links).
func socketInodes(fdDir string) (map[string]bool, error) {
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, fmt.Errorf("reading dockerd's open files: %w", err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // closed since
		}
		if err != nil {
			// The kernel lists the directory but refuses the links
			// to a reader that may not ptrace dockerd.
			return nil, fmt.Errorf("reading dockerd's open files: %w", err)
		}
		if in, ok := strings.CutPrefix(target, "socket:["); ok {
			out[strings.TrimSuffix(in, "]")] = true
		}
	}
	return out, nil
}

type procSocket struct {
	addr  netip.AddrPort
	inode string
}

// tcpListen is the LISTEN state in /proc/net/tcp (TCP_LISTEN, 0x0A).
const tcpListen = "0A"

// readListening parses the LISTEN entries of a /proc/net/tcp or tcp6 file.
func readListening(path string) ([]procSocket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseProcNet(bufio.NewScanner(f), path)
}

func parseProcNet(sc *bufio.Scanner, path string) ([]procSocket, error) {
	var out []procSocket
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpListen {
			continue
		}
		ap, err := parseProcAddr(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, procSocket{addr: ap, inode: fields[9]})
	}
	return out, sc.Err()
}

// parseProcAddr reads "0100007F:0948" (IPv4) or the 32 hex digits of an
// IPv6 address and a port: the address in 32-bit words, each in the
// host's byte order (little-endian on the machines tlsdock runs on), the
// port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	raw, err := hex.DecodeString(hexIP)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}
