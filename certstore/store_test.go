package certstore

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mustParse(t *testing.T, f fixture) *Set {
	t.Helper()
	s, err := ParseSet(f.ca, f.cert, f.key, SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newSet(t *testing.T) *Set {
	t.Helper()
	f, _ := goodFixture(t)
	return mustParse(t, f)
}

func lstat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	return lstat(t, p).Sys().(*syscall.Stat_t).Ino
}

func readlink(t *testing.T, p string) string {
	t.Helper()
	target, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// generations lists the generation directories in dir.
func generations(t *testing.T, dir string) []string {
	t.Helper()
	var gens []string
	for _, n := range listDir(t, dir) {
		if strings.HasPrefix(n, GenerationPrefix) {
			gens = append(gens, n)
		}
	}
	return gens
}

// checkInstalled asserts the full layout of an installed set.
func checkInstalled(t *testing.T, st Store, want *Set) {
	t.Helper()
	gen := readlink(t, filepath.Join(st.Dir, dataLink))
	if !strings.HasPrefix(gen, GenerationPrefix) || strings.Contains(gen, "/") {
		t.Fatalf("..data -> %q, want a relative %s* name", gen, GenerationPrefix)
	}
	if gens := generations(t, st.Dir); !slices.Equal(gens, []string{gen}) {
		t.Errorf("generation directories = %v, want only %q", gens, gen)
	}
	assertOnlyEntries(t, st.Dir, dataLink, gen, CAFile, KeyFile, CertFile)
	if fi := lstat(t, filepath.Join(st.Dir, gen)); !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("generation dir mode = %v, want drwxr-xr-x", fi.Mode())
	}
	contents := map[string][]byte{CAFile: want.CAPEM, CertFile: want.CertPEM, KeyFile: want.KeyPEM}
	for _, f := range storeFiles {
		link := filepath.Join(st.Dir, f.name)
		if got := readlink(t, link); got != "..data/"+f.name {
			t.Errorf("%s -> %q, want %q", f.name, got, "..data/"+f.name)
		}
		fi := lstat(t, filepath.Join(st.Dir, gen, f.name))
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != f.mode {
			t.Errorf("%s mode = %v, want regular %v", f.name, fi.Mode(), f.mode)
		}
		if os.Geteuid() == 0 {
			if s := fi.Sys().(*syscall.Stat_t); s.Uid != 0 || s.Gid != 0 {
				t.Errorf("%s owner = %d:%d, want 0:0", f.name, s.Uid, s.Gid)
			}
		}
		sfi, err := os.Stat(link)
		if err != nil || sfi.Mode().Perm() != f.mode {
			t.Errorf("%s through the link: mode %v, err %v; want %v", f.name, sfi.Mode(), err, f.mode)
		}
		b, err := os.ReadFile(link)
		if err != nil || !bytes.Equal(b, contents[f.name]) {
			t.Errorf("%s through the link does not hold the installed bytes (err %v)", f.name, err)
		}
	}
	assertOnlyEntries(t, filepath.Join(st.Dir, gen), CAFile, KeyFile, CertFile)
	loaded, err := st.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if loaded.Fingerprint() != want.Fingerprint() {
		t.Error("Load returned another set")
	}
	if fp, err := st.Fingerprint(); err != nil || fp != want.Fingerprint() {
		t.Errorf("Store.Fingerprint = %q, %v; want %q", fp, err, want.Fingerprint())
	}
}

func TestStorePaths(t *testing.T) {
	ca, cert, key := Store{Dir: "/etc/docker/ssl"}.Paths()
	if ca != "/etc/docker/ssl/..data/ca.pem" || cert != "/etc/docker/ssl/..data/server-cert.pem" || key != "/etc/docker/ssl/..data/server-key.pem" {
		t.Errorf("Paths = %q, %q, %q", ca, cert, key)
	}
	ca, cert, key = Store{Dir: "/etc/docker/ssl"}.LinkPaths()
	if ca != "/etc/docker/ssl/ca.pem" || cert != "/etc/docker/ssl/server-cert.pem" || key != "/etc/docker/ssl/server-key.pem" {
		t.Errorf("LinkPaths = %q, %q, %q", ca, cert, key)
	}
}

func TestStoreEmpty(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s, err := st.Load()
	if s != nil || err != nil {
		t.Errorf("Load = %v, %v; want nil, nil", s, err)
	}
	fp, err := st.Fingerprint()
	if fp != "" || err != nil {
		t.Errorf("Fingerprint = %q, %v; want \"\", nil", fp, err)
	}
}

func TestInstallFresh(t *testing.T) {
	st := Store{Dir: filepath.Join(t.TempDir(), "ssl")}
	set := newSet(t)
	changed, err := st.Install(set)
	if err != nil || !changed {
		t.Fatalf("Install = %v, %v; want true, nil", changed, err)
	}
	if fi := lstat(t, st.Dir); !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("created Dir mode = %v, want drwxr-xr-x", fi.Mode())
	}
	checkInstalled(t, st, set)
	loaded, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(st.Dir, KeyFile); loaded.Names.Key != want {
		t.Errorf("loaded Names.Key = %q, want %q", loaded.Names.Key, want)
	}
}

