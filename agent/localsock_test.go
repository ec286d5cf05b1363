package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/agent/agenttest"
	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/systemd"
)

// Attack is the fake dockerd's answer to an attacker's probes.
func (h *fakeHost) Attack(_ context.Context, addr string) ([]Check, error) {
	cs, err := h.AttackChecks(addr)
	out := make([]Check, len(cs))
	for i, c := range cs {
		out[i] = Check(c)
	}
	return out, err
}

// localAPI is dockerd's local API as a client on the host meets it: a
// call blocks until its context ends when docker.socket holds
// /run/docker.sock and the running dockerd does not serve it.
type localAPI struct{ *fakeHost }

func (l localAPI) Info(ctx context.Context) (DockerInfo, error) {
	if l.LocalAPIHangs() {
		<-ctx.Done()
		return DockerInfo{}, ctx.Err()
	}
	return l.fakeHost.Info(ctx)
}

func (l localAPI) Ping(ctx context.Context) error {
	if l.LocalAPIHangs() {
		<-ctx.Done()
		return ctx.Err()
	}
	return l.fakeHost.Ping(ctx)
}

// userCerts writes a CA and a server certificate of the user's own, as a
// recipe leaves them, in /etc/docker/certs.
func userCerts(t *testing.T, h *fakeHost) {
	t.Helper()
	ca, err := certstore.NewCA(certstore.ECDSAP256, fixedNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{CommonName: "dockerhost", DNSNames: []string{"dockerhost"}, KeyType: certstore.ECDSAP256, Now: fixedNow, Validity: ServerValidity, Server: true}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.root, "/etc/docker/certs/ca.pem", string(ca.CertPEM))
	writeFile(t, h.root, "/etc/docker/certs/server-cert.pem", string(certPEM))
	writeFile(t, h.root, "/etc/docker/certs/server-key.pem", string(keyPEM))
}

// docsRecipe is the end state of Docker's docs recipe: daemon.json has the
// TLS settings, and the shipped unit's ExecStart is edited to listen on
// TCP only, so dockerd serves no local socket while docker.socket holds
// /run/docker.sock.
func docsRecipe(t *testing.T, h *fakeHost, liveRestore bool) {
	t.Helper()
	writeFile(t, h.root, socketFragment, debianSocket)
	userCerts(t, h)
	lr := ""
	if liveRestore {
		lr = `"live-restore": true, `
	}
	writeFile(t, h.root, DaemonJSONPath, `{`+lr+`"tlsverify": true, "tlscacert": "/etc/docker/certs/ca.pem", "tlscert": "/etc/docker/certs/server-cert.pem", "tlskey": "/etc/docker/certs/server-key.pem"}`+"\n")
	writeFile(t, h.root, systemd.DropInDir+"/override.conf", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H=0.0.0.0:2376 --containerd=/run/containerd/containerd.sock\n")
	if !h.LocalAPIHangs() {
		t.Fatalf("the docs recipe's dockerd serves a local socket: %v", h.LocalSocket())
	}
}

// TestDocsRecipeGetsItsLocalSocket: provision takes over the docs recipe
// in every mode. The local socket comes back (fd://, docker.socket's),
// the plan never waits on the socket nobody accepts on for longer than
// localAPIWait, live-restore is not turned on first (no API to confirm
// it), with a warning unless it was on already, and revert gives the
// files back byte for byte.
func TestDocsRecipeGetsItsLocalSocket(t *testing.T) {
	for _, mode := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
		for _, lr := range []bool{false, true} {
			name := string(mode) + "/no live-restore"
			if lr {
				name = string(mode) + "/live-restore on"
			}
			t.Run(name, func(t *testing.T) {
				h := newFakeHost(t)
				docsRecipe(t, h, lr)
				before := treeHash(t, h.root)
				a := h.agent(&fakeVerifier{}, func(o *Options) { o.Docker = localAPI{h} })
				cfg := generateCfg()
				cfg.Mode = mode
				res, err := a.Provision(context.Background(), cfg)
				if err != nil {
					t.Fatalf("provision: %v\nnotes: %q\nchecks: %+v", err, res.Notes, res.Checks)
				}
				if err := h.LocalSocket(); err != nil {
					t.Errorf("local socket after provision: %v", err)
				}
				if !slices.Contains(res.Hosts, "fd://") {
					t.Errorf("hosts %q, want fd:// (docker.socket holds /run/docker.sock)", res.Hosts)
				}
				if slices.Contains(h.Calls(), "reload docker.service") {
					t.Errorf("calls %q: live-restore was reloaded in with no API to confirm it", h.Calls())
				}
				warned := strings.Contains(strings.Join(res.Warnings, "\n"), "stops every running container")
				if warned == lr {
					t.Errorf("warnings %q: want the containers warning only without live-restore", res.Warnings)
				}
				if lr && !h.LiveRestore() {
					t.Errorf("live-restore is off after provision")
				}
				for _, l := range h.Running().TCP() {
					if mode != ModeProxy && (!l.TLS || !l.VerifyClients) {
						t.Errorf("dockerd serves %s without mutual TLS", l.Addr)
					}
				}
				if mode == ModeProxy && len(h.Running().TCP()) != 0 {
					t.Errorf("proxy mode: dockerd keeps TCP listeners %+v", h.Running().TCP())
				}
				if _, err := a.Revert(context.Background(), cfg); err != nil {
					t.Fatalf("revert: %v", err)
				}
				after := treeHash(t, h.root)
				if !lr {
					// Revert keeps "live-restore": true (cfg.LiveRestore),
					// which provision turned on with the TLS change.
					if js := readFile(t, h.root, DaemonJSONPath); !strings.Contains(js, `"live-restore": true`) || !strings.Contains(js, `"/etc/docker/certs/ca.pem"`) {
						t.Errorf("daemon.json after revert:\n%s", js)
					}
					delete(before, strings.TrimPrefix(DaemonJSONPath, "/"))
					delete(after, strings.TrimPrefix(DaemonJSONPath, "/"))
				}
				if d := diffTrees(before, after); len(d) > 0 {
					t.Errorf("revert left differences:\n%s", strings.Join(d, "\n"))
				}
				if !h.LocalAPIHangs() {
					t.Errorf("after revert dockerd should be as the recipe left it (no local socket)")
				}
			})
		}
	}
}

