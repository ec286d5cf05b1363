// Package testhost boots throwaway Debian test hosts for tlsdock's end-to-end
// tests: real systemd as PID 1 and real dockerd, inside systemd-nspawn, on a
// machine that itself runs no systemd. A Suite is the Debian release a host
// boots: Bookworm (systemd 252, dockerd 20.10) by default, Trixie (systemd
// 257, dockerd 26.1) or Sid; UseSuite picks one for a test.
//
// Every host is a fresh overlay of a cached rootfs that
// test/e2e/setup-host.sh builds (/var/cache/tlsdock-e2e/rootfs for bookworm,
// /var/cache/tlsdock-e2e/rootfs-SUITE for the others), so a boot
// takes about a second and nothing a test does survives Close. Each host has
// its own cgroups in every hierarchy (tlsdock-e2e-NAME, so that docker can run
// containers inside and two hosts never share a cgroup), its own network
// namespace (--private-network: ports never clash and nothing touches the
// machine's network) and its own work directory under /var/tmp/tlsdock-e2e.
//
// Hosts that must talk to each other share a Network (NewNetwork, or
// StartNetwork and StartNOn in tests): a bridge in a network namespace of its
// own, tlsdock-e2e-net-NAME. Each host on it gets eth0 with an address of the
// network's subnet (Host.Addr), a veth pair whose other end is on the bridge.
// Nothing is created in the machine's own network namespace.
//
// Run commands inside with Exec (the guest's binaries in all of its
// namespaces) and remote clients with ExecNet (this machine's binaries, for
// example the Docker 28 CLI in /usr/local/bin, inside the guest's network
// namespace only).
//
// Boot needs root. Start and StartN are the helpers for tests: they skip
// unless the process runs as root and TLSDOCK_E2E=1 is set.
//
// A run that crashed (a test binary killed by -timeout, for example) leaves a
// host running. CleanupStale, which Boot calls first, finds such leftovers by
// their lock files under /var/tmp/tlsdock-e2e (a lock nobody holds belongs to
// a dead process) and by their names (tlsdock-e2e-*), then kills their
// processes, unmounts their overlays and removes their cgroups and files,
// then deletes the namespaces of networks whose lock (NAME.netns there) no
// live process holds. Hosts and networks of live processes are never touched.
package testhost