func TestInstallIdempotent(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	set := newSet(t)
	if _, err := st.Install(set); err != nil {
		t.Fatal(err)
	}
	gen := readlink(t, filepath.Join(st.Dir, dataLink))
	// Age every file and directory; a rewrite would give it a new mtime.
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	paths := []string{st.Dir, filepath.Join(st.Dir, gen)}
	for _, f := range storeFiles {
		paths = append(paths, filepath.Join(st.Dir, gen, f.name))
	}
	for _, p := range paths {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	inodes := map[string]uint64{}
	for _, n := range []string{dataLink, CAFile, CertFile, KeyFile} {
		inodes[n] = ino(t, filepath.Join(st.Dir, n))
	}

	// Same bytes, parsed again with other names: still the same set.
	again, err := ParseSet(set.CAPEM, set.CertPEM, set.KeyPEM, SetNames{CA: "/src/a", Cert: "/src/b", Key: "/src/c"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		changed, err := st.Install(again)
		if err != nil || changed {
			t.Fatalf("Install #%d = %v, %v; want false, nil", i+2, changed, err)
		}
	}
	for _, p := range paths {
		if mt := lstat(t, p).ModTime(); !mt.Equal(old) {
			t.Errorf("%s was touched: mtime %v", p, mt)
		}
	}
	for n, want := range inodes {
		if got := ino(t, filepath.Join(st.Dir, n)); got != want {
			t.Errorf("%s was replaced (inode %d -> %d)", n, want, got)
		}
	}
	checkInstalled(t, st, set)
}

func TestInstallRotate(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	a, b := newSet(t), newSet(t)
	if _, err := st.Install(a); err != nil {
		t.Fatal(err)
	}
	genA := readlink(t, filepath.Join(st.Dir, dataLink))
	linkIno := ino(t, filepath.Join(st.Dir, KeyFile))

	changed, err := st.Install(b)
	if err != nil || !changed {
		t.Fatalf("Install = %v, %v; want true, nil", changed, err)
	}
	genB := readlink(t, filepath.Join(st.Dir, dataLink))
	if genB == genA {
		t.Fatalf("..data still points at %s", genA)
	}
	if _, err := os.Lstat(filepath.Join(st.Dir, genA)); !os.IsNotExist(err) {
		t.Errorf("old generation %s was not removed: %v", genA, err)
	}
	if got := ino(t, filepath.Join(st.Dir, KeyFile)); got != linkIno {
		t.Error("the stable symlink was recreated; it should be created once")
	}
	checkInstalled(t, st, b)

	// And back: a previous set is a new generation again.
	if changed, err := st.Install(a); err != nil || !changed {
		t.Fatalf("Install back = %v, %v", changed, err)
	}
	checkInstalled(t, st, a)
}

func TestInstallOverLegacyFiles(t *testing.T) {
	dir := t.TempDir()
	legacy, _ := goodFixture(t)
	writeSet(t, dir, legacy)
	// Unrelated entries, including a Kubernetes-style generation, are kept.
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "..2019_01_01"), 0o755); err != nil {
		t.Fatal(err)
	}
	st := Store{Dir: dir}
	set := newSet(t)
	changed, err := st.Install(set)
	if err != nil || !changed {
		t.Fatalf("Install = %v, %v; want true, nil", changed, err)
	}
	gen := readlink(t, filepath.Join(dir, dataLink))
	assertOnlyEntries(t, dir, dataLink, "..2019_01_01", gen, "README", CAFile, KeyFile, CertFile)
	for _, f := range storeFiles {
		if got := readlink(t, filepath.Join(dir, f.name)); got != "..data/"+f.name {
			t.Errorf("%s -> %q", f.name, got)
		}
	}
	loaded, err := st.Load()
	if err != nil || loaded.Fingerprint() != set.Fingerprint() {
		t.Fatalf("Load after install: %v", err)
	}
}

