package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestWrites(t *testing.T) {
	up := http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"tcp"}}
	for _, tc := range []struct {
		name string
		h    http.Header
		path string
		want bool
	}{
		{"plain GET", http.Header{}, "/containers/x/json", false},
		{"upgrade", up, "/containers/x/json", true},
		{"upgrade, version prefix", up, "/v1.41/exec/x/start", true},
		{"Upgrade without Connection: upgrade is not forwarded", http.Header{"Upgrade": {"tcp"}}, "/containers/x/attach", false},
		{"Connection: upgrade without Upgrade is not forwarded", http.Header{"Connection": {"upgrade"}}, "/containers/x/attach", false},
		{"websocket attach without headers", http.Header{}, "/containers/x/attach/ws", true},
		{"websocket attach, version prefix", http.Header{}, "/v1.41/containers/x/attach/ws", true},
		{"any /ws route", http.Header{}, "/exec/x/ws", true},
		{"ws as a name is not a route end", http.Header{}, "/containers/wsx/json", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Writes(tc.h, tc.path); got != tc.want {
				t.Fatalf("Writes(%v, %q) = %v, want %v", tc.h, tc.path, got, tc.want)
			}
		})
	}
}

func TestReadOnlyRuleNeverMatchesWrites(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"default":"deny","rules":[
		{"name":"no-get-secrets","methods":["GET"],"paths":["/secrets/**"],"action":"deny"},
		{"name":"ro","users":["bob"],"methods":["GET","HEAD","OPTIONS"],"action":"allow"},
		{"name":"ro-get-post","users":["carol"],"methods":["GET","POST"],"paths":["/containers/**"],"action":"allow"},
		{"name":"any","users":["dave"],"action":"allow"}
	]}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	bob, carol, dave := Identity{User: "bob"}, Identity{User: "carol"}, Identity{User: "dave"}
	for _, tc := range []struct {
		id       Identity
		method   string
		path     string
		writes   bool
		allow    bool
		rule     string
		readOnly bool
	}{
		{bob, "GET", "/containers/x/json", false, true, "ro", true},
		{bob, "GET", "/containers/x/attach/ws", true, false, "default", false},
		{bob, "GET", "/containers/x/attach", true, false, "default", false},
		{bob, "OPTIONS", "/exec/x/start", true, false, "default", false},
		// A deny rule limited to GET still matches a writing GET.
		{bob, "GET", "/secrets/s", true, false, "no-get-secrets", false},
		// A rule with a write method is not read-only.
		{carol, "GET", "/containers/x/attach/ws", true, true, "ro-get-post", false},
		{dave, "GET", "/containers/x/attach/ws", true, true, "any", false},
	} {
		t.Run(tc.id.User+" "+tc.method+" "+tc.path, func(t *testing.T) {
			d := p.Decide(tc.id, tc.method, tc.path, tc.writes)
			if d.Allow != tc.allow || d.Rule != tc.rule || d.ReadOnly != tc.readOnly {
				t.Fatalf("Decide = allow %v by %q read-only %v (%s), want allow %v by %q read-only %v", d.Allow, d.Rule, d.ReadOnly, d.Message, tc.allow, tc.rule, tc.readOnly)
			}
			if tc.rule == "default" && !strings.Contains(d.Message, "writes into a container") {
				t.Errorf("message %q does not say why", d.Message)
			}
		})
	}
}

// TestReadOnlyClientCannotWrite sends every shape of writing request as a
// read-only client, through the proxy, under the built-in policy and under
// a GET/HEAD-only file rule: each is refused and none reaches dockerd.
func TestReadOnlyClientCannotWrite(t *testing.T) {
	filePolicy, err := ParsePolicy([]byte(`{"rules":[{"name":"viewer","users":["viewer"],"methods":["GET","HEAD"],"action":"allow"}]}`), "viewer.json")
	if err != nil {
		t.Fatal(err)
	}
	writes := []string{
		"GET /containers/x/attach/ws?stream=1&stdin=1 HTTP/1.1\r\nHost: docker\r\n\r\n",
		"GET /v1.41/containers/x/attach/ws?stdin=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		"GET /containers/x/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
		"GET /v1.41/exec/x/start HTTP/1.1\r\nHost: docker\r\nConnection: keep-alive, upgrade\r\nUpgrade: tcp\r\n\r\n",
		"HEAD /containers/x/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
		"GET /v1.41/containers/x/json HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
		"GET /session HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
	}
	for _, pc := range []struct {
		name   string
		policy *Policy
		user   string
		groups []string
	}{
		{"built-in", nil, "bob", []string{GroupReadOnly}},
		{"file", filePolicy, "viewer", nil},
	} {
		t.Run(pc.name, func(t *testing.T) {
			e := newEnv(t, Options{Policy: pc.policy})
			cert, _ := e.pki.client(t, pc.user, pc.groups...)
			for _, raw := range writes {
				c := e.dial(t, cert)
				br := bufio.NewReader(c)
				io.WriteString(c, raw)
				resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(raw)[0]})
				if err != nil {
					t.Fatalf("%q: %v", raw, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%q: got %d, want 403", strings.SplitN(raw, "\r\n", 2)[0], resp.StatusCode)
				}
			}
			if n := e.fake.requests.Load(); n != 0 {
				t.Errorf("%d writing requests reached dockerd", n)
			}
			// Reading still works.
			c := e.dial(t, cert)
			if resp, body := roundTrip(t, c, bufio.NewReader(c), "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"); body != "OK" {
				t.Fatalf("read: %d %q", resp.StatusCode, body)
			}
		})
	}
}

// TestReadOnlyHijackCarriesNoInput: should dockerd hijack a request that a
// read-only rule allowed (here a plain GET on a route the fake dockerd
// hijacks), the client's bytes never reach it.
func TestReadOnlyHijackCarriesNoInput(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"rules":[{"name":"viewer","methods":["GET"],"action":"allow"}]}`), "viewer.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{Policy: p})
	cert, _ := e.pki.client(t, "viewer")
	c := e.dial(t, cert)
	io.WriteString(c, "GET /containers/x/attach HTTP/1.1\r\nHost: docker\r\n\r\nsecret input")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v, %v", resp, err)
	}
	c.CloseWrite()
	rest, _ := io.ReadAll(br)
	if string(rest) != "bye" {
		t.Fatalf("dockerd echoed %q: the client's input reached it", rest)
	}
}
