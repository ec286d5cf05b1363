package certstore

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// cisStat is what docker-bench-security's checks 3.9 to 3.14 read of a
// configured TLS path: `[ -f PATH ]` (which follows symlinks) and then
// `stat -c %u%g` and `stat -c %a` (which do not: a symlink reads 777).
func cisStat(t *testing.T, p string) (isFile bool, owner string, perm string) {
	t.Helper()
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return false, "", ""
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := fi.Sys().(*syscall.Stat_t)
	return true, fmt.Sprintf("%d%d", s.Uid, s.Gid), fmt.Sprintf("%o", fi.Mode().Perm())
}

// checkCIS asserts that the paths dockerd is configured with pass CIS
// 3.9-3.14: regular files, root:root (when running as root), the CA and
// the certificate 444 or stricter, the key exactly 400.
func checkCIS(t *testing.T, st Store) {
	t.Helper()
	ca, cert, key := st.Paths()
	for _, c := range []struct {
		path, want string
	}{{ca, "444"}, {cert, "444"}, {key, "400"}} {
		isFile, owner, perm := cisStat(t, c.path)
		if !isFile {
			t.Errorf("%s: not a file as `[ -f ]` sees it", c.path)
			continue
		}
		if os.Geteuid() == 0 && owner != "00" {
			t.Errorf("%s: stat -c %%u%%g = %s, want 00 (CIS 3.9, 3.11, 3.13)", c.path, owner)
		}
		if perm != c.want {
			t.Errorf("%s: stat -c %%a = %s, want %s (CIS 3.10, 3.12, 3.14)", c.path, perm, c.want)
		}
		if fi, err := os.Lstat(c.path); err == nil && !fi.Mode().IsRegular() {
			t.Errorf("%s: %v, want a regular file", c.path, fi.Mode())
		}
	}
}

func TestPathsPassCIS(t *testing.T) {
	st := Store{Dir: filepath.Join(t.TempDir(), "ssl")}
	a, b := newSet(t), newSet(t)
	if _, err := st.Install(a); err != nil {
		t.Fatal(err)
	}
	checkCIS(t, st)
	// A rotation keeps them passing, and the configured paths now read
	// the new set.
	if _, err := st.Install(b); err != nil {
		t.Fatal(err)
	}
	checkCIS(t, st)
	ca, cert, key := st.Paths()
	for p, want := range map[string][]byte{ca: b.CAPEM, cert: b.CertPEM, key: b.KeyPEM} {
		if got, err := os.ReadFile(p); err != nil || string(got) != string(want) {
			t.Errorf("%s does not hold the rotated set (err %v)", p, err)
		}
	}
}

// TestPathsNeverMixGenerations: a reader of the configured paths (dockerd
// starting) sees the old set or the new one after every step of Install,
// never a certificate of one generation with the key of another.
func TestPathsNeverMixGenerations(t *testing.T) {
	a, b := newSet(t), newSet(t)
	st := Store{Dir: t.TempDir()}
	read := func() string {
		ca, cert, key := st.Paths()
		var data [3][]byte
		for i, p := range []string{ca, cert, key} {
			d, err := os.ReadFile(p)
			if err != nil {
				return "error: " + err.Error()
			}
			data[i] = d
		}
		return fingerprint(data[0], data[1], data[2])
	}
	if _, err := st.Install(a); err != nil {
		t.Fatal(err)
	}
	initial, final := a.Fingerprint(), b.Fingerprint()
	if got := read(); got != initial {
		t.Fatalf("the configured paths read %s, want the installed set", got)
	}
	steps := 0
	afterStep = func(step string) {
		steps++
		if got := read(); got != initial && got != final {
			t.Errorf("after step %q the configured paths read a mixed set: %s", step, got)
		}
	}
	t.Cleanup(func() { afterStep = func(string) {} })
	if _, err := st.Install(b); err != nil {
		t.Fatal(err)
	}
	if steps < 3 {
		t.Errorf("only %d steps observed", steps)
	}
	if got := read(); got != final {
		t.Errorf("the configured paths read %s after Install, want the new set", got)
	}
}
