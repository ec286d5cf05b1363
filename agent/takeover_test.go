package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/agent/agenttest"
	"github.com/tlsdock/tlsdock/certstore"
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
	// variable is the variable the note must name (DOCKER_OPTS when
	// empty).
	variable string
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
	for _, r := range append(dockerOptsRecipes(), attackRecipes()...) {
		for _, v := range []struct {
			name string
			mode Mode
			// socket: docker.socket is there (on Debian it always is);
			// without it daemon-json mode falls back to dockerd holding
			// the TCP listeners.
			socket bool
		}{
			{"daemon-json", ModeDaemonJSON, true}, {"daemon-json fallback", ModeDaemonJSON, false},
			{"dropin", ModeDropIn, true}, {"proxy", ModeProxy, true},
		} {
			m := v.mode
			t.Run(r.name+"/"+v.name, func(t *testing.T) {
				h := newFakeHost(t)
				if v.socket {
					withSocket(t, h)
				}
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
				variable := r.variable
				if variable == "" {
					variable = "DOCKER_OPTS"
				}
				if !strings.Contains(notes, variable) || !strings.Contains(notes, r.from) || !strings.Contains(notes, "next provision") {
					t.Errorf("the notes do not name %s, %s and the next provision:\n%s", variable, r.from, notes)
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
				if !strings.Contains(strings.Join(res2.Notes, "\n"), variable) {
					t.Errorf("the second provision does not note %s: %q", variable, res2.Notes)
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
		if dd.CACert != SSLDir+"/..data/ca.pem" || dd.Cert != SSLDir+"/..data/server-cert.pem" {
			t.Errorf("%s: dockerd's TLS files are %s %s, not tlsdock's", name, dd.CACert, dd.Cert)
		}
	}
}

// TestCrashTakeOverDockerOpts runs the crash-consistency checker
// (crashcheck_test.go) over the takeover of a host whose DOCKER_OPTS opens
// a plain TCP listener: every prefix of a first provision, a rotation, a
// mode change and a revert boots a dockerd with its local socket and no
// other TCP listener without mutual TLS, and the next run (from the host
// as that boot left it) converges. The plain listener is the recipe's, so
// it may be open only where it must be: in the prefixes before the first
// provision closes it (once closed it stays closed), and after the revert
// gives it back (once open again it stays open; the recovery of a revert
// is a revert, which opens it too).
func TestCrashTakeOverDockerOpts(t *testing.T) {
	gen := generateCfg()
	etcDefault := func(t *testing.T, h *fakeHost) {
		withSocket(t, h)
		writeFile(t, h.root, etcDefaultDocker, "DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"\n")
	}
	environment := func(t *testing.T, h *fakeHost) {
		withSocket(t, h)
		writeFile(t, h.root, systemd.DropInDir+"/override.conf", "[Service]\nEnvironment=\"DOCKER_OPTS=-H tcp://0.0.0.0:2375\"\n")
	}
	var scenarios []crashScenario
	for _, m := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
		cfg := inMode(gen, m)
		scenarios = append(scenarios,
			crashScenario{name: string(m) + "/first", setup: etcDefault, run: crashRun{cfg: cfg}},
			crashScenario{name: string(m) + "/rotation", setup: etcDefault, prep: []crashRun{{cfg: cfg}}, run: crashRun{cfg: rotated(cfg)}},
			crashScenario{name: string(m) + "/revert", setup: etcDefault, prep: []crashRun{{cfg: cfg}}, run: revertRun()},
		)
	}
	scenarios = append(scenarios,
		crashScenario{name: "environment/first", setup: environment, run: crashRun{cfg: gen}},
		crashScenario{name: "mode change/daemon-json to dropin", setup: etcDefault, prep: []crashRun{{cfg: gen}}, run: crashRun{cfg: inMode(gen, ModeDropIn)}},
		crashScenario{name: "mode change/dropin to proxy", setup: etcDefault, prep: []crashRun{{cfg: inMode(gen, ModeDropIn)}}, run: crashRun{cfg: inMode(gen, ModeProxy)}},
		crashScenario{name: "mode change/proxy to daemon-json", setup: etcDefault, prep: []crashRun{{cfg: inMode(gen, ModeProxy)}}, run: crashRun{cfg: gen}},
	)
	total := 0
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			total += checkCrashPlain(t, s, "0.0.0.0:2375")
		})
	}
	t.Logf("%d prefixes checked", total)
}

// checkCrashPlain is checkCrash for a host whose recipe listens plain at
// addr: it checks every prefix of the recorded run of s as checkCrash does,
// except that dockerd listens at addr (with or without TLS) exactly in a
// leading run of prefixes (a provision that has not closed it yet) or, for
// a revert, a trailing one (the revert gave it back), and after the
// recovery only if that is a revert. It returns the number of prefixes.
func checkCrashPlain(t *testing.T, s crashScenario, addr string) int {
	h := newFakeHost(t)
	s.setup(t, h)
	for _, p := range s.prep {
		if _, err := p.do(h.agent(&fakeVerifier{}, withExe, noDNS)); err != nil {
			t.Fatalf("preparing: %v", err)
		}
	}
	rec := &crashRecorder{h: h}
	rec.snap("(before the run)")
	a := h.agent(&fakeVerifier{}, withExe, noDNS, func(o *Options) {
		o.Systemd = rec
		o.Step = rec.snap
	})
	if _, err := s.run.do(a); err != nil {
		t.Fatalf("the recorded run failed: %v", err)
	}
	n := len(rec.disks)
	open := make([]bool, n)
	var fails []string
	for k, disk := range rec.disks {
		at := fmt.Sprintf("prefix %d (crash after %s)", k, rec.ops[k])
		var err error
		if open[k], err = checkDiskPlain(disk, addr); err != nil {
			fails = append(fails, at+": "+err.Error())
			continue
		}
		booted := &fakeHost{Host: disk, t: t, root: disk.Root}
		if err := s.run.converge(booted); err != nil {
			fails = append(fails, at+": "+err.Error())
			continue
		}
		again, err := checkDiskPlain(booted.CopyDisk(t), addr)
		if err != nil {
			fails = append(fails, at+": after the recovery, a boot: "+err.Error())
		} else if again != s.run.revert {
			fails = append(fails, fmt.Sprintf("%s: after the recovery dockerd listens on %s: %v, want %v", at, addr, again, s.run.revert))
		}
	}
	// Open in a leading run (provision) or a trailing one (revert) only.
	for k := 1; k < n; k++ {
		if s.run.revert && open[k-1] && !open[k] || !s.run.revert && !open[k-1] && open[k] {
			fails = append(fails, fmt.Sprintf("prefix %d (crash after %s): dockerd listens on %s: %v, after %v in the prefix before", k, rec.ops[k], addr, open[k], open[k-1]))
		}
	}
	if open[n-1] != s.run.revert {
		fails = append(fails, fmt.Sprintf("at the end of the run dockerd listens on %s: %v", addr, open[n-1]))
	}
	plain := 0
	for _, o := range open {
		if o {
			plain++
		}
	}
	t.Logf("%s: %d prefixes checked, %d with dockerd on %s", s.name, n, plain, addr)
	if len(fails) > 0 {
		t.Errorf("%d failures in %d prefixes:\n%s", len(fails), n, strings.Join(fails, "\n"))
	}
	return n
}

// checkDiskPlain is checkDisk, except that dockerd may listen at addr,
// with TLS or without; it reports whether it does.
func checkDiskPlain(c *agenttest.Host, addr string) (bool, error) {
	if err := c.Boot(); err != nil {
		return false, fmt.Errorf("a boot does not start dockerd: %w", err)
	}
	if err := c.LocalSocket(); err != nil {
		return false, fmt.Errorf("local socket: %w", err)
	}
	open := false
	for _, l := range c.Running().TCP() {
		switch {
		case l.Addr == addr:
			open = true
		case l.TLS && l.VerifyClients:
		default:
			return false, fmt.Errorf("dockerd serves %s (%s) without mutual TLS", l.Addr, l.From)
		}
	}
	cert, key := filepath.Join(c.Root, SSLDir, certstore.CertFile), filepath.Join(c.Root, SSLDir, certstore.KeyFile)
	if _, err := os.Stat(cert); err == nil {
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			return false, fmt.Errorf("the installed key does not match its certificate: %w", err)
		}
	}
	return open, nil
}

