package systemd

import (
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// SocketUnit is the socket unit that hands dockerd its listeners through
// `-H fd://`.
const SocketUnit = "docker.socket"

// SocketDropInDir is where tlsdock writes docker.socket's drop-in, relative
// to the root. The file is named DropInName, as for docker.service.
const SocketDropInDir = "/etc/systemd/system/docker.socket.d"

// SocketDropInPath is tlsdock's drop-in for docker.socket.
const SocketDropInPath = SocketDropInDir + "/" + DropInName

// Socket is what tlsdock needs to know of a socket unit's files.
type Socket struct {
	// ListenStream is the effective list of stream listeners, in the
	// order systemd opens them: an empty "ListenStream=" resets it.
	ListenStream []string
	// Files lists the files read, fragment first, in the order systemd
	// applies them.
	Files []string
}

// ReadSocket parses a socket unit's fragment and drop-ins (paths as systemd
// reports them, resolved under root) and computes its effective
// ListenStream list. Drop-ins named in skip are left out.
func ReadSocket(root, fragment string, dropIns []string, skip ...string) (*Socket, error) {
	files := []string{}
	if fragment != "" {
		files = append(files, fragment)
	}
	ordered := append([]string(nil), dropIns...)
	sort.SliceStable(ordered, func(i, j int) bool {
		return filepath.Base(ordered[i]) < filepath.Base(ordered[j])
	})
	for _, d := range ordered {
		if !contains(skip, d) {
			files = append(files, d)
		}
	}
	s := &Socket{Files: files}
	for _, f := range files {
		opts, err := readOptions(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		for _, o := range opts {
			if o.Section != "Socket" || o.Name != "ListenStream" {
				continue
			}
			if v := strings.TrimSpace(o.Value); v == "" {
				s.ListenStream = nil
			} else {
				s.ListenStream = append(s.ListenStream, v)
			}
		}
	}
	return s, nil
}

// RenderSocketDropIn returns tlsdock's drop-in for docker.socket: one
// ListenStream= per address ("127.0.0.1:2376", "[::1]:2376"), added to the
// unit's own listeners (its unix socket stays). FreeBind= lets the socket
// bind an address the host has not configured yet: docker.socket starts
// early in boot, before the network is up. With no address it returns nil.
func RenderSocketDropIn(addrs []string) []byte {
	if len(addrs) == 0 {
		return nil
	}
	opts := make([]*unit.UnitOption, 0, len(addrs)+1)
	for _, a := range addrs {
		opts = append(opts, unit.NewUnitOption("Socket", "ListenStream", a))
	}
	opts = append(opts, unit.NewUnitOption("Socket", "FreeBind", "yes"))
	body, _ := io.ReadAll(unit.Serialize(opts))
	return append([]byte("# Written by tlsdock: dockerd serves these listeners with mutual TLS (daemon.json).\n# `tlsdock revert` removes it; edits are overwritten.\n"), body...)
}

// RenderSocketResetDropIn returns tlsdock's drop-in for docker.socket when
// it takes listeners away from it: an empty "ListenStream=" resets the
// unit's list (fragment and earlier drop-ins), then one ListenStream= per
// value of listen, in order (the unix socket first). FreeBind= is set when
// a TCP address is listed, as in RenderSocketDropIn.
func RenderSocketResetDropIn(listen []string) []byte {
	opts := []*unit.UnitOption{unit.NewUnitOption("Socket", "ListenStream", "")}
	tcp := false
	for _, l := range listen {
		opts = append(opts, unit.NewUnitOption("Socket", "ListenStream", l))
		tcp = tcp || IsTCPListenStream(l)
	}
	if tcp {
		opts = append(opts, unit.NewUnitOption("Socket", "FreeBind", "yes"))
	}
	body, _ := io.ReadAll(unit.Serialize(opts))
	return append([]byte("# Written by tlsdock: docker.socket listens only on these; dockerd serves the TCP ones with mutual TLS.\n# `tlsdock revert` removes it; edits are overwritten.\n"), body...)
}

// IsTCPListenStream reports whether a ListenStream= value is a TCP
// listener: a port, or an address and a port (systemd.socket(5)); not a
// path, an abstract socket (@) or vsock:.
func IsTCPListenStream(v string) bool {
	return !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "@") && !strings.HasPrefix(v, "vsock:")
}
