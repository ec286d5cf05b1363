package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// readAll reads every record of path and its rotated files PATH.1 ...
// PATH.keep, checking that each line is one whole JSON record ending in a
// newline (none torn or interleaved).
func readAllRotated(t *testing.T, path string, keep int) []AuditRecord {
	t.Helper()
	var out []AuditRecord
	for i := keep; i >= 0; i-- {
		p := path
		if i > 0 {
			p = fmt.Sprintf("%s.%d", path, i)
		}
		data, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Fatalf("%s does not end in a newline: a torn record %q", p, data[max(0, len(data)-80):])
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if line == "" {
				continue
			}
			var r AuditRecord
			dec := json.NewDecoder(strings.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil || dec.More() {
				t.Fatalf("%s: line %.120q is not one record: %v", p, line, err)
			}
			out = append(out, r)
		}
	}
	return out
}

// checkEveryRecord fails unless recs hold each of want exactly once.
func checkEveryRecord(t *testing.T, recs []AuditRecord, want map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.Path]++
	}
	missing, dup := 0, 0
	for p := range want {
		switch seen[p] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing > 0 || dup > 0 || len(recs) != len(want) {
		t.Fatalf("%d records for %d requests: %d missing, %d more than once", len(recs), len(want), missing, dup)
	}
}

// TestAuditLogBurstIsComplete: a burst of records from many goroutines,
// far beyond the buffer and across several size rotations, with the flush
// timer never firing: after Close every record is in the files exactly
// once, each line whole.
func TestAuditLogBurstIsComplete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxSize int64
	}{
		{"no rotation", -1},
		{"rotating", 256 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			hook := &flushHook{} // never fired: only the buffer limit and Close write
			const keep = 100
			a := openTestAudit(t, path, AuditLogOptions{AfterFunc: hook.after, MaxSize: tc.maxSize, Keep: keep})
			const writers, each = 16, 400
			want := map[string]bool{}
			for w := range writers {
				for i := range each {
					want[fmt.Sprintf("/w%d/r%d", w, i)] = true
				}
			}
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						r := rec(fmt.Sprintf("/w%d/r%d", w, i))
						r.Error = strings.Repeat("x", i%300) // lines of many lengths
						if err := a.Write(r); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			checkEveryRecord(t, readAllRotated(t, path, keep), want)
		})
	}
}

// TestProxyAuditCompleteAtShutdown: keep-alive requests over several
// connections, then the daemon's SIGTERM path (Server.Shutdown, then
// AuditLog.Close) with the flush timer never fired: every answered
// request has its record in the file, and none went to the journal.
func TestProxyAuditCompleteAtShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	hook := &flushHook{}
	al := openTestAudit(t, path, AuditLogOptions{AfterFunc: hook.after})
	e := newEnv(t, Options{AuditLog: al})
	admin, _ := e.pki.client(t, "admin")
	const conns, each = 4, 150
	want := map[string]bool{}
	var wg sync.WaitGroup
	for c := range conns {
		for i := range each {
			want[fmt.Sprintf("/v1.41/containers/c%d-%d/json", c, i)] = true
		}
		cc := e.dial(t, admin)
		br := bufio.NewReader(cc)
		wg.Go(func() {
			for i := range each {
				resp, _ := roundTrip(t, cc, br, fmt.Sprintf("GET /v1.41/containers/c%d-%d/json HTTP/1.1\r\nHost: docker\r\n\r\n", c, i))
				if resp == nil {
					t.Error("no response")
					return
				}
			}
		})
	}
	wg.Wait()
	// The connections stay open and idle, as a client's pool would.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	checkEveryRecord(t, readAllRotated(t, path, 0), want)
	if j := e.logs.records(t, "request"); len(j) != 0 {
		t.Fatalf("%d records went to the journal: %v", len(j), j[0])
	}
}
