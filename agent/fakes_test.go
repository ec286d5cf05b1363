package agent

import (
	"context"
	"crypto/sha256"
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

	"github.com/tlsdock/tlsdock/agent/agenttest"
)

// fakeHost is the shared fake host (agenttest.Host) with the agent's own
// types: dockerd "runs" the configuration that was on disk at its last
// start or reload, and starts only as dockerd's rules allow.
type fakeHost struct {
	*agenttest.Host
	t    *testing.T
	root string
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	h := agenttest.NewHost(t)
	return &fakeHost{Host: h, t: t, root: h.Root}
}

func writeFile(t *testing.T, root, path, body string) {
	t.Helper()
	agenttest.WriteFile(t, root, path, body)
}

// Info is dockerd's GET /info as the agent reads it.
func (h *fakeHost) Info(ctx context.Context) (DockerInfo, error) {
	i, err := h.Host.Info(ctx)
	return DockerInfo(i), err
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
		// dockerd's TCP listeners and how each answers an attacker, as
		// the fake dockerd serves them.
		Listeners: h,
		Attacker:  h,
		Now:       func() time.Time { return fixedNow },
		Hostname:  func() (string, error) { return "dockerhost", nil },
		Addrs:     func() ([]net.IP, error) { return nil, nil },
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
const socketFragment = agenttest.SocketFragment

const debianSocket = agenttest.DebianSocket
