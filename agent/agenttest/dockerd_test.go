package agenttest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore/certtest"
)

const override = "/etc/systemd/system/docker.service.d/override.conf"

// execStart writes an override that replaces the unit's command line.
func execStart(t *testing.T, h *Host, cmd string) {
	t.Helper()
	WriteFile(t, h.Root, override, "[Service]\nExecStart=\nExecStart="+cmd+"\n")
}

// withSocket writes Debian's docker.socket.
func withSocket(t *testing.T, h *Host) {
	t.Helper()
	WriteFile(t, h.Root, SocketFragment, DebianSocket)
}

// installTLS writes a valid set under /etc/docker/ssl.
func installTLS(t *testing.T, h *Host) {
	t.Helper()
	p := certtest.New(t)
	cert, key := p.Server(t)
	WriteFile(t, h.Root, "/etc/docker/ssl/ca.pem", string(p.Root.PEM))
	WriteFile(t, h.Root, "/etc/docker/ssl/server-cert.pem", string(cert))
	WriteFile(t, h.Root, "/etc/docker/ssl/server-key.pem", string(key))
}

const tlsJSON = `"tlscacert": "/etc/docker/ssl/ca.pem", "tlscert": "/etc/docker/ssl/server-cert.pem", "tlskey": "/etc/docker/ssl/server-key.pem"`

