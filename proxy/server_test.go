package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPing(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.httpClient(t, admin)
	for _, path := range []string{"/_ping", "/v1.41/_ping", "/v1.24/_ping"} {
		t.Run("GET "+path, func(t *testing.T) {
			resp, body := get(t, c, "GET", path, nil)
			if resp.StatusCode != 200 || body != "OK" {
				t.Fatalf("got %d %q, want 200 OK", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Api-Version"); got != "1.41" {
				t.Errorf("Api-Version = %q, want dockerd's header passed through", got)
			}
		})
		t.Run("HEAD "+path, func(t *testing.T) {
			resp, body := get(t, c, "HEAD", path, nil)
			if resp.StatusCode != 200 || body != "" {
				t.Fatalf("got %d %q, want 200 and no body", resp.StatusCode, body)
			}
			if resp.ContentLength != 2 {
				t.Errorf("Content-Length = %d, want dockerd's 2", resp.ContentLength)
			}
		})
	}
}

// TestALPN: like dockerd, the proxy offers no ALPN, so a client that offers
// h2 falls back to HTTP/1.1 instead of failing the handshake.
func TestALPN(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	cfg := e.tlsConfig(admin)
	cfg.NextProtos = []string{"h2"}
	if err := pingWith(e.addr, cfg); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAliveAndPipelining(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.dial(t, admin)
	br := bufio.NewReader(c)
	// Three pipelined requests in one write, then one more.
	req := "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
	if _, err := io.WriteString(c, req+"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"+req); err != nil {
		t.Fatal(err)
	}
	for i, method := range []string{"GET", "HEAD", "GET"} {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || (method == "GET" && string(b) != "OK") {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, b)
		}
	}
	if resp, body := roundTrip(t, c, br, req); body != "OK" {
		t.Fatalf("fourth request: %d %q", resp.StatusCode, body)
	}
	if n := e.srv.Status().Clients[0].Requests; n != 4 {
		t.Errorf("client requests = %d, want 4", n)
	}
}

func TestCreateBodyForwardedUnchanged(t *testing.T) {
	guardPolicy, err := ParsePolicy([]byte(`{"rules":[{"name":"all","action":"allow","guard":"g"}],"guards":{"g":{}}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"Image":"busybox","Cmd":["echo","hi"],"HostConfig":{"Binds":[]},"Labels":{"x":"  spaced  "}}`
	for _, tc := range []struct {
		name    string
		policy  *Policy
		chunked bool
	}{
		{"no guard, Content-Length", nil, false},
		{"no guard, chunked", nil, true},
		{"guard, Content-Length", guardPolicy, false},
		{"guard, chunked", guardPolicy, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{Policy: tc.policy})
			admin, _ := e.pki.client(t, "admin")
			c := e.httpClient(t, admin)
			var r io.Reader = strings.NewReader(body)
			if tc.chunked {
				r = io.MultiReader(strings.NewReader(body[:10]), strings.NewReader(body[10:])) // unknown length: chunked
			}
			resp, got := get(t, c, "POST", "/v1.41/containers/create?name=web", r)
			if resp.StatusCode != 201 || got != body {
				t.Fatalf("got %d %q, want 201 and the same bytes %q", resp.StatusCode, got, body)
			}
			if p := resp.Header.Get("X-Got-Path"); p != "/v1.41/containers/create" {
				t.Errorf("dockerd saw path %q", p)
			}
		})
	}
}

func TestRequestRewrite(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.dial(t, admin)
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		target, wantPath, wantQuery string
	}{
		{"/v1.41//x/../echo-request?all=1", "/v1.41/echo-request", "all=1"},
		{"/v1.41/%65cho-request", "/v1.41/echo-request", ""},
		{"/v1.41/./echo-request/?filters=%7B%22a%22%3A1%7D", "/v1.41/echo-request", "filters=%7B%22a%22%3A1%7D"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			resp, body := roundTrip(t, c, br, "GET "+tc.target+" HTTP/1.1\r\nHost: docker\r\n"+
				"Connection: keep-alive, X-Hop\r\nX-Hop: drop me\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Registry-Auth: abc\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got struct {
				Path, Query, Host string
				Header            http.Header
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got.Path != tc.wantPath || got.Query != tc.wantQuery {
				t.Errorf("dockerd saw %q ? %q, want %q ? %q", got.Path, got.Query, tc.wantPath, tc.wantQuery)
			}
			if got.Host != "docker" {
				t.Errorf("Host = %q", got.Host)
			}
			for _, h := range []string{"X-Hop", "Keep-Alive", "Te", "Connection"} {
				if v, ok := got.Header[h]; ok {
					t.Errorf("hop-by-hop header %s: %v reached dockerd", h, v)
				}
			}
			if got.Header.Get("X-Registry-Auth") != "abc" {
				t.Errorf("X-Registry-Auth was not forwarded: %v", got.Header)
			}
		})
	}
}

