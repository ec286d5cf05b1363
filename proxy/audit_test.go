package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flushHook stands in for time.AfterFunc: it records the delays asked for
// and runs the pending flushes when told.
type flushHook struct {
	delays  []time.Duration
	pending []func()
}

func (h *flushHook) after(d time.Duration, f func()) {
	h.delays = append(h.delays, d)
	h.pending = append(h.pending, f)
}

func (h *flushHook) fire() {
	p := h.pending
	h.pending = nil
	for _, f := range p {
		f()
	}
}

func readLines(t *testing.T, path string) []AuditRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditRecord
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		var r AuditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: line %q: %v", path, line, err)
		}
		out = append(out, r)
	}
	return out
}

func openTestAudit(t *testing.T, path string, o AuditLogOptions) *AuditLog {
	t.Helper()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := OpenAuditLog(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func rec(path string) *AuditRecord {
	return &AuditRecord{Time: time.Unix(1700000000, 0).UTC(), User: "alice", Groups: []string{"dev"}, Serial: "1f", Remote: "10.0.0.1:5000",
		Method: "GET", Path: path, Status: 200, Decision: "allow", Rule: "full-access", Duration: time.Millisecond}
}

func TestAuditLogFlushesWithinTheInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "audit.jsonl")
	hook := &flushHook{}
	a := openTestAudit(t, path, AuditLogOptions{AfterFunc: hook.after})
	for _, p := range []string{"/a", "/b", "/c"} {
		if err := a.Write(rec(p)); err != nil {
			t.Fatal(err)
		}
	}
	if got := readLines(t, path); len(got) != 0 {
		t.Fatalf("written before the flush: %v", got)
	}
	if len(hook.delays) != 1 || hook.delays[0] > 100*time.Millisecond {
		t.Fatalf("flush timers %v: want one, at most 100ms", hook.delays)
	}
	hook.fire()
	got := readLines(t, path)
	if len(got) != 3 || got[0].Path != "/a" || got[2].Path != "/c" || got[1].User != "alice" || got[1].Status != 200 || got[1].Duration != time.Millisecond {
		t.Fatalf("after the flush: %+v", got)
	}
	// The next record arms a new flush.
	a.Write(rec("/d"))
	if len(hook.delays) != 2 {
		t.Fatalf("flush timers %v after a new record", hook.delays)
	}
	// Close writes out what is buffered.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, path); len(got) != 4 {
		t.Fatalf("after Close: %d records", len(got))
	}
	if err := a.Write(rec("/e")); err != ErrAuditLogClosed {
		t.Fatalf("Write after Close: %v", err)
	}
	hook.fire() // a late timer after Close does nothing
}

func TestAuditLogMode(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new", "audit.jsonl")
	openTestAudit(t, fresh, AuditLogOptions{})
	old := filepath.Join(dir, "old.jsonl")
	if err := os.WriteFile(old, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	openTestAudit(t, old, AuditLogOptions{})
	for _, p := range []string{fresh, old} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(filepath.Dir(fresh)); st.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", st.Mode().Perm())
	}
}

func TestAuditLogRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "shadow")
	if err := os.WriteFile(target, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "audit.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAuditLog(link, AuditLogOptions{}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("OpenAuditLog through a symlink: %v", err)
	}
	// Planted between two opens (logrotate moved the file away): Reopen
	// refuses it too, and the record is not written through it.
	path := filepath.Join(dir, "real.jsonl")
	a := openTestAudit(t, path, AuditLogOptions{})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := a.Reopen(); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("Reopen onto a symlink: %v", err)
	}
	if err := a.Write(rec("/x")); err == nil {
		t.Fatal("a record was written through a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "untouched" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	// A FIFO is not a regular file either.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		if _, err := OpenAuditLog(fifo, AuditLogOptions{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("OpenAuditLog on a FIFO: %v", err)
		}
	}
}

func TestAuditLogRotatesBySize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	line, _ := json.Marshal(rec("/0000"))
	size := int64(len(line) + 1)
	a := openTestAudit(t, path, AuditLogOptions{MaxSize: 3 * size, Keep: 2})
	for i := range 10 {
		if err := a.Write(rec("/" + strings.Repeat("0", 3) + string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	cur, one, two := readLines(t, path), readLines(t, path+".1"), readLines(t, path+".2")
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("more rotated files than Keep")
	}
	// 10 records, 3 a file: .2 holds 3..5, .1 6..8, the current 9.
	if len(cur) != 1 || len(one) != 3 || len(two) != 3 || cur[0].Path != "/0009" || one[0].Path != "/0006" || two[0].Path != "/0003" {
		t.Fatalf("current %v, .1 %v, .2 %v", cur, one, two)
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		if st, _ := os.Stat(p); st.Size() > 3*size || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d bytes (max %d), mode %v", p, st.Size(), 3*size, st.Mode().Perm())
		}
	}
}

func TestAuditLogReopenAfterRename(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a := openTestAudit(t, path, AuditLogOptions{})
	a.Write(rec("/before"))
	if err := os.Rename(path, path+".rotated"); err != nil { // logrotate
		t.Fatal(err)
	}
	a.Write(rec("/between"))
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Write(rec("/after"))
	a.Close()
	old, cur := readLines(t, path+".rotated"), readLines(t, path)
	if len(old) != 2 || old[1].Path != "/between" || len(cur) != 1 || cur[0].Path != "/after" {
		t.Fatalf("rotated %v, current %v", old, cur)
	}
}