// TestDockerdRules: each rule of dockerd's start, from its documentation
// and configuration-loading code, with a case that starts and one that
// does not.
func TestDockerdRules(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, h *Host)
		// reason is why the start is refused; "" means it starts.
		reason string
		want   string // in the error, or checked by check
		check  func(t *testing.T, d *Daemon)
	}{
		{name: "debian as shipped", setup: func(*testing.T, *Host) {}, check: func(t *testing.T, d *Daemon) {
			if len(d.Listeners) != 1 || d.Listeners[0].Network != "unix" || d.Listeners[0].Addr != "/run/docker.sock" || d.TLS {
				t.Errorf("listeners %+v, tls %v", d.Listeners, d.TLS)
			}
		}},
		{name: "hosts both in the file and as -H fd://", reason: ReasonConflict, want: "hosts: (from flag: [fd://]",
			setup: func(t *testing.T, h *Host) { WriteFile(t, h.Root, DaemonJSON, `{"hosts": ["tcp://0.0.0.0:2375"]}`) }},
		{name: "hosts null still counts as set", reason: ReasonConflict, want: "hosts",
			setup: func(t *testing.T, h *Host) { WriteFile(t, h.Root, DaemonJSON, `{"hosts": null}`) }},
		{name: "-H= and --host spellings", reason: ReasonConflict, want: "hosts",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -H=unix:///run/a.sock --host tcp://127.0.0.1:2375")
				WriteFile(t, h.Root, DaemonJSON, `{"hosts": []}`)
			}},
		{name: "-Hvalue spelling", reason: ReasonConflict, want: "hosts",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -Hunix:///run/a.sock")
				WriteFile(t, h.Root, DaemonJSON, `{"hosts": ["unix:///run/b.sock"]}`)
			}},
		{name: "-H from $DOCKER_OPTS in /etc/default/docker", reason: ReasonConflict, want: "hosts",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd $DOCKER_OPTS")
				WriteFile(t, h.Root, "/etc/default/docker", "# comment\nDOCKER_OPTS=\"-H tcp://0.0.0.0:2375 --debug\"\n")
				WriteFile(t, h.Root, DaemonJSON, `{"hosts": ["unix:///run/b.sock"]}`)
			}},
		{name: "-H from $DOCKER_OPTS in an Environment= line", reason: ReasonConflict, want: "debug",
			setup: func(t *testing.T, h *Host) {
				WriteFile(t, h.Root, "/etc/systemd/system/docker.service.d/env.conf", "[Service]\nEnvironment=\"DOCKER_OPTS=-D\"\n")
				WriteFile(t, h.Root, DaemonJSON, `{"debug": true}`)
			}},
		{name: "${VAR} is one word", reason: ReasonFlags, want: "unknown shorthand flag",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd ${OPTS}")
				WriteFile(t, h.Root, "/etc/systemd/system/docker.service.d/env.conf", "[Service]\nEnvironment=\"OPTS=-D -x\"\n")
			}},
		{name: "--tlsverify flag and tlsverify in the file", reason: ReasonConflict, want: "tlsverify",
			setup: func(t *testing.T, h *Host) {
				installTLS(t, h)
				execStart(t, h, "/usr/sbin/dockerd -H fd:// --tlsverify --tlscacert=/etc/docker/ssl/ca.pem --tlscert /etc/docker/ssl/server-cert.pem --tlskey /etc/docker/ssl/server-key.pem")
				WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": true}`)
			}},
		{name: "--tlscacert=value and tlscacert in the file", reason: ReasonConflict, want: "tlscacert",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -H fd:// --tlscacert=/x/ca.pem")
				WriteFile(t, h.Root, DaemonJSON, `{"tlscacert": "/y/ca.pem"}`)
			}},
		{name: "a named option: --label and labels", reason: ReasonConflict, want: "labels",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -H fd:// --label a=b")
				WriteFile(t, h.Root, DaemonJSON, `{"labels": ["c=d"]}`)
			}},
		{name: "a nested object is flattened into its keys", reason: ReasonConflict, want: "debug",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -H fd:// -D")
				WriteFile(t, h.Root, DaemonJSON, `{"builder": {"gc": {}}, "mine": {"debug": true}}`)
			}},
		{name: "log-opts are not flattened", setup: func(t *testing.T, h *Host) {
			execStart(t, h, "/usr/sbin/dockerd -H fd:// -D")
			WriteFile(t, h.Root, DaemonJSON, `{"log-opts": {"debug": "x"}}`)
		}},
		{name: "invalid JSON", reason: ReasonJSON, want: "unable to configure the Docker daemon with file /etc/docker/daemon.json",
			setup: func(t *testing.T, h *Host) { WriteFile(t, h.Root, DaemonJSON, `{"a": }`) }},
		{name: "not an object", reason: ReasonJSON,
			setup: func(t *testing.T, h *Host) { WriteFile(t, h.Root, DaemonJSON, `["x"]`) }},
		{name: "white space only", reason: ReasonJSON, want: "EOF",
			setup: func(t *testing.T, h *Host) { WriteFile(t, h.Root, DaemonJSON, " \n\t\n") }},
		{name: "what follows the object is ignored", setup: func(t *testing.T, h *Host) {
			WriteFile(t, h.Root, DaemonJSON, `{"live-restore": true} garbage`)
		}, check: func(t *testing.T, d *Daemon) {
			if !d.LiveRestore {
				t.Error("live-restore not read")
			}
		}},
		{name: "a value of the wrong type", reason: ReasonJSON, want: "cannot unmarshal string",
			setup: func(t *testing.T, h *Host) { WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": "yes"}`) }},
		{name: "an unknown key", reason: ReasonUnknown, want: "don't match any configuration option: x-custom",
			setup: func(t *testing.T, h *Host) { WriteFile(t, h.Root, DaemonJSON, `{"x-custom": 1}`) }},
		{name: "a missing --config-file", reason: ReasonJSON, want: "/etc/docker/other.json",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -H fd:// --config-file /etc/docker/other.json")
			}},
		{name: "--config-file is read instead", reason: ReasonConflict, want: "hosts",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -H fd:// --config-file=/etc/docker/other.json")
				WriteFile(t, h.Root, "/etc/docker/other.json", `{"hosts": ["unix:///run/b.sock"]}`)
			}},
		{name: "an unknown flag", reason: ReasonFlags, want: "unknown flag: --frobnicate",
			setup: func(t *testing.T, h *Host) { execStart(t, h, "/usr/sbin/dockerd --frobnicate") }},
		{name: "a positional argument", reason: ReasonFlags, want: "accepts no arguments",
			setup: func(t *testing.T, h *Host) { execStart(t, h, "/usr/sbin/dockerd -H fd:// daemon") }},
		{name: "not dockerd", reason: ReasonUnit, want: "not dockerd",
			setup: func(t *testing.T, h *Host) { execStart(t, h, "/usr/local/bin/start-docker -H fd://") }},
		{name: "two ExecStart lines", reason: ReasonUnit, want: "2 ExecStart",
			setup: func(t *testing.T, h *Host) {
				WriteFile(t, h.Root, override, "[Service]\nExecStart=/usr/sbin/dockerd -H fd:// --debug\n")
			}},
		{name: "TLS files missing", reason: ReasonTLS, want: "Could not load X509 key pair",
			setup: func(t *testing.T, h *Host) {
				WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": true, `+tlsJSON+`}`)
			}},
		{name: "key of another certificate", reason: ReasonTLS, want: "private key does not match public key",
			setup: func(t *testing.T, h *Host) {
				installTLS(t, h)
				_, other := certtest.New(t).Server(t)
				WriteFile(t, h.Root, "/etc/docker/ssl/server-key.pem", string(other))
				WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": true, `+tlsJSON+`}`)
			}},
		{name: "intermediate before the leaf", reason: ReasonTLS, want: "private key does not match public key",
			setup: func(t *testing.T, h *Host) {
				p := certtest.New(t)
				cert, key := p.Server(t)
				inter := string(p.Inter.PEM)
				leaf := strings.TrimSuffix(string(cert), inter)
				WriteFile(t, h.Root, "/etc/docker/ssl/ca.pem", string(p.Root.PEM))
				WriteFile(t, h.Root, "/etc/docker/ssl/server-cert.pem", inter+leaf)
				WriteFile(t, h.Root, "/etc/docker/ssl/server-key.pem", string(key))
				WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": true, `+tlsJSON+`}`)
			}},
		{name: "a CA that is not PEM, clients verified", reason: ReasonTLS, want: "failed to append certificates",
			setup: func(t *testing.T, h *Host) {
				installTLS(t, h)
				WriteFile(t, h.Root, "/etc/docker/ssl/ca.pem", "garbage")
				WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": true, `+tlsJSON+`}`)
			}},
		{name: "a CA that is not PEM is not read without verification",
			setup: func(t *testing.T, h *Host) {
				installTLS(t, h)
				WriteFile(t, h.Root, "/etc/docker/ssl/ca.pem", "garbage")
				execStart(t, h, "/usr/sbin/dockerd")
				WriteFile(t, h.Root, DaemonJSON, `{"tls": true, "tlsverify": false, "hosts": ["tcp://0.0.0.0:2376"], `+tlsJSON+`}`)
			},
			check: func(t *testing.T, d *Daemon) {
				if tcp := d.TCP(); len(tcp) != 1 || !tcp[0].TLS || tcp[0].VerifyClients {
					t.Errorf("tcp %+v, want TLS without client verification", tcp)
				}
			}},
		{name: "tls in the file verifies unless tlsverify says otherwise",
			setup: func(t *testing.T, h *Host) {
				installTLS(t, h)
				WriteFile(t, h.Root, DaemonJSON, `{"tls": true, `+tlsJSON+`}`)
			},
			check: func(t *testing.T, d *Daemon) {
				if !d.TLS || !d.TLSVerify {
					t.Errorf("tls %v verify %v", d.TLS, d.TLSVerify)
				}
			}},
		{name: "--tlsverify=false turns TLS on and needs a certificate", reason: ReasonTLS, want: `cert: ""`,
			setup: func(t *testing.T, h *Host) { execStart(t, h, "/usr/sbin/dockerd -H fd:// --tlsverify=false") }},
		{name: "a plain TCP listener is allowed", setup: func(t *testing.T, h *Host) {
			execStart(t, h, "/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2375 --tls=false")
		}, check: func(t *testing.T, d *Daemon) {
			if tcp := d.TCP(); len(tcp) != 1 || tcp[0].TLS || tcp[0].Addr != "0.0.0.0:2375" || tcp[0].From != "flag -H" {
				t.Errorf("tcp %+v, want one plain listener", tcp)
			}
		}},
		{name: "a host without a scheme or address is TCP on localhost", setup: func(t *testing.T, h *Host) {
			execStart(t, h, "/usr/sbin/dockerd")
			WriteFile(t, h.Root, DaemonJSON, `{"hosts": [":2377"]}`)
		}, check: func(t *testing.T, d *Daemon) {
			if tcp := d.TCP(); len(tcp) != 1 || tcp[0].Addr != "localhost:2377" || tcp[0].From != "daemon.json hosts" {
				t.Errorf("tcp %+v", tcp)
			}
		}},
		{name: "no host at all with TLS is tcp://localhost:2376", setup: func(t *testing.T, h *Host) {
			installTLS(t, h)
			execStart(t, h, "/usr/sbin/dockerd")
			WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": true, `+tlsJSON+`}`)
		}, check: func(t *testing.T, d *Daemon) {
			if tcp := d.TCP(); len(tcp) != 1 || tcp[0].Addr != "localhost:2376" || !tcp[0].VerifyClients {
				t.Errorf("tcp %+v", tcp)
			}
		}},
		{name: "the same port twice", reason: ReasonListener, want: "address already in use",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -H tcp://0.0.0.0:2375 -H tcp://127.0.0.1:2375")
			}},
		{name: "fd:// without docker.socket", reason: ReasonListener, want: "no sockets found via socket activation",
			setup: func(t *testing.T, h *Host) {
				execStart(t, h, "/usr/sbin/dockerd -H fd://")
				WriteFile(t, h.Root, "/etc/systemd/system/docker.service.d/norequire.conf", "[Unit]\nRequires=\n")
				WriteFile(t, h.Root, "/etc/systemd/system/docker.socket", "")
				WriteFile(t, h.Root, "/etc/systemd/system/docker.socket.d/none.conf", "[Socket]\nListenStream=\n")
			}},
		{name: "docker.service requires a missing docker.socket", reason: ReasonUnit, want: "docker.socket not found",
			setup: func(t *testing.T, h *Host) { h.SetStrictSocket(true) }},
		{name: "TCP held by docker.socket is served with daemon.json's TLS", setup: func(t *testing.T, h *Host) {
			installTLS(t, h)
			withSocket(t, h)
			WriteFile(t, h.Root, "/etc/systemd/system/docker.socket.d/tcp.conf", "[Socket]\nListenStream=127.0.0.1:2376\n")
			WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": true, `+tlsJSON+`}`)
		}, check: func(t *testing.T, d *Daemon) {
			tcp := d.TCP()
			if len(tcp) != 1 || tcp[0].Addr != "127.0.0.1:2376" || !tcp[0].TLS || !tcp[0].VerifyClients || tcp[0].From != "docker.socket ListenStream=" {
				t.Errorf("tcp %+v", tcp)
			}
			if len(d.Listeners) != 2 || d.Listeners[0].Network != "unix" {
				t.Errorf("listeners %+v, want the unix socket too", d.Listeners)
			}
		}},
		{name: "a port held by docker.socket and in hosts", reason: ReasonListener, want: "address already in use",
			setup: func(t *testing.T, h *Host) {
				withSocket(t, h)
				WriteFile(t, h.Root, "/etc/systemd/system/docker.socket.d/tcp.conf", "[Socket]\nListenStream=2376\n")
				execStart(t, h, "/usr/sbin/dockerd -H fd:// -H tcp://127.0.0.1:2376 --tls=false")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHost(t)
			tt.setup(t, h)
			d, err := h.WouldStart()
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tt.check != nil {
					tt.check(t, d)
				}
				return
			}
			if !IsReason(err, tt.reason) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a %s refusal containing %q", err, tt.reason, tt.want)
			}
		})
	}
}

