package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/agent/agenttest"
	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/systemd"
)

// Faults, crashes and security properties of the sequence, on the fake
// host. The same properties are checked on a real host in test/e2e
// (reliability_test.go, crash_test.go).

// hangingSystemd is the fake host's systemd, except that the calls named in
// hang block until their context ends (a systemd that does not answer);
// with once, only the first such call blocks.
type hangingSystemd struct {
	*fakeHost
	hang map[string]bool
	once bool

	mu   sync.Mutex
	hung map[string]int
}

func (s *hangingSystemd) block(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	if s.hung == nil {
		s.hung = map[string]int{}
	}
	hang := s.hang[name] && !(s.once && s.hung[name] > 0)
	s.hung[name]++
	s.mu.Unlock()
	if !hang {
		return false, nil
	}
	<-ctx.Done()
	return true, fmt.Errorf("systemd %s: %w", name, ctx.Err())
}

func (s *hangingSystemd) DaemonReload(ctx context.Context) error {
	if hung, err := s.block(ctx, "daemon-reload"); hung {
		return err
	}
	return s.fakeHost.DaemonReload(ctx)
}

func (s *hangingSystemd) Restart(ctx context.Context, u string) error {
	if hung, err := s.block(ctx, "restart"); hung {
		return err
	}
	return s.fakeHost.Restart(ctx, u)
}

func (s *hangingSystemd) Reload(ctx context.Context, u string) error {
	if hung, err := s.block(ctx, "reload"); hung {
		return err
	}
	return s.fakeHost.Reload(ctx, u)
}

func (s *hangingSystemd) Unit(ctx context.Context, u string) (systemd.UnitInfo, error) {
	if hung, err := s.block(ctx, "unit"); hung {
		return systemd.UnitInfo{}, err
	}
	return s.fakeHost.Unit(ctx, u)
}

// noDNS keeps the agent from looking the host name up in DNS (slow where
// DNS does not answer).
func noDNS(o *Options) {
	o.Hostname = func() (string, error) { return "", errors.New("no hostname in tests") }
}

// fullTree hashes everything under root, tlsdock's own state and CA
// included, except /run (the lock).
func fullTree(t *testing.T, root string) map[string]string {
	t.Helper()
	return hashTree(t, root, "run")
}

// TestHungSystemdIsBounded: whichever D-Bus call stops answering,
// Provision returns within its bounds with an error saying what hung, and
// the host is as it was (or, past the backup, rolled back).
func TestHungSystemdIsBounded(t *testing.T) {
	tests := []struct {
		call string
		once bool
		// plan: the hang is in the plan, before anything is changed.
		plan bool
		want string
	}{
		{call: "unit", plan: true, want: "asking systemd about docker.service"},
		{call: "reload", once: true, want: "reloading dockerd to turn on live-restore"},
		{call: "daemon-reload", once: true, want: "systemd daemon-reload"},
		{call: "restart", once: true, want: "restarting docker"},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, `{"log-driver": "journald"}`)
			before := fullTree(t, h.root)
			sd := &hangingSystemd{fakeHost: h, hang: map[string]bool{tt.call: true}, once: tt.once}
			a := h.agent(&fakeVerifier{}, noDNS, func(o *Options) {
				o.Systemd = sd
				o.LiveRestoreWait = 300 * time.Millisecond
			})
			cfg := generateCfg()
			cfg.Timeout = 300 * time.Millisecond
			start := time.Now()
			res, err := a.Provision(context.Background(), cfg)
			took := time.Since(start)
			t.Logf("returned after %v: %v", took.Round(time.Millisecond), err)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want one about %q and the deadline", err, tt.want)
			}
			if took > 5*time.Second {
				t.Fatalf("Provision took %v with a 300ms timeout", took)
			}
			if tt.plan {
				if d := diffTrees(before, fullTree(t, h.root)); len(d) > 0 {
					t.Fatalf("a hang in the plan changed files: %q", d)
				}
				return
			}
			if !errors.Is(err, ErrRolledBack) || !res.RolledBack {
				t.Fatalf("not rolled back: %v", err)
			}
			// Everything is as before, but for live-restore, which a
			// rollback keeps once dockerd runs with it.
			after := treeHash(t, h.root)
			want := treeHash(t, h.root)
			for k := range want {
				delete(want, k)
			}
			for k, v := range before {
				if !strings.HasPrefix(k, "var/lib/tlsdock") && !strings.HasPrefix(k, "etc/tlsdock") && !strings.HasPrefix(k, "run") {
					want[k] = v
				}
			}
			if js := readFile(t, h.root, DaemonJSONPath); !strings.Contains(js, `"log-driver": "journald"`) || strings.Contains(js, "tls") {
				t.Errorf("daemon.json after the rollback:\n%s", js)
			}
			delete(want, "etc/docker/daemon.json")
			delete(after, "etc/docker/daemon.json")
			for k := range after {
				if _, ok := want[k]; !ok {
					t.Errorf("left behind: %s", k)
				}
			}
			if _, err := os.Stat(filepath.Join(h.root, StateDir, "journal.json")); !os.IsNotExist(err) {
				t.Errorf("journal left after a rollback: %v", err)
			}
		})
	}
}

