package agent

import (
	"context"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDefaultClientOwner(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		env  map[string]string
		euid int
		want string
	}{
		{"sudo", map[string]string{"SUDO_USER": "alice"}, 0, "alice"},
		{"root without sudo", nil, 0, "root"},
		{"SUDO_USER set but not root", map[string]string{"SUDO_USER": "alice"}, 65534, "nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultClientOwner(env(tt.env), tt.euid); got != tt.want {
				t.Errorf("DefaultClientOwner = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseClientOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a bundle for another account")
	}
	o, err := ParseClientOwner("--client-owner", "nobody")
	if err != nil || o.UID != 65534 || o.GID != 65534 {
		t.Fatalf("nobody = %+v, %v", o, err)
	}
	o, err = ParseClientOwner("--client-owner", "nobody:root")
	if err != nil || o.UID != 65534 || o.GID != 0 {
		t.Fatalf("nobody:root = %+v, %v", o, err)
	}
	for spec, want := range map[string]string{
		"no-such-user-tlsdock":       `--client-owner: user "no-such-user-tlsdock"`,
		"nobody:no-such-group-tlsdk": `--client-owner: group "no-such-group-tlsdk"`,
		":wheel":                     "is not USER or USER:GROUP",
		"nobody:":                    "is not USER or USER:GROUP",
		"4242424":                    `user "4242424"`,
	} {
		_, err := ParseClientOwner("--client-owner", spec)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an InputError with %q", spec, err, want)
		}
	}
}

func ownerOf(t *testing.T, p string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode()
}

// TestClientBundleForUser: the bundle of `sudo tlsdock ... --client-out
// ~/.docker/host` belongs to the user: a new directory 0700 with its
// missing parents, key.pem 0400, ca.pem and cert.pem 0444, all theirs.
func TestClientBundleForUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a bundle for another account")
	}
	h := newFakeHost(t)
	home := filepath.Join(h.root, "home/alice")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	owner, err := ParseClientOwner("--client-owner", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	cfg := generateCfg()
	cfg.ClientOut = filepath.Join(home, ".docker/myhost")
	cfg.ClientOwner = owner
	res := mustProvision(t, h.agent(&fakeVerifier{}), cfg)
	if res.ClientOut != cfg.ClientOut {
		t.Errorf("ClientOut = %q, want %q", res.ClientOut, cfg.ClientOut)
	}
	for p, want := range map[string]os.FileMode{
		filepath.Join(home, ".docker"):           os.ModeDir | 0o700,
		cfg.ClientOut:                            os.ModeDir | 0o700,
		filepath.Join(cfg.ClientOut, "ca.pem"):   0o444,
		filepath.Join(cfg.ClientOut, "cert.pem"): 0o444,
		filepath.Join(cfg.ClientOut, "key.pem"):  0o400,
	} {
		uid, gid, mode := ownerOf(t, p)
		if uid != 65534 || gid != 65534 || mode != want {
			t.Errorf("%s: %d:%d %v, want 65534:65534 %v", p, uid, gid, mode, want)
		}
	}
	// The same provision again keeps the bundle; another owner reissues it.
	before, _ := os.ReadFile(filepath.Join(cfg.ClientOut, "cert.pem"))
	mustProvision(t, h.agent(&fakeVerifier{}), cfg)
	if again, _ := os.ReadFile(filepath.Join(cfg.ClientOut, "cert.pem")); string(again) != string(before) {
		t.Error("an unchanged provision reissued the bundle")
	}
}

