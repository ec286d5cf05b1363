package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/tlsdock/tlsdock/agent/agenttest"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// socketHost is a fake host with docker.socket that also models what
// systemd listens on: docker.socket holds tlsdock's TCP listeners from a
// start while its drop-in is on disk until its next stop or restart. At
// every systemd call and pause point it checks the rule "never plain TCP":
// whenever the drop-in is on disk, or docker.socket holds TCP listeners,
// daemon.json has the TLS settings, so any dockerd that starts (after a
// kill, a crash or a boot) serves them with mutual TLS.
type socketHost struct {
	*fakeHost
	mu      sync.Mutex
	holding bool // docker.socket listens on TCP
	// loaded is the unit files as of the last daemon-reload.
	loaded string
	errs   []string
}

func newSocketHost(t *testing.T) *socketHost {
	h := newFakeHost(t)
	writeFile(t, h.root, socketFragment, debianSocket)
	return &socketHost{fakeHost: h}
}

func (s *socketHost) exists(p string) bool {
	_, err := os.Stat(filepath.Join(s.root, p))
	return err == nil
}

func (s *socketHost) check(at string) {
	data, _ := os.ReadFile(filepath.Join(s.root, DaemonJSONPath))
	tlsOn := false
	if d, err := daemonjson.Parse(data); err == nil {
		v, _, _ := d.Bool("tlsverify")
		ca, _, _ := d.String("tlscacert")
		tlsOn = v && ca != ""
	}
	// The fake host's dockerd rules: a dockerd that started now, on the
	// unit systemd has loaded or after a reboot, serves every TCP
	// listener it has (docker.socket's included) with mutual TLS.
	var plain []string
	for _, would := range []func() (*agenttest.Daemon, error){s.WouldStart, s.WouldStartAfterReload} {
		if d, err := would(); err == nil {
			for _, l := range d.TCP() {
				if !l.TLS || !l.VerifyClients {
					plain = append(plain, at+": dockerd would serve "+l.Addr+" ("+l.From+") without mutual TLS")
				}
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, plain...)
	if tlsOn {
		return
	}
	if s.exists(SocketDropInPath) {
		s.errs = append(s.errs, at+": docker.socket's drop-in is on disk and daemon.json has no TLS settings")
	}
	if s.holding {
		s.errs = append(s.errs, at+": docker.socket holds a TCP listener and daemon.json has no TLS settings")
	}
}

// unitFiles is tlsdock's drop-ins as they are on disk.
func (s *socketHost) unitFiles() string {
	var b strings.Builder
	for _, p := range []string{DropInPath, SocketDropInPath} {
		data, _ := os.ReadFile(filepath.Join(s.root, p))
		b.WriteString(p + ":" + string(data) + "\n")
	}
	return b.String()
}

func (s *socketHost) DaemonReload(ctx context.Context) error {
	s.check("daemon-reload")
	s.mu.Lock()
	s.loaded = s.unitFiles()
	s.mu.Unlock()
	return s.fakeHost.DaemonReload(ctx)
}

func (s *socketHost) Restart(ctx context.Context, u string) error {
	s.check("before restart " + u)
	s.mu.Lock()
	if s.loaded != "" && s.loaded != s.unitFiles() {
		s.errs = append(s.errs, "restart "+u+" with unit files systemd has not loaded")
	}
	s.mu.Unlock()
	var err error
	if u == systemd.SocketUnit {
		// The socket itself starts; dockerd's start is what may fail.
		s.mu.Lock()
		s.holding = s.exists(SocketDropInPath)
		s.mu.Unlock()
		err = s.fakeHost.Restart(ctx, u)
	} else {
		err = s.fakeHost.Restart(ctx, u)
	}
	s.check("after restart " + u)
	return err
}

func (s *socketHost) Stop(ctx context.Context, u string) error {
	if u == systemd.SocketUnit {
		s.mu.Lock()
		s.holding = false
		s.mu.Unlock()
	}
	return s.fakeHost.Stop(ctx, u)
}

func (s *socketHost) agent(v Verifier, mod ...func(*Options)) *Agent {
	a := s.fakeHost.agent(v, mod...)
	a.o.Systemd = s
	pause := a.o.Pause
	a.o.Pause = func(step string) {
		s.check("pause " + step)
		if pause != nil {
			pause(step)
		}
	}
	return a
}

func (s *socketHost) assertNeverPlain(t *testing.T) {
	t.Helper()
	s.check("end")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Error(e)
	}
	s.errs = nil
}

const socketWant = "# Written by tlsdock: dockerd serves these listeners with mutual TLS (daemon.json).\n" +
	"# `tlsdock revert` removes it; edits are overwritten.\n[Socket]\nListenStream=0.0.0.0:2376\nFreeBind=yes\n"

func TestSocketHoldsTheListenersInDaemonJSONMode(t *testing.T) {
	h := newSocketHost(t)
	res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if res.TCPHeldBy != HeldBySocket {
		t.Errorf("TCPHeldBy = %q", res.TCPHeldBy)
	}
	if got := readFile(t, h.root, SocketDropInPath); got != socketWant {
		t.Errorf("docker.socket drop-in:\n%s\nwant:\n%s", got, socketWant)
	}
	doc, _, err := daemonjson.Load(filepath.Join(h.root, DaemonJSONPath))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.Get("hosts"); ok {
		t.Errorf("daemon.json has hosts:\n%s", doc.Render())
	}
	for _, k := range []string{"tlsverify", "tlscacert", "tlscert", "tlskey", "live-restore"} {
		if _, ok := doc.Get(k); !ok {
			t.Errorf("daemon.json lacks %s", k)
		}
	}
	if h.exists(DropInPath) {
		t.Errorf("docker.service's ExecStart was rewritten:\n%s", readFile(t, h.root, DropInPath))
	}
	if want := []string{"fd://", "tcp://0.0.0.0:2376"}; !reflect.DeepEqual(res.Hosts, want) {
		t.Errorf("hosts = %q, want %q", res.Hosts, want)
	}
	// live-restore first; then the socket is stopped (and dockerd with
	// it), started on the new listener, and dockerd started.
	want := []string{"reload docker.service", "daemon-reload", "reset-failed docker.socket", "reset-failed docker.service",
		"stop docker.socket", "restart docker.socket", "restart docker.service"}
	if got := h.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %q\nwant %q", got, want)
	}
	st, err := h.agent(nil).Status(context.Background())
	if err != nil || st.TCPHeldBy != HeldBySocket {
		t.Errorf("status: %+v %v", st, err)
	}

	// Idempotent.
	before := len(h.Calls())
	if again := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg()); again.Changed || again.Restarted {
		t.Errorf("second run: changed=%v restarted=%v", again.Changed, again.Restarted)
	}
	if got := h.Calls()[before:]; len(got) != 0 {
		t.Errorf("second run called %q", got)
	}

	// A rotation restarts dockerd only: docker.socket keeps the listener
	// and the kernel queues connections. No unit file changes, so systemd
	// is not reloaded.
	cfg := generateCfg()
	cfg.SANs = []string{"rotated.example"}
	mustProvision(t, h.agent(&fakeVerifier{}), cfg)
	if got, want := h.Calls()[before:], []string{"reset-failed docker.service", "restart docker.service"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rotation calls = %q, want %q", got, want)
	}
	h.assertNeverPlain(t)
}

