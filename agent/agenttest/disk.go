package agenttest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CopyDisk returns a host on a copy of h's files as they are now, as a
// power loss at this instant would leave them: nothing is loaded or
// running until its first call or Boot. It keeps h's settings (clock,
// strict socket, swarm, dockerd version), not its injected failures.
func (h *Host) CopyDisk(t testing.TB) *Host {
	t.Helper()
	root := t.TempDir()
	if err := copyTree(h.Root, root); err != nil {
		t.Fatalf("copying %s: %v", h.Root, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return &Host{Root: root, now: h.now, units: map[string]*unitState{}, version: h.version, strict: h.strict, swarm: h.swarm}
}

// copyTree copies every directory, regular file and symlink under src to
// dst, with their modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case fi.IsDir():
			if err := os.MkdirAll(to, 0o755); err != nil {
				return err
			}
			return os.Chmod(to, fi.Mode().Perm())
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, data, fi.Mode().Perm()); err != nil {
				return err
			}
			return os.Chmod(to, fi.Mode().Perm())
		default:
			// A lock or a socket: not part of what a boot reads.
			return nil
		}
	})
}

// dockerSock is the local socket's path as clients use it
// (unix:///var/run/docker.sock); /var/run is /run on Debian.
const dockerSock = "/run/docker.sock"

// runPath maps /var/run/... to /run/..., as the symlink does.
func runPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "/var/run/"); ok {
		return "/run/" + rest
	}
	return p
}

// ownsSocketFile reports whether d listens itself on the unix path
// docker.socket listens on (listening), the local socket
// /run/docker.sock: dockerd then unlinks docker.socket's file and binds
// its own (moby v20.10.24 pkg/listeners, listeners_linux.go Init, "unix":
// sockets.NewUnixSocket removes the path first), and removes it again when
// it stops (api/server, Server.Close closing a unix listener unlinks the
// path). docker.socket keeps a socket no path leads to.
func ownsSocketFile(d *Daemon, listening []string) bool {
	if d == nil {
		return false
	}
	held := false
	for _, l := range listening {
		held = held || runPath(l) == dockerSock
	}
	if !held {
		return false
	}
	for _, l := range d.Listeners {
		if l.Network == "unix" && l.From != "docker.socket ListenStream=" && runPath(l.Addr) == dockerSock {
			return true
		}
	}
	return false
}

// LocalSocket judges the local socket of the running dockerd: nil when
// unix:///var/run/docker.sock is configured and answers. With
// docker.socket listening on /run/docker.sock, dockerd must take it with
// fd:// and not listen on that path itself (it would replace
// docker.socket's file with its own and delete it when it stops, leaving
// every later dockerd on fd:// without a local socket). Without
// docker.socket, dockerd must listen on it itself.
func (h *Host) LocalSocket() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bootLocked()
	if h.running == nil {
		return fmt.Errorf("dockerd does not run: %v", h.lastErr)
	}
	listening := h.socketListeningLocked()
	if ownsSocketFile(h.running, listening) {
		return fmt.Errorf("dockerd listens on /var/run/docker.sock itself (hosts from %s: %q) while docker.socket holds /run/docker.sock: it replaces docker.socket's file with its own and deletes it when it stops", h.running.HostsFrom, h.running.Hosts)
	}
	if h.sockGone {
		return fmt.Errorf("/run/docker.sock was deleted by a dockerd that listened on it itself; docker.socket's socket has no path until docker.socket restarts")
	}
	for _, l := range h.running.Listeners {
		if l.Network == "unix" && runPath(l.Addr) == dockerSock {
			return nil
		}
	}
	return fmt.Errorf("dockerd serves no /var/run/docker.sock (hosts from %s: %q)", h.running.HostsFrom, h.running.Hosts)
}

// socketListeningLocked is what docker.socket listens on, with the
// socket NewHost's hosts without the unit stand in for (see NewHost).
func (h *Host) socketListeningLocked() []string {
	if (h.loadedSocket == nil || h.loadedSocket.Fragment == "") && !h.strict {
		return []string{dockerSock}
	}
	return h.listening
}

// dockerdStopsLocked records that the running dockerd stops: one that
// owned /run/docker.sock deletes it.
func (h *Host) dockerdStopsLocked() {
	if h.running != nil && ownsSocketFile(h.running, h.socketListeningLocked()) {
		h.sockGone = true
	}
	h.running = nil
}
