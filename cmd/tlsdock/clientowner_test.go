package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestClientOwnerBadInput: an unknown owner, or an owner without a
// bundle, exits 2 naming the flag, before anything is written.
func TestClientOwnerBadInput(t *testing.T) {
	tests := []struct {
		name   string
		sudo   string
		args   []string
		stderr []string
	}{
		{"unknown --client-owner", "", []string{"provision", "--generate", "--client-out", "/home/x/.docker/h", "--client-owner", "no-such-user-tlsdock"},
			[]string{`--client-owner: user "no-such-user-tlsdock"`, "give an existing account"}},
		{"unknown group", "", []string{"provision", "--generate", "--client-out", "/home/x/.docker/h", "--client-owner", "root:no-such-group-tlsdk"},
			[]string{`--client-owner: group "no-such-group-tlsdk"`}},
		{"unknown SUDO_USER", "no-such-user-tlsdock", []string{"provision", "--generate", "--client-out", "/home/x/.docker/h"},
			[]string{"--client-owner (default: SUDO_USER=no-such-user-tlsdock)", `user "no-such-user-tlsdock"`}},
		{"--client-owner without --client-out", "", []string{"provision", "--generate", "--client-owner", "root"},
			[]string{"--client-owner", "add --client-out DIR"}},
		{"unknown --owner", "", []string{"certs", "client", "alice", "--out", "/home/x/alice", "--owner", "no-such-user-tlsdock"},
			[]string{`--owner: user "no-such-user-tlsdock"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if os.Geteuid() != 0 && tt.sudo != "" {
				t.Skip("SUDO_USER counts only for root")
			}
			t.Setenv("SUDO_USER", tt.sudo)
			h := newFakeHostCLI(t)
			before := hashTree(t, h.root)
			code, stdout, stderr := h.run(tt.args...)
			if code != ExitBadInput {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitBadInput, stdout, stderr)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr)
				}
			}
			if d := treeDiff(before, hashTree(t, h.root)); len(d) > 0 {
				t.Errorf("changed files:\n%s", strings.Join(d, "\n"))
			}
			if calls := h.sd.Calls(); len(calls) > 0 {
				t.Errorf("called systemd: %q", calls)
			}
		})
	}
}

// TestClientOutRefusedBeforeProvision: a bundle directory that root must
// not take over for the user (another account's, or behind a symlink the
// user could have planted) is refused with exit 2 before the host is
// touched.
func TestClientOutRefusedBeforeProvision(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a bundle for another account")
	}
	tests := []struct {
		name   string
		dir    func(t *testing.T, root string) string
		stderr []string
	}{
		{"existing directory of root's", func(t *testing.T, root string) string {
			d := filepath.Join(root, "srv/bundle")
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			return d
		}, []string{"--client-out: client bundle directory", "belongs to uid 0, not to nobody", "chown it to nobody first"}},
		{"symlink in the user's directory", func(t *testing.T, root string) string {
			home := filepath.Join(root, "home/nobody")
			if err := os.MkdirAll(home, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(home, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(root, "etc"), filepath.Join(home, ".docker")); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(filepath.Join(home, ".docker"), 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(home, ".docker/myhost")
		}, []string{"--client-out: client bundle directory", ".docker is a symlink that someone other than root can change"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SUDO_USER", "nobody")
			h := newFakeHostCLI(t)
			dir := tt.dir(t, h.root)
			before := hashTree(t, h.root)
			code, stdout, stderr := h.run("provision", "--generate", "--client-out", dir)
			if code != ExitBadInput {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitBadInput, stdout, stderr)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr)
				}
			}
			if d := treeDiff(before, hashTree(t, h.root)); len(d) > 0 {
				t.Errorf("changed files:\n%s", strings.Join(d, "\n"))
			}
			if calls := h.sd.Calls(); len(calls) > 0 {
				t.Errorf("called systemd: %q", calls)
			}
		})
	}
}

// TestClientBundleUnderSudo: `sudo tlsdock provision --generate
// --client-out DIR` writes the bundle for SUDO_USER and prints the first
// --host, an absolute DOCKER_CERT_PATH and a docker context line.
func TestClientBundleUnderSudo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a bundle for another account")
	}
	t.Setenv("SUDO_USER", "nobody")
	h := newFakeHostCLI(t)
	home := filepath.Join(h.root, "home/nobody")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	t.Chdir(home)
	code, stdout, stderr := h.run("provision", "--generate", "--host", "tcp://127.0.0.1:12376", "--client-out", ".docker/myhost")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	dir := filepath.Join(home, ".docker/myhost")
	for _, want := range []string{
		"Client bundle: " + dir + "\n",
		"export DOCKER_HOST=tcp://127.0.0.1:12376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=" + dir + "\n",
		`docker context create 127.0.0.1 --docker "host=tcp://127.0.0.1:12376,ca=` + dir + "/ca.pem,cert=" + dir + "/cert.pem,key=" + dir + `/key.pem"` + "\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, stdout)
		}
	}
	for _, p := range []string{dir, dir + "/ca.pem", dir + "/cert.pem", dir + "/key.pem"} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s owned by %d:%d, want nobody's", p, st.Uid, st.Gid)
		}
	}
	if fi, _ := os.Lstat(dir + "/key.pem"); fi.Mode().Perm() != 0o400 {
		t.Errorf("key.pem mode %v", fi.Mode())
	}

	// certs client prints the same endpoint, from what was provisioned.
	code, stdout, stderr = h.run("certs", "client", "bob", "--out", filepath.Join(home, "bob"))
	if code != 0 {
		t.Fatalf("certs client: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "owned by nobody") || !strings.Contains(stdout, "DOCKER_HOST=tcp://127.0.0.1:12376 ") || !strings.Contains(stdout, `docker context create 127.0.0.1 --docker "host=tcp://127.0.0.1:12376,ca=`+home+"/bob/ca.pem,") {
		t.Errorf("certs client output:\n%s", stdout)
	}
}

// TestClientOwnerFromConfigFile: client-owner is a key of tlsdock.conf
// like client-out, so a provision driven by the file writes the bundle
// for that account too.
func TestClientOwnerFromConfigFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a bundle for another account")
	}
	t.Setenv("SUDO_USER", "")
	h := newFakeHostCLI(t)
	home := filepath.Join(h.root, "home/nobody")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "bundle")
	putFile(t, filepath.Join(h.root, "etc/tlsdock/tlsdock.conf"), "generate = true\nhost = tcp://127.0.0.1:12376\nclient-out = "+dir+"\nclient-owner = nobody\n")
	if code, stdout, stderr := h.run("provision"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, p := range []string{dir, dir + "/key.pem"} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 {
			t.Errorf("%s owned by uid %d, want nobody (client-owner in the file)", p, st.Uid)
		}
	}
}
