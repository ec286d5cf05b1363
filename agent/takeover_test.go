package agent

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/agent/agenttest"
	"github.com/tlsdock/tlsdock/systemd"
)

// dockerOptsRecipe is a host that an old recipe configured through
// $DOCKER_OPTS, which Debian's docker.service passes to dockerd.
type dockerOptsRecipe struct {
	name string
	// setup writes the recipe's files and returns the user files that
	// must come back byte-identical.
	setup func(t *testing.T, h *fakeHost) []string
	// from is the file the note must name.
	from string
	// before is the TCP address dockerd serves before the provision,
	// and whether it does so with mutual TLS.
	before    string
	beforeTLS bool
}

const etcDefaultDocker = "/etc/default/docker"

func dockerOptsRecipes() []dockerOptsRecipe {
	userDropIn := systemd.DropInDir + "/override.conf"
	return []dockerOptsRecipe{
		{
			name: "/etc/default/docker -H tcp",
			setup: func(t *testing.T, h *fakeHost) []string {
				writeFile(t, h.root, etcDefaultDocker, "# Docker Upstart and SysVinit configuration file\n\nDOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"\n")
				return []string{etcDefaultDocker}
			},
			from: etcDefaultDocker, before: "0.0.0.0:2375",
		},
		{
			name: "/etc/default/docker with its own TLS",
			setup: func(t *testing.T, h *fakeHost) []string {
				dir := "/" + mustRel(t, h.root, writeSet(t, h.root, "127.0.0.1"))
				writeFile(t, h.root, etcDefaultDocker, "DOCKER_OPTS=\"--tlsverify --tlscacert="+dir+"/ca.pem --tlscert="+dir+"/server-cert.pem --tlskey="+dir+"/server-key.pem -H tcp://0.0.0.0:2376\"\n")
				return []string{etcDefaultDocker}
			},
			from: etcDefaultDocker, before: "0.0.0.0:2376", beforeTLS: true,
		},
		{
			name: "Environment= in a drop-in",
			setup: func(t *testing.T, h *fakeHost) []string {
				writeFile(t, h.root, userDropIn, "[Service]\nEnvironment=\"DOCKER_OPTS=-H tcp://0.0.0.0:2375\"\n")
				return []string{userDropIn}
			},
			from: userDropIn, before: "0.0.0.0:2375",
		},
		{
			name: "${DOCKER_OPTS} braced",
			setup: func(t *testing.T, h *fakeHost) []string {
				writeFile(t, h.root, userDropIn, "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// ${DOCKER_OPTS}\n")
				writeFile(t, h.root, etcDefaultDocker, "DOCKER_OPTS='-H tcp://0.0.0.0:2375'\n")
				return []string{userDropIn, etcDefaultDocker}
			},
			from: etcDefaultDocker, before: "0.0.0.0:2375",
		},
	}
}

func mustRel(t *testing.T, root, p string) string {
	t.Helper()
	rel, err := filepath.Rel(root, p)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// TestTakeOverDockerOpts: a host whose $DOCKER_OPTS passes -H and --tls*
// flags (in /etc/default/docker, or an Environment= line) is taken over
// in every mode: its TCP listeners are closed or served with tlsdock's
// mutual TLS, the user's files are never edited, every provision says
// where the flags came from, a second provision changes nothing, and the
// revert gives dockerd its listeners back as they were.
func TestTakeOverDockerOpts(t *testing.T) {
	for _, r := range dockerOptsRecipes() {
		for _, m := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
			t.Run(r.name+"/"+string(m), func(t *testing.T) {
				h := newFakeHost(t)
				writeFile(t, h.root, socketFragment, debianSocket)
				user := r.setup(t, h)
				userBefore := map[string]string{}
				for _, p := range user {
					userBefore[p] = readFile(t, h.root, p)
				}
				if err := h.Boot(); err != nil {
					t.Fatalf("the recipe does not start on the fake host: %v", err)
				}
				if l := tcpListener(h.Running(), r.before); l == nil || l.VerifyClients != r.beforeTLS {
					t.Fatalf("before: dockerd serves %+v, want %s (mutual TLS %v)", h.Running().TCP(), r.before, r.beforeTLS)
				}

				cfg := inMode(generateCfg(), m)
				res := mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), cfg)
				checkTakenOver(t, h, m)
				notes := strings.Join(res.Notes, "\n")
				if !strings.Contains(notes, "DOCKER_OPTS") || !strings.Contains(notes, r.from) || !strings.Contains(notes, "next provision") {
					t.Errorf("the notes do not name DOCKER_OPTS, %s and the next provision:\n%s", r.from, notes)
				}
				for p, body := range userBefore {
					if got := readFile(t, h.root, p); got != body {
						t.Errorf("%s was edited:\n%s", p, got)
					}
				}

				// Idempotent, and the note is there every time.
				res2 := mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), cfg)
				if res2.Changed || res2.Restarted {
					t.Errorf("second provision changed=%v restarted=%v: %+v", res2.Changed, res2.Restarted, res2.Files)
				}
				if !strings.Contains(strings.Join(res2.Notes, "\n"), "DOCKER_OPTS") {
					t.Errorf("the second provision does not note DOCKER_OPTS: %q", res2.Notes)
				}

				rcfg := Defaults()
				if _, err := h.agent(nil, withExe, noDNS).Revert(context.Background(), rcfg); err != nil {
					t.Fatalf("revert: %v", err)
				}
				for p, body := range userBefore {
					if got := readFile(t, h.root, p); got != body {
						t.Errorf("after the revert %s differs:\n%s", p, got)
					}
				}
				if err := h.Boot(); err != nil {
					t.Fatalf("after the revert dockerd does not start: %v", err)
				}
				if l := tcpListener(h.Running(), r.before); l == nil || l.VerifyClients != r.beforeTLS {
					t.Fatalf("after the revert dockerd serves %+v, want %s as before", h.Running().TCP(), r.before)
				}
			})
		}
	}
}