// TestDocsRecipeWithoutDockerSocket: a host without docker.socket gets
// dockerd's own unix:///var/run/docker.sock.
func TestDocsRecipeWithoutDockerSocket(t *testing.T) {
	h := newFakeHost(t)
	h.SetStrictSocket(true)
	writeFile(t, h.root, "/lib/systemd/system/docker.service", strings.Replace(agenttest.DebianUnit, "Requires=docker.socket\n", "", 1))
	userCerts(t, h)
	writeFile(t, h.root, DaemonJSONPath, `{"live-restore": true, "tlsverify": true, "tlscacert": "/etc/docker/certs/ca.pem", "tlscert": "/etc/docker/certs/server-cert.pem", "tlskey": "/etc/docker/certs/server-key.pem"}`+"\n")
	writeFile(t, h.root, systemd.DropInDir+"/override.conf", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H tcp://0.0.0.0:2376\n")
	res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if want := []string{"unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"}; !reflect.DeepEqual(res.Hosts, want) {
		t.Errorf("hosts %q, want %q", res.Hosts, want)
	}
	if err := h.LocalSocket(); err != nil {
		t.Errorf("local socket: %v", err)
	}
}

// restartInjects is systemd whose every start of docker.service leaves
// dockerd with one more TCP listener, plain or not, that no file of
// dockerd's shows.
type restartInjects struct {
	*fakeHost
	addr               string
	tls, verifyClients bool
}

func (r restartInjects) Restart(ctx context.Context, unit string) error {
	err := r.fakeHost.Restart(ctx, unit)
	if err == nil {
		r.InjectListener(r.addr, r.tls, r.verifyClients)
	}
	return err
}

// TestEveryDockerdListenerIsProbed: a TCP listener dockerd has besides
// --host is probed as an attacker would; one that answers without
// mutual TLS fails verification, naming it, and provision rolls back.
func TestEveryDockerdListenerIsProbed(t *testing.T) {
	for _, tt := range []struct {
		name               string
		tls, verifyClients bool
		fail               bool
	}{
		{name: "plain", fail: true},
		{name: "TLS without client certificates", tls: true, fail: true},
		{name: "mutual TLS", tls: true, verifyClients: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			// With live-restore on already: a rollback keeps it.
			writeFile(t, h.root, DaemonJSONPath, "{\"live-restore\": true}\n")
			before := treeHash(t, h.root)
			a := h.agent(&fakeVerifier{}, func(o *Options) {
				o.Systemd = restartInjects{fakeHost: h, addr: "0.0.0.0:2375", tls: tt.tls, verifyClients: tt.verifyClients}
			})
			res, err := a.Provision(context.Background(), generateCfg())
			if !tt.fail {
				if err != nil {
					t.Fatalf("provision: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRolledBack) || !res.RolledBack {
				t.Fatalf("provision: %v (rolled back %v), want a rollback", err, res.RolledBack)
			}
			if !strings.Contains(err.Error(), "0.0.0.0:2375") {
				t.Errorf("error %q does not name the listener", err)
			}
			if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
				t.Errorf("rollback left differences:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestSocketPlainListenStreamIsClosed: a docker.socket drop-in of the
// user's with a plain TCP ListenStream= is closed in every mode by
// tlsdock's drop-in, which resets the list; revert gives it back.
func TestSocketPlainListenStreamIsClosed(t *testing.T) {
	for _, mode := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
		t.Run(string(mode), func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, socketFragment, debianSocket)
			writeFile(t, h.root, systemd.SocketDropInDir+"/tcp.conf", "[Socket]\nListenStream=0.0.0.0:2375\n")
			writeFile(t, h.root, DaemonJSONPath, "{\"live-restore\": true}\n")
			if tcp := h.Running().TCP(); len(tcp) != 1 || tcp[0].TLS {
				t.Fatalf("the recipe: dockerd serves %+v, want plain 0.0.0.0:2375", tcp)
			}
			before := treeHash(t, h.root)
			cfg := generateCfg()
			cfg.Mode = mode
			res := mustProvision(t, h.agent(&fakeVerifier{}), cfg)
			if got := h.SocketListening(); slices.Contains(got, "0.0.0.0:2375") {
				t.Errorf("docker.socket still listens on %q", got)
			}
			for _, l := range h.Running().TCP() {
				if l.Addr == "0.0.0.0:2375" || strings.HasSuffix(l.Addr, ":2375") || !l.TLS || !l.VerifyClients {
					t.Errorf("dockerd serves %+v", l)
				}
			}
			if err := h.LocalSocket(); err != nil {
				t.Errorf("local socket: %v", err)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), "removed TCP listener 0.0.0.0:2375 from docker.socket") {
				t.Errorf("notes %q do not say that 0.0.0.0:2375 is closed", res.Notes)
			}
			if _, err := h.agent(&fakeVerifier{}).Revert(context.Background(), cfg); err != nil {
				t.Fatalf("revert: %v", err)
			}
			if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
				t.Errorf("revert left differences:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestParseProcNet reads /proc/net/tcp and tcp6 LISTEN entries.
func TestParseProcNet(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"0100007F:0948", "127.0.0.1:2376"},
		{"00000000:0947", "0.0.0.0:2375"},
		{"00000000000000000000000000000000:0948", "[::]:2376"},
		{"00000000000000000000000001000000:0948", "[::1]:2376"},
		{"0000000000000000FFFF00000100007F:0948", "127.0.0.1:2376"},
	} {
		got, err := parseProcAddr(tt.in)
		if err != nil || got.String() != tt.want {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"0100007F", "zz00007F:0948", "0100007F:zz", "01007F:0948"} {
		if _, err := parseProcAddr(bad); err == nil {
			t.Errorf("parseProcAddr(%q): no error", bad)
		}
	}
}

// TestSocketTCPOnlyGetsTheLocalSocket: a docker.socket whose drop-in
// replaced its list with a plain TCP listener gets /run/docker.sock back
// in tlsdock's drop-in, and loses the plain listener.
func TestSocketTCPOnlyGetsTheLocalSocket(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, socketFragment, debianSocket)
	writeFile(t, h.root, systemd.SocketDropInDir+"/tcp.conf", "[Socket]\nListenStream=\nListenStream=0.0.0.0:2375\n")
	writeFile(t, h.root, DaemonJSONPath, "{\"live-restore\": true}\n")
	if err := h.LocalSocket(); err == nil {
		t.Fatal("the recipe's dockerd serves a local socket")
	}
	mustProvision(t, h.agent(&fakeVerifier{}, func(o *Options) { o.Docker = localAPI{h} }), generateCfg())
	if got := h.SocketListening(); slices.Contains(got, "0.0.0.0:2375") || !slices.Contains(got, "/run/docker.sock") {
		t.Errorf("docker.socket listens on %q", got)
	}
	if err := h.LocalSocket(); err != nil {
		t.Errorf("local socket: %v", err)
	}
}