func TestInstallRepairsModes(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	set := newSet(t)
	if _, err := st.Install(set); err != nil {
		t.Fatal(err)
	}
	gen := readlink(t, filepath.Join(st.Dir, dataLink))
	if err := os.Chmod(filepath.Join(st.Dir, gen, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := st.Install(set)
	if err != nil || !changed {
		t.Fatalf("Install over a world-readable key = %v, %v; want true, nil", changed, err)
	}
	checkInstalled(t, st, set)
}

// observe is what a reader (dockerd starting) would see through the stable
// paths: the fingerprint of the three files, "" when ca.pem is missing, or an
// error text.
func observe(st Store) string {
	fp, err := st.Fingerprint()
	if err != nil {
		return "error: " + err.Error()
	}
	return fp
}

func TestInstallNeverMixesGenerations(t *testing.T) {
	a, b, c := newSet(t), newSet(t), newSet(t)
	tests := []struct {
		name      string
		prepare   func(t *testing.T, st Store)
		minSteps  int
		wantSteps []string // step kinds in order
	}{
		{"fresh directory", func(t *testing.T, st Store) {}, 0, nil},
		{"legacy regular files", func(t *testing.T, st Store) {
			writeSet(t, st.Dir, fixture{a.CAPEM, a.CertPEM, a.KeyPEM})
		}, 0, []string{"write", "swap", "link", "link", "link", "write", "swap", "cleanup"}},
		{"installed set", func(t *testing.T, st Store) {
			if _, err := st.Install(a); err != nil {
				t.Fatal(err)
			}
		}, 0, []string{"write", "swap", "cleanup"}},
		{"installed set with a hand-replaced cert and key", func(t *testing.T, st Store) {
			if _, err := st.Install(a); err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string][]byte{CertFile: c.CertPEM, KeyFile: c.KeyPEM} {
				p := filepath.Join(st.Dir, name)
				os.Remove(p)
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, 0, []string{"write", "swap", "link", "link", "write", "swap", "cleanup"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := Store{Dir: t.TempDir()}
			tc.prepare(t, st)
			initial := observe(st)
			if strings.HasPrefix(initial, "error") {
				t.Fatalf("initial state: %s", initial)
			}
			final := b.Fingerprint()
			var steps []string
			afterStep = func(step string) {
				kind, _, _ := strings.Cut(step, " ")
				steps = append(steps, kind)
				if got := observe(st); got != initial && got != final {
					t.Errorf("after step %q a reader sees a mixed set: %s", step, got)
				}
			}
			t.Cleanup(func() { afterStep = func(string) {} })
			if _, err := st.Install(b); err != nil {
				t.Fatal(err)
			}
			if tc.wantSteps != nil && !slices.Equal(steps, tc.wantSteps) {
				t.Errorf("steps = %v, want %v", steps, tc.wantSteps)
			}
			if len(steps) < 3 {
				t.Errorf("only %d steps observed: %v", len(steps), steps)
			}
			if got := observe(st); got != final {
				t.Errorf("final state %s, want the new set", got)
			}
			checkInstalled(t, st, b)
		})
	}
}

func TestInstallRefuses(t *testing.T) {
	set := newSet(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, root string) Store
		set     *Set
		want    []string
	}{
		{"dir is a symlink", func(t *testing.T, root string) Store {
			real := filepath.Join(root, "real")
			if err := os.Mkdir(real, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, filepath.Join(root, "ssl")); err != nil {
				t.Fatal(err)
			}
			return Store{Dir: filepath.Join(root, "ssl")}
		}, set, []string{"ssl: it is a symlink", "real directory"}},
		{"dir is a file", func(t *testing.T, root string) Store {
			if err := os.WriteFile(filepath.Join(root, "ssl"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return Store{Dir: filepath.Join(root, "ssl")}
		}, set, []string{"ssl: it is not a directory"}},
		{"dir writable by others", func(t *testing.T, root string) Store {
			d := filepath.Join(root, "ssl")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
			return Store{Dir: d}
		}, set, []string{"writable by group or others", "chmod 0755"}},
		{"..data is a directory", func(t *testing.T, root string) Store {
			if err := os.Mkdir(filepath.Join(root, dataLink), 0o755); err != nil {
				t.Fatal(err)
			}
			return Store{Dir: root}
		}, set, []string{"..data exists and is not a symlink", "remove it"}},
		{"stable path is a directory", func(t *testing.T, root string) Store {
			if err := os.Mkdir(filepath.Join(root, KeyFile), 0o755); err != nil {
				t.Fatal(err)
			}
			return Store{Dir: root}
		}, set, []string{"server-key.pem is a directory", "remove it"}},
		{"incomplete set", func(t *testing.T, root string) Store { return Store{Dir: root} },
			&Set{CAPEM: set.CAPEM}, []string{"incomplete"}},
		{"no directory", func(t *testing.T, root string) Store { return Store{} }, set, []string{"no directory given"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			st := tc.prepare(t, root)
			changed, err := st.Install(tc.set)
			if changed {
				t.Error("changed = true")
			}
			wantErrContains(t, err, tc.want...)
			if st.Dir != "" {
				if fi, err := os.Lstat(st.Dir); err == nil && fi.IsDir() {
					if gens := generations(t, st.Dir); len(gens) != 0 {
						t.Errorf("left generation directories behind: %v", gens)
					}
				}
			}
		})
	}
}

func TestInstallNeverFollowsPlantedGeneration(t *testing.T) {
	root := t.TempDir()
	st := Store{Dir: filepath.Join(root, "ssl")}
	outside := filepath.Join(root, "outside")
	for _, d := range []string{st.Dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	planted := filepath.Join(st.Dir, GenerationPrefix+"fixed")
	if err := os.Symlink(outside, planted); err != nil {
		t.Fatal(err)
	}
	orig := randomSuffix
	randomSuffix = func() (string, error) { return "fixed", nil }
	t.Cleanup(func() { randomSuffix = orig })

	_, err := st.Install(newSet(t))
	wantErrContains(t, err, "creating generation directory", "file exists")
	if got := listDir(t, outside); len(got) != 0 {
		t.Errorf("wrote through the planted symlink: %v", got)
	}
	if got := readlink(t, planted); got != outside {
		t.Errorf("planted symlink changed to %q", got)
	}

	// With a fresh name, Install works, and leaves the foreign symlink alone.
	n := 0
	randomSuffix = func() (string, error) { n++; return fmt.Sprintf("gen%d", n), nil }
	set := newSet(t)
	if _, err := st.Install(set); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Install(newSet(t)); err != nil {
		t.Fatal(err)
	}
	if got := readlink(t, planted); got != outside {
		t.Errorf("planted symlink changed to %q", got)
	}
	if got := listDir(t, outside); len(got) != 0 {
		t.Errorf("cleanup went through the planted symlink: %v", got)
	}
}

func TestRemoveLeavesForeignFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ssl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "registry-ca.pem"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := Store{Dir: dir}
	set := newSet(t)
	if _, err := st.Install(set); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "registry-ca.pem" {
		t.Fatalf("left %q, want only registry-ca.pem", names)
	}
	if got, _ := st.Load(); got != nil {
		t.Fatal("Load still finds a set after Remove")
	}
}

func TestNewCASaveRefusesOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := NewCA(ECDSAP256, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("NewCA wrote to disk")
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadCA after Save: %v", err)
	}
	other, _ := NewCA(ECDSAP256, now, nil)
	if err := other.Save(dir); err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Fatalf("second Save: %v", err)
	}
	if KeyTypeOf(ca.Key) != ECDSAP256 {
		t.Fatalf("KeyTypeOf = %q", KeyTypeOf(ca.Key))
	}
}

func TestCleanupRemovesWhatAKilledInstallLeft(t *testing.T) {
	st := Store{Dir: filepath.Join(t.TempDir(), "ssl")}
	if err := os.MkdirAll(st.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir, "registry-ca.pem"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	set := newSet(t)
	if _, err := st.Install(set); err != nil {
		t.Fatal(err)
	}
	before := listDir(t, st.Dir)
	current := readlink(t, filepath.Join(st.Dir, dataLink))

	// What a kill while the next set's key is written leaves (a SIGKILL
	// runs no deferred cleanup): a half-written generation holding the
	// new CA and a temporary copy of the key.
	dead := filepath.Join(st.Dir, GenerationPrefix+"dead")
	if err := os.Mkdir(dead, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{CAFile: "ca", TempPrefix + KeyFile + ".0123": "key"} {
		if err := os.WriteFile(filepath.Join(dead, name), []byte(body), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	killInWrite(t, filepath.Join(st.Dir, current, CAFile), []byte("x"), 0o444)
	if len(listDir(t, st.Dir)) == len(before) {
		t.Fatal("the killed install left nothing behind; the test does not test anything")
	}

	removed, err := st.Cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %q, want the half-written generation and the temporary file", removed)
	}
	if got := listDir(t, st.Dir); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Errorf("after Cleanup %s holds %v, want %v", st.Dir, got, before)
	}
	assertOnlyEntries(t, filepath.Join(st.Dir, current), CAFile, CertFile, KeyFile)
	if got, err := st.Load(); err != nil || got.Fingerprint() != set.Fingerprint() {
		t.Fatalf("the installed set changed: %v", err)
	}
}

// TestInstallIntermediateFirst: a source whose server certificate file
// starts with an intermediate is installed leaf first (dockerd takes the
// first certificate of tlscert as its own), the source file stays as it
// is, and the source read again is the installed set: Install changes
// nothing the second time, and Load and Fingerprint agree with it.
func TestInstallIntermediateFirst(t *testing.T) {
	root := newRoot(t, "Root")
	ik := ecKey(t)
	inter := sign(t, caTemplate("Intermediate"), ik.Public(), &root, ik)
	k := ecKey(t)
	leaf := sign(t, leafTemplate("srv"), k.Public(), &inter, k)
	src := t.TempDir()
	source := cat(inter.pem, leaf.pem)
	for name, data := range map[string][]byte{"ca.crt": root.pem, "chain.crt": source, "tls.key": pkcs8(t, k)} {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	names := SourceNames{CA: "ca.crt", Cert: "chain.crt", Key: "tls.key"}.Paths(src)
	read := func() *Set {
		t.Helper()
		s, err := LoadSourceFiles(names, SourceTrust{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	set := read()
	st := Store{Dir: t.TempDir()}
	if changed, err := st.Install(set); err != nil || !changed {
		t.Fatalf("Install = %v, %v", changed, err)
	}
	_, certPath, keyPath := st.Paths()
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Errorf("dockerd would not load the installed pair: %v", err)
	}
	if got, err := os.ReadFile(certPath); err != nil || !bytes.Equal(got, cat(leaf.pem, inter.pem)) {
		t.Errorf("installed %s =\n%s\nwant the leaf, then the intermediate (%v)", CertFile, got, err)
	}
	if got, err := os.ReadFile(names.Cert); err != nil || !bytes.Equal(got, source) {
		t.Errorf("the source file was changed (%v)", err)
	}
	again := read()
	if changed, err := st.Install(again); err != nil || changed {
		t.Errorf("Install of the source read again = %v, %v; want false, nil", changed, err)
	}
	loaded, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	fp, err := st.Fingerprint()
	if err != nil || loaded.Fingerprint() != again.Fingerprint() || fp != again.Fingerprint() {
		t.Errorf("the installed set's fingerprint (Load %s, Store.Fingerprint %s, %v) is not the source's (%s)", loaded.Fingerprint(), fp, err, again.Fingerprint())
	}
}
