package certstore

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	// A restrictive umask must not change the result: the mode is exact.
	old := syscall.Umask(0o277)
	t.Cleanup(func() { syscall.Umask(old) })

	tests := []struct {
		name     string
		existing func(t *testing.T, path string)
		mode     os.FileMode
	}{
		{"new key file", nil, 0o400},
		{"new certificate", nil, 0o444},
		{"new config", nil, 0o644},
		{"replaces a world-readable key", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, 0o400},
		{"replaces a read-only file", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("old"), 0o400); err != nil {
				t.Fatal(err)
			}
		}, 0o444},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "server-key.pem")
			if tc.existing != nil {
				tc.existing(t, p)
			}
			data := []byte("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
			if err := WriteFileAtomic(p, data, tc.mode); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != tc.mode {
				t.Errorf("mode = %v, want regular %v", fi.Mode(), tc.mode)
			}
			if os.Geteuid() == 0 {
				if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
					t.Errorf("owner = %d:%d, want 0:0", st.Uid, st.Gid)
				}
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("content = %q, want %q", got, data)
			}
			assertOnlyEntries(t, dir, "server-key.pem")
		})
	}
}

func TestWriteFileAtomicTempMode(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	var seen []os.FileMode
	afterTempCreate = func(tmp string) {
		fi, err := os.Lstat(tmp)
		if err != nil {
			t.Errorf("temporary file: %v", err)
			return
		}
		seen = append(seen, fi.Mode())
	}
	t.Cleanup(func() { afterTempCreate = func(string) {} })

	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o400, 0o444} {
		if err := WriteFileAtomic(filepath.Join(dir, "f"), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 2 || seen[0] != 0o400 || seen[1] != 0o444 {
		t.Errorf("temporary files were created with modes %v, want [-r-------- -r--r--r--]", seen)
	}
	assertOnlyEntries(t, dir, "f")
}

func TestWriteFileAtomicRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir, path string)
		want    []string
	}{
		{"symlink", func(t *testing.T, dir, p string) {
			if err := os.WriteFile(filepath.Join(dir, "victim"), []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("victim", p); err != nil {
				t.Fatal(err)
			}
		}, []string{"is a symlink", "remove it"}},
		{"dangling symlink", func(t *testing.T, dir, p string) {
			if err := os.Symlink(filepath.Join(dir, "nowhere"), p); err != nil {
				t.Fatal(err)
			}
		}, []string{"is a symlink", "remove it"}},
		{"directory", func(t *testing.T, dir, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, []string{"is not a regular file", "remove it"}},
		{"fifo", func(t *testing.T, dir, p string) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skip("mkfifo:", err)
			}
		}, []string{"is not a regular file", "remove it"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "daemon.json")
			tc.prepare(t, dir, p)
			before := listDir(t, dir)
			err := WriteFileAtomic(p, []byte("{}"), 0o644)
			wantErrContains(t, err, append(tc.want, p)...)
			if after := listDir(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("directory changed: %v -> %v", before, after)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "victim")); err == nil && string(b) != "keep" {
				t.Errorf("symlink target was written: %q", b)
			}
		})
	}
}

func TestWriteFileAtomicNoParent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "missing", "file")
	if err := WriteFileAtomic(p, []byte("x"), 0o644); err == nil {
		t.Fatal("no error for a missing parent directory")
	}
	if _, err := os.Lstat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("parent directory was created: %v", err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func assertOnlyEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := listDir(t, dir); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %v, want exactly %v (no temporary files)", dir, got, want)
	}
}

// killInWrite runs WriteFileAtomic and "kills" it right after it created
// its temporary file, as a SIGKILL there would: the temporary file stays.
func killInWrite(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	afterTempCreate = func(string) { panic("killed") }
	defer func() {
		afterTempCreate = func(string) {}
		if recover() == nil {
			t.Fatal("the write was not killed")
		}
	}()
	_ = WriteFileAtomic(path, data, mode)
}

func TestRemoveTempsRemovesOnlyTlsdocksLeftovers(t *testing.T) {
	dir := t.TempDir()
	killInWrite(t, filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644)
	var leftover string
	for _, name := range listDir(t, dir) {
		leftover = name
	}
	if !strings.HasPrefix(leftover, TempPrefix+"daemon.json.") {
		t.Fatalf("a killed write left %q, want a name starting with %q", listDir(t, dir), TempPrefix+"daemon.json.")
	}
	// An older tlsdock's leftover, and what is not tlsdock's.
	for name, body := range map[string]string{
		".daemon.json.tmp-0123456789abcdef": "old tlsdock",
		".notes.tmp-0123456789abcdef":       "someone else's",
		".daemon.json.tmp-backup":           "someone else's",
		"daemon.json":                       "{}",
		"tlsdock-tmp.x":                     "someone else's",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("daemon.json", filepath.Join(dir, TempPrefix+"link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, TempPrefix+"dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveTemps(dir, "daemon.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %q, want the two temporary files of tlsdock", removed)
	}
	assertOnlyEntries(t, dir, ".daemon.json.tmp-backup", ".notes.tmp-0123456789abcdef", TempPrefix+"dir", TempPrefix+"link", "daemon.json", "tlsdock-tmp.x")
	if removed, err := RemoveTemps(filepath.Join(dir, "missing")); err != nil || len(removed) != 0 {
		t.Errorf("a missing directory: %q, %v", removed, err)
	}
}
