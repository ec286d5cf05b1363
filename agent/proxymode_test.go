package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/proxy"
)

// proxyFunc is an in-process proxy that calls a function.
type proxyFunc func(*certstore.Set) error

func (f proxyFunc) Reload(s *certstore.Set) error { return f(s) }

const testExe = "/usr/local/bin/tlsdock"

func proxyCfg() Config {
	c := generateCfg()
	c.Mode = ModeProxy
	return c
}

func withExe(o *Options) { o.Executable = func() (string, error) { return testExe, nil } }

func TestProxyFreshHostLeavesDockerdAlone(t *testing.T) {
	h := newFakeHost(t)
	before := treeHash(t, h.root)
	res := mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())

	if res.Restarted {
		t.Fatal("dockerd restarted, but its configuration had no TCP listener to remove")
	}
	want := []string{"daemon-reload", "reset-failed tlsdock.service", "restart tlsdock.service"}
	if got := h.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %q, want %q (no live-restore reload, no docker restart)", got, want)
	}
	// Only the set and tlsdock.service's files changed; no daemon.json, no
	// docker drop-in.
	var changed []string
	for _, d := range diffTrees(before, treeHash(t, h.root)) {
		changed = append(changed, strings.SplitN(d, ":", 2)[0])
	}
	for _, c := range changed {
		if !strings.HasPrefix(c, "etc/docker/ssl") && !strings.HasPrefix(c, "etc/systemd/system/tlsdock.service") && c != "etc/docker" {
			t.Errorf("unexpected change %s", c)
		}
	}
	unit := readFile(t, h.root, ProxyUnitPath)
	if !strings.HasPrefix(unit, proxyUnitMarker) || !strings.Contains(unit, "Type=notify\n") || !strings.Contains(unit, "ExecStart="+testExe+" run\n") {
		t.Fatalf("unit:\n%s", unit)
	}
	dropIn := readFile(t, h.root, ProxyDropInPath)
	wantExec := "ExecStart=\nExecStart=" + testExe + " run --mode proxy --host tcp://0.0.0.0:2376 --generate --key-type ecdsa-p256 --timeout 3m0s --live-restore=true\n"
	if !strings.Contains(dropIn, "[Unit]\nConditionPathExists=\n") || !strings.HasSuffix(dropIn, wantExec) {
		t.Fatalf("drop-in:\n%s\nwant it to end with:\n%s", dropIn, wantExec)
	}
	st, err := h.agent(nil).loadState()
	if err != nil || st.Mode != ModeProxy {
		t.Fatalf("state mode = %v, %v", st, err)
	}

	// Idempotent: nothing restarts the second time.
	res2 := mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	if res2.Changed || res2.Restarted {
		t.Fatalf("second run changed=%v restarted=%v", res2.Changed, res2.Restarted)
	}
	if got := h.Calls(); len(got) != len(want) {
		t.Fatalf("second run made calls: %q", got[len(want):])
	}
}

func TestProxyAfterDaemonJSONModeRemovesTheTCPListener(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, DaemonJSONPath, `{"debug": true}`)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	dropInBefore := readFile(t, h.root, DropInPath)
	n := len(h.Calls())

	res := mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	if !res.Restarted {
		t.Fatal("dockerd kept its TCP listener: it must be restarted without it")
	}
	want := []string{"daemon-reload", "reset-failed docker.service", "restart docker.service", "daemon-reload", "reset-failed tlsdock.service", "restart tlsdock.service"}
	if got := h.Calls()[n:]; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	doc, err := daemonjson.Parse([]byte(readFile(t, h.root, DaemonJSONPath)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"debug", "live-restore"}; !reflect.DeepEqual(doc.Keys(), want) {
		t.Fatalf("daemon.json keys %q, want %q", doc.Keys(), want)
	}
	// The TCP listener was on the drop-in's -H: the drop-in goes, and the
	// unit's own -H fd:// stays.
	if !strings.Contains(dropInBefore, "-H tcp://0.0.0.0:2376") {
		t.Fatalf("daemon-json mode's drop-in:\n%s", dropInBefore)
	}
	if _, err := os.Stat(filepath.Join(h.root, DropInPath)); !os.IsNotExist(err) {
		t.Fatalf("docker drop-in left: %v", err)
	}
}