func TestSocketDryRunShowsTheDropIn(t *testing.T) {
	h := newSocketHost(t)
	cfg := generateCfg()
	cfg.DryRun = true
	res, err := h.agent(&fakeVerifier{}).Provision(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range res.Files {
		found = found || f.Path == SocketDropInPath && f.Action == "create" && strings.Contains(f.Diff, "+ListenStream=0.0.0.0:2376")
	}
	if !found || res.TCPHeldBy != HeldBySocket {
		t.Errorf("dry run: files %+v, held by %q", res.Files, res.TCPHeldBy)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "docker.socket holds 0.0.0.0:2376") {
		t.Errorf("notes: %q", res.Notes)
	}
	if h.exists(SocketDropInPath) || len(h.Calls()) != 0 {
		t.Errorf("dry run changed the host: %q", h.Calls())
	}
}

func TestSocketFallsBackToHosts(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *socketHost)
		hosts []string
		why   string
	}{
		{
			name:  "docker.socket absent",
			setup: func(h *socketHost) { _ = os.Remove(filepath.Join(h.root, socketFragment)) },
			why:   "docker.socket is not-found",
		},
		{
			name: "ExecStart without -H fd://",
			setup: func(h *socketHost) {
				writeFile(t, h.root, "/etc/systemd/system/docker.service.d/override.conf",
					"[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H unix:///var/run/docker.sock\n")
			},
			why: "does not pass -H fd://",
		},
		{
			name:  "a host name",
			hosts: []string{"tcp://dockerhost:2376"},
			why:   "names no IP address",
		},
		{
			name:  "daemon.json's own unix listener",
			setup: func(h *socketHost) { writeFile(t, h.root, DaemonJSONPath, `{"hosts": ["unix:///run/other.sock"]}`) },
			why:   "daemon.json's hosts has unix:///run/other.sock",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSocketHost(t)
			if tt.setup != nil {
				tt.setup(h)
			}
			cfg := generateCfg()
			if tt.hosts != nil {
				cfg.Hosts = tt.hosts
			}
			res := mustProvision(t, h.agent(&fakeVerifier{}), cfg)
			if res.TCPHeldBy != HeldByDockerd || h.exists(SocketDropInPath) {
				t.Errorf("held by %q, drop-in on disk %v", res.TCPHeldBy, h.exists(SocketDropInPath))
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), tt.why) {
				t.Errorf("notes do not say %q: %q", tt.why, res.Notes)
			}
			// The TCP listener goes where dockerd takes its listeners
			// from: the drop-in's -H when the unit passes -H, else
			// daemon.json's hosts.
			hosts, _ := mustDoc(t, h.root).Hosts()
			dropIn := ""
			if h.exists(DropInPath) {
				dropIn = readFile(t, h.root, DropInPath)
			}
			if len(hosts) > 0 == strings.Contains(dropIn, " -H ") {
				t.Errorf("hosts in daemon.json %q, drop-in %q: want the listeners in one of them", hosts, dropIn)
			}
			if d, err := h.WouldStartAfterReload(); err != nil || len(d.TCP()) == 0 {
				t.Errorf("dockerd would not serve TCP: %+v %v", d, err)
			}
		})
	}
}

