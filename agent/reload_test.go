package agent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A rotation that installs only a new certificate set restarts docker
// without a daemon-reload: dockerd reads daemon.json and the certificates
// itself, and systemd's copy of the units is the one on disk. Whenever a
// unit file changed, or systemd says one did, the reload comes first.

// reloadBeforeRestart reports whether calls reload systemd before their
// first restart of docker.service (or of docker.socket, which restarts it).
func reloadBeforeRestart(calls []string) bool {
	restart := slices.IndexFunc(calls, func(c string) bool {
		return c == "restart docker.service" || c == "restart docker.socket"
	})
	reload := slices.Index(calls, "daemon-reload")
	return reload >= 0 && (restart < 0 || reload < restart)
}

// assertServes checks that dockerd was restarted onto what is on disk now:
// it runs, systemd has every unit file loaded, and the installed set is
// serial.
func assertServes(t *testing.T, h *fakeHost, serial string) {
	t.Helper()
	if h.Running() == nil {
		t.Fatalf("dockerd does not run: %v", h.LastStartError())
	}
	for _, u := range []string{"docker.service", "docker.socket"} {
		info, err := h.Unit(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		if info.NeedDaemonReload {
			t.Errorf("%s: systemd has files loaded that differ from the disk", u)
		}
	}
	if got := installedSerial(t, h); got != serial {
		t.Errorf("installed serial %s, want %s", got, serial)
	}
}

func TestRotationRestartsWithoutDaemonReload(t *testing.T) {
	for _, withSocket := range []bool{false, true} {
		name := map[bool]string{false: "hosts in daemon.json", true: "docker.socket holds the listener"}[withSocket]
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			if withSocket {
				writeFile(t, h.root, socketFragment, debianSocket)
			}
			first := mustProvision(t, h.agent(&fakeVerifier{}), certsCfg(writeSet(t, h.root, "127.0.0.1")))
			if !slices.Contains(h.Calls(), "daemon-reload") {
				t.Fatalf("the first provision wrote unit files without a daemon-reload: %q", h.Calls())
			}
			before := len(h.Calls())
			res := mustProvision(t, h.agent(&fakeVerifier{}), certsCfg(writeSet(t, h.root, "127.0.0.1")))
			if !res.Restarted || res.Serial == first.Serial {
				t.Fatalf("rotation: restarted=%v serial %s (was %s)", res.Restarted, res.Serial, first.Serial)
			}
			calls := h.Calls()[before:]
			if slices.Contains(calls, "daemon-reload") {
				t.Errorf("a rotation that changes no unit file reloaded systemd: %q", calls)
			}
			if !slices.Contains(calls, "restart docker.service") {
				t.Errorf("the rotation did not restart docker: %q", calls)
			}
			assertServes(t, h, res.Serial)
		})
	}
}

// TestRotationReloadsWhenAUnitChanged: the cases where the restart needs
// systemd to load unit files first, among them a run after an interrupted
// one: what systemd has loaded is then not known.
func TestRotationReloadsWhenAUnitChanged(t *testing.T) {
	edit := func(path, content string) func(*testing.T, *fakeHost, Config) {
		return func(t *testing.T, h *fakeHost, _ Config) { writeFile(t, h.root, path, content) }
	}
	remove := func(path string) func(*testing.T, *fakeHost, Config) {
		return func(t *testing.T, h *fakeHost, _ Config) { removeFile(t, h, path) }
	}
	crash := func(step string) func(*testing.T, *fakeHost, Config) {
		return func(t *testing.T, h *fakeHost, cfg Config) { crashedProvision(t, h, cfg, step) }
	}
	const limits = "[Service]\nLimitNOFILE=1048576\n"
	for _, tc := range []struct {
		name   string
		socket bool
		// change edits the host after the first provision, as someone
		// else would, without a daemon-reload, or interrupts a run
		// with cfg, the configuration the second provision uses.
		change func(t *testing.T, h *fakeHost, cfg Config)
	}{
		{"tlsdock's drop-in is gone", false, remove(DropInPath)},
		{"another docker.service drop-in was written", false, edit("/etc/systemd/system/docker.service.d/limits.conf", limits)},
		{"docker.service's drop-in was edited", true, edit("/etc/systemd/system/docker.service.d/limits.conf", limits)},
		{"another docker.socket drop-in was written", true, edit("/etc/systemd/system/docker.socket.d/mode.conf", "[Socket]\nSocketMode=0600\n")},
		{"tlsdock's docker.socket drop-in is gone", true, remove(SocketDropInPath)},
		{"a run interrupted after certs-installed", true, crash("certs-installed")},
		{"a run interrupted after restarted", true, crash("restarted")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t)
			if tc.socket {
				writeFile(t, h.root, socketFragment, debianSocket)
			}
			mustProvision(t, h.agent(&fakeVerifier{}), certsCfg(writeSet(t, h.root, "127.0.0.1")))
			cfg := certsCfg(writeSet(t, h.root, "127.0.0.1"))
			tc.change(t, h, cfg)
			before := len(h.Calls())
			res := mustProvision(t, h.agent(&fakeVerifier{}), cfg)
			calls := h.Calls()[before:]
			if !reloadBeforeRestart(calls) {
				t.Errorf("no daemon-reload before the restart: %q", calls)
			}
			assertServes(t, h, res.Serial)
		})
	}
}

// TestPlanNeedsReload is the rule itself, for the plans a test host does
// not produce easily.
func TestPlanNeedsReload(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan Plan
		want bool
	}{
		{"certificates only", Plan{Install: true}, false},
		{"daemon.json only", Plan{Files: []FileChange{{Path: DaemonJSONPath}}}, false},
		{"tlsdock's drop-in", Plan{Files: []FileChange{{Path: DaemonJSONPath}, {Path: DropInPath}}}, true},
		{"an interim drop-in", Plan{interim: []FileChange{{Path: DropInPath}}}, true},
		{"docker.socket's drop-in", Plan{Files: []FileChange{{Path: SocketDropInPath}}}, true},
		{"tlsdock.service's drop-in", Plan{Files: []FileChange{{Path: ProxyDropInPath}}}, true},
		{"systemd says a unit changed on disk", Plan{Install: true, unitsStale: true}, true},
		{"docker.socket's drop-in on disk, not loaded", Plan{socketRestart: true}, true},
		{"docker.socket restarts on its loaded drop-in", Plan{socketRestart: true, socket: socketChoice{loaded: true}}, false},
		{"a recovered run", Plan{Install: true, forced: true}, true},
		{"a revert", Plan{restore: &Snapshot{}}, true},
	} {
		if got := tc.plan.needsReload(); got != tc.want {
			t.Errorf("%s: needsReload = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func removeFile(t *testing.T, h *fakeHost, path string) {
	t.Helper()
	if err := os.Remove(filepath.Join(h.root, path)); err != nil {
		t.Fatal(err)
	}
}
