package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
)

func generateCfg() Config {
	c := Defaults()
	c.Generate = true
	return c
}

func mustProvision(t *testing.T, a *Agent, cfg Config) *Result {
	t.Helper()
	res, err := a.Provision(context.Background(), cfg)
	if err != nil {
		t.Fatalf("provision: %v\nresult: %+v", err, res)
	}
	return res
}

func readFile(t *testing.T, root, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestProvisionGenerateFreshHost(t *testing.T) {
	h := newFakeHost(t)
	v := &fakeVerifier{}
	cfg := generateCfg()
	cfg.ClientOut = filepath.Join(h.root, "client")
	res := mustProvision(t, h.agent(v), cfg)

	if !res.Changed || !res.Restarted {
		t.Fatalf("changed=%v restarted=%v, want both", res.Changed, res.Restarted)
	}
	// live-restore is reloaded in before the TLS change and the restart.
	want := []string{"reload docker.service", "daemon-reload", "reset-failed docker.service", "restart docker.service"}
	if got := h.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	wantJSON := `{
  "live-restore": true,
  "tls": true,
  "tlsverify": true,
  "tlscacert": "/etc/docker/ssl/..data/ca.pem",
  "tlscert": "/etc/docker/ssl/..data/server-cert.pem",
  "tlskey": "/etc/docker/ssl/..data/server-key.pem"
}
`
	if got := readFile(t, h.root, DaemonJSONPath); got != wantJSON {
		t.Fatalf("daemon.json:\n%s\nwant:\n%s", got, wantJSON)
	}
	// docker.socket is not there (the fake host has no unit): dockerd
	// holds the TCP listener, passed with -H where the unit passes its
	// own (-H fd://).
	wantDropIn := "# Written by tlsdock. `tlsdock revert` removes it; edits are overwritten.\n[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock $DOCKER_OPTS -H fd:// -H tcp://0.0.0.0:2376\n"
	if got := readFile(t, h.root, DropInPath); got != wantDropIn {
		t.Fatalf("drop-in:\n%s\nwant:\n%s", got, wantDropIn)
	}
	for name, mode := range map[string]os.FileMode{certstore.CAFile: 0o444, certstore.CertFile: 0o444, certstore.KeyFile: 0o400} {
		fi, err := os.Stat(filepath.Join(h.root, SSLDir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v mode %v, want %v", name, err, fi.Mode().Perm(), mode)
		}
	}
	set, err := certstore.Store{Dir: filepath.Join(h.root, SSLDir)}.Load()
	if err != nil || set == nil {
		t.Fatalf("installed set: %v", err)
	}
	if set.Serial() != res.Serial {
		t.Fatalf("installed serial %s, result says %s", set.Serial(), res.Serial)
	}
	if !reflect.DeepEqual(set.Cert.DNSNames, []string{"dockerhost", "localhost"}) {
		t.Fatalf("DNS names %q", set.Cert.DNSNames)
	}
	// The probe expects exactly the installed certificate and has a client.
	if len(v.probes) != 1 || v.probes[0].Addr != "127.0.0.1:2376" || !v.probes[0].Expect.Equal(set.Cert) || v.probes[0].Client == nil {
		t.Fatalf("probes = %+v", v.probes)
	}
	for name, mode := range map[string]os.FileMode{"ca.pem": 0o444, "cert.pem": 0o444, "key.pem": 0o400} {
		fi, err := os.Stat(filepath.Join(cfg.ClientOut, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("client %s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(h.root, StateDir, "journal.json")); !os.IsNotExist(err) {
		t.Fatalf("journal left behind after commit: %v", err)
	}

	// Idempotent: the same inputs change nothing and restart nothing.
	before := treeHash(t, h.root)
	res2 := mustProvision(t, h.agent(v), cfg)
	if res2.Changed || res2.Restarted {
		t.Fatalf("second run changed=%v restarted=%v", res2.Changed, res2.Restarted)
	}
	if got := h.Calls(); len(got) != len(want) {
		t.Fatalf("second run called systemd: %q", got[len(want):])
	}
	if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
		t.Fatalf("second run changed files: %q", d)
	}
	if res2.Serial != res.Serial {
		t.Fatalf("second run reissued: %s != %s", res2.Serial, res.Serial)
	}
}

func TestProvisionKeepsUserKeysAndRemovesPlaintext(t *testing.T) {
	h := newFakeHost(t)
	// "builder" is a key dockerd knows and tlsdock does not; dockerd
	// ignores the unknown "a" in it, but refuses an unknown top-level key.
	writeFile(t, h.root, DaemonJSONPath, `{"log-driver": "journald", "hosts": ["tcp://0.0.0.0:2375"], "builder": {"a": [1, 2e3]}, "storage-driver": "overlay2"}`)
	res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	doc, err := daemonjson.Parse([]byte(readFile(t, h.root, DaemonJSONPath)))
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"log-driver", "hosts", "builder", "storage-driver", "live-restore", "tls", "tlsverify", "tlscacert", "tlscert", "tlskey"}
	if !reflect.DeepEqual(doc.Keys(), wantKeys) {
		t.Fatalf("keys %q, want %q", doc.Keys(), wantKeys)
	}
	if raw, _ := doc.Get("builder"); strings.Join(strings.Fields(string(raw)), "") != `{"a":[1,2e3]}` {
		t.Fatalf("builder = %s", raw)
	}
	hosts, _ := doc.Hosts()
	if !reflect.DeepEqual(hosts, []string{"fd://", "tcp://0.0.0.0:2376"}) {
		t.Fatalf("hosts = %q", hosts)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "removed plaintext listener tcp://0.0.0.0:2375") {
		t.Fatalf("notes do not report the removed listener: %q", res.Notes)
	}
}

func TestProvisionDropInMode(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, `{"debug": true, "hosts": ["unix:///var/run/docker.sock"], "tlsverify": false}`)
	cfg := generateCfg()
	cfg.Mode = ModeDropIn
	cfg.Hosts = []string{"tcp://127.0.0.1:2376"}
	mustProvision(t, h.agent(&fakeVerifier{}), cfg)
	wantJSON := "{\n  \"debug\": true,\n  \"live-restore\": true\n}\n"
	if got := readFile(t, h.root, DaemonJSONPath); got != wantJSON {
		t.Fatalf("daemon.json:\n%s\nwant:\n%s", got, wantJSON)
	}
	want := "ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock $DOCKER_OPTS -H fd:// -H unix:///var/run/docker.sock -H tcp://127.0.0.1:2376 --tlsverify --tlscacert=/etc/docker/ssl/..data/ca.pem --tlscert=/etc/docker/ssl/..data/server-cert.pem --tlskey=/etc/docker/ssl/..data/server-key.pem\n"
	if got := readFile(t, h.root, DropInPath); !strings.HasSuffix(got, "ExecStart=\n"+want) {
		t.Fatalf("drop-in:\n%s\nwant it to end with:\n%s", got, want)
	}
}

func TestRollbackOnFailedRestart(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, `{"log-driver": "journald"}`)
	writeFile(t, h.root, SSLDir+"/ca.pem", "old ca from the user\n")
	// dockerd fails to start once TLS is configured (say, the port is taken).
	h.FailRestart(func(js string) bool { return strings.Contains(js, "tlsverify") })
	before := treeHash(t, h.root)
	res, err := h.agent(&fakeVerifier{}).Provision(context.Background(), generateCfg())
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack", err)
	}
	if !res.RolledBack || !strings.Contains(res.Journal, "address already in use") {
		t.Fatalf("result = %+v", res)
	}
	after := treeHash(t, h.root)
	// live-restore stays on, or the restart back to the old configuration
	// would stop every container; everything else is byte-identical.
	delete(before, "etc/docker/daemon.json")
	delete(after, "etc/docker/daemon.json")
	if d := diffTrees(before, after); len(d) > 0 {
		t.Fatalf("rollback left changes: %q", d)
	}
	if got := readFile(t, h.root, DaemonJSONPath); got != "{\n  \"log-driver\": \"journald\",\n  \"live-restore\": true\n}\n" {
		t.Fatalf("daemon.json after rollback = %q", got)
	}
	if !h.LiveRestore() {
		t.Fatal("dockerd came back without live-restore")
	}
	calls := h.Calls()
	if calls[len(calls)-1] != "restart docker.service" || h.ActiveState() != "active" {
		t.Fatalf("docker not restarted on the old configuration: %q, %s", calls, h.ActiveState())
	}
	st, _ := h.agent(nil).Status(context.Background())
	if st.LastApply.Result != "rolled-back" || !strings.Contains(st.LastApply.Error, "restarting docker") {
		t.Fatalf("status last apply = %+v", st.LastApply)
	}
}