func mustDoc(t *testing.T, root string) *daemonjson.Doc {
	t.Helper()
	d, _, err := daemonjson.Load(filepath.Join(root, DaemonJSONPath))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A host provisioned the earlier way (hosts in daemon.json, ExecStart
// without -H) moves to docker.socket on the next provision.
func TestSocketMigratesFromHostsInDaemonJSON(t *testing.T) {
	h := newSocketHost(t)
	masked := filepath.Join(h.root, socketFragment)
	if err := os.Rename(masked, masked+".away"); err != nil {
		t.Fatal(err)
	}
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if !h.exists(DropInPath) {
		t.Fatal("the earlier way wrote no ExecStart drop-in")
	}
	if err := os.Rename(masked+".away", masked); err != nil {
		t.Fatal(err)
	}
	// As installing the package does: systemd loads the unit.
	if err := h.fakeHost.DaemonReload(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Rewrite the earlier shape by hand: hosts (with the TCP listener) in
	// daemon.json, the drop-in without -H.
	writeFile(t, h.root, DropInPath, "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n")
	writeFile(t, h.root, DaemonJSONPath, `{"live-restore": true, "tls": true, "tlsverify": true, "tlscacert": "/etc/docker/ssl/ca.pem", "tlscert": "/etc/docker/ssl/server-cert.pem", "tlskey": "/etc/docker/ssl/server-key.pem", "hosts": ["fd://", "tcp://0.0.0.0:2376"]}`)
	if err := h.fakeHost.DaemonReload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.fakeHost.Restart(context.Background(), systemd.DockerUnit); err != nil {
		t.Fatal(err)
	}
	res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if res.TCPHeldBy != HeldBySocket || !h.exists(SocketDropInPath) {
		t.Fatalf("held by %q; socket drop-in %v", res.TCPHeldBy, h.exists(SocketDropInPath))
	}
	// fd:// stays where it is (moving it to -H has no order a kill cannot
	// split); the TCP listener leaves daemon.json for docker.socket.
	if got := readFile(t, h.root, DropInPath); strings.Contains(got, "-H") || !strings.Contains(got, "ExecStart=/usr/sbin/dockerd --containerd") {
		t.Errorf("the drop-in without -H changed:\n%s", got)
	}
	if hosts, _ := mustDoc(t, h.root).Hosts(); !reflect.DeepEqual(hosts, []string{"fd://"}) {
		t.Errorf("daemon.json hosts %q, want [fd://]", hosts)
	}
	if err := h.LocalSocket(); err != nil {
		t.Error(err)
	}
	if again := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg()); again.Changed {
		t.Error("not converged after the migration")
	}
	h.assertNeverPlain(t)
}

// Dropin and proxy modes take the port themselves: docker.socket gives
// it up before daemon.json loses its TLS settings.
func TestSocketLeftByOtherModes(t *testing.T) {
	for _, mode := range []Mode{ModeDropIn, ModeProxy} {
		t.Run(string(mode), func(t *testing.T) {
			h := newSocketHost(t)
			mustProvision(t, h.agent(&fakeVerifier{}, withExe), generateCfg())
			before := len(h.Calls())
			cfg := generateCfg()
			cfg.Mode = mode
			res := mustProvision(t, h.agent(&fakeVerifier{}, withExe), cfg)
			if h.exists(SocketDropInPath) {
				t.Fatal("docker.socket's drop-in left")
			}
			if res.TCPHeldBy != "" {
				t.Errorf("held by %q in %s mode", res.TCPHeldBy, mode)
			}
			calls := strings.Join(h.Calls()[before:], ", ")
			if !strings.HasPrefix(calls, "daemon-reload, reset-failed docker.socket, reset-failed docker.service, restart docker.socket") {
				t.Errorf("docker.socket was not released first: %s", calls)
			}
			h.assertNeverPlain(t)
		})
	}
}

func TestSocketRevertRestores(t *testing.T) {
	h := newSocketHost(t)
	before := treeHash(t, h.root)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	exact := Defaults()
	exact.LiveRestore = false
	if _, err := h.agent(nil).Revert(context.Background(), exact); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
		t.Fatalf("revert left differences: %q", d)
	}
	if h.exists(systemd.SocketDropInDir) {
		t.Error("revert left docker.socket.d")
	}
	h.assertNeverPlain(t)
}

// A failed restart rolls back: docker.socket gives up the listener and
// dockerd is back on its previous configuration.
func TestSocketRollbackOnFailedRestart(t *testing.T) {
	h := newSocketHost(t)
	h.FailRestart(func(js string) bool { return strings.Contains(js, "tlsverify") })
	_, err := h.agent(&fakeVerifier{}).Provision(context.Background(), generateCfg())
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack", err)
	}
	if h.exists(SocketDropInPath) {
		t.Error("docker.socket's drop-in left after the rollback")
	}
	h.mu.Lock()
	holding := h.holding
	h.mu.Unlock()
	if holding {
		t.Error("docker.socket still holds the TCP listener after the rollback")
	}
	h.assertNeverPlain(t)
}

