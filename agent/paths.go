package agent

import (
	"path/filepath"

	"github.com/tlsdock/tlsdock/systemd"
)

// Paths locates every file tlsdock reads or writes under a filesystem root
// ("/" on a real host, a temporary directory in tests).
type Paths struct {
	Root string
	// step is Options.Step, for the file operations of functions that
	// take Paths (Snapshot.Restore).
	step func(op string)
}

// did reports a file operation to Options.Step.
func (p Paths) did(op string) {
	if p.step != nil {
		p.step(op)
	}
}

// Abs returns where a host path lives under the root.
func (p Paths) Abs(hostPath string) string {
	if p.Root == "" || p.Root == "/" {
		return hostPath
	}
	return filepath.Join(p.Root, hostPath)
}

// Host paths. These are what dockerd's configuration refers to.
const (
	DaemonJSONPath = "/etc/docker/daemon.json"
	SSLDir         = "/etc/docker/ssl"
	StateDir       = "/var/lib/tlsdock"
	ConfigDir      = "/etc/tlsdock"
	CADir          = "/etc/tlsdock/ca"
	ConfigFile     = "/etc/tlsdock/tlsdock.conf"
	DefaultSource  = "/etc/tlsdock/certs"
	DockerSocket   = "/var/run/docker.sock"
	DropInPath     = systemd.DropInDir + "/" + systemd.DropInName
)

// DaemonJSON is daemon.json under the root.
func (p Paths) DaemonJSON() string { return p.Abs(DaemonJSONPath) }

// SSL is the installed certificate directory under the root.
func (p Paths) SSL() string { return p.Abs(SSLDir) }

// State is tlsdock's state directory under the root.
func (p Paths) State() string { return p.Abs(StateDir) }

// CA is the local CA's directory under the root.
func (p Paths) CA() string { return p.Abs(CADir) }

// DropIn is tlsdock's drop-in under the root.
func (p Paths) DropIn() string { return p.Abs(DropInPath) }