func TestProxyRemovesUnitTCPFlags(t *testing.T) {
	h := newFakeHost(t)
	// --tls=false: a plaintext listener dockerd starts with (with
	// --tlsverify=false it would turn TLS on and want a certificate).
	writeFile(t, h.root, "/etc/systemd/system/docker.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2375 --tls=false\n")
	res := mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	if !res.Restarted {
		t.Fatal("dockerd not restarted though its plaintext listener was removed")
	}
	if got := readFile(t, h.root, DropInPath); !strings.HasSuffix(got, "ExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n") {
		t.Fatalf("docker drop-in:\n%s", got)
	}
	if calls := strings.Join(h.Calls(), ","); !strings.HasPrefix(calls, "reload docker.service,") {
		t.Fatalf("live-restore was not turned on before the restart: %s", calls)
	}
}

func TestProxyDaemonSwapsWithoutRestarts(t *testing.T) {
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	unitBefore := readFile(t, h.root, ProxyDropInPath)
	n := len(h.Calls())

	var served []*certstore.Set
	inDaemon := func(o *Options) {
		withExe(o)
		o.Proxy = proxyFunc(func(s *certstore.Set) error { served = append(served, s); return nil })
	}
	cfg := proxyCfg()
	cfg.Generate, cfg.Certs = false, writeSet(t, h.root, "127.0.0.1")
	res := mustProvision(t, h.agent(&fakeVerifier{}, inDaemon), cfg)
	if res.Restarted || res.Certs != "install" {
		t.Fatalf("restarted=%v certs=%s", res.Restarted, res.Certs)
	}
	if got := h.Calls()[n:]; len(got) != 0 {
		t.Fatalf("the daemon's swap made systemd calls: %q", got)
	}
	if len(served) != 1 || served[0].Serial() != res.Serial {
		t.Fatalf("served %d sets, want the new serial %s", len(served), res.Serial)
	}
	if got := readFile(t, h.root, ProxyDropInPath); got != unitBefore {
		t.Fatal("the daemon rewrote its own unit's drop-in")
	}

	// A failed verification swaps the previous set back in.
	cfg.Certs = writeSet(t, h.root, "127.0.0.1")
	_, err := h.agent(&fakeVerifier{fail: errors.New("probe failed")}, inDaemon).Provision(context.Background(), cfg)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want rolled back", err)
	}
	if len(served) != 3 || served[2].Serial() != res.Serial {
		t.Fatalf("after the rollback the proxy serves %s, want %s", served[len(served)-1].Serial(), res.Serial)
	}
}

func TestProxyDaemonRefusesANativeMode(t *testing.T) {
	h := newFakeHost(t)
	inDaemon := func(o *Options) { o.Proxy = proxyFunc(func(*certstore.Set) error { return nil }) }
	before := treeHash(t, h.root)
	_, err := h.agent(&fakeVerifier{}, inDaemon).Provision(context.Background(), generateCfg())
	var ie *InputError
	if !errors.As(err, &ie) || ie.Field != "--mode" {
		t.Fatalf("err = %v, want an input error about --mode", err)
	}
	if got := h.Calls(); len(got) != 0 {
		t.Fatalf("calls %q", got)
	}
	if d := diffTrees(before, treeHash(t, h.root)); len(d) > 0 {
		t.Fatalf("changed %q", d)
	}
}