// TestClientBundleRefusesForeignPaths: root never follows a symlink that
// the user could have planted, nor takes over a directory that is not the
// owner's; nothing is written there.
func TestClientBundleRefusesForeignPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a bundle for another account")
	}
	h := newFakeHost(t)
	owner, err := ParseClientOwner("--owner", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	home := filepath.Join(h.root, "home/eve")
	target := filepath.Join(h.root, "etc/secret")
	for _, d := range []string{home, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	// eve's symlink to a directory of root's.
	if err := os.Symlink(filepath.Join(h.root, "etc"), filepath.Join(home, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(home, "link"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ dir, want string }{
		{filepath.Join(home, "link/secret"), "is a symlink that someone other than root can change"},
		{filepath.Join(home, "link/new"), "is a symlink that someone other than root can change"},
		{target, "belongs to uid 0, not to nobody"},
	}
	for _, tt := range tests {
		_, err := h.agent(nil, noDNS).IssueClientFor("eve", nil, tt.dir, owner)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.dir, err, tt.want)
		}
	}
	if uid, _, mode := ownerOf(t, target); uid != 0 || mode != os.ModeDir|0o755 {
		t.Errorf("%s changed: uid %d mode %v", target, uid, mode)
	}
	entries, _ := os.ReadDir(target)
	if len(entries) != 0 {
		t.Errorf("wrote into %s: %v", target, entries)
	}
	if _, err := os.Lstat(filepath.Join(h.root, "etc/new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("created %s through the symlink", filepath.Join(h.root, "etc/new"))
	}
}

func TestNewClientHint(t *testing.T) {
	hostname := func() (string, error) { return "dockerhost.example.com", nil }
	tests := []struct {
		hosts            []string
		wantHost, wantCx string
	}{
		{[]string{"tcp://0.0.0.0:2376"}, "tcp://dockerhost.example.com:2376", "docker context create dockerhost.example.com --docker \"host=tcp://dockerhost.example.com:2376,"},
		{[]string{"tcp://[::]:12376"}, "tcp://dockerhost.example.com:12376", "docker context create dockerhost.example.com "},
		{[]string{"fd://", "tcp://10.1.2.3:2377", "tcp://0.0.0.0:2376"}, "tcp://10.1.2.3:2377", "docker context create 10.1.2.3 "},
		{[]string{"tcp://[fd00::1]:2376"}, "tcp://[fd00::1]:2376", "docker context create fd00--1 --docker \"host=tcp://[fd00::1]:2376,"},
		{nil, "tcp://HOST:2376", "docker context create HOST "},
	}
	for _, tt := range tests {
		h := NewClientHint(tt.hosts, "/home/alice/.docker/myhost", hostname)
		if h.Host != tt.wantHost {
			t.Errorf("%q: Host = %q, want %q", tt.hosts, h.Host, tt.wantHost)
		}
		if want := "export DOCKER_HOST=" + shellWord(tt.wantHost) + " DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=/home/alice/.docker/myhost"; h.Env != want {
			t.Errorf("%q: Env = %q, want %q", tt.hosts, h.Env, want)
		}
		if !strings.HasPrefix(h.Context, tt.wantCx) || !strings.HasSuffix(h.Context, ",ca=/home/alice/.docker/myhost/ca.pem,cert=/home/alice/.docker/myhost/cert.pem,key=/home/alice/.docker/myhost/key.pem\"") {
			t.Errorf("%q: Context = %q", tt.hosts, h.Context)
		}
	}
	// A path a shell would split is quoted.
	h := NewClientHint([]string{"tcp://127.0.0.1:2376"}, "/home/al ice/$x", hostname)
	if !strings.Contains(h.Env, "DOCKER_CERT_PATH='/home/al ice/$x'") || !strings.Contains(h.Context, "--docker 'host=tcp://127.0.0.1:2376,ca=/home/al ice/$x/ca.pem,") {
		t.Errorf("unquoted: %+v", h)
	}
}

// TestClientBundleOwnerPlantsSpecialFiles: the bundle's owner can put
// anything in its directory. A FIFO (or a symlink to one, or to /dev/zero)
// as cert.pem must not make root's provision hang on the read, holding
// the host lock, nor read without end: the next provision replaces it
// with a regular file.
func TestClientBundleOwnerPlantsSpecialFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a bundle for another account")
	}
	for _, plant := range []string{"fifo", "symlink to a fifo", "symlink to /dev/zero"} {
		t.Run(plant, func(t *testing.T) {
			h := newFakeHost(t)
			home := filepath.Join(h.root, "home/alice")
			if err := os.MkdirAll(home, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(home, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			owner, err := ParseClientOwner("--client-owner", "nobody")
			if err != nil {
				t.Fatal(err)
			}
			cfg := generateCfg()
			cfg.ClientOut = filepath.Join(home, "bundle")
			cfg.ClientOwner = owner
			mustProvision(t, h.agent(&fakeVerifier{}), cfg)

			cert := filepath.Join(cfg.ClientOut, "cert.pem")
			fifo := filepath.Join(home, "fifo")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(cert); err != nil {
				t.Fatal(err)
			}
			switch plant {
			case "fifo":
				err = syscall.Mkfifo(cert, 0o644)
			case "symlink to a fifo":
				err = os.Symlink(fifo, cert)
			default:
				err = os.Symlink("/dev/zero", cert)
			}
			if err != nil {
				t.Fatal(err)
			}
			// Before the fix this provision blocked in the read of
			// cert.pem (go test's -timeout ended it). Now the file is
			// refused, naming it (WriteFileAtomicAt writes over regular
			// files only), and nothing read it.
			_, err = h.agent(&fakeVerifier{}).Provision(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), cert+": it is") {
				t.Fatalf("provision: %v, want %s refused", err, cert)
			}
		})
	}
}

// TestClientBundleKeepsForeignBundle: DOCKER_CERT_PATH's default is
// ~/.docker, where a user often has the ca.pem, cert.pem and key.pem of
// another daemon. --client-out ~/.docker (or certs client --out) must not
// replace them: refused before anything is written, naming the file.
func TestClientBundleKeepsForeignBundle(t *testing.T) {
	h := newFakeHost(t)
	mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
	dir := filepath.Join(h.root, "home/alice/.docker")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	foreign, err := selfSignedClient(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: foreign.Certificate[0]})
	files := map[string]string{"ca.pem": string(certPEM), "cert.pem": string(certPEM), "key.pem": "-----BEGIN EC PRIVATE KEY-----\nnot tlsdock's\n-----END EC PRIVATE KEY-----\n"}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	owner := currentOwner()
	err = CheckClientOut("--client-out", dir, owner)
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), filepath.Join(dir, "cert.pem")) || !strings.Contains(err.Error(), "tlsdock foreign probe") {
		t.Errorf("CheckClientOut: %v, want an InputError naming cert.pem and its issuer", err)
	}
	if _, err := h.agent(nil, noDNS).IssueClientFor("alice", nil, dir, owner); err == nil {
		t.Error("certs client --out replaced a bundle tlsdock did not write")
	}
	for n, body := range files {
		if got, _ := os.ReadFile(filepath.Join(dir, n)); string(got) != body {
			t.Errorf("%s was replaced", n)
		}
	}
	// A bundle of this host's CA in the same place is renewed.
	for n := range files {
		os.Remove(filepath.Join(dir, n))
	}
	if _, err := h.agent(nil, noDNS).IssueClientFor("alice", nil, dir, owner); err != nil {
		t.Fatal(err)
	}
	if err := CheckClientOut("--client-out", dir, owner); err != nil {
		t.Errorf("CheckClientOut over tlsdock's own bundle: %v", err)
	}
	if _, err := h.agent(nil, noDNS).IssueClientFor("alice", nil, dir, owner); err != nil {
		t.Errorf("reissue over tlsdock's own bundle: %v", err)
	}
}