// TestStatusBoundsSystemd: status answers when systemd does not.
func TestStatusBoundsSystemd(t *testing.T) {
	defer func(d time.Duration) { statusWait = d }(statusWait)
	statusWait = 200 * time.Millisecond
	h := newFakeHost(t)
	sd := &hangingSystemd{fakeHost: h, hang: map[string]bool{"unit": true}}
	start := time.Now()
	st, err := h.agent(nil, func(o *Options) { o.Systemd = sd }).Status(context.Background())
	if err != nil || time.Since(start) > 3*time.Second || !strings.Contains(st.Docker.ActiveState, "deadline") {
		t.Fatalf("status after %v: %+v, %v", time.Since(start), st, err)
	}
}

// TestRollbackSkipsUnchangedFiles: restoring a backup leaves a file that
// did not change alone instead of rewriting it, so a rollback after a
// failed write (a full disk) cannot fail for the same reason and turn into
// "rollback failed". TestDiskFull in test/e2e fills a real disk.
func TestRollbackSkipsUnchangedFiles(t *testing.T) {
	h := newFakeHost(t)
	p := Paths{Root: h.root}
	writeFile(t, h.root, DaemonJSONPath, "{\"live-restore\": true}\n")
	abs := p.DaemonJSON()
	inode := func() uint64 {
		fi, err := os.Stat(abs)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	st, err := readFileState(p, DaemonJSONPath)
	if err != nil {
		t.Fatal(err)
	}
	ino := inode()
	if err := restoreFile(p, st); err != nil || inode() != ino {
		t.Fatalf("an identical file was rewritten (err %v)", err)
	}
	for name, mod := range map[string]func(*FileState){
		"content": func(f *FileState) { f.Content = []byte("{}\n") },
		"mode":    func(f *FileState) { f.Mode = 0o600 },
	} {
		changed := st
		mod(&changed)
		if err := restoreFile(p, changed); err != nil {
			t.Fatal(err)
		}
		if inode() == ino {
			t.Errorf("a file with another %s was not restored", name)
		}
		ino = inode()
		if got, _ := os.ReadFile(abs); !bytes.Equal(got, changed.Content) {
			t.Errorf("restored content %q", got)
		}
	}
}

// TestCrashAtWrittenKeepsDockerStartable: at every point of the write,
// dockerd would start from the unit systemd has loaded and the files on
// disk (in particular, they never both set hosts, which dockerd refuses),
// in either mode. The fake host's dockerd rules judge, not tlsdock's
// checker.
func TestCrashAtWrittenKeepsDockerStartable(t *testing.T) {
	for _, mode := range []Mode{ModeDaemonJSON, ModeDropIn} {
		t.Run(string(mode), func(t *testing.T) {
			h := newFakeHost(t)
			check := func(when string) {
				if _, err := h.WouldStart(); err != nil {
					t.Errorf("%s: `systemctl restart docker` would fail: %v", when, err)
				}
			}
			a := h.agent(&fakeVerifier{}, noDNS, func(o *Options) {
				o.Pause = func(step string) { check("at " + step) }
			})
			cfg := generateCfg()
			cfg.Mode = mode
			mustProvision(t, a, cfg)
			check("after provision")
			// And back to the other mode.
			if mode == ModeDaemonJSON {
				cfg.Mode = ModeDropIn
			} else {
				cfg.Mode = ModeDaemonJSON
			}
			mustProvision(t, a, cfg)
			check("after switching mode")
		})
	}
}

// keyBearing reports whether a file holds private key material: a PEM
// private key, or a tlsdock backup that may hold one.
func keyBearing(rel string, data []byte) bool {
	if bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		return true
	}
	return strings.HasPrefix(rel, "var/lib/tlsdock/") && strings.HasSuffix(rel, ".json")
}