// TestTakeOverDockerOptsLiveRestore: DOCKER_OPTS="--live-restore" is a
// flag whose daemon.json key tlsdock writes; dockerd refuses it given both
// ways, so the plan must see it and leave daemon.json without it.
func TestTakeOverDockerOptsLiveRestore(t *testing.T) {
	for _, m := range []Mode{ModeDaemonJSON, ModeDropIn, ModeProxy} {
		t.Run(string(m), func(t *testing.T) {
			h := newFakeHost(t)
			withSocket(t, h)
			writeFile(t, h.root, etcDefaultDocker, "DOCKER_OPTS=--live-restore\n")
			mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), inMode(generateCfg(), m))
			if d := h.Running(); d == nil || !d.LiveRestore || d.LiveRestoreInConfig {
				t.Fatalf("dockerd %+v: want live-restore on, from the flag", d)
			}
			if got := readFile(t, h.root, etcDefaultDocker); got != "DOCKER_OPTS=--live-restore\n" {
				t.Errorf("%s was edited: %q", etcDefaultDocker, got)
			}
		})
	}
}

// TestTakeOverEnvLeavesOtherVariables: a variable without such flags
// stays a reference on ExecStart, and so does one that is not set.
func TestTakeOverEnvLeavesOtherVariables(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, etcDefaultDocker, "DOCKER_OPTS=\"--dns 8.8.8.8 --dns 8.8.4.4\"\n")
	res := mustProvision(t, h.agent(&fakeVerifier{}, withExe, noDNS), inMode(generateCfg(), ModeDropIn))
	if got := readFile(t, h.root, DropInPath); !strings.Contains(got, " $DOCKER_OPTS ") {
		t.Errorf("drop-in:\n%s\nwant $DOCKER_OPTS kept as a reference", got)
	}
	if strings.Contains(strings.Join(res.Notes, "\n"), "DOCKER_OPTS") {
		t.Errorf("a note names DOCKER_OPTS: %q", res.Notes)
	}
}

// TestTakeOverEnvRefusesUnreadable: a variable tlsdock cannot resolve
// that may pass such flags, and an environment file systemd would refuse,
// are bad input: nothing changes.
func TestTakeOverEnvRefusesUnreadable(t *testing.T) {
	for _, tt := range []struct {
		name, file, body, field, want string
	}{
		{name: "a specifier", file: systemd.DropInDir + "/override.conf", body: "[Service]\nEnvironment=\"DOCKER_OPTS=-H unix:///run/%i.sock\"\n", field: systemd.DropInDir + "/override.conf", want: "%i"},
		{name: "a missing environment file", file: systemd.DropInDir + "/override.conf", body: "[Service]\nEnvironmentFile=/etc/docker-opts\n", field: systemd.DockerUnit, want: "EnvironmentFile=/etc/docker-opts"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, tt.file, tt.body)
			before := treeHash(t, h.root)
			_, err := h.agent(&fakeVerifier{}, withExe, noDNS).Provision(context.Background(), generateCfg())
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != tt.field || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want an input error on %s naming %s", err, tt.field, tt.want)
			}
			if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
				t.Errorf("changed %q", d)
			}
		})
	}
}
