package agent

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/systemd"
)

// Systemd is the part of systemd's D-Bus API the agent uses.
// *systemd.Manager satisfies it.
type Systemd interface {
	DaemonReload(ctx context.Context) error
	ResetFailed(ctx context.Context, unit string) error
	Restart(ctx context.Context, unit string) error
	Reload(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	Unit(ctx context.Context, unit string) (systemd.UnitInfo, error)
}

// InProcessProxy is the proxy of the process the agent runs in.
type InProcessProxy interface {
	// Reload serves set from now on, without dropping a connection.
	Reload(set *certstore.Set) error
}

// Docker is dockerd's local API over its unix socket. *SocketClient
// satisfies it.
type Docker interface {
	Info(ctx context.Context) (DockerInfo, error)
	Ping(ctx context.Context) error
}

// Verifier probes a TLS endpoint. The default runs Probe.Run.
type Verifier interface {
	Verify(ctx context.Context, p Probe) ([]Check, error)
}

type probeVerifier struct{}

func (probeVerifier) Verify(ctx context.Context, p Probe) ([]Check, error) { return p.Run(ctx) }

// Options are the agent's dependencies. Every field has a safe default
// except Systemd, which the caller connects.
type Options struct {
	Paths    Paths
	Systemd  Systemd
	Docker   Docker
	Verifier Verifier
	// Listeners finds dockerd's TCP listeners, and Attacker probes those
	// tlsdock does not serve itself (listeners.go); by default from /proc
	// and with Probe.Attack.
	Listeners DockerdListeners
	Attacker  Attacker
	// Journal returns the last lines of a unit's journal, for error reports.
	Journal  func(ctx context.Context, unit string, lines int) string
	Now      func() time.Time
	Rand     io.Reader
	Logger   *slog.Logger
	Hostname func() (string, error)
	Addrs    func() ([]net.IP, error)
	// ProbeWait bounds how long verification waits for a listener to come up.
	ProbeWait time.Duration
	// LiveRestoreWait bounds how long to wait for dockerd to report
	// live-restore after SIGHUP.
	LiveRestoreWait time.Duration
	// Pause, when set, is called at each named step of the sequence. The
	// crash tests use it to stop tlsdock at a chosen point.
	Pause func(step string)
	// Step, when set, is called after every file operation of the
	// sequence (a write, rename, removal, certificate-set install,
	// directory create or remove), with what it did ("write
	// /etc/docker/daemon.json"). The crash-consistency test copies the
	// host's files there: a crash right after each operation.
	Step func(op string)

	// Proxy is the running proxy when the agent runs inside `tlsdock run
	// --mode proxy`: proxy mode's serve step then swaps the set into it.
	// Without it (the CLI), proxy mode is served by tlsdock.service, which
	// the serve step (re)starts. *ProxyDaemon satisfies it.
	Proxy InProcessProxy
	// LockWait is how long the sequence waits for the lock of another
	// tlsdock; 0 fails at once. The proxy daemon waits, because the CLI
	// holds the lock while it restarts tlsdock.service; the CLI waits
	// (CommandLockWait), because the daemon it just (re)started takes the
	// lock for its first rotation.
	LockWait time.Duration
	// Stopping, when closed, ends a wait for the lock (the daemon got
	// SIGTERM).
	Stopping <-chan struct{}
	// Executable is the path of the tlsdock binary that tlsdock.service
	// runs in proxy mode; default os.Executable.
	Executable func() (string, error)
	// SystemRoots are the trusted roots a public CA's server chain is
	// checked against (serverRoots); default x509.SystemCertPool.
	SystemRoots func() (*x509.CertPool, error)
}

// Agent runs tlsdock's sequence.
type Agent struct {
	o Options
}

// New returns an agent, filling in defaults.
func New(o Options) *Agent {
	if o.Paths.Root == "" {
		o.Paths.Root = "/"
	}
	if o.Docker == nil {
		o.Docker = NewSocketClient(o.Paths.Abs(DockerSocket))
	}
	if o.Verifier == nil {
		o.Verifier = probeVerifier{}
	}
	if o.Listeners == nil {
		o.Listeners = procListeners{systemd: o.Systemd, proc: o.Paths.Abs("/proc")}
	}
	if o.Attacker == nil {
		o.Attacker = probeAttacker{now: o.Now}
	}
	if o.Journal == nil {
		o.Journal = journalctl
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.Logger = o.Logger.With("component", "agent")
	if o.Hostname == nil {
		o.Hostname = os.Hostname
	}
	if o.Addrs == nil {
		o.Addrs = hostAddrs
	}
	if o.ProbeWait == 0 {
		o.ProbeWait = 15 * time.Second
	}
	if o.LiveRestoreWait == 0 {
		o.LiveRestoreWait = 10 * time.Second
	}
	if o.Pause == nil {
		o.Pause = func(string) {}
	}
	if o.Step == nil {
		o.Step = func(string) {}
	}
	o.Paths.step = o.Step
	if o.Executable == nil {
		o.Executable = os.Executable
	}
	return &Agent{o: o}
}

func journalctl(ctx context.Context, unit string, lines int) string {
	out, err := exec.CommandContext(ctx, "journalctl", "-u", unit, "-n", strconv.Itoa(lines), "--no-pager", "-o", "cat").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// hostAddrs lists the host's unicast addresses.
func hostAddrs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() && !n.IP.IsMulticast() {
			ips = append(ips, n.IP)
		}
	}
	return ips, nil
}