// checkKeyModes fails for every file under root that holds key material
// and can be read by anyone but its owner (root), or is not owned by root.
func checkKeyModes(t *testing.T, root, when string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !keyBearing(rel, data) {
			return nil
		}
		n++
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %s holds key material with mode %v", when, rel, fi.Mode().Perm())
		}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && (sys.Uid != 0 || sys.Gid != 0) {
			t.Errorf("%s: %s holds key material and is owned by %d:%d", when, rel, sys.Uid, sys.Gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKeyFilesNeverReadable: with a umask that grants everything, every
// file that holds key material (server keys in the generation directories,
// the CA key, the client bundle's key.pem, the backups in /var/lib/tlsdock)
// is created private: after each step a crash could stop at, after the
// recovery, the client bundle, a rollback and the revert. (The mode at the
// moment of creation is what certstore.TestWriteFileAtomicTempMode checks
// for the one helper all of these go through; TestKeyModesAtCreation in
// test/e2e traces the real binary's syscalls.)
func TestKeyFilesNeverReadable(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	for _, step := range []string{"backed-up", "live-restore", "certs-installed", "written", "restarted"} {
		t.Run("crash at "+step, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, `{"log-driver": "journald"}`)
			// A key the user had installed before: it ends up in the backups.
			writeFile(t, h.root, SSLDir+"/server-key.pem", "-----BEGIN PRIVATE KEY-----\nold\n-----END PRIVATE KEY-----\n")
			if err := os.Chmod(filepath.Join(h.root, SSLDir, "server-key.pem"), 0o400); err != nil {
				t.Fatal(err)
			}
			cfg := generateCfg()
			cfg.ClientOut = filepath.Join(h.root, "root/client")
			crash := func(o *Options) {
				o.Pause = func(s string) {
					checkKeyModes(t, h.root, "at "+s)
					if s == step {
						panic("crash at " + s)
					}
				}
			}
			func() {
				defer func() { _ = recover() }()
				_, _ = h.agent(&fakeVerifier{}, noDNS, crash).Provision(context.Background(), cfg)
			}()
			checkKeyModes(t, h.root, "after a crash at "+step)
			mustProvision(t, h.agent(&fakeVerifier{}, noDNS), cfg)
			if n := checkKeyModes(t, h.root, "after the recovery"); n < 5 {
				t.Errorf("only %d key-bearing files found after provision", n)
			}
		})
	}
	t.Run("client, rollback, revert", func(t *testing.T) {
		h := newFakeHost(t)
		mustProvision(t, h.agent(&fakeVerifier{}, noDNS), generateCfg())
		if _, err := h.agent(nil, noDNS).IssueClient("alice", []string{"ops"}, filepath.Join(h.root, "home/alice/.docker")); err != nil {
			t.Fatal(err)
		}
		checkKeyModes(t, h.root, "after certs client")
		cfg := generateCfg()
		cfg.Hosts = []string{"tcp://0.0.0.0:2377"}
		if _, err := h.agent(&fakeVerifier{fail: errors.New("refused")}, noDNS).Provision(context.Background(), cfg); !errors.Is(err, ErrRolledBack) {
			t.Fatalf("want a rollback: %v", err)
		}
		checkKeyModes(t, h.root, "after a rollback")
		if _, err := h.agent(nil, noDNS).Revert(context.Background(), Defaults()); err != nil {
			t.Fatal(err)
		}
		checkKeyModes(t, h.root, "after revert")
	})
}

