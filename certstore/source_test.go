package certstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobodyUID and nobodyGID are Debian's nobody:nogroup, the stand-in for a
// PKI agent's service user.
const nobodyUID, nobodyGID = 65534, 65534

func mustRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown to another account")
	}
}

func chown(t *testing.T, uid, gid int, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Lchown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// chmod takes octal modes as chmod(1) does: 0o1777 is sticky.
func chmod(t *testing.T, mode os.FileMode, paths ...string) {
	t.Helper()
	if mode&0o1000 != 0 {
		mode = mode&0o777 | os.ModeSticky
	}
	for _, p := range paths {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func mkdir(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	chmod(t, mode, p)
	return p
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// flatSource writes a set into base/certs (0755, files 0644, key 0600).
func flatSource(t *testing.T, base string, f fixture) string {
	t.Helper()
	dir := mkdir(t, filepath.Join(base, "certs"), 0o755)
	writeSet(t, dir, f)
	chmod(t, 0o644, filepath.Join(dir, CAFile), filepath.Join(dir, CertFile))
	return dir
}

// certbotSource is certbot's layout: base/live/host/NAME ->
// ../../archive/host/NAME1.pem.
func certbotSource(t *testing.T, base string, f fixture) string {
	t.Helper()
	archive := mkdir(t, filepath.Join(base, "archive", "host"), 0o700)
	live := mkdir(t, filepath.Join(base, "live", "host"), 0o755)
	for name, b := range map[string][]byte{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key} {
		gen := strings.TrimSuffix(name, ".pem") + "1.pem"
		if err := os.WriteFile(filepath.Join(archive, gen), b, 0o600); err != nil {
			t.Fatal(err)
		}
		symlink(t, "../../archive/host/"+gen, filepath.Join(live, name))
	}
	return live
}

// kubeSource is the atomic-writer layout: NAME -> ..data/NAME, ..data ->
// ..2026_11_01.
func kubeSource(t *testing.T, base string, f fixture) string {
	t.Helper()
	dir := mkdir(t, filepath.Join(base, "certs"), 0o755)
	gen := mkdir(t, filepath.Join(dir, "..2026_11_01"), 0o755)
	writeSet(t, gen, f)
	symlink(t, "..2026_11_01", filepath.Join(dir, "..data"))
	for _, n := range []string{CAFile, CertFile, KeyFile} {
		symlink(t, "..data/"+n, filepath.Join(dir, n))
	}
	return dir
}

func TestLoadSourceTrust(t *testing.T) {
	good, _ := goodFixture(t)
	nobody := &Account{Spec: "nobody", UID: nobodyUID, GID: nobodyGID}
	tests := []struct {
		name string
		root bool // needs chown
		// setup builds the source under base and returns its directory.
		setup func(t *testing.T, base string) string
		trust SourceTrust
		// want: "" loads; otherwise the error names this path (relative to
		// base) and contains the other strings.
		wantPath string
		want     []string
	}{
		{name: "flat, root's", setup: func(t *testing.T, b string) string { return flatSource(t, b, good) }},
		{name: "certbot layout, root's", setup: func(t *testing.T, b string) string { return certbotSource(t, b, good) }},
		{name: "kubernetes layout, root's", setup: func(t *testing.T, b string) string { return kubeSource(t, b, good) }},
		{name: "a sticky world-writable directory passed through (/tmp)", setup: func(t *testing.T, b string) string {
			mkdir(t, filepath.Join(b, "tmp"), 0o1777)
			return flatSource(t, filepath.Join(b, "tmp"), good)
		}},
		{name: "source directory owned by the PKI user", root: true, setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chown(t, nobodyUID, nobodyGID, d)
			return d
		}, wantPath: "certs", want: []string{"directory is not owned by root", "owner nobody (uid 65534)", "mode 0755", "chown root:root ", "&& chmod go-w ", "--allow-source-owner USER"}},
		{name: "source directory group-writable", setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chmod(t, 0o775, d)
			return d
		}, wantPath: "certs", want: []string{"directory is writable by its group", "mode 0775", "chmod go-w "}},
		{name: "source directory sticky and world-writable", setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chmod(t, 0o1777, d)
			return d
		}, wantPath: "certs", want: []string{"writable by its group and others (the sticky bit does not protect a source)", "mode 1777"}},
		{name: "parent of the source owned by the PKI user", root: true, setup: func(t *testing.T, b string) string {
			p := mkdir(t, filepath.Join(b, "pki"), 0o755)
			chown(t, nobodyUID, nobodyGID, p)
			return flatSource(t, p, good)
		}, wantPath: "pki", want: []string{"not owned by root", "nobody (uid 65534)", "on the way to "}},
		{name: "parent of the source world-writable without the sticky bit", setup: func(t *testing.T, b string) string {
			p := mkdir(t, filepath.Join(b, "pki"), 0o777)
			return flatSource(t, p, good)
		}, wantPath: "pki", want: []string{"writable by its group and others", "mode 0777"}},
		{name: "ca.pem owned by the PKI user", root: true, setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chown(t, nobodyUID, 0, filepath.Join(d, CAFile))
			return d
		}, wantPath: "certs/ca.pem", want: []string{"file is not owned by root", "nobody (uid 65534)", "chown root:root "}},
		{name: "server certificate world-writable", setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chmod(t, 0o666, filepath.Join(d, CertFile))
			return d
		}, wantPath: "certs/server-cert.pem", want: []string{"file is writable by its group and others", "mode 0666"}},
		{name: "key readable by group", setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chmod(t, 0o640, filepath.Join(d, KeyFile))
			return d
		}, wantPath: "certs/server-key.pem", want: []string{"key is readable by group or others", "mode 0640", "chmod 0600 "}},
		{name: "key readable by others", setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chmod(t, 0o604, filepath.Join(d, KeyFile))
			return d
		}, wantPath: "certs/server-key.pem", want: []string{"key is readable by group or others", "mode 0604"}},
		{name: "certbot archive owned by the PKI user", root: true, setup: func(t *testing.T, b string) string {
			d := certbotSource(t, b, good)
			chown(t, nobodyUID, nobodyGID, filepath.Join(b, "archive", "host"))
			return d
		}, wantPath: "archive/host", want: []string{"directory is not owned by root", "on the way to "}},
		{name: "certbot archive group-writable", setup: func(t *testing.T, b string) string {
			d := certbotSource(t, b, good)
			chmod(t, 0o770, filepath.Join(b, "archive", "host"))
			return d
		}, wantPath: "archive/host", want: []string{"writable by its group"}},
		{name: "a symlink on the way lives in a writable directory", setup: func(t *testing.T, b string) string {
			// certs/ca.pem -> ../links/ca.pem -> ../real/ca.pem: links/
			// is writable, so whoever writes it picks the CA.
			d := flatSource(t, b, good)
			real := mkdir(t, filepath.Join(b, "real"), 0o755)
			links := mkdir(t, filepath.Join(b, "links"), 0o755)
			if err := os.Rename(filepath.Join(d, CAFile), filepath.Join(real, CAFile)); err != nil {
				t.Fatal(err)
			}
			symlink(t, "../real/ca.pem", filepath.Join(links, CAFile))
			symlink(t, "../links/ca.pem", filepath.Join(d, CAFile))
			chmod(t, 0o1777, links)
			return d
		}, wantPath: "links", want: []string{"sticky bit does not protect a source", "on the way to "}},
		{name: "kubernetes generation directory writable", setup: func(t *testing.T, b string) string {
			d := kubeSource(t, b, good)
			chmod(t, 0o777, filepath.Join(d, "..2026_11_01"))
			return d
		}, wantPath: "certs/..2026_11_01", want: []string{"writable by its group and others"}},

		// --allow-source-owner nobody
		{name: "allowed owner writes the whole source", root: true, trust: SourceTrust{Owner: nobody}, setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chmod(t, 0o775, d)
			chmod(t, 0o664, filepath.Join(d, CAFile), filepath.Join(d, CertFile))
			chown(t, nobodyUID, nobodyGID, d, filepath.Join(d, CAFile), filepath.Join(d, CertFile), filepath.Join(d, KeyFile))
			return d
		}},
		{name: "allowed owner, another account's directory", root: true, trust: SourceTrust{Owner: nobody}, setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chown(t, 1, 1, d) // daemon
			return d
		}, wantPath: "certs", want: []string{"is owned neither by root nor by nobody", "uid 1"}},
		{name: "allowed owner, world-writable directory", root: true, trust: SourceTrust{Owner: nobody}, setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chown(t, nobodyUID, nobodyGID, d)
			chmod(t, 0o777, d)
			return d
		}, wantPath: "certs", want: []string{"writable by others", "mode 0777"}},
		{name: "allowed owner, group-writable by another group", root: true, trust: SourceTrust{Owner: nobody}, setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chown(t, nobodyUID, 1, d)
			chmod(t, 0o775, d)
			return d
		}, wantPath: "certs", want: []string{"writable by its group"}},
		{name: "allowed owner, group-readable key", root: true, trust: SourceTrust{Owner: nobody}, setup: func(t *testing.T, b string) string {
			d := flatSource(t, b, good)
			chown(t, nobodyUID, nobodyGID, d, filepath.Join(d, KeyFile))
			chmod(t, 0o640, filepath.Join(d, KeyFile))
			return d
		}, wantPath: "certs/server-key.pem", want: []string{"key is readable by group or others", "chmod 0600"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				mustRoot(t)
			}
			base := t.TempDir()
			dir := tt.setup(t, base)
			set, err := LoadSource(dir, tt.trust)
			checkErr := CheckSource(dir, tt.trust)
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("LoadSource: %v", err)
				}
				if checkErr != nil {
					t.Fatalf("CheckSource: %v", checkErr)
				}
				if set.Fingerprint() != fingerprint(good.ca, good.cert, good.key) {
					t.Error("LoadSource read different bytes")
				}
				return
			}
			for _, e := range []error{err, checkErr} {
				if !errors.Is(e, ErrUnsafeSource) {
					t.Fatalf("got %v, want an error wrapping ErrUnsafeSource", e)
				}
				wantPath := filepath.Join(base, tt.wantPath)
				if !strings.HasPrefix(e.Error(), wantPath+":") && !strings.HasPrefix(e.Error(), wantPath+" (") {
					t.Errorf("error does not start with %s:\n%v", wantPath, e)
				}
				wantErrContains(t, e, tt.want...)
				var ue *UnsafeSourceError
				if !errors.As(e, &ue) || ue.Path != wantPath {
					t.Errorf("UnsafeSourceError.Path = %+v, want %s", ue, wantPath)
				}
			}
		})
	}
}