func TestRollbackOnFailedVerification(t *testing.T) {
	h := newFakeHost(t)
	a := h.agent(&fakeVerifier{})
	first := mustProvision(t, a, generateCfg())
	before := treeHash(t, h.root)
	cfg := generateCfg()
	cfg.Hosts = []string{"tcp://0.0.0.0:2377"}
	_, err := h.agent(&fakeVerifier{fail: errors.New("plain HTTP answered 200")}).Provision(context.Background(), cfg)
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "plain HTTP answered 200") {
		t.Fatalf("err = %v", err)
	}
	if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
		t.Fatalf("rollback left changes: %q", d)
	}
	set, _ := certstore.Store{Dir: filepath.Join(h.root, SSLDir)}.Load()
	if set.Serial() != first.Serial {
		t.Fatalf("installed serial %s, want the previous %s", set.Serial(), first.Serial)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, h *fakeHost, cfg *Config)
		field string
		want  string
	}{
		{
			name:  "daemon.json not an object",
			setup: func(t *testing.T, h *fakeHost, _ *Config) { writeFile(t, h.root, DaemonJSONPath, `["x"]`) },
			field: DaemonJSONPath, want: "JSON object",
		},
		{
			name:  "daemon.json invalid",
			setup: func(t *testing.T, h *fakeHost, _ *Config) { writeFile(t, h.root, DaemonJSONPath, `{"a": }`) },
			field: DaemonJSONPath, want: "line 1",
		},
		{
			name: "missing cert dir",
			setup: func(t *testing.T, h *fakeHost, cfg *Config) {
				cfg.Generate, cfg.Certs = false, filepath.Join(h.root, "nope")
			},
			field: "--certs", want: "nope",
		},
		{
			name: "foreign CA",
			setup: func(t *testing.T, h *fakeHost, cfg *Config) {
				dir := writeSet(t, h.root, "127.0.0.1")
				other := writeSet(t, h.root, "127.0.0.1")
				copyFile(t, filepath.Join(other, "ca.pem"), filepath.Join(dir, "ca.pem"))
				cfg.Generate, cfg.Certs = false, dir
			},
			field: "--certs", want: "ca.pem",
		},
		{
			name: "missing SAN for the listener",
			setup: func(t *testing.T, h *fakeHost, cfg *Config) {
				cfg.Generate, cfg.Certs = false, writeSet(t, h.root, "127.0.0.1")
				cfg.Hosts = []string{"tcp://10.1.2.3:2376"}
			},
			field: "--certs", want: "10.1.2.3",
		},
		{
			name: "client-out without local CA",
			setup: func(t *testing.T, h *fakeHost, cfg *Config) {
				cfg.Generate, cfg.Certs, cfg.ClientOut = false, "/x", "/y"
			},
			field: "--client-out", want: "local CA",
		},
		{
			name:  "bad host URL",
			setup: func(t *testing.T, h *fakeHost, cfg *Config) { cfg.Hosts = []string{"0.0.0.0:2376"} },
			field: "--host", want: "tcp://ADDRESS:PORT",
		},
		{
			name:  "port out of range",
			setup: func(t *testing.T, h *fakeHost, cfg *Config) { cfg.Hosts = []string{"tcp://0.0.0.0:70000"} },
			field: "--host", want: "out of range",
		},
		{
			name: "drop-in after ours sets ExecStart",
			setup: func(t *testing.T, h *fakeHost, _ *Config) {
				writeFile(t, h.root, "/etc/systemd/system/docker.service.d/zzzz-late.conf", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd\n")
			},
			field: "zzzz-late.conf", want: "would undo it",
		},
		{
			name: "flag and file conflict",
			setup: func(t *testing.T, h *fakeHost, _ *Config) {
				writeFile(t, h.root, "/etc/systemd/system/docker.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --log-level=debug\n")
				writeFile(t, h.root, DaemonJSONPath, `{"log-level": "info"}`)
			},
			field: DaemonJSONPath, want: "log-level",
		},
		{
			name: "wrapper in ExecStart",
			setup: func(t *testing.T, h *fakeHost, _ *Config) {
				writeFile(t, h.root, "/usr/local/bin/run-docker", "#!/bin/sh\n")
				if err := os.Chmod(filepath.Join(h.root, "/usr/local/bin/run-docker"), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, h.root, "/etc/systemd/system/docker.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/usr/local/bin/run-docker -H fd://\n")
			},
			field: "override.conf", want: "not dockerd",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			cfg := generateCfg()
			tt.setup(t, h, &cfg)
			before := treeHash(t, h.root)
			_, err := h.agent(&fakeVerifier{}).Provision(context.Background(), cfg)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v (%T), want an InputError", err, err)
			}
			if !strings.Contains(ie.Field, tt.field) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want field %q and %q", err, tt.field, tt.want)
			}
			if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
				t.Fatalf("bad input changed files: %q", d)
			}
			if calls := h.Calls(); len(calls) > 0 {
				t.Fatalf("bad input called systemd: %q", calls)
			}
		})
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, `{"log-driver": "journald"}`)
	before := treeHash(t, h.root)
	cfg := generateCfg()
	cfg.DryRun = true
	res := mustProvision(t, h.agent(&fakeVerifier{}), cfg)
	if !res.Changed || !res.Restarted || res.Certs != "install" {
		t.Fatalf("dry run result = %+v", res)
	}
	var diff string
	for _, f := range res.Files {
		if f.Path == DaemonJSONPath {
			diff = f.Diff
		}
	}
	if !strings.Contains(diff, `+  "tlsverify": true,`) || !strings.Contains(diff, `-{"log-driver": "journald"}`) {
		t.Fatalf("daemon.json diff:\n%s", diff)
	}
	if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
		t.Fatalf("dry run changed files: %q", d)
	}
	if _, err := os.Stat(filepath.Join(h.root, CADir)); !os.IsNotExist(err) {
		t.Fatalf("dry run created the CA: %v", err)
	}
	if len(h.Calls()) > 0 {
		t.Fatalf("dry run called systemd: %q", h.Calls())
	}
}

