package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fullDisk is the audit file on a disk that is full while full is set:
// writes fail with ENOSPC (after taking part of the first line, as the
// kernel does when the last block fills).
type fullDisk struct {
	auditFile
	full bool
}

func (d *fullDisk) Write(p []byte) (int, error) {
	if d.full {
		n := min(len(p), 10)
		d.auditFile.Write(p[:n])
		d.full = true
		return n, syscall.ENOSPC
	}
	return d.auditFile.Write(p)
}

// TestAuditLogSurvivesAFullDisk: records buffered when the disk fills
// are not lost, the file takes records again once there is space (without
// waiting for a SIGHUP), and while it cannot, Write refuses records past
// a bound so the caller sends them to the journal.
func TestAuditLogSurvivesAFullDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	hook := &flushHook{}
	a := openTestAudit(t, path, AuditLogOptions{AfterFunc: hook.after, MaxSize: -1})
	disk := &fullDisk{auditFile: a.f}
	a.f = disk
	for _, p := range []string{"/a", "/b", "/c"} {
		if err := a.Write(rec(p)); err != nil {
			t.Fatal(err)
		}
	}
	disk.full = true
	hook.fire() // the flush fails: the disk is full
	disk.full = false
	hook.fire() // space again: the timer retries
	if err := a.Write(rec("/d")); err != nil {
		t.Fatalf("Write after the disk has space again: %v", err)
	}
	hook.fire()
	got := readLines(t, path)
	if len(got) != 4 || got[0].Path != "/a" || got[3].Path != "/d" {
		t.Fatalf("after a full disk: %d records %+v, want /a /b /c /d", len(got), got)
	}

	// A disk that stays full: Write refuses once the records held reach
	// the bound, so that none is lost silently.
	disk.full = true
	refused := false
	for i := 0; i < auditMaxPending/100 && !refused; i++ {
		refused = a.Write(rec("/e")) != nil
	}
	if !refused {
		t.Fatal("Write never refuses a record while the disk stays full")
	}
}

// TestAuditLogRefusesADirectoryOthersCanWrite: whoever can write the
// audit log's directory can create the file before tlsdock does and keep
// it open (forging records after the chown to root), or remove records.
// Such a directory is refused, at the start and at every reopen.
func TestAuditLogRefusesADirectoryOthersCanWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int
	}{
		{"group-writable", 0o770, -1},
		{"world-writable and sticky", 0o777 | os.ModeSticky, -1},
		{"owned by another account", 0o755, 4242},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "audit.jsonl")
			a := openTestAudit(t, path, AuditLogOptions{})
			if tc.owner >= 0 {
				if os.Geteuid() != 0 {
					t.Skip("needs root to chown")
				}
				if err := os.Chown(dir, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenAuditLog(path, AuditLogOptions{Logger: a.log}); err == nil || !strings.Contains(err.Error(), "chmod go-w") {
				t.Fatalf("OpenAuditLog in a %s directory: %v", tc.name, err)
			}
			if err := a.Reopen(); err == nil {
				t.Fatalf("Reopen in a %s directory succeeded", tc.name)
			}
			if err := a.Write(rec("/x")); err == nil {
				t.Fatal("a record went into the unsafe directory")
			}
		})
	}
}
