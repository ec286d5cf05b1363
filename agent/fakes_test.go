package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

const fragment = "/lib/systemd/system/docker.service"

const debianUnit = `[Unit]
Description=Docker Application Container Engine
Requires=docker.socket

[Service]
Type=notify
EnvironmentFile=-/etc/default/docker
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
Restart=on-failure
StartLimitBurst=3
StartLimitInterval=60s
`

// fakeHost is a fake systemd and dockerd over a root in a temp dir. dockerd
// "runs" the configuration that was on disk at its last start or reload.
type fakeHost struct {
	t    *testing.T
	root string

	mu          sync.Mutex
	calls       []string
	active      string
	pid         uint32
	liveRestore bool
	swarm       bool
	// failRestart makes a restart fail while it returns true for the
	// current daemon.json.
	failRestart func(daemonJSON string) bool
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	root := t.TempDir()
	writeFile(t, root, fragment, debianUnit)
	// What every Debian host has.
	for _, d := range []string{"/etc/systemd/system", "/var/lib", "/run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeHost{t: t, root: root, active: "active", pid: 100}
}

func writeFile(t *testing.T, root, path, body string) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *fakeHost) record(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

func (h *fakeHost) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func (h *fakeHost) DaemonReload(context.Context) error { h.record("daemon-reload"); return nil }
func (h *fakeHost) ResetFailed(_ context.Context, u string) error {
	h.record("reset-failed " + u)
	return nil
}

func (h *fakeHost) Stop(_ context.Context, u string) error {
	h.record("stop " + u)
	return nil
}

func (h *fakeHost) readDaemonJSON() (string, bool) {
	data, err := os.ReadFile(filepath.Join(h.root, DaemonJSONPath))
	if err != nil {
		return "", false
	}
	d, err := daemonjson.Parse(data)
	if err != nil {
		return string(data), false
	}
	lr, _, _ := d.Bool("live-restore")
	return string(data), lr
}

func (h *fakeHost) Restart(_ context.Context, u string) error {
	h.record("restart " + u)
	js, lr := h.readDaemonJSON()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pid++
	if h.failRestart != nil && h.failRestart(js) {
		h.active = "failed"
		return errors.New("job result \"failed\"")
	}
	h.active, h.liveRestore = "active", lr
	return nil
}

func (h *fakeHost) Reload(_ context.Context, u string) error {
	h.record("reload " + u)
	_, lr := h.readDaemonJSON()
	h.mu.Lock()
	h.liveRestore = lr
	h.mu.Unlock()
	return nil
}

func (h *fakeHost) Unit(_ context.Context, u string) (systemd.UnitInfo, error) {
	if u == systemd.SocketUnit {
		return fakeSocketUnit(h.root), nil
	}
	var dropIns []string
	entries, _ := os.ReadDir(filepath.Join(h.root, systemd.DropInDir))
	for _, e := range entries {
		dropIns = append(dropIns, systemd.DropInDir+"/"+e.Name())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return systemd.UnitInfo{LoadState: "loaded", ActiveState: h.active, SubState: "running", MainPID: h.pid, FragmentPath: fragment, DropInPaths: dropIns}, nil
}

func (h *fakeHost) Info(context.Context) (DockerInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var i DockerInfo
	i.LiveRestoreEnabled = h.liveRestore
	if h.swarm {
		i.Swarm.LocalNodeState = "active"
	}
	return i, nil
}

func (h *fakeHost) Ping(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active != "active" {
		return errors.New("docker is " + h.active)
	}
	return nil
}

// fakeVerifier checks that the probe expects the installed certificate.
type fakeVerifier struct {
	mu     sync.Mutex
	probes []Probe
	fail   error
}

func (v *fakeVerifier) Verify(_ context.Context, p Probe) ([]Check, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.probes = append(v.probes, p)
	if v.fail != nil {
		return []Check{{Endpoint: p.Addr, Name: "fake", Detail: v.fail.Error()}}, v.fail
	}
	return []Check{{Endpoint: p.Addr, Name: "fake", OK: true}}, nil
}

var fixedNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func (h *fakeHost) agent(v Verifier, mod ...func(*Options)) *Agent {
	o := Options{
		Paths:    Paths{Root: h.root},
		Systemd:  h,
		Docker:   h,
		Verifier: v,
		Now:      func() time.Time { return fixedNow },
		Hostname: func() (string, error) { return "dockerhost", nil },
		Addrs:    func() ([]net.IP, error) { return nil, nil },
		Journal: func(context.Context, string, int) string {
			return "dockerd: listen tcp 0.0.0.0:2376: bind: address already in use"
		},
	}
	for _, m := range mod {
		m(&o)
	}
	return New(o)
}

// treeHash hashes every file, link and directory under root except
// tlsdock's own state, CA and lock, so a test can see that nothing else
// changed.
func treeHash(t *testing.T, root string) map[string]string {
	t.Helper()
	return hashTree(t, root, "var/lib/tlsdock", "etc/tlsdock", "run")
}

// hashTree hashes every file (mode and content), link (target) and
// directory (mode) under root, except the relative paths in skip and
// everything below them.
func hashTree(t *testing.T, root string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %v", fi.Mode().Perm())
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("%v %x", fi.Mode().Perm(), sha256.Sum256(data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	sort.Strings(d)
	return d
}

// socketFragment is docker.socket's unit file. A fake host has none
// (docker.socket is not-found) unless a test writes it.
const socketFragment = "/lib/systemd/system/docker.socket"

const debianSocket = `[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
`

// fakeSocketUnit is docker.socket as systemd would report it under root,
// with the drop-ins on disk loaded.
func fakeSocketUnit(root string) systemd.UnitInfo {
	if _, err := os.Stat(filepath.Join(root, socketFragment)); err != nil {
		return systemd.UnitInfo{LoadState: "not-found", ActiveState: "inactive"}
	}
	var dropIns []string
	entries, _ := os.ReadDir(filepath.Join(root, systemd.SocketDropInDir))
	for _, e := range entries {
		dropIns = append(dropIns, systemd.SocketDropInDir+"/"+e.Name())
	}
	return systemd.UnitInfo{LoadState: "loaded", ActiveState: "active", SubState: "listening", FragmentPath: socketFragment, DropInPaths: dropIns}
}