func TestRevertRestoresOriginal(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, `{"log-driver": "journald"}`)
	writeFile(t, h.root, SSLDir+"/server-key.pem", "the user's old key\n")
	writeFile(t, h.root, "/etc/systemd/system/docker.service.d/http-proxy.conf", "[Service]\nEnvironment=HTTP_PROXY=http://proxy:3128\n")
	before := treeHash(t, h.root)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	cfg := generateCfg()
	cfg.Mode = ModeDropIn
	mustProvision(t, h.agent(&fakeVerifier{}), cfg)
	if d := diffTrees(before, treeHash(t, h.root)); len(d) == 0 {
		t.Fatal("provision changed nothing")
	}
	exact := Defaults()
	exact.LiveRestore = false
	if _, err := h.agent(nil).Revert(context.Background(), exact); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
		t.Fatalf("revert left differences: %q", d)
	}
	if _, err := h.agent(nil).Revert(context.Background(), exact); !errors.Is(err, ErrNotProvisioned) {
		t.Fatalf("second revert: %v", err)
	}
}

func TestInterruptedApplyConverges(t *testing.T) {
	for _, step := range []string{"backed-up", "live-restore", "certs-installed", "written", "restarted"} {
		t.Run(step, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, `{"log-driver": "journald"}`)
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
			if _, err := os.Stat(filepath.Join(h.root, StateDir, "journal.json")); err != nil {
				t.Fatalf("no journal after a crash at %s: %v", step, err)
			}
			res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
			if !res.Restarted {
				t.Fatal("recovery did not restart docker")
			}
			set, err := certstore.Store{Dir: filepath.Join(h.root, SSLDir)}.Load()
			if err != nil || set.Serial() != res.Serial {
				t.Fatalf("installed set %v after recovery, want serial %s", err, res.Serial)
			}
			again := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
			if again.Changed {
				t.Fatal("not converged: a third run still changes things")
			}
		})
	}
}