func TestStreamingResponseFlushes(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.dial(t, admin)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /v1.41/stream-gated HTTP/1.1\r\nHost: docker\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	rb := bufio.NewReader(resp.Body)
	// dockerd holds the second line until the first has reached the
	// client: only a proxy that flushes as data arrives gets here.
	line, err := rb.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(e.fake.streamGate)
	rest, err := io.ReadAll(rb)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	// The connection is still good for another request.
	if _, body := roundTrip(t, c, br, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"); body != "OK" {
		t.Fatalf("ping after stream: %q", body)
	}
}

func TestEventsStream(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.httpClient(t, admin)
	resp, body := get(t, c, "GET", "/v1.41/events?n=20", nil)
	if resp.StatusCode != 200 || strings.Count(body, "\n") != 20 {
		t.Fatalf("got %d with %d lines: %q", resp.StatusCode, strings.Count(body, "\n"), body)
	}
}

func TestLargeResponse(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.httpClient(t, admin)
	resp, body := get(t, c, "GET", "/large", nil)
	if resp.StatusCode != 200 || len(body) != 64*16*4096 {
		t.Fatalf("got %d with %d bytes", resp.StatusCode, len(body))
	}
}

// TestHijack runs the attach dance of `echo hi | docker run -i IMAGE cat`:
// the client writes, half-closes, and must still read everything dockerd
// sends after that, then EOF.
func TestHijack(t *testing.T) {
	for _, tc := range []struct {
		name, req  string
		wantStatus int
	}{
		{"101 UPGRADED", "POST /v1.41/containers/abc/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n", 101},
		{"200 raw stream", "POST /v1.41/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			admin, _ := e.pki.client(t, "admin")
			c := e.dial(t, admin)
			br := bufio.NewReader(c)
			io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == 101 && (resp.Header.Get("Upgrade") != "tcp" || resp.Header.Get("Connection") != "Upgrade") {
				t.Errorf("upgrade headers not passed through: %v", resp.Header)
			}
			if st := e.srv.Status(); st.Hijacked != 1 {
				t.Errorf("status shows %d hijacked streams, want 1", st.Hijacked)
			}
			io.WriteString(c, "hi\n")
			buf := make([]byte, 3)
			if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "hi\n" {
				t.Fatalf("echo %q, %v", buf, err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "bye" {
				t.Fatalf("after half-close got %q, %v; want \"bye\" then EOF", rest, err)
			}
			recs := e.logs.waitRecords(t, "request", 1)
			if len(recs) != 1 || recs[0]["hijacked"] != true || recs[0]["status"] != float64(tc.wantStatus) {
				t.Errorf("audit records %v, want one hijacked record", recs)
			}
		})
	}
}

// TestHijackHalfCloseVariants: the docker CLI half-closes the TCP
// connection under TLS (no close_notify); TLS 1.2 clients too.
func TestHijackHalfCloseVariants(t *testing.T) {
	for _, tc := range []struct {
		name   string
		maxVer uint16
		rawFIN bool
	}{
		{"TLS 1.3 TCP FIN like the docker CLI", tls.VersionTLS13, true},
		{"TLS 1.2 close_notify", tls.VersionTLS12, false},
		{"TLS 1.2 TCP FIN", tls.VersionTLS12, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			admin, _ := e.pki.client(t, "admin")
			raw, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(waitLimit))
			cfg := e.tlsConfig(admin)
			cfg.MaxVersion = tc.maxVer
			c := tls.Client(raw, cfg)
			br := bufio.NewReader(c)
			io.WriteString(c, "POST /v1.41/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
			if resp, err := readResponse(br); err != nil || resp.StatusCode != 101 {
				t.Fatalf("%v %v", resp, err)
			}
			if v := c.ConnectionState().Version; v != tc.maxVer {
				t.Fatalf("negotiated %x", v)
			}
			io.WriteString(c, "hi\n")
			if tc.rawFIN {
				raw.(*net.TCPConn).CloseWrite()
			} else {
				c.CloseWrite()
			}
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "hi\nbye" {
				t.Fatalf("got %q, %v; want \"hi\\nbye\" then EOF", rest, err)
			}
		})
	}
}