// TestLocalCAKeyStaysPut: the CA key is 0400 in a 0700 /etc/tlsdock/ca and
// no other file under the root ever holds it, in any encoding, after
// provision, a client bundle, a crash and its recovery, a rollback and a
// revert.
func TestLocalCAKeyStaysPut(t *testing.T) {
	h := newFakeHost(t)
	cfg := generateCfg()
	cfg.ClientOut = filepath.Join(h.root, "root/client")
	mustProvision(t, h.agent(&fakeVerifier{}, noDNS), cfg)
	if _, err := h.agent(nil, noDNS).IssueClient("bob", nil, filepath.Join(h.root, "home/bob")); err != nil {
		t.Fatal(err)
	}
	// A crash mid-rotation (a new key type reissues), then recovery.
	cfg.KeyType = certstore.RSA2048
	func() {
		defer func() { _ = recover() }()
		_, _ = h.agent(&fakeVerifier{}, func(o *Options) {
			o.Pause = func(s string) {
				if s == "written" {
					panic("crash")
				}
			}
		}, noDNS).Provision(context.Background(), cfg)
	}()
	mustProvision(t, h.agent(&fakeVerifier{}, noDNS), cfg)
	cfg.Hosts = []string{"tcp://0.0.0.0:2377"}
	if _, err := h.agent(&fakeVerifier{fail: errors.New("refused")}, noDNS).Provision(context.Background(), cfg); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("want a rollback: %v", err)
	}
	if _, err := h.agent(nil, noDNS).Revert(context.Background(), Defaults()); err != nil {
		t.Fatal(err)
	}

	keyPath := filepath.Join(h.root, CADir, certstore.CAKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{keyPath: 0o400, filepath.Join(h.root, CADir): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	needles := caKeyNeedles(t, keyPEM)
	if n := searchTree(t, h.root, needles, keyPath); n < 5 {
		t.Fatalf("searched only %d files", n)
	}
}

// caKeyNeedles is the CA key in every encoding a copy could take: the PEM,
// its base64 body line, the DER, and the PEM as JSON encodes bytes.
func caKeyNeedles(t *testing.T, keyPEM []byte) map[string][]byte {
	t.Helper()
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		t.Fatal("CA key is not PEM")
	}
	body := strings.Split(string(keyPEM), "\n")[1]
	return map[string][]byte{
		"PEM":             keyPEM,
		"PEM body line":   []byte(body),
		"DER":             blk.Bytes,
		"base64 of PEM":   []byte(base64.StdEncoding.EncodeToString(keyPEM)[:40]),
		"base64 DER part": []byte(base64.StdEncoding.EncodeToString(blk.Bytes[8:])[:40]),
	}
}