func TestSwarmSkipsLiveRestore(t *testing.T) {
	h := newFakeHost(t)
	h.SetSwarm(true)
	res := mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	if strings.Contains(readFile(t, h.root, DaemonJSONPath), "live-restore") {
		t.Fatal("live-restore set in swarm mode")
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "swarm mode") {
		t.Fatalf("no swarm warning: %q", res.Notes)
	}
	if h.Calls()[0] == "reload docker.service" {
		t.Fatal("reloaded for live-restore in swarm mode")
	}
}

// writeSet issues a CA and a server certificate for ip into a new directory.
func writeSet(t *testing.T, root, ip string) string {
	t.Helper()
	dir, err := os.MkdirTemp(root, "certs")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certstore.NewCA(certstore.ECDSAP256, fixedNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{CommonName: "srv", IPs: []net.IP{net.ParseIP(ip)}, KeyType: certstore.ECDSAP256, Now: fixedNow, Validity: ServerValidity, Server: true}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.pem": ca.CertPEM, "server-cert.pem": certPEM, "server-key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRevertKeepsLiveRestore(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, `{"log-driver": "journald"}`)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	res, err := h.agent(nil).Revert(context.Background(), Defaults())
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"log-driver\": \"journald\",\n  \"live-restore\": true\n}\n"
	if got := readFile(t, h.root, DaemonJSONPath); got != want {
		t.Fatalf("daemon.json after revert:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(strings.Join(res.Notes, " "), "live-restore") {
		t.Fatalf("notes = %q", res.Notes)
	}
}