func TestProxyRollbackFromCLIStopsTheProxy(t *testing.T) {
	h := newFakeHost(t)
	_, err := h.agent(&fakeVerifier{fail: errors.New("probe failed")}, withExe).Provision(context.Background(), proxyCfg())
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want rolled back", err)
	}
	calls := strings.Join(h.Calls(), ",")
	if !strings.Contains(calls, "restart tlsdock.service,stop tlsdock.service") {
		t.Fatalf("calls %s: the proxy must stop on rollback", calls)
	}
	for _, p := range proxyUnitPaths {
		if _, err := os.Stat(filepath.Join(h.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
}

func TestRevertLeavesProxyMode(t *testing.T) {
	// Proxy mode after daemon-json mode: revert restores dockerd's files
	// (without --keep-live-restore, daemon.json loses live-restore), so
	// dockerd restarts, once the proxy gave up the TCP listeners.
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	cfg := Defaults()
	cfg.LiveRestore = false
	res, err := h.agent(nil).Revert(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Join(h.Calls(), ",")
	if !strings.Contains(calls, "stop tlsdock.service,daemon-reload,reset-failed docker.service,restart docker.service") {
		t.Fatalf("calls %s: revert must stop the proxy before dockerd restarts", calls)
	}
	if !res.Restarted {
		t.Fatal("dockerd restarted, but the result says it did not")
	}
	for _, p := range append([]string{ProxyDropInDir}, proxyUnitPaths...) {
		if _, err := os.Stat(filepath.Join(h.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
}

func TestRevertOfProxyModeLeavesDockerdAlone(t *testing.T) {
	// Proxy provision on a fresh host never changed dockerd's files:
	// revert stops the proxy and does not restart dockerd.
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	n := len(h.Calls())
	res, err := h.agent(nil).Revert(context.Background(), Defaults())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Calls()[n:], []string{"stop tlsdock.service", "daemon-reload"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	if res.Restarted {
		t.Fatal("result says dockerd restarted")
	}
	if _, err := os.Stat(filepath.Join(h.root, DaemonJSONPath)); !os.IsNotExist(err) {
		t.Fatalf("revert wrote daemon.json although dockerd keeps running: %v", err)
	}
	for _, p := range append([]string{ProxyDropInDir}, proxyUnitPaths...) {
		if _, err := os.Stat(filepath.Join(h.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
}

func TestFailedRevertStartsTheProxyAgain(t *testing.T) {
	h := newFakeHost(t)
	// daemon-json mode first, so that revert restores dockerd's files and
	// restarts it.
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	before := treeHash(t, h.root)
	// dockerd does not come back on the original files the first time.
	fails := 1
	h.FailRestart(func(string) bool {
		fails--
		return fails >= 0
	})
	n := len(h.Calls())
	cfg := Defaults()
	cfg.LiveRestore = false // daemon.json loses live-restore: dockerd restarts
	_, err := h.agent(nil).Revert(context.Background(), cfg)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want rolled back", err)
	}
	calls := strings.Join(h.Calls()[n:], ",")
	if !strings.HasSuffix(calls, "daemon-reload,restart tlsdock.service") {
		t.Fatalf("calls %s: after a failed revert the proxy must serve again", calls)
	}
	// The set is restored into a new generation directory: compare with
	// generation names left out.
	if d := diffTrees(sameGeneration(before), sameGeneration(treeHash(t, h.root))); len(d) > 0 {
		t.Fatalf("failed revert left changes: %q", d)
	}
}

// failingStop is a systemd whose Stop fails.
type failingStop struct{ *fakeHost }

func (f failingStop) Stop(_ context.Context, u string) error {
	f.Record("stop " + u)
	return errors.New("job result \"failed\"")
}

func TestFailedRevertRestartsOnlyWhatItStopped(t *testing.T) {
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	before := treeHash(t, h.root)
	n := len(h.Calls())
	_, err := h.agent(nil, func(o *Options) { o.Systemd = failingStop{h} }).Revert(context.Background(), Defaults())
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want rolled back", err)
	}
	want := []string{"stop tlsdock.service", "daemon-reload", "restart tlsdock.service"}
	if got := h.Calls()[n:]; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %q, want %q (dockerd was never restarted, so the rollback does not restart it)", got, want)
	}
	if d := diffTrees(sameGeneration(before), sameGeneration(treeHash(t, h.root))); len(d) > 0 {
		t.Fatalf("failed revert left changes: %q", d)
	}
}

var generationRE = regexp.MustCompile(`\.\.tlsdock-[0-9a-f]+`)

func sameGeneration(tree map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range tree {
		out[generationRE.ReplaceAllString(k, "..tlsdock-GEN")] = generationRE.ReplaceAllString(v, "..tlsdock-GEN")
	}
	return out
}

func TestNativeModeAfterProxyStopsTheProxyFirst(t *testing.T) {
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	n := len(h.Calls())
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), generateCfg())
	calls := strings.Join(h.Calls()[n:], ",")
	if !strings.Contains(calls, "stop tlsdock.service,") || strings.Index(calls, "stop tlsdock.service") > strings.Index(calls, "restart docker.service") {
		t.Fatalf("calls %s: the proxy must stop before dockerd takes the listener", calls)
	}
	if _, err := os.Stat(filepath.Join(h.root, ProxyDropInPath)); !os.IsNotExist(err) {
		t.Fatalf("proxy drop-in left: %v", err)
	}
}

func TestPackagedUnitGetsOnlyTheDropIn(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.root, "/lib/systemd/system/tlsdock.service", "[Service]\nExecStart=/usr/bin/tlsdock run\n")
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	if _, err := os.Stat(filepath.Join(h.root, ProxyUnitPath)); !os.IsNotExist(err) {
		t.Fatalf("wrote its own unit next to the package's: %v", err)
	}
	if !strings.Contains(readFile(t, h.root, ProxyDropInPath), "ExecStart="+testExe+" run --mode proxy") {
		t.Fatal("no drop-in")
	}
}

func TestProxyArgsCarryEveryProxySetting(t *testing.T) {
	cfg := Defaults()
	cfg.Mode, cfg.Certs = ModeProxy, "/etc/tlsdock/certs"
	cfg.Hosts = []string{"tcp://10.0.0.5:2376", "tcp://127.0.0.1:2376"}
	cfg.SANs = []string{"docker.example.com"}
	cfg.Policy, cfg.CRLs, cfg.ProbeClient, cfg.LiveRestore = "/etc/tlsdock/policy.json", []string{"/etc/pki/a.crl", "/etc/pki/b crl.pem"}, "/etc/tlsdock/probe", false
	got := string(RenderProxyDropIn("/usr/bin/tlsdock", cfg))
	want := `ExecStart=/usr/bin/tlsdock run --mode proxy --host tcp://10.0.0.5:2376 --host tcp://127.0.0.1:2376 --certs /etc/tlsdock/certs --san docker.example.com --key-type ecdsa-p256 --timeout 3m0s --live-restore=false --probe-client /etc/tlsdock/probe --policy /etc/tlsdock/policy.json --crl /etc/pki/a.crl --crl "/etc/pki/b crl.pem"` + "\n"
	if !strings.HasSuffix(got, want) {
		t.Fatalf("drop-in:\n%s\nwant it to end with:\n%s", got, want)
	}
}

func TestPolicyAndCRLOnlyInProxyMode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"policy", func(c *Config) { c.Policy = "/p.json" }, "--policy"},
		{"crl", func(c *Config) { c.CRLs = []string{"/c.pem"} }, "--crl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := generateCfg()
			tc.mod(&c)
			var ie *InputError
			if err := c.Validate(); !errors.As(err, &ie) || ie.Field != tc.field {
				t.Fatalf("err = %v, want an input error on %s", err, tc.field)
			}
			c.Mode = ModeProxy
			if err := c.Validate(); err != nil {
				t.Fatalf("proxy mode: %v", err)
			}
		})
	}
}