func tcpListener(d *agenttest.Daemon, addr string) *agenttest.Listener {
	if d == nil {
		return nil
	}
	for _, l := range d.TCP() {
		if l.Addr == addr {
			return &l
		}
	}
	return nil
}

// checkTakenOver checks the running dockerd and a fresh boot of the disk:
// in the native modes it serves TCP on 0.0.0.0:2376 only, with mutual TLS
// and tlsdock's certificates; in proxy mode on no TCP listener at all.
func checkTakenOver(t *testing.T, h *fakeHost, m Mode) {
	t.Helper()
	booted := h.CopyDisk(t)
	bootErr := booted.Boot()
	for _, c := range []struct {
		name string
		d    *agenttest.Daemon
		err  error
	}{{"running", h.Running(), h.LastStartError()}, {"booted", booted.Running(), bootErr}} {
		name, dd, err := c.name, c.d, c.err
		if err != nil || dd == nil {
			t.Fatalf("%s: dockerd does not run: %v", name, err)
		}
		tcp := dd.TCP()
		if m == ModeProxy {
			if len(tcp) > 0 {
				t.Errorf("%s: in proxy mode dockerd still serves TCP: %+v (args %q)", name, tcp, dd.Args)
			}
			continue
		}
		if len(tcp) != 1 || tcp[0].Addr != "0.0.0.0:2376" || !tcp[0].TLS || !tcp[0].VerifyClients {
			t.Errorf("%s: dockerd serves %+v (args %q), want 0.0.0.0:2376 with mutual TLS only", name, tcp, dd.Args)
		}
		if dd.CACert != SSLDir+"/ca.pem" || dd.Cert != SSLDir+"/server-cert.pem" {
			t.Errorf("%s: dockerd's TLS files are %s %s, not tlsdock's", name, dd.CACert, dd.Cert)
		}
	}
}