func TestExecStartWithBodyUpgrades(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.dial(t, admin)
	br := bufio.NewReader(c)
	body := `{"Detach":false,"Tty":false}`
	fmt.Fprintf(c, "POST /v1.41/exec/abc/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	c.CloseWrite()
	rest, _ := io.ReadAll(br)
	if string(rest) != "bye" {
		t.Fatalf("got %q", rest)
	}
}

// slowReader hands out an upload in pieces and stops after stopAt bytes
// until resume is closed.
type slowReader struct {
	total, sent, stopAt int64
	resume              <-chan struct{}
	chunk               []byte
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.sent >= r.total {
		return 0, io.EOF
	}
	if r.sent >= r.stopAt && r.resume != nil {
		select {
		case <-r.resume:
		case <-time.After(waitLimit):
			return 0, errors.New("dockerd never received the first MiB: the proxy buffers the upload")
		}
		r.resume = nil
	}
	n := min(int64(len(p)), int64(len(r.chunk)), r.total-r.sent)
	copy(p, r.chunk[:n])
	r.sent += n
	return int(n), nil
}

func TestUploadStreams(t *testing.T) {
	const size = 50 << 20
	for _, chunked := range []bool{true, false} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			e := newEnv(t, Options{})
			admin, _ := e.pki.client(t, "admin")
			c := e.httpClient(t, admin)
			// The client sends 4 MiB and then waits until dockerd has
			// received 1 MiB: a proxy that buffered the body would never
			// let it through.
			src := &slowReader{total: size, stopAt: 4 << 20, resume: e.fake.firstMB, chunk: bytes.Repeat([]byte("x"), 64<<10)}
			req, _ := http.NewRequest("POST", "https://localhost/v1.41/upload", src)
			if !chunked {
				req.ContentLength = size
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var wantTE []string
			if chunked {
				wantTE = []string{"chunked"}
			}
			if want := fmt.Sprintf("{\"bytes\":%d,\"te\":%q}\n", size, wantTE); string(b) != want {
				t.Fatalf("got %q, want %q", b, want)
			}
		})
	}
}