// The checks do not get in the way of LoadDir's own errors.
func TestLoadSourceMissingAndBroken(t *testing.T) {
	good, _ := goodFixture(t)
	t.Run("missing file", func(t *testing.T) {
		d := flatSource(t, t.TempDir(), good)
		os.Remove(filepath.Join(d, KeyFile))
		_, err := LoadSource(d, SourceTrust{})
		if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrUnsafeSource) {
			t.Fatalf("got %v, want ErrNotExist", err)
		}
		wantErrContains(t, err, "server-key.pem", "put the PEM file there")
		if err := CheckSource(d, SourceTrust{}); err != nil {
			t.Errorf("CheckSource with a missing file: %v", err)
		}
	})
	t.Run("an empty sticky source directory is refused before files appear", func(t *testing.T) {
		d := mkdir(t, filepath.Join(t.TempDir(), "certs"), 0o1777)
		err := CheckSource(d, SourceTrust{})
		if !errors.Is(err, ErrUnsafeSource) {
			t.Fatalf("CheckSource = %v, want ErrUnsafeSource", err)
		}
		wantErrContains(t, err, d+": directory is writable", "sticky bit does not protect")
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := LoadSource(filepath.Join(t.TempDir(), "nope"), SourceTrust{})
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v, want ErrNotExist", err)
		}
	})
	t.Run("dangling symlink", func(t *testing.T) {
		d := flatSource(t, t.TempDir(), good)
		os.Remove(filepath.Join(d, CAFile))
		symlink(t, "gone.pem", filepath.Join(d, CAFile))
		_, err := LoadSource(d, SourceTrust{})
		wantErrContains(t, err, "dangling symlink")
	})
	t.Run("symlink loop", func(t *testing.T) {
		d := flatSource(t, t.TempDir(), good)
		os.Remove(filepath.Join(d, CAFile))
		symlink(t, "ca.pem", filepath.Join(d, CAFile))
		_, err := LoadSource(d, SourceTrust{})
		wantErrContains(t, err, "symlink loop")
	})
	t.Run("a FIFO", func(t *testing.T) {
		d := flatSource(t, t.TempDir(), good)
		os.Remove(filepath.Join(d, CAFile))
		if err := syscall.Mkfifo(filepath.Join(d, CAFile), 0o600); err != nil {
			t.Skip("mkfifo:", err)
		}
		_, err := LoadSource(d, SourceTrust{})
		wantErrContains(t, err, "is not a regular file")
	})
	t.Run("relative path", func(t *testing.T) {
		base := t.TempDir()
		flatSource(t, base, good)
		t.Chdir(base)
		if _, err := LoadSource("certs", SourceTrust{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseAccount(t *testing.T) {
	tests := []struct {
		spec     string
		uid, gid uint32
		err      string
	}{
		{spec: "nobody", uid: 65534, gid: 65534},
		{spec: "nobody:daemon", uid: 65534, gid: 1},
		{spec: "daemon", uid: 1, gid: 1},
		{spec: "4242", uid: 4242, gid: 4242},
		{spec: "4242:4243", uid: 4242, gid: 4243},
		{spec: "root", err: "is root, which may always write a source"},
		{spec: "0", err: "is root"},
		{spec: "nobody:root", err: "group root (gid 0) cannot be allowed"},
		{spec: "no-such-user-x", err: `user "no-such-user-x"`},
		{spec: "nobody:no-such-group-x", err: `group "no-such-group-x"`},
		{spec: "", err: "is not USER or USER:GROUP"},
		{spec: "nobody:", err: "is not USER or USER:GROUP"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			a, err := ParseAccount(tt.spec)
			if tt.err != "" {
				wantErrContains(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.UID != tt.uid || a.GID != tt.gid || a.Spec != tt.spec {
				t.Errorf("ParseAccount(%q) = %+v, want uid %d gid %d", tt.spec, a, tt.uid, tt.gid)
			}
		})
	}
}