func TestSocketInterruptedApplyConverges(t *testing.T) {
	for _, step := range []string{"backed-up", "live-restore", "certs-installed", "written", "restarted"} {
		t.Run(step, func(t *testing.T) {
			h := newSocketHost(t)
			crash := func(o *Options) {
				o.Pause = func(s string) {
					if s == step {
						panic("crash at " + s)
					}
				}
			}
			func() {
				defer func() {
					if r := recover(); r == nil {
						t.Fatalf("no crash at %s", step)
					}
				}()
				_, _ = h.agent(&fakeVerifier{}, crash).Provision(context.Background(), generateCfg())
			}()
			h.assertNeverPlain(t)
			res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
			if !res.Restarted || res.TCPHeldBy != HeldBySocket {
				t.Fatalf("recovery: restarted %v, held by %q", res.Restarted, res.TCPHeldBy)
			}
			if again := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg()); again.Changed {
				t.Fatal("not converged: a third run still changes things")
			}
			h.assertNeverPlain(t)
		})
	}
}

// A kill between two writes must leave daemon.json's TLS settings on disk
// before docker.socket's drop-in, whatever the plan lists first; tlsdock's
// drop-in comes first when it takes -H or --tls* flags away, after
// daemon.json when it adds them.
func TestSocketWriteOrder(t *testing.T) {
	order := func(plan *Plan) []string {
		var got []string
		for _, f := range writeOrder(plan) {
			got = append(got, f.Path)
		}
		return got
	}
	plan := &Plan{Mode: ModeDaemonJSON, socket: socketChoice{Held: true}, dropInFirst: true, Files: []FileChange{
		{Path: SocketDropInPath, Action: "create"}, {Path: DropInPath, Action: "delete"}, {Path: DaemonJSONPath, Action: "update"},
	}}
	if got, want := order(plan), []string{DropInPath, DaemonJSONPath, SocketDropInPath}; !reflect.DeepEqual(got, want) {
		t.Errorf("socket-held order %q, want %q", got, want)
	}
	// dockerd holds the listeners, on the drop-in's -H: daemon.json (TLS
	// settings) first.
	plan = &Plan{Mode: ModeDaemonJSON, Files: []FileChange{{Path: DropInPath, Action: "create", load: true}, {Path: DaemonJSONPath, Action: "update"}}}
	if got, want := order(plan), []string{DaemonJSONPath, DropInPath}; !reflect.DeepEqual(got, want) {
		t.Errorf("-H on the drop-in order %q, want %q", got, want)
	}
	// The interim states come before everything.
	plan = &Plan{Mode: ModeDropIn, interim: []FileChange{{Path: DropInPath, Action: "update"}}, Files: []FileChange{{Path: DropInPath, Action: "create"}, {Path: DaemonJSONPath, Action: "update"}}}
	if got, want := order(plan), []string{DropInPath, DaemonJSONPath, DropInPath}; !reflect.DeepEqual(got, want) {
		t.Errorf("dropin order %q, want %q", got, want)
	}
}

// docker.socket gone after a provision (masked, or a docker package
// without it): the next provision falls back to hosts in daemon.json and
// removes the drop-in without restarting a unit systemd no longer has.
func TestSocketGoneAfterProvision(t *testing.T) {
	h := newSocketHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if err := os.Remove(filepath.Join(h.root, socketFragment)); err != nil {
		t.Fatal(err)
	}
	// As removing the package does: systemd forgets the unit.
	if err := h.fakeHost.DaemonReload(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := len(h.Calls())
	res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if res.TCPHeldBy != HeldByDockerd || h.exists(SocketDropInPath) {
		t.Fatalf("held by %q, drop-in on disk %v", res.TCPHeldBy, h.exists(SocketDropInPath))
	}
	for _, c := range h.Calls()[before:] {
		if strings.HasSuffix(c, systemd.SocketUnit) {
			t.Errorf("called %q on a docker.socket that is gone", c)
		}
	}
	if got := readFile(t, h.root, DropInPath); !strings.Contains(got, "-H fd:// -H tcp://0.0.0.0:2376") {
		t.Errorf("drop-in:\n%s", got)
	}
	h.assertNeverPlain(t)
}