// TestStartLimit: docker.service's StartLimitBurst=3 in 60 s; reset-failed
// and the passing of the interval clear it.
func TestStartLimit(t *testing.T) {
	ctx := context.Background()
	h := NewHost(t)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	h.SetClock(func() time.Time { return now })
	for i := 1; i <= 3; i++ {
		if err := h.Restart(ctx, DockerUnit); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
	}
	err := h.Restart(ctx, DockerUnit)
	if err == nil || !IsReason(err, ReasonStartRate) || h.ActiveState() != "failed" {
		t.Fatalf("fourth restart in a minute: %v, docker %s", err, h.ActiveState())
	}
	if err := h.Ping(ctx); err == nil {
		t.Fatal("docker answers after the start limit was hit")
	}
	if err := h.ResetFailed(ctx, DockerUnit); err != nil {
		t.Fatal(err)
	}
	if err := h.Restart(ctx, DockerUnit); err != nil {
		t.Fatalf("after reset-failed: %v", err)
	}
	_ = h.Restart(ctx, DockerUnit)
	_ = h.Restart(ctx, DockerUnit)
	now = now.Add(61 * time.Second)
	if err := h.Restart(ctx, DockerUnit); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
	want := []string{"restart docker.service", "restart docker.service", "restart docker.service", "restart docker.service", "reset-failed docker.service"}
	if got := h.Calls(); strings.Join(got[:5], ",") != strings.Join(want, ",") {
		t.Fatalf("calls %q", got)
	}
}