func TestAuditLogQuoting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a := openTestAudit(t, path, AuditLogOptions{})
	r := rec("/x\"\n{\"user\":\"root\"}\u2028")
	r.User = "eve\n\"decision\":\"allow\""
	a.Write(r)
	a.Close()
	data, _ := os.ReadFile(path)
	if strings.Count(string(data), "\n") != 1 {
		t.Fatalf("one record is not one line: %q", data)
	}
	got := readLines(t, path)
	if got[0].Path != r.Path || got[0].User != r.User {
		t.Fatalf("round trip: %+v", got[0])
	}
}

// TestProxyAuditLog: with the file sink, every request has its record in
// the file (allowed, denied, hijacked, aborted); the journal keeps only
// the denials and errors.
func TestProxyAuditLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	al := openTestAudit(t, path, AuditLogOptions{})
	p, err := ParsePolicy([]byte(`{"default":"allow","rules":[{"name":"no-secrets","paths":["/secrets/**"],"action":"deny"}]}`), "t")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{AuditLog: al, Policy: p, BodyIdleTimeout: 50 * time.Millisecond})
	admin, _ := e.pki.client(t, "admin", "ops")
	c := e.dial(t, admin)
	br := bufio.NewReader(c)
	roundTrip(t, c, br, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
	roundTrip(t, c, br, "GET /secrets HTTP/1.1\r\nHost: docker\r\n\r\n")
	roundTrip(t, c, br, "POST /upload HTTP/1.1\r\nHost: docker\r\nContent-Length: 10\r\n\r\n01234") // stalls
	h := e.dial(t, admin)
	io.WriteString(h, "POST /containers/x/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	hbr := bufio.NewReader(h)
	if resp, err := http.ReadResponse(hbr, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("attach: %v %v", resp, err)
	}
	h.CloseWrite()
	io.ReadAll(hbr)
	waitFor(t, "four audit records", func() bool {
		al.Flush()
		return len(readLines(t, path)) >= 4
	})
	byPath := map[string]AuditRecord{}
	for _, r := range readLines(t, path) {
		byPath[r.Path] = r
	}
	for _, want := range []AuditRecord{
		{Path: "/_ping", Status: 200, Decision: "allow"},
		{Path: "/secrets", Status: 403, Decision: "deny", Rule: "no-secrets"},
		{Path: "/upload", Status: 408, Decision: "allow", Error: "request body: the client sent nothing for 50ms"},
		{Path: "/containers/x/attach", Status: 101, Decision: "allow", Hijacked: true},
	} {
		got, ok := byPath[want.Path]
		if !ok || got.Status != want.Status || got.Decision != want.Decision || got.Error != want.Error || got.Hijacked != want.Hijacked ||
			got.User != "admin" || len(got.Groups) != 1 || got.Groups[0] != "ops" || got.Serial == "" || got.Remote == "" || got.Time.IsZero() {
			t.Errorf("record of %s: %+v, want %+v", want.Path, got, want)
		}
	}
	journal := e.logs.records(t, "request")
	if len(journal) != 1 || journal[0]["path"] != "/secrets" {
		t.Fatalf("the journal has %v, want only the denial", journal)
	}
}

// BenchmarkAuditSink compares keep-alive GET /_ping through the proxy with
// every record on the logger (slog text to a file, one write per record,
// as to the journal's stderr) and with the file sink (AuditLog, the logger
// idle). Compare req/s within one run:
// go test -run XXX -bench AuditSink ./proxy/
func BenchmarkAuditSink(b *testing.B) {
	e := newEnv(b, Options{Logger: slog.New(slog.DiscardHandler)})
	admin, _ := e.pki.client(b, "admin")
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { devnull.Close() })
	journal := slog.New(slog.NewTextHandler(devnull, nil))
	al, err := OpenAuditLog(filepath.Join(b.TempDir(), "audit.jsonl"), AuditLogOptions{Logger: journal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { al.Close() })
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"journal", Options{Logger: journal}},
		{"file", Options{Logger: journal, AuditLog: al}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tc.o.Socket = e.fake.sock
			srv, err := New(e.set, tc.o)
			if err != nil {
				b.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			tr := &http.Transport{
				TLSClientConfig: e.tlsConfig(admin),
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "tcp", l.Addr().String())
				},
				MaxIdleConnsPerHost: 16,
			}
			defer tr.CloseIdleConnections()
			runPing(b, &http.Client{Transport: tr}, "https://localhost/_ping")
		})
	}
}

// BenchmarkAuditRecord measures the cost of one allowed request's audit
// record alone: on the logger (slog text to a file, one write each, as to
// the journal's stderr) and in the file sink.
func BenchmarkAuditRecord(b *testing.B) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { devnull.Close() })
	journal := slog.New(slog.NewTextHandler(devnull, nil))
	al, err := OpenAuditLog(filepath.Join(b.TempDir(), "audit.jsonl"), AuditLogOptions{Logger: journal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { al.Close() })
	set := newPKI(b).serverSet(b)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"journal", Options{Logger: journal}},
		{"file", Options{Logger: journal, AuditLog: al}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv, err := New(set, tc.o)
			if err != nil {
				b.Fatal(err)
			}
			c := &conn{s: srv, remote: "10.0.0.1:5000", cl: &client{id: Identity{User: "alice", Groups: []string{"dev"}, Serial: "1f"}}}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.audit(&record{start: time.Now(), method: "GET", path: "/v1.41/containers/json", status: 200, decision: "allow", rule: "full-access"})
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
