package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/systemd"
)

// attackRecipes are $DOCKER_OPTS and ExecStart spellings that dockerd
// (pflag, systemd's expansion) reads as a TCP listener, written the way
// tlsdock's first reading missed.
func attackRecipes() []dockerOptsRecipe {
	userDropIn := systemd.DropInDir + "/override.conf"
	envFile := func(body string) func(t *testing.T, h *fakeHost) []string {
		return func(t *testing.T, h *fakeHost) []string {
			writeFile(t, h.root, etcDefaultDocker, body)
			return []string{etcDefaultDocker}
		}
	}
	return []dockerOptsRecipe{
		{name: "combined -DH", setup: envFile("DOCKER_OPTS=\"-DH tcp://0.0.0.0:2375\"\n"), from: etcDefaultDocker, before: "0.0.0.0:2375"},
		{name: "combined -DHtcp", setup: envFile("DOCKER_OPTS=\"-DHtcp://0.0.0.0:2375\"\n"), from: etcDefaultDocker, before: "0.0.0.0:2375"},
		{name: "-H${X} in a word", setup: func(t *testing.T, h *fakeHost) []string {
			writeFile(t, h.root, userDropIn, "[Service]\nEnvironment=X=tcp://0.0.0.0:2375\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -H${X}\n")
			return []string{userDropIn}
		}, from: userDropIn, before: "0.0.0.0:2375", variable: "X"},
		{name: "--host=${X} in a word", setup: func(t *testing.T, h *fakeHost) []string {
			writeFile(t, h.root, userDropIn, "[Service]\nEnvironment=X=tcp://0.0.0.0:2375\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --host=${X}\n")
			return []string{userDropIn}
		}, from: userDropIn, before: "0.0.0.0:2375", variable: "X"},
		{name: "-H ${X}", setup: func(t *testing.T, h *fakeHost) []string {
			writeFile(t, h.root, userDropIn, "[Service]\nEnvironment=X=tcp://0.0.0.0:2375\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -H ${X}\n")
			return []string{userDropIn}
		}, from: userDropIn, before: "0.0.0.0:2375", variable: "X"},
		{name: "two variables", setup: func(t *testing.T, h *fakeHost) []string {
			writeFile(t, h.root, userDropIn, "[Service]\nEnvironment=A=-H B=tcp://0.0.0.0:2375\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// $A $B\n")
			return []string{userDropIn}
		}, from: userDropIn, before: "0.0.0.0:2375", variable: "B"},
	}
}

func TestExpandInWord(t *testing.T) {
	env := map[string]systemd.Assignment{"X": {Name: "X", Value: "tcp://0.0.0.0:2375"}}
	for in, want := range map[string]string{
		"-H${X}":         "-Htcp://0.0.0.0:2375",
		"--host=${X}":    "--host=tcp://0.0.0.0:2375",
		"-H$${X}":        "-H${X}",
		"${UNSET}-${X}}": "-tcp://0.0.0.0:2375}",
		"${X":            "${X",
	} {
		if got, _, err := expandInWord(in, env); err != nil || got != want {
			t.Errorf("expandInWord(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestTakeOverUnreloadedRunDropIn: a drop-in written after systemd last
// loaded docker.service (NeedDaemonReload) takes effect at tlsdock's
// daemon-reload wherever it is, /run/systemd/system included, so its
// listeners must be seen too.
func TestTakeOverUnreloadedRunDropIn(t *testing.T) {
	for _, dir := range []string{"/run/systemd/system/docker.service.d", "/etc/systemd/system/docker.service.d"} {
		for _, m := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
			t.Run(dir+"/"+string(m), func(t *testing.T) {
				h := newFakeHost(t)
				withSocket(t, h)
				if err := h.Boot(); err != nil {
					t.Fatal(err)
				}
				writeFile(t, h.root, dir+"/tcp.conf", "[Service]\nEnvironment=\"DOCKER_OPTS=-H tcp://0.0.0.0:2375\"\n")
				cfg := inMode(generateCfg(), m)
				mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), cfg)
				checkTakenOver(t, h, m)
			})
		}
	}
}

// TestTakeOverUnsetEnvironment: a variable that UnsetEnvironment= removes
// expands to nothing on ExecStart, so its flags are not dockerd's and must
// not be written out into tlsdock's drop-in (here a storage driver dockerd
// never ran with, which would hide every container).
func TestTakeOverUnsetEnvironment(t *testing.T) {
	for _, m := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
		t.Run(string(m), func(t *testing.T) {
			h := newFakeHost(t)
			withSocket(t, h)
			writeFile(t, h.root, systemd.DropInDir+"/override.conf", "[Service]\nEnvironment=\"DOCKER_OPTS=-H tcp://0.0.0.0:2375 --storage-driver=vfs\"\nUnsetEnvironment=DOCKER_OPTS\n")
			if err := h.Boot(); err != nil {
				t.Fatal(err)
			}
			if tcp := h.Running().TCP(); len(tcp) != 0 {
				t.Fatalf("before: dockerd serves %+v, want no TCP (DOCKER_OPTS is unset)", tcp)
			}
			mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), inMode(generateCfg(), m))
			checkTakenOver(t, h, m)
			for _, a := range h.Running().Args {
				if strings.Contains(a, "storage-driver") {
					t.Errorf("dockerd runs with %q after the provision: %q", a, h.Running().Args)
				}
			}
		})
	}
}