// TestLoadedUnit: systemd starts the unit it loaded; a change on disk is
// NeedDaemonReload until daemon-reload.
func TestLoadedUnit(t *testing.T) {
	ctx := context.Background()
	h := NewHost(t)
	if info, _ := h.Unit(ctx, DockerUnit); info.NeedDaemonReload || info.ActiveState != "active" || info.MainPID == 0 || info.FragmentPath != DockerFragment {
		t.Fatalf("fresh host: %+v", info)
	}
	WriteFile(t, h.Root, DaemonJSON, `{"hosts": ["unix:///run/b.sock"]}`)
	execStart(t, h, "/usr/sbin/dockerd")
	if info, _ := h.Unit(ctx, DockerUnit); !info.NeedDaemonReload || len(info.DropInPaths) != 0 {
		t.Fatalf("after an edit: %+v", info)
	}
	if err := h.Restart(ctx, DockerUnit); !IsReason(err, ReasonConflict) {
		t.Fatalf("restart on the loaded unit (-H fd://): %v", err)
	}
	if _, err := h.WouldStartAfterReload(); err != nil {
		t.Fatalf("after a reload it would start: %v", err)
	}
	if err := h.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := h.Unit(ctx, DockerUnit); info.NeedDaemonReload || len(info.DropInPaths) != 1 {
		t.Fatalf("after daemon-reload: %+v", info)
	}
	if err := h.Restart(ctx, DockerUnit); err != nil {
		t.Fatal(err)
	}
	if d := h.Running(); d == nil || d.HostsFrom != "daemon.json hosts" {
		t.Fatalf("running %+v", d)
	}
}

