package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// slowPlain is what http.ReadResponse and respond make of input for a GET
// when the response is a plain one (respond's path without a hijack, a
// chunked body or no body): the bytes for the client and what is left
// unread. plain is false for any other response or a parse error.
func slowPlain(input []byte, closeConn bool) (out, rest []byte, code int, plain, bodyErr bool) {
	br := bufio.NewReaderSize(bytes.NewReader(input), upReadBuf)
	req := &http.Request{Method: "GET", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	resp, err := http.ReadResponse(br, req)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified ||
		isChunked(resp.TransferEncoding) || resp.ContentLength < 0 || resp.Close {
		return nil, nil, 0, false, false
	}
	var buf bytes.Buffer
	w := bufio.NewWriterSize(&buf, clientWriteBuf)
	writeResponseHead(w, resp, false, false, closeConn)
	_, err = io.CopyBuffer(onlyWriter{w}, onlyReader{resp.Body}, make([]byte, 32<<10))
	w.Flush() // respond's, or conn.close's after a failure
	rest, _ = io.ReadAll(br)
	return buf.Bytes(), rest, resp.StatusCode, true, err != nil
}

// checkPlain runs the fast path on input and, when it takes the response,
// checks it against slowPlain; it reports whether the fast path took it.
func checkPlain(t *testing.T, input []byte, closeConn bool) bool {
	t.Helper()
	br := bufio.NewReaderSize(bytes.NewReader(input), upReadBuf)
	var buf bytes.Buffer
	w := bufio.NewWriterSize(&buf, clientWriteBuf)
	var h plainHead
	handled, code, err := forwardPlain(br, w, closeConn, &h)
	w.Flush() // as conn.close does after a failure
	rest, _ := io.ReadAll(br)
	if !handled {
		if buf.Len() > 0 || !bytes.Equal(rest, input) {
			t.Fatalf("the fast path declined %q but wrote %q or consumed input (left %q)", input, buf.Bytes(), rest)
		}
		return false
	}
	want, wantRest, wantCode, plain, wantErr := slowPlain(input, closeConn)
	switch {
	case !plain:
		t.Fatalf("the fast path took %q, which is no plain response for http.ReadResponse", input)
	case code != wantCode:
		t.Fatalf("%q: status %d, http.ReadResponse has %d", input, code, wantCode)
	case (err != nil) != wantErr:
		t.Fatalf("%q: body error %v, the slow path's is %v", input, err, wantErr)
	case !bytes.Equal(buf.Bytes(), want):
		t.Fatalf("%q: the fast path writes\n%q\nthe slow path\n%q", input, buf.Bytes(), want)
	case err == nil && !bytes.Equal(rest, wantRest):
		t.Fatalf("%q: the fast path leaves %q unread, the slow path %q", input, rest, wantRest)
	}
	return true
}

// dockerdPing is dockerd 20.10's answer to GET /_ping as Go's server
// writes it: the handler's headers sorted, then Content-Type, Date and
// Content-Length.
const dockerdPing = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nCache-Control: no-cache, no-store, must-revalidate\r\n" +
	"Docker-Experimental: false\r\nOstype: linux\r\nPragma: no-cache\r\nServer: Docker/20.10.24 (linux)\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nDate: Thu, 03 Dec 2026 14:00:00 GMT\r\nContent-Length: 2\r\n\r\nOK"

var plainSeeds = []struct {
	in   string
	fast bool // the fast path takes it
}{
	{dockerdPing, true},
	{pingResponse, true},
	{dockerdPing + dockerdPing, true},
	{"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"message\":\"No such image\"}\n\n", true},
	{"HTTP/1.1 200 OK\r\nX-B: 2\r\nX-A: 1\r\nX-B: 1\r\nX-Empty: \r\nContent-Length: 0\r\n\r\n", true},
	{"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx", true},
	{"HTTP/1.1 201 Created\r\nContent-Length: 0005\r\n\r\nabcde", true},
	{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true},
	{"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nab", true},
	{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nConnection: X-Foo\r\nX-Foo: 1\r\nContent-Length: 2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nOK\r\n0\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n X-Folded: 1\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\nContent-Length: 2\n\nOK", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nContent-Length:2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nX-A: 1 \r\nContent-Length: 2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\n\r\nraw stream", false},
	{"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", false},
	{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", false},
	{"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false},
	{"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false},
	{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 2\r\n\r\nOK", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false},
	{"HTTP/1.1 20", false},
	{"", false},
}

// TestPlainResponse: the fast path takes dockerd's usual responses and
// forwards them exactly as the slow path does, and leaves the others to
// it untouched.
func TestPlainResponse(t *testing.T) {
	for _, s := range plainSeeds {
		for _, closeConn := range []bool{false, true} {
			if got := checkPlain(t, []byte(s.in), closeConn); got != s.fast {
				t.Errorf("%q: fast path took it: %v, want %v", s.in, got, s.fast)
			}
		}
	}
}

// TestPlainResponseLargeBody: a body larger than the read buffer streams
// through.
func TestPlainResponseLargeBody(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 10<<10)
	in := append([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 163840\r\n\r\n"), body...)
	if !checkPlain(t, in, false) {
		t.Fatal("the fast path declined a plain response with a large body")
	}
}

// FuzzPlainResponse: for any response the fast path takes, it writes to
// the client exactly what http.ReadResponse and respond would, reads as
// much and fails alike; one it declines, it leaves unread.
func FuzzPlainResponse(f *testing.F) {
	for _, s := range plainSeeds {
		f.Add([]byte(s.in), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, closeConn bool) {
		checkPlain(t, in, closeConn)
	})
}
