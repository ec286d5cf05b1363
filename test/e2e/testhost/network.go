package testhost

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// netnsPrefix starts the name of every network namespace a Network creates.
const netnsPrefix = "tlsdock-e2e-net-"

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// DefaultSubnet is the subnet of a Network created without one. Each
// Network has its own namespace, so two of them may share it.
var DefaultSubnet = netip.MustParsePrefix("10.231.0.0/24")

// bridgeName is the bridge inside a Network's namespace.
const bridgeName = "br0"

// guestIf is the host's end of its veth pair, inside the host.
const guestIf = "eth0"

// Network is a private network shared by test hosts: a bridge in a network
// namespace of its own (tlsdock-e2e-net-NAME), made with this machine's
// iproute2. A host booted with Options.Network gets a veth pair: eth0 inside
// the host, with the next free address of Subnet, and the other end on the
// bridge. Nothing is created in this machine's own network namespace, so
// this machine cannot reach the hosts and the hosts reach nothing but each
// other (and their own loopback).
type Network struct {
	// Name names the network (the same rules as a host's name).
	Name string
	// NS is its network namespace, as `ip netns list` shows it.
	NS string
	// Subnet is the network's IPv4 subnet; hosts get .2 onwards, .1 stays
	// unused.
	Subnet netip.Prefix

	lock *os.File

	mu   sync.Mutex
	next int // the host number (from the start of Subnet) to give next

	closeOnce sync.Once
	closeErr  error
}

func netLockPath(name string) string { return filepath.Join(WorkRoot, name+".netns") }

// NewNetwork creates the network namespace tlsdock-e2e-net-NAME with a bridge
// in it, up. A zero subnet means DefaultSubnet. Close removes it;
// CleanupStale removes it if the process dies first.
func NewNetwork(ctx context.Context, name string, subnet netip.Prefix) (*Network, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("test network name %q: use 1 to 48 lower-case letters, digits and inner dashes", name)
	}
	if !subnet.IsValid() {
		subnet = DefaultSubnet
	}
	subnet = subnet.Masked()
	if _, err := hostAddr(subnet, 2); err != nil {
		return nil, fmt.Errorf("test network %s: %w", name, err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("creating a test network needs root")
	}
	for _, bin := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not found: run test/e2e/setup-host.sh as root first", bin)
		}
	}
	// What is stale is some dead run's; it does not stop a new network.
	_ = CleanupStale()
	// The lock first, then the namespace: CleanupStale removes only
	// namespaces whose lock nobody holds.
	lock, err := acquireLockAt(netLockPath(name), "test network name "+strconv.Quote(name))
	if err != nil {
		return nil, err
	}
	n := &Network{Name: name, NS: netnsPrefix + name, Subnet: subnet, lock: lock, next: 2}
	if _, err := os.Stat(filepath.Join(netnsDir, n.NS)); err == nil {
		// Left by a process that died before CleanupStale ran; it is ours now.
		if err := ipCmd(ctx, "netns", "delete", n.NS); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	}
	for _, args := range [][]string{
		{"netns", "add", n.NS},
		{"-n", n.NS, "link", "add", bridgeName, "type", "bridge"},
		{"-n", n.NS, "link", "set", bridgeName, "up"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return nil, fmt.Errorf("creating test network %s: %w", name, errors.Join(err, n.Close()))
		}
	}
	return n, nil
}

// Close deletes the network's namespace, and with it the bridge and the
// bridge's ends of the hosts' veth pairs (their other ends, eth0 inside the
// hosts, go with them). It is safe to call more than once.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.closeErr = deleteNetns(n.NS)
		if n.lock != nil {
			if n.closeErr == nil {
				os.Remove(n.lock.Name())
			}
			n.lock.Close()
		}
	})
	return n.closeErr
}

// alloc returns the next host number and its address.
func (n *Network) alloc() (int, netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, err := hostAddr(n.Subnet, n.next)
	if err != nil {
		return 0, netip.Addr{}, fmt.Errorf("test network %s: %w", n.Name, err)
	}
	i := n.next
	n.next++
	return i, a, nil
}