// searchTree fails for every file under root but except that holds one of
// needles; it returns how many files it read.
func searchTree(t *testing.T, root string, needles map[string][]byte, except string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() || p == except {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		for name, needle := range needles {
			if bytes.Contains(data, needle) {
				t.Errorf("%s holds the local CA key (%s)", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWritesNeverFollowSymlinks: a symlink planted where tlsdock writes or
// reads its own files is never written through: the target keeps its
// content and mode, and the run either fails with a message naming the
// link or replaces the link itself.
func TestWritesNeverFollowSymlinks(t *testing.T) {
	tests := []struct {
		name string
		link string // host path of the planted symlink
		dir  bool   // the victim is a directory
		// ok: the run succeeds, replacing the link; else want is in the error.
		ok   bool
		want string
		// kept: the link is left alone (it is not tlsdock's to remove).
		kept bool
	}{
		{name: "journal", link: StateDir + "/journal.json", want: "journal.json is a symlink"},
		{name: "state", link: StateDir + "/state.json", want: "state.json is a symlink"},
		{name: "original backup", link: StateDir + "/original.json", want: "original.json is a symlink"},
		{name: "daemon.json", link: DaemonJSONPath, want: "never writes through a symlink"},
		{name: "drop-in", link: DropInPath, want: "never writes through a symlink"},
		{name: "lock", link: lockPath, want: "opening lock"},
		{name: "ssl ..data_tmp", link: SSLDir + "/..data_tmp", dir: true, ok: true},
		{name: "ssl ..data", link: SSLDir + "/..data", dir: true, ok: true},
		{name: "ssl server key", link: SSLDir + "/server-key.pem", ok: true},
		{name: "ssl generation directory", link: SSLDir + "/..tlsdock-0000000000000000", dir: true, ok: true, kept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			victim := filepath.Join(t.TempDir(), "victim")
			const content = "{\"files\": [], \"not\": \"yours\"}\n"
			if tt.dir {
				writeFile(t, victim, "ca.pem", content)
			} else if err := os.WriteFile(victim, []byte(content), 0o640); err != nil {
				t.Fatal(err)
			}
			victimBefore := fullTree(t, filepath.Dir(victim))
			link := filepath.Join(h.root, tt.link)
			if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			before := fullTree(t, h.root)
			cfg := generateCfg()
			cfg.ClientOut = filepath.Join(h.root, "root/client")
			_, err := h.agent(&fakeVerifier{}, noDNS).Provision(context.Background(), cfg)
			if d := diffTrees(victimBefore, fullTree(t, filepath.Dir(victim))); len(d) > 0 {
				t.Fatalf("the symlink's target changed: %q", d)
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("provision: %v", err)
				}
				if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink != 0 && !tt.kept {
					if target, _ := os.Readlink(link); target == victim {
						t.Fatalf("%s still points at the victim", tt.link)
					}
				}
				if _, err := h.agent(nil, noDNS).Revert(context.Background(), Defaults()); err != nil {
					t.Fatalf("revert: %v", err)
				}
				if d := diffTrees(victimBefore, fullTree(t, filepath.Dir(victim))); len(d) > 0 {
					t.Fatalf("revert changed the symlink's target: %q", d)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if d := diffTrees(before, fullTree(t, h.root)); len(d) > 0 {
				t.Fatalf("the failed run changed files: %q", d)
			}
			if calls := h.Calls(); len(calls) > 0 {
				t.Fatalf("the failed run called systemd: %q", calls)
			}
		})
	}
}

// TestClientBundleRefusesSymlinkedKey: `certs client` never writes a key
// through a symlink planted in the output directory.
func TestClientBundleRefusesSymlinkedKey(t *testing.T) {
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}, noDNS), generateCfg())
	out := filepath.Join(h.root, "home/eve")
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(out, "key.pem")); err != nil {
		t.Fatal(err)
	}
	_, err := h.agent(nil, noDNS).IssueClient("eve", nil, out)
	if err == nil || !strings.Contains(err.Error(), "is a symlink") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "mine\n" {
		t.Fatalf("victim overwritten: %q", b)
	}
}

// TestNeverPlaintextOrUnverified: for every mode, daemon.json and
// ExecStart combination, the configuration tlsdock leaves makes dockerd
// verify client certificates (tlsverify with tlsdock's CA), serve TCP only
// on the listeners tlsdock probes, and start (no directive both as a flag
// and in daemon.json). A combination tlsdock refuses changes nothing.
func TestNeverPlaintextOrUnverified(t *testing.T) {
	jsons := map[string]string{
		"none":                    "",
		"empty":                   "{}",
		"plaintext tcp":           `{"hosts": ["tcp://0.0.0.0:2375"]}`,
		"schemeless tcp":          `{"hosts": [":2375", "unix:///var/run/docker.sock"]}`,
		"tls without verify":      `{"tls": true, "tlscert": "/x/cert.pem", "tlskey": "/x/key.pem", "hosts": ["tcp://0.0.0.0:2376"]}`,
		"tlsverify false":         `{"tlsverify": false, "hosts": ["tcp://127.0.0.1:2375"]}`,
		"tlsverify odd type":      `{"tlsverify": "yes", "tls": 1}`,
		"foreign CA":              `{"tlsverify": true, "tlscacert": "/other/ca.pem", "hosts": ["tcp://0.0.0.0:2376"]}`,
		"fd in file":              `{"hosts": ["fd://", "tcp://0.0.0.0:2376"], "tls": true}`,
		"same port without tls":   `{"hosts": ["0.0.0.0:2376"]}`,
		"unrelated keys and null": `{"debug": true, "hosts": null, "log-opts": {"max-size": "10m"}}`,
	}
	units := map[string]string{
		"debian":              "",
		"plaintext flag":      "/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2375",
		"tls without verify":  "/usr/sbin/dockerd -H tcp://0.0.0.0:2375 --tls --tlscert=/x/cert.pem --tlskey /x/key.pem",
		"tlsverify false":     "/usr/sbin/dockerd --tlsverify=false -H fd://",
		"flag spellings":      "/usr/sbin/dockerd -H=tcp://0.0.0.0:2375 -Hunix:///var/run/docker.sock --host tcp://127.0.0.1:2377",
		"foreign CA flag":     "/usr/sbin/dockerd -H fd:// --tlsverify --tlscacert /other/ca.pem",
		"no hosts":            "/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock",
		"quoted and variable": `/usr/sbin/dockerd -H "fd://" $DOCKER_OPTS --log-opt "max-size=10m"`,
	}
	hostSets := [][]string{{DefaultHost}, {"tcp://127.0.0.1:2376", "tcp://[::1]:2377"}}
	n, refused := 0, 0
	for _, mode := range []Mode{ModeDaemonJSON, ModeDropIn} {
		for jn, js := range jsons {
			for un, exec := range units {
				for _, hosts := range hostSets {
					for _, socket := range []bool{false, true} {
						name := fmt.Sprintf("%s/%s/%s/%d", mode, jn, un, len(hosts))
						h := newFakeHost(t)
						if socket {
							// docker.socket is there: its TCP listeners
							// count too (checkEffective).
							name += "/docker.socket"
							writeFile(t, h.root, socketFragment, debianSocket)
						}
						if js != "" {
							writeFile(t, h.root, DaemonJSONPath, js)
						}
						if exec != "" {
							writeFile(t, h.root, systemd.DropInDir+"/override.conf", "[Service]\nExecStart=\nExecStart="+exec+"\n")
						}
						before := fullTree(t, h.root)
						cfg := generateCfg()
						cfg.Mode, cfg.Hosts = mode, hosts
						res, err := h.agent(&fakeVerifier{}, noDNS).Provision(context.Background(), cfg)
						var ie *InputError
						if errors.As(err, &ie) {
							refused++
							t.Logf("%s: refused: %v", name, err)
							if d := diffTrees(before, fullTree(t, h.root)); len(d) > 0 {
								t.Errorf("%s: refused (%v) but changed %q", name, err, d)
							}
							continue
						}
						if err != nil {
							t.Errorf("%s: %v", name, err)
							continue
						}
						n++
						checkEffective(t, name, h, res, hosts)
					}
				}
			}
		}
	}
	t.Logf("%d combinations configured, %d refused as bad input", n, refused)
	if n < 200 {
		t.Errorf("only %d combinations configured", n)
	}
}

// checkEffective asks the fake host's dockerd rules (written from
// dockerd's documented behaviour, independently of tlsdock's checker)
// what dockerd would run with: the unit as systemd loaded it and
// daemon.json.
func checkEffective(t *testing.T, name string, h *fakeHost, res *Result, want []string) {
	t.Helper()
	d, err := h.WouldStart()
	if err != nil {
		t.Errorf("%s: dockerd would refuse to start: %v", name, err)
		return
	}
	if !d.TLSVerify {
		t.Errorf("%s: tls %v, tlsverify %v: dockerd would not verify client certificates", name, d.TLS, d.TLSVerify)
	}
	ca, cert, key := certstore.Store{Dir: SSLDir}.Paths()
	for got, path := range map[string]string{d.CACert: ca, d.Cert: cert, d.Key: key} {
		if got != path {
			t.Errorf("%s: %q in force, want tlsdock's %s", name, got, path)
		}
	}
	// Every TCP listener, from flags, daemon.json or docker.socket, is
	// one tlsdock probes, and serves TLS that verifies clients.
	// dockerd takes every listener of docker.socket with -H fd://, and a
	// TCP one that dockerd does not take is held by nobody who answers.
	taken := map[string]bool{}
	for _, l := range d.TCP() {
		if l.From == "docker.socket ListenStream=" {
			taken[l.Addr] = true
		}
	}
	for _, l := range h.SocketListening() {
		if strings.HasPrefix(l, "/") || strings.HasPrefix(l, "@") {
			continue
		}
		if !taken[l] && !taken[net.JoinHostPort("::", l)] {
			t.Errorf("%s: docker.socket listens on %s, and dockerd does not take it (no -H fd://)", name, l)
		}
	}
	probed := map[string]bool{}
	for _, w := range want {
		addr, err := agenttest.TCPAddr(w)
		if err != nil || addr == "" {
			t.Errorf("%s: want host %q: %v", name, w, err)
		}
		probed[addr] = true
	}
	for _, l := range d.TCP() {
		addr, _ := agenttest.TCPAddr("tcp://" + l.Addr)
		if !l.TLS || !l.VerifyClients {
			t.Errorf("%s: dockerd listens on %s (%s) with tls %v, verify %v", name, l.Addr, l.From, l.TLS, l.VerifyClients)
		}
		if !probed[addr] {
			t.Errorf("%s: dockerd listens on %s (%s), which tlsdock does not probe", name, l.Addr, l.From)
		}
		delete(probed, addr)
	}
	for h := range probed {
		t.Errorf("%s: %s is not configured (hosts %q from %s)", name, h, d.Hosts, d.HostsFrom)
	}
	if strings.Join(res.Hosts, " ") == "" {
		t.Errorf("%s: result has no hosts", name)
	}
}

// TestRollbackIsBoundedByTimeout: when docker.service hangs both at the
// restart and at the restart back, the rollback gives up at the command's
// deadline (--timeout, shared with the steps) and says the host needs
// attention.
func TestRollbackIsBoundedByTimeout(t *testing.T) {
	h := newFakeHost(t)
	sd := &hangingSystemd{fakeHost: h, hang: map[string]bool{"restart": true}}
	a := h.agent(&fakeVerifier{}, noDNS, func(o *Options) { o.Systemd = sd })
	cfg := generateCfg()
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := a.Provision(context.Background(), cfg)
	took := time.Since(start)
	t.Logf("returned after %v: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, ErrRollbackFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a failed rollback past the deadline", err)
	}
	if took > 10*time.Second {
		t.Fatalf("Provision and its rollback took %v with a 300ms timeout", took)
	}
}