// TestReload: SIGHUP re-reads daemon.json; live-restore changes only when
// the whole file is accepted (a conflict fails the reload as a whole).
func TestReload(t *testing.T) {
	ctx := context.Background()
	h := NewHost(t)
	if err := h.Boot(); err != nil {
		t.Fatal(err)
	}
	WriteFile(t, h.Root, DaemonJSON, `{"live-restore": true, "hosts": ["fd://"]}`)
	if err := h.Reload(ctx, DockerUnit); err != nil {
		t.Fatal(err)
	}
	if i, _ := h.Info(ctx); i.LiveRestoreEnabled {
		t.Fatal("live-restore reloaded from a file dockerd refuses (hosts also as -H)")
	}
	WriteFile(t, h.Root, DaemonJSON, `{"live-restore": true}`)
	if err := h.Reload(ctx, DockerUnit); err != nil {
		t.Fatal(err)
	}
	if i, _ := h.Info(ctx); !i.LiveRestoreEnabled || !h.LiveRestore() {
		t.Fatal("live-restore not reloaded")
	}
	if err := h.Stop(ctx, DockerUnit); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Info(ctx); err == nil {
		t.Fatal("a stopped dockerd answers /info")
	}
	if err := h.Reload(ctx, DockerUnit); err == nil {
		t.Fatal("reload of a stopped unit succeeded")
	}
}

