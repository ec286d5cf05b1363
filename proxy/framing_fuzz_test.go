package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// framingPolicy denies /secrets, lets GET and HEAD (read-only, so not a
// writing request) under /containers and on /_ping, and POST, PUT, DELETE
// and PATCH anywhere else; everything else is denied.
var framingPolicy = func() *Policy {
	p, err := ParsePolicy([]byte(`{"default":"deny","rules":[
		{"name":"secrets","paths":["/secrets/**"],"action":"deny"},
		{"name":"ro","methods":["GET","HEAD"],"paths":["/containers/**","/_ping"],"action":"allow"},
		{"name":"rw","methods":["POST","PUT","DELETE","PATCH"],"action":"allow"}
	]}`), "framing")
	if err != nil {
		panic(err)
	}
	return p
}()

// seen is a request as one side understood it.
type seen struct {
	Method  string
	Path    string
	Body    string
	Upgrade bool
}

func (r seen) String() string {
	return fmt.Sprintf("%s %q body %q upgrade %v", r.Method, r.Path, r.Body, r.Upgrade)
}

// expectedForwards is what net/http's parser makes of the client's bytes,
// filtered by the proxy's rules (method, path normalisation, policy): the
// requests the proxy may forward, in order. It stops at the first request
// net/http cannot read whole.
func expectedForwards(input []byte) []seen {
	var out []seen
	br := bufio.NewReader(bytes.NewReader(input))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return out
		}
		clean, cerr := cleanDecoded(req.URL.Path)
		if allowedMethods[req.Method] && cerr == nil &&
			framingPolicy.Decide(Identity{User: "fuzz"}, req.Method, clean, Writes(req.Header, clean)).Allow {
			out = append(out, seen{req.Method, clean, string(body), isUpgrade(req.Header)})
		}
		if req.Close {
			return out
		}
	}
}

func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conv := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conv(fds[0]), conv(fds[1])
}

// framingDockerd reads what the proxy forwards on one dockerd connection
// with net/http's parser and answers each request that arrived whole.
type framingDockerd struct {
	mu     sync.Mutex
	got    []seen
	broken []string // what net/http could not parse
	wg     sync.WaitGroup
}

func (f *framingDockerd) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			if err != io.EOF {
				f.mu.Lock()
				f.broken = append(f.broken, err.Error())
				f.mu.Unlock()
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return // the proxy aborted the body: dockerd drops the request
		}
		f.mu.Lock()
		f.got = append(f.got, seen{req.Method, req.URL.Path, string(body), isUpgrade(req.Header)})
		f.mu.Unlock()
		resp := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
		if req.Method == "HEAD" {
			resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
	}
}

// FuzzFraming feeds arbitrary bytes from a client through the proxy's
// request handling (after the handshake) to a fake dockerd that parses
// what arrives with net/http. Every request dockerd receives must be the
// next one net/http's parser finds in the client's bytes that the proxy's
// rules allow (method, normalised path, body, upgrade or not), and one the
// proxy recorded as allowed: no request is smuggled in by pipelining,
// TE/CL conflicts or an upgrade, and what the proxy forwards always
// parses. It must never panic or hang.
func FuzzFraming(f *testing.F) {
	for _, s := range []string{
		"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n",
		"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nGET /secrets HTTP/1.1\r\nHost: d\r\n\r\nPOST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
		"POST /build HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /secrets HTTP/1.1\r\nHost: d\r\n\r\n",
		"POST /build HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: a\r\n\r\nDELETE /containers/x HTTP/1.1\r\n\r\n",
		"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcGET /_ping HTTP/1.1\r\n\r\n",
		"GET /containers/x/json HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nGET /secrets HTTP/1.1\r\n\r\n",
		"POST /containers/x/attach HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\nPOST /secrets HTTP/1.1\r\n\r\n",
		"GET /containers/x/attach/ws HTTP/1.1\r\n\r\n",
		"GET /_ping HTTP/1.0\r\n\r\nGET /_ping HTTP/1.1\r\n\r\n",
		"PUT /containers/x/archive HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd",
		"PUT /containers/x/archive HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
		"GET /v1.41/containers/%2e%2e/secrets HTTP/1.1\r\n\r\n",
		"GET http://docker/_ping HTTP/1.1\r\nHost: other\r\n\r\n",
		"POST /x HTTP/1.1\r\nConnection: close, X-Hide\r\nX-Hide: a\r\nContent-Length: 1\r\n\r\naGET /_ping HTTP/1.1\r\n\r\n",
		"GET /_ping HTTP/1.1\r\nTe: trailers\r\nTransfer-Encoding: identity\r\n\r\n",
		"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=\"a\"\r\nx\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	set := newPKI(f).serverSet(f)
	f.Fuzz(func(t *testing.T, input []byte) {
		want := expectedForwards(input)
		fake := &framingDockerd{}
		var logs syncBuffer
		srv, err := New(set, Options{
			Policy: framingPolicy,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
			Dial: func(context.Context) (net.Conn, error) {
				a, b := socketPair(t)
				fake.wg.Add(1)
				go fake.serve(b)
				return a, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		client, side := socketPair(t)
		go func() {
			client.Write(input)
			client.CloseWrite()
			io.Copy(io.Discard, client)
			client.Close()
		}()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c := srv.wrapConn(side, side)
			defer c.close()
			c.serveRequests(Identity{User: "fuzz"}, "fuzz")
		}()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Fatalf("the proxy hangs on %q", input)
		}
		srv.Close() // closes the pooled dockerd connections
		fake.wg.Wait()

		for _, b := range fake.broken {
			t.Errorf("dockerd could not parse what the proxy forwarded: %s", b)
		}
		var allowed []seen
		answered := 0
		for _, line := range bytes.Split(bytes.TrimSpace([]byte(logs.String())), []byte("\n")) {
			var r struct {
				Msg, Method, Path, Decision string
				Status                      int
			}
			if len(line) == 0 || json.Unmarshal(line, &r) != nil || r.Msg != "request" {
				continue
			}
			if r.Decision == "allow" {
				allowed = append(allowed, seen{Method: r.Method, Path: r.Path})
				if r.Status == 200 {
					answered++
				}
			}
		}
		if len(fake.got) > len(want) || len(fake.got) > len(allowed) || len(fake.got) != answered {
			t.Fatalf("input %q:\ndockerd got %v\nnet/http's reading allows %v\nthe proxy allowed %v (%d answered)", input, fake.got, want, allowed, answered)
		}
		for i, g := range fake.got {
			if g != want[i] {
				t.Fatalf("input %q: request %d reached dockerd as %v, net/http reads it as %v", input, i, g, want[i])
			}
			if g.Method != allowed[i].Method || g.Path != allowed[i].Path {
				t.Fatalf("input %q: request %d reached dockerd as %v, the proxy decided on %v", input, i, g, allowed[i])
			}
		}
	})
}