func TestDenied403(t *testing.T) {
	e := newEnv(t, Options{})
	ro, _ := e.pki.client(t, "bob", "read-only")
	c := e.dial(t, ro)
	br := bufio.NewReader(c)
	resp, body := roundTrip(t, c, br, "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	if resp.StatusCode != 403 {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	msg := dockerMessage(t, body)
	for _, want := range []string{`"read-only"`, "bob", "POST /v1.41/containers/create", "only use GET and HEAD"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if e.fake.requests.Load() != 0 {
		t.Error("a denied request reached dockerd")
	}
	// The small body was read: the connection carries on, and GET works.
	if resp, body := roundTrip(t, c, br, "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"); resp.StatusCode != 404 || !strings.Contains(body, "page not found") {
		t.Fatalf("read-only GET: %d %q, want dockerd's answer", resp.StatusCode, body)
	}
	recs := e.logs.waitRecords(t, "request", 2)
	if len(recs) != 2 {
		t.Fatalf("%d audit records, want 2:\n%s", len(recs), e.logs.String())
	}
	want := map[string]any{"component": "proxy", "user": "bob", "method": "POST", "path": "/v1.41/containers/create", "status": float64(403), "decision": "deny", "rule": "read-only"}
	for k, v := range want {
		if recs[0][k] != v {
			t.Errorf("audit %s = %v, want %v", k, recs[0][k], v)
		}
	}
	if g, _ := recs[0]["groups"].([]any); len(g) != 1 || g[0] != "read-only" {
		t.Errorf("audit groups = %v", recs[0]["groups"])
	}
	if _, ok := recs[0]["duration"]; !ok {
		t.Error("audit record has no duration")
	}
	if recs[1]["decision"] != "allow" || recs[1]["rule"] != "read-only-get" {
		t.Errorf("second record %v", recs[1])
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"control character", "GET /containers/%00json HTTP/1.1\r\nHost: docker\r\n\r\n", 400},
		{"method", "BREW /_ping HTTP/1.1\r\nHost: docker\r\n\r\n", 405},
		{"lower-case method", "post /containers/create HTTP/1.1\r\nHost: docker\r\n\r\n", 405},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: docker\r\n\r\n", 400},
		{"malformed", "GET /_ping HTTP/1.1\r\nHost docker\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t, admin)
			resp, body := roundTrip(t, c, bufio.NewReader(c), tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			dockerMessage(t, body)
		})
	}
}

func TestGuardThroughProxy(t *testing.T) {
	pol, err := ParsePolicy([]byte(`{
		"rules": [{"name": "devs", "groups": ["dev"], "action": "allow", "guard": "safe"}],
		"guards": {"safe": {"bind_roots": ["/srv"]}}
	}`), "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{Policy: pol, ResolvePath: func(p string) (string, error) { return p, nil }})
	e.srv.setDockerState(&fakeState{})
	dev, _ := e.pki.client(t, "carol", "dev")
	c := e.httpClient(t, dev)
	resp, body := get(t, c, "POST", "/v1.41/containers/create", strings.NewReader(`{"Image":"x","HostConfig":{"Privileged":true}}`))
	if resp.StatusCode != 403 {
		t.Fatalf("privileged create: %d %q", resp.StatusCode, body)
	}
	msg := dockerMessage(t, body)
	for _, want := range []string{`guard "safe"`, `rule "devs"`, "Privileged"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %s", msg, want)
		}
	}
	ok := `{"Image":"x","HostConfig":{"Binds":["/srv/data:/data:ro"]}}`
	if resp, body := get(t, c, "POST", "/containers/create", strings.NewReader(ok)); resp.StatusCode != 201 || body != ok {
		t.Fatalf("allowed create: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, c, "POST", "/containers/create", strings.NewReader(`{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/etc"}]}}`))
	if resp.StatusCode != 403 || !strings.Contains(dockerMessage(t, body), "/etc") {
		t.Fatalf("bind /etc: %d %q", resp.StatusCode, body)
	}
	recs := e.logs.waitRecords(t, "request", 3)
	if len(recs) < 3 || recs[0]["guard"] != "safe" || recs[0]["decision"] != "deny" || recs[1]["decision"] != "allow" {
		t.Errorf("audit records %v", recs)
	}
	big := `{"Image":"` + strings.Repeat("x", DefaultMaxGuardBody) + `"}`
	if resp, body := get(t, c, "POST", "/containers/create", strings.NewReader(big)); resp.StatusCode != 413 {
		t.Fatalf("oversized create: %d %q", resp.StatusCode, body)
	}
	// Not guarded: the default deny of this policy.
	if resp, body := get(t, c, "GET", "/_ping", nil); resp.StatusCode != 200 || body != "OK" {
		t.Fatalf("ping: %d %q", resp.StatusCode, body)
	}
	other, _ := e.pki.client(t, "eve")
	resp, body = get(t, e.httpClient(t, other), "GET", "/_ping", nil)
	if resp.StatusCode != 403 || !strings.Contains(dockerMessage(t, body), "no policy rule allows it") {
		t.Fatalf("eve: %d %q", resp.StatusCode, body)
	}
}

func TestRefusedHandshakes(t *testing.T) {
	e := newEnv(t, Options{})
	foreign := newPKI(t)
	foreignCert, _ := foreign.client(t, "mallory")
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", &tls.Config{RootCAs: e.pki.pool, ServerName: "localhost"}},
		{"foreign CA", &tls.Config{RootCAs: e.pki.pool, ServerName: "localhost", Certificates: []tls.Certificate{foreignCert}}},
		{"TLS 1.1", &tls.Config{RootCAs: e.pki.pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := pingWith(e.addr, tc.cfg); err == nil {
				t.Fatal("the proxy answered")
			}
		})
	}
	t.Run("plain HTTP", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitLimit))
		io.WriteString(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
		b, _ := io.ReadAll(c)
		if bytes.Contains(b, []byte("OK")) {
			t.Fatalf("plain HTTP got %q", b)
		}
	})
}

// pingWith runs GET /_ping on a fresh connection; nil means "OK".
func pingWith(addr string, cfg *tls.Config) error {
	d := &net.Dialer{Timeout: waitLimit}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "OK" {
		return fmt.Errorf("got %d %q", resp.StatusCode, b)
	}
	return nil
}

func TestUpstreamDownAndRestart(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.dial(t, admin)
	br := bufio.NewReader(c)
	ping := "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
	if _, body := roundTrip(t, c, br, ping); body != "OK" {
		t.Fatal(body)
	}
	// dockerd restarts: the proxy's idle connection to it is dead, and the
	// next request goes through on a new one.
	e.fake.restart(t)
	if resp, body := roundTrip(t, c, br, ping); body != "OK" {
		t.Fatalf("after a dockerd restart: %d %q", resp.StatusCode, body)
	}
	// dockerd is gone: 502 with Docker's error body.
	e.fake.srv.Close()
	c2 := e.dial(t, admin)
	resp, body := roundTrip(t, c2, bufio.NewReader(c2), ping)
	if resp.StatusCode != 502 || !strings.Contains(dockerMessage(t, body), "dockerd") {
		t.Fatalf("dockerd down: %d %q", resp.StatusCode, body)
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, Options{HijackGrace: 50 * time.Millisecond})
	admin, _ := e.pki.client(t, "admin")

	// An idle keep-alive connection, a request in flight, a hijacked stream.
	idle := e.dial(t, admin)
	idleBR := bufio.NewReader(idle)
	roundTrip(t, idle, idleBR, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")

	slow := e.dial(t, admin)
	io.WriteString(slow, "GET /slow HTTP/1.1\r\nHost: docker\r\n\r\n")
	<-e.fake.slowIn

	hj := e.dial(t, admin)
	hjBR := bufio.NewReader(hj)
	io.WriteString(hj, "POST /containers/x/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	if resp, err := http.ReadResponse(hjBR, &http.Request{Method: "POST"}); err != nil || resp.StatusCode != 101 {
		t.Fatalf("attach: %v %v", resp, err)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	// The idle connection is closed.
	if b, err := io.ReadAll(idleBR); err != nil || len(b) != 0 {
		t.Errorf("idle connection: %q, %v; want EOF", b, err)
	}
	// The hijacked stream is cut after its grace.
	if _, err := io.ReadAll(hjBR); err != nil && !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("hijacked stream: %v", err)
	}
	// The request in flight finishes, with Connection: close.
	close(e.fake.slowGate)
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "slow done" || !resp.Close {
		t.Fatalf("in-flight request: %d %q close=%v", resp.StatusCode, b, resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", e.addr); err == nil {
		t.Error("the listener still accepts")
	}
}

func isReset(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || strings.Contains(err.Error(), "reset")
}

// TestUpstreamPool: client connections one after another share one dockerd
// connection; a pooled connection dockerd closed meanwhile is not used.
func TestUpstreamPool(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	for range 5 {
		if err := pingWith(e.addr, e.tlsConfig(admin)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the client connection to close", func() bool { return e.srv.Status().Connections == 0 })
	}
	if n := e.fake.conns.Load(); n != 1 {
		t.Errorf("dockerd saw %d connections, want 1 reused", n)
	}
	e.fake.restart(t) // closes the pooled connection
	c := e.httpClient(t, admin)
	body := `{"Image":"x"}`
	if resp, got := get(t, c, "POST", "/containers/create", strings.NewReader(body)); resp.StatusCode != 201 || got != body {
		t.Fatalf("after a dockerd restart: %d %q", resp.StatusCode, got)
	}
}

func TestExpectContinue(t *testing.T) {
	guard, err := ParsePolicy([]byte(`{"rules":[{"name":"all","action":"allow","guard":"g"}],"guards":{"g":{}}}`), "p")
	if err != nil {
		t.Fatal(err)
	}
	for _, pol := range []*Policy{nil, guard} {
		e := newEnv(t, Options{Policy: pol})
		admin, _ := e.pki.client(t, "admin")
		c := e.dial(t, admin)
		br := bufio.NewReader(c)
		body := `{"Image":"x"}`
		fmt.Fprintf(c, "POST /containers/create HTTP/1.1\r\nHost: docker\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("policy %v: want 100 Continue, got %v %v", pol != nil, resp, err)
		}
		io.WriteString(c, body)
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 201 || string(got) != body {
			t.Fatalf("policy %v: %d %q", pol != nil, resp.StatusCode, got)
		}
	}
}

func TestHTTP10Client(t *testing.T) {
	e := newEnv(t, Options{})
	admin, _ := e.pki.client(t, "admin")
	c := e.dial(t, admin)
	io.WriteString(c, "GET /events?n=3 HTTP/1.0\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "HTTP/1.1 200") || strings.Contains(s, "chunked") || strings.Count(s, "\"line\"") != 3 {
		t.Fatalf("HTTP/1.0 client got %q", s)
	}
}