// TestFailRestart: the injected failure sees daemon.json and applies to
// every unit.
func TestFailRestart(t *testing.T) {
	ctx := context.Background()
	h := NewHost(t)
	WriteFile(t, h.Root, DaemonJSON, `{"debug": true}`)
	h.FailRestart(func(js string) bool { return strings.Contains(js, "debug") })
	for _, u := range []string{DockerUnit, "tlsdock.service"} {
		if err := h.Restart(ctx, u); !IsReason(err, ReasonInjected) || !strings.HasPrefix(err.Error(), `job result "failed"`) {
			t.Errorf("%s: %v", u, err)
		}
	}
	h.FailRestart(nil)
	if err := h.Restart(ctx, DockerUnit); err != nil {
		t.Fatal(err)
	}
}

func TestSplitExec(t *testing.T) {
	env := map[string]string{"OPTS": "-H fd://  --debug", "ONE": "a b"}
	for in, want := range map[string]string{
		`/usr/sbin/dockerd -H fd:// $OPTS`:       "/usr/sbin/dockerd|-H|fd://|-H|fd://|--debug",
		`-/usr/sbin/dockerd "-H" 'fd://' ${ONE}`: "/usr/sbin/dockerd|-H|fd://|a b",
		`dockerd "$OPTS" $MISSING x\ y`:          "dockerd|-H|fd://|--debug|x y",
		`dockerd --log-opt "max-size=10m"`:       "dockerd|--log-opt|max-size=10m",
	} {
		got, err := splitExec(in, env)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("splitExec(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestSocketListeners: docker.socket binds its ListenStream= values when
// it starts; a drop-in takes effect after daemon-reload and a restart of
// the socket, which restarts docker.service too.
func TestSocketListeners(t *testing.T) {
	ctx := context.Background()
	h := NewHost(t)
	withSocket(t, h)
	installTLS(t, h)
	WriteFile(t, h.Root, DaemonJSON, `{"tlsverify": true, `+tlsJSON+`}`)
	if err := h.Boot(); err != nil {
		t.Fatal(err)
	}
	if got := h.SocketListening(); strings.Join(got, " ") != "/run/docker.sock" {
		t.Fatalf("socket listens on %q", got)
	}
	WriteFile(t, h.Root, "/etc/systemd/system/docker.socket.d/tcp.conf", "[Socket]\nListenStream=127.0.0.1:2376\n")
	if info, _ := h.Unit(ctx, SocketUnit); !info.NeedDaemonReload || info.SubState != "listening" {
		t.Fatalf("socket unit %+v", info)
	}
	if err := h.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Restart(ctx, DockerUnit); err != nil {
		t.Fatal(err)
	}
	if tcp := h.Running().TCP(); len(tcp) != 0 {
		t.Fatalf("a daemon-reload alone bound %+v", tcp)
	}
	pid := h.MainPID()
	if err := h.Restart(ctx, SocketUnit); err != nil {
		t.Fatal(err)
	}
	if h.MainPID() == pid {
		t.Error("restarting docker.socket did not restart docker.service")
	}
	tcp := h.Running().TCP()
	if len(tcp) != 1 || tcp[0].Addr != "127.0.0.1:2376" || !tcp[0].VerifyClients {
		t.Fatalf("tcp %+v", tcp)
	}
	if err := h.Stop(ctx, SocketUnit); err != nil {
		t.Fatal(err)
	}
	if h.Running() != nil || h.ActiveState() != "inactive" {
		t.Fatal("docker.service runs without its socket")
	}
	// Starting docker.service starts the socket it requires.
	if err := h.Restart(ctx, DockerUnit); err != nil {
		t.Fatal(err)
	}
	if got := h.SocketListening(); len(got) != 2 || len(h.Running().TCP()) != 1 {
		t.Fatalf("socket %q, dockerd %+v", got, h.Running())
	}
}