func TestMayCarryFlagsGroups(t *testing.T) {
	for v, want := range map[string]bool{
		"-DH tcp://%H:2375": true, "'-DHtcp://%H:2375'": true, "-H tcp://%H": true,
		"--data-root=/srv/%i": false, "-D": false,
	} {
		if got := mayCarryFlags(v); got != want {
			t.Errorf("mayCarryFlags(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestTakeOverDockerOptsEditedAfterProvision: DOCKER_OPTS gains a plain
// listener after the provision (which left $DOCKER_OPTS a reference, as
// it carried no listener flag then). The next provision, which is what a
// rotation by tlsdock run does, takes it over; the revert gives it back.
func TestTakeOverDockerOptsEditedAfterProvision(t *testing.T) {
	for _, m := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
		t.Run(string(m), func(t *testing.T) {
			h := newFakeHost(t)
			withSocket(t, h)
			writeFile(t, h.root, etcDefaultDocker, "DOCKER_OPTS=\"-D\"\n")
			if err := h.Boot(); err != nil {
				t.Fatal(err)
			}
			cfg := inMode(generateCfg(), m)
			mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), cfg)
			checkTakenOver(t, h, m)
			writeFile(t, h.root, etcDefaultDocker, "DOCKER_OPTS=\"-D -H tcp://0.0.0.0:2375\"\n")
			res := mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), cfg)
			checkTakenOver(t, h, m)
			if !strings.Contains(strings.Join(res.Notes, "\n"), "DOCKER_OPTS (set in "+etcDefaultDocker+")") {
				t.Errorf("notes %q", res.Notes)
			}
			if _, err := h.agent(nil, withExe, noDNS).Revert(context.Background(), Defaults()); err != nil {
				t.Fatal(err)
			}
			if err := h.Boot(); err != nil {
				t.Fatalf("after the revert: %v", err)
			}
			if tcpListener(h.Running(), "0.0.0.0:2375") == nil {
				t.Errorf("after the revert dockerd serves %+v, want the user's 0.0.0.0:2375", h.Running().TCP())
			}
		})
	}
}

// TestTakeOverRefusesOtherConfigFile: dockerd reads its settings from
// --config-file when ExecStart (or $DOCKER_OPTS) passes one, so tlsdock's
// /etc/docker/daemon.json would be ignored and that file's plain
// listener kept. tlsdock refuses such a host, naming the flag, and
// changes nothing.
func TestTakeOverRefusesOtherConfigFile(t *testing.T) {
	const other = "/etc/docker/other.json"
	for name, setup := range map[string]func(t *testing.T, h *fakeHost){
		"ExecStart": func(t *testing.T, h *fakeHost) {
			writeFile(t, h.root, systemd.DropInDir+"/override.conf", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock --config-file="+other+"\n")
		},
		"DOCKER_OPTS": func(t *testing.T, h *fakeHost) {
			writeFile(t, h.root, etcDefaultDocker, "DOCKER_OPTS=\"--config-file "+other+"\"\n")
			writeFile(t, h.root, systemd.DropInDir+"/override.conf", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n")
		},
	} {
		for _, m := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
			t.Run(name+"/"+string(m), func(t *testing.T) {
				h := newFakeHost(t)
				withSocket(t, h)
				setup(t, h)
				writeFile(t, h.root, other, `{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]}`+"\n")
				if err := h.Boot(); err != nil {
					t.Fatal(err)
				}
				if tcpListener(h.Running(), "0.0.0.0:2375") == nil {
					t.Fatalf("before: dockerd serves %+v, want 0.0.0.0:2375 from %s", h.Running().TCP(), other)
				}
				_, err := h.agent(&fakeVerifier{}, withExe, noDNS).Provision(context.Background(), inMode(generateCfg(), m))
				var ie *InputError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), "--config-file") || !strings.Contains(err.Error(), other) {
					t.Fatalf("provision: %v, want an InputError naming --config-file %s", err, other)
				}
				if calls := h.Calls(); len(calls) > 0 {
					t.Errorf("the refused provision called systemd: %q", calls)
				}
			})
		}
	}
}

// TestTakeOverManagerEnvironment: `systemctl set-environment
// DOCKER_OPTS=...` (or DefaultEnvironment= in system.conf) reaches
// Debian's $DOCKER_OPTS when /etc/default/docker leaves it unset, as its
// shipped file does: its plain listener must be taken over too.
func TestTakeOverManagerEnvironment(t *testing.T) {
	for _, m := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
		t.Run(string(m), func(t *testing.T) {
			h := newFakeHost(t)
			withSocket(t, h)
			writeFile(t, h.root, etcDefaultDocker, "#DOCKER_OPTS=\"--dns 8.8.8.8 --dns 8.8.4.4\"\n")
			h.SetManagerEnvironment("DOCKER_OPTS=-H tcp://0.0.0.0:2375")
			if err := h.Boot(); err != nil {
				t.Fatal(err)
			}
			if tcpListener(h.Running(), "0.0.0.0:2375") == nil {
				t.Fatalf("before: dockerd serves %+v, want 0.0.0.0:2375", h.Running().TCP())
			}
			res := mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), inMode(generateCfg(), m))
			checkTakenOver(t, h, m)
			if notes := strings.Join(res.Notes, "\n"); !strings.Contains(notes, "DOCKER_OPTS (set in "+systemd.ManagerEnvironment+")") {
				t.Errorf("the notes do not say where DOCKER_OPTS came from:\n%s", notes)
			}
		})
	}
}