// hostAddr is the i-th address of an IPv4 subnet: i=2 is .2 of a /24. The
// network address (0), .1 (left to a gateway) and the broadcast address are
// never given out.
func hostAddr(subnet netip.Prefix, i int) (netip.Addr, error) {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("subnet %v: want an IPv4 subnet", subnet)
	}
	bits := subnet.Bits()
	if bits > 30 {
		return netip.Addr{}, fmt.Errorf("subnet %v: want at most /30", subnet)
	}
	size := 1 << (32 - bits)
	if i < 2 || i >= size-1 {
		return netip.Addr{}, fmt.Errorf("subnet %v has no host address number %d (there are %d, from 2)", subnet, i, size-3)
	}
	b := subnet.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// vethName is the name of host number i's veth end on the bridge, in the
// network's namespace: unique there, and within the kernel's 15 bytes.
func vethName(i int) string { return "veth" + strconv.Itoa(i) }

// attach gives the host its veth pair on h.net: the bridge's end created in
// the network's namespace and enslaved to the bridge, the other end created
// right in the host's namespace as eth0, given the host's address from
// outside (this machine's ip, through nsenter -n: the guest may have no
// iproute2) and brought up. The host keeps its number and address across
// PowerLoss and PowerOn.
func (h *Host) attach(ctx context.Context) error {
	if h.net == nil {
		return nil
	}
	if h.Addr == "" {
		i, a, err := h.net.alloc()
		if err != nil {
			return err
		}
		h.netIndex, h.Addr = i, a.String()
	}
	// After PowerLoss the old pair goes with the dead guest's namespace,
	// which the kernel tears down in the background: do not wait for it.
	if err := h.detach(ctx); err != nil {
		return err
	}
	veth := vethName(h.netIndex)
	addr := h.Addr + "/" + strconv.Itoa(h.net.Subnet.Bits())
	pid := strconv.Itoa(h.PID)
	if err := ipCmd(ctx, "-n", h.net.NS, "link", "add", veth, "type", "veth", "peer", "name", guestIf, "netns", pid); err != nil {
		return fmt.Errorf("attaching to test network %s: %w", h.net.Name, err)
	}
	if err := ipCmd(ctx, "-n", h.net.NS, "link", "set", veth, "master", bridgeName, "up"); err != nil {
		return fmt.Errorf("attaching to test network %s: %w", h.net.Name, err)
	}
	for _, args := range [][]string{
		{"ip", "addr", "add", addr, "dev", guestIf},
		{"ip", "link", "set", guestIf, "up"},
	} {
		if _, _, err := h.ExecNet(ctx, nil, nil, args...); err != nil {
			return fmt.Errorf("attaching to test network %s: %w", h.net.Name, err)
		}
	}
	h.logf("testhost: %s: %s on test network %s (%s, %s on %s)", h.Name, addr, h.net.Name, guestIf, veth, bridgeName)
	return nil
}

// detach deletes the host's veth pair (deleting one end deletes both), if
// the network and the pair are still there.
func (h *Host) detach(ctx context.Context) error {
	if h.net == nil || h.netIndex == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(netnsDir, h.net.NS)); err != nil {
		return nil // the network is gone, and the pair with it
	}
	veth := vethName(h.netIndex)
	if ipCmd(ctx, "-n", h.net.NS, "link", "show", veth) != nil {
		return nil // gone with the host's namespace
	}
	if err := ipCmd(ctx, "-n", h.net.NS, "link", "del", veth); err != nil {
		return fmt.Errorf("removing the veth pair of test host %s: %w", h.Name, err)
	}
	return nil
}

// ipCmd runs this machine's ip with args.
func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", quoteArgs(args), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// deleteNetns deletes a named network namespace if it exists.
func deleteNetns(ns string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return ipCmd(context.Background(), "netns", "delete", ns)
}

// cleanupStaleNetworks deletes the namespaces tlsdock-e2e-net-NAME whose lock
// (WorkRoot/NAME.netns) no live process holds, and lock files without a
// namespace that nobody holds.
func cleanupStaleNetworks() error {
	var errs []error
	names := map[string]bool{}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), netnsPrefix); ok {
			names[name] = true
		}
	}
	locks, _ := filepath.Glob(filepath.Join(WorkRoot, "*.netns"))
	for _, p := range locks {
		names[strings.TrimSuffix(filepath.Base(p), ".netns")] = true
	}
	for name := range names {
		p := netLockPath(name)
		if err := os.MkdirAll(WorkRoot, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // live, or being cleaned by someone else
			continue
		}
		if err := deleteNetns(netnsPrefix + name); err != nil {
			errs = append(errs, fmt.Errorf("cleaning up stale test network %q: %w", name, err))
		} else {
			os.Remove(p)
		}
		f.Close()
	}
	return errors.Join(errs...)
}