func TestLockWait(t *testing.T) {
	h := newFakeHost(t)
	held := h.agent(nil)
	unlock, err := held.lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.agent(nil).lock(); err == nil {
		t.Fatal("the CLI got a held lock")
	}
	stopping := make(chan struct{})
	waiter := h.agent(nil, func(o *Options) { o.LockWait = time.Minute; o.Stopping = stopping })
	got := make(chan error, 1)
	go func() {
		u, err := waiter.lock()
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("did not wait for the lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting for the lock: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("never got the released lock")
	}

	// Stopping ends the wait.
	unlock, err = held.lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	go func() { _, err := waiter.lock(); got <- err }()
	close(stopping)
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("got a held lock")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stopping did not end the wait")
	}
}

func TestRevokeByNameAndSerial(t *testing.T) {
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	a := h.agent(nil)
	alice1, err := a.IssueClient("alice", []string{"dev"}, filepath.Join(h.root, "alice1"))
	if err != nil {
		t.Fatal(err)
	}
	alice2, err := a.IssueClient("alice", nil, filepath.Join(h.root, "alice2"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := a.IssueClient("bob", nil, filepath.Join(h.root, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Revoke("alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revoked) != 2 || certstore.FormatSerial(res.Revoked[0].Serial) != alice1.Serial || certstore.FormatSerial(res.Revoked[1].Serial) != alice2.Serial || res.Mode != ModeProxy || res.CRLNumber != 1 {
		t.Fatalf("revoke alice = %+v", res)
	}
	res, err = a.Revoke("0x" + strings.ToUpper(bob.Serial))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revoked) != 1 || res.Revoked[0].Name != "bob" || res.CRLNumber != 2 {
		t.Fatalf("revoke bob by serial = %+v", res)
	}
	if res, err = a.Revoke("alice"); err != nil || len(res.Already) != 2 || len(res.Revoked) != 0 {
		t.Fatalf("revoking again = %+v, %v", res, err)
	}
	ca, err := certstore.LoadCA(filepath.Join(h.root, CADir))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := proxy.LoadCRL(filepath.Join(h.root, LocalCRLPath), []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range crl.Revoked {
		got = append(got, r.Serial.Text(16))
	}
	if want := []string{alice1.Serial, alice2.Serial, bob.Serial}; !reflect.DeepEqual(got, want) || crl.Number.Int64() != 3 {
		t.Fatalf("CRL number %v lists %q, want %q", crl.Number, got, want)
	}
	if fi, err := os.Stat(filepath.Join(h.root, LocalCRLPath)); err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("crl.pem: %v %v", fi, err)
	}
	var ie *InputError
	if _, err := a.Revoke("carol"); !errors.As(err, &ie) {
		t.Fatalf("unknown name: %v, want an input error", err)
	}
}

// fakeDockerd serves /_ping on a unix socket.
func fakeDockerd(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// TestProxyDaemonEnforcesANewCRL runs the proxy daemon in-process: a revoke
// (a new crl.pem of the local CA) is refused at the handshake without any
// reload call, and the status socket answers.
func TestProxyDaemonEnforcesANewCRL(t *testing.T) {
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
	a := h.agent(nil)
	if _, err := a.IssueClient("alice", nil, filepath.Join(h.root, "alice")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(h.root, "/run/tlsdock"), 0o755); err != nil {
		t.Fatal(err)
	}
	var addr string
	d, err := NewProxyDaemon(ProxyDaemonOptions{
		Paths: Paths{Root: h.root}, Config: proxyCfg(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Proxy:  proxy.Options{Socket: fakeDockerd(t), Now: func() time.Time { return fixedNow }},
		Listen: func() ([]net.Listener, error) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err == nil {
				addr = l.Addr().String()
			}
			return []net.Listener{l}, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	set, err := a.Installed()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(set); err != nil {
		t.Fatal(err)
	}
	tc, err := proxy.LoadClientBundle(filepath.Join(h.root, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	tc.ServerName = "localhost"
	ping := func() error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + addr + "/_ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errors.New(resp.Status)
		}
		return nil
	}
	if err := ping(); err != nil {
		t.Fatalf("alice before the revoke: %v", err)
	}
	if _, err := a.Revoke("alice"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second) // a failure bound
	for ping() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the revoked client still gets in")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := a.ProxyStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Serial != set.Serial() || len(st.Revoked) != 1 || len(st.Clients) != 1 || st.Clients[0].User != "alice" {
		t.Fatalf("status = %+v", st)
	}
}
