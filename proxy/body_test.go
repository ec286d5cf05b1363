package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// archiveDockerd is a fake dockerd on a unix socket whose PUT
// /containers/{id}/archive reads the whole body, as dockerd does while it
// holds the container's lock. It reports each upload that ended before its
// end (dockerd's side of the connection was closed) on aborted.
type archiveDockerd struct {
	sock    string
	started chan string
	aborted chan string
	done    chan string
}

func newArchiveDockerd(t *testing.T) *archiveDockerd {
	t.Helper()
	dir, err := os.MkdirTemp("", "tlsdock-archive")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &archiveDockerd{sock: filepath.Join(dir, "docker.sock"), started: make(chan string, 16), aborted: make(chan string, 16), done: make(chan string, 16)}
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_ping" {
			io.WriteString(w, "OK")
			return
		}
		f.started <- r.URL.Path
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			f.aborted <- fmt.Sprintf("%s after %d bytes: %v", r.URL.Path, n, err)
			return
		}
		f.done <- r.URL.Path
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *archiveDockerd) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", f.sock)
}

// waitAbort waits for dockerd to see an aborted upload (waitLimit is a
// deadlock detector: without the abort, dockerd would wait for ever).
func (f *archiveDockerd) waitAbort(t *testing.T) string {
	t.Helper()
	select {
	case s := <-f.aborted:
		return s
	case s := <-f.done:
		t.Fatalf("dockerd got the whole body of %s", s)
	case <-time.After(waitLimit):
		t.Fatal("dockerd still waits for the body: its connection was not closed")
	}
	return ""
}

const halfUpload = "PUT /v1.41/containers/web/archive?path=/tmp HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: 10000\r\n\r\n" +
	"0123456789"

func activeConns(e *env, user string) int {
	for _, c := range e.srv.Status().Clients {
		if c.User == user {
			return int(c.Active)
		}
	}
	return -1
}

// TestStalledBodyIsBounded: a client that sends half a body and stalls
// gets 408 after BodyIdleTimeout; dockerd's connection is closed at once
// (it aborts the upload and releases the container), the audit record is
// written with the error, and MaxConnsPerClient such aborts do not use up
// the client's cap.
func TestStalledBodyIsBounded(t *testing.T) {
	fake := newArchiveDockerd(t)
	const limit = 2
	e := newEnv(t, Options{Dial: fake.dial, BodyIdleTimeout: 50 * time.Millisecond, MaxConnsPerClient: limit})
	alice, _ := e.pki.client(t, "alice")
	for i := range limit + 1 {
		c := e.dial(t, alice)
		br := bufio.NewReader(c)
		io.WriteString(c, halfUpload) // and nothing more
		got := fake.waitAbort(t)
		if !strings.Contains(got, "after 10 bytes") {
			t.Errorf("abort %d: dockerd saw %s", i, got)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("abort %d: reading the answer: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || !resp.Close || !strings.Contains(dockerMessage(t, string(body)), "sent nothing for 50ms") {
			t.Fatalf("abort %d: got %d close=%v %q", i, resp.StatusCode, resp.Close, body)
		}
		if rest, _ := io.ReadAll(br); len(rest) != 0 {
			t.Errorf("abort %d: the connection carried on: %q", i, rest)
		}
		c.Close()
	}
	recs := e.logs.waitRecords(t, "request", limit+1)
	if len(recs) != limit+1 {
		t.Fatalf("%d audit records, want %d", len(recs), limit+1)
	}
	for _, r := range recs {
		if r["path"] != "/v1.41/containers/web/archive" || r["status"] != float64(408) || r["decision"] != "allow" ||
			!strings.Contains(fmt.Sprint(r["error"]), "sent nothing") {
			t.Errorf("audit record %v", r)
		}
	}
	waitFor(t, "the aborted connections to be released", func() bool { return activeConns(e, "alice") == 0 })
	if err := pingWith(e.addr, e.tlsConfig(alice)); err != nil {
		t.Fatalf("alice after %d aborts: %v", limit+1, err)
	}
}

// TestBodyCutShort: a client that disconnects mid-body, or whose chunked
// body breaks off, has dockerd's connection closed and an audit record.
func TestBodyCutShort(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
	}{
		{"content-length", halfUpload},
		{"chunked", "PUT /containers/web/archive?path=/tmp HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n10\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newArchiveDockerd(t)
			e := newEnv(t, Options{Dial: fake.dial})
			alice, _ := e.pki.client(t, "alice")
			c := e.dial(t, alice)
			io.WriteString(c, tc.raw)
			// Give the proxy the start of the upload before the cut: once
			// dockerd has read the header, it is inside the handler.
			select {
			case <-fake.started:
			case <-time.After(waitLimit):
				t.Fatal("the upload never reached dockerd")
			}
			c.Close()
			fake.waitAbort(t)
			recs := e.logs.waitRecords(t, "request", 1)
			if len(recs) != 1 || recs[0]["decision"] != "allow" || !strings.Contains(fmt.Sprint(recs[0]["error"]), "request body") {
				t.Fatalf("audit records %v", recs)
			}
			waitFor(t, "the connection to be released", func() bool { return activeConns(e, "alice") == 0 })
		})
	}
}

// TestStalledGuardedBody: the bounded body a guard reads is bounded in
// time too; the request is refused, recorded, and never reaches dockerd.
func TestStalledGuardedBody(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"rules":[{"name":"ci","action":"allow","guard":"g"}],"guards":{"g":{"bind_roots":["/srv"]}}}`), "t")
	if err != nil {
		t.Fatal(err)
	}
	fake := newArchiveDockerd(t)
	e := newEnv(t, Options{Dial: fake.dial, Policy: p, BodyIdleTimeout: 50 * time.Millisecond})
	ci, _ := e.pki.client(t, "ci")
	c := e.dial(t, ci)
	io.WriteString(c, "POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Image\":")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 4 || !resp.Close || !strings.Contains(string(body), "timeout") {
		t.Fatalf("got %d close=%v %q", resp.StatusCode, resp.Close, body)
	}
	recs := e.logs.waitRecords(t, "request", 1)
	if len(recs) != 1 || recs[0]["path"] != "/containers/create" {
		t.Fatalf("audit records %v", recs)
	}
	select {
	case s := <-fake.started:
		t.Fatalf("%s reached dockerd", s)
	default:
	}
}
