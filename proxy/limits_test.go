package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestHeaderTooLarge(t *testing.T) {
	e := newEnv(t, Options{MaxHeaderBytes: 1024})
	admin, _ := e.pki.client(t, "admin")
	c := e.dial(t, admin)
	resp, body := roundTrip(t, c, bufio.NewReader(c), "GET /_ping HTTP/1.1\r\nHost: docker\r\nX-Big: "+strings.Repeat("a", 8000)+"\r\n\r\n")
	if resp.StatusCode != 431 || !strings.Contains(dockerMessage(t, body), "1024") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if e.fake.requests.Load() != 0 {
		t.Error("the request reached dockerd")
	}
	// A header under the limit is fine.
	c2 := e.dial(t, admin)
	if resp, body := roundTrip(t, c2, bufio.NewReader(c2), "GET /_ping HTTP/1.1\r\nHost: docker\r\nX-Small: "+strings.Repeat("a", 500)+"\r\n\r\n"); body != "OK" {
		t.Fatalf("small header: %d %q", resp.StatusCode, body)
	}
}

func TestConnectionCapPerClient(t *testing.T) {
	e := newEnv(t, Options{MaxConnsPerClient: 2})
	alice, _ := e.pki.client(t, "alice")
	bob, _ := e.pki.client(t, "bob")
	ping := "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
	var open []net.Conn
	for range 2 {
		c := e.dial(t, alice)
		if _, body := roundTrip(t, c, bufio.NewReader(c), ping); body != "OK" {
			t.Fatal(body)
		}
		open = append(open, c)
	}
	extra := e.dial(t, alice)
	br := bufio.NewReader(extra)
	resp, body := roundTrip(t, extra, br, ping)
	if resp.StatusCode != 429 || !strings.Contains(dockerMessage(t, body), "limit is 2") || !resp.Close {
		t.Fatalf("third connection: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if b, _ := io.ReadAll(br); len(b) != 0 {
		t.Errorf("the refused connection carried on: %q", b)
	}
	// Another client is not affected.
	if err := pingWith(e.addr, e.tlsConfig(bob)); err != nil {
		t.Fatalf("bob: %v", err)
	}
	// Once alice closes one, she may open another.
	open[0].Close()
	waitFor(t, "alice's closed connection to be released", func() bool {
		for _, c := range e.srv.Status().Clients {
			if c.User == "alice" {
				return c.Active == 1
			}
		}
		return false
	})
	if err := pingWith(e.addr, e.tlsConfig(alice)); err != nil {
		t.Fatalf("alice after closing one: %v", err)
	}
}

func TestTimeoutsCloseConnections(t *testing.T) {
	// Short timeouts; a legitimate request arrives in one write, so only
	// the stalled ones trip them.
	e := newEnv(t, Options{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	admin, _ := e.pki.client(t, "admin")
	t.Run("slow header", func(t *testing.T) {
		c := e.dial(t, admin)
		io.WriteString(c, "GET /_ping HTTP/1.1\r\nHost: do")
		if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !isReset(err)) {
			t.Fatalf("got %q, %v; want the connection closed", b, err)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := e.dial(t, admin)
		br := bufio.NewReader(c)
		roundTrip(t, c, br, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
		if b, err := io.ReadAll(br); len(b) != 0 || (err != nil && !isReset(err)) {
			t.Fatalf("got %q, %v; want the connection closed", b, err)
		}
	})
	t.Run("no handshake", func(t *testing.T) {
		e := newEnv(t, Options{HandshakeTimeout: 100 * time.Millisecond})
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitLimit))
		if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !isReset(err)) {
			t.Fatalf("got %q, %v; want the connection closed", b, err)
		}
	})
}

func TestStatus(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, Options{Now: func() time.Time { return now }})
	ro, _ := e.pki.client(t, "bob", "read-only")
	c := e.httpClient(t, ro)
	get(t, c, "GET", "/_ping", nil)
	get(t, c, "POST", "/containers/create", strings.NewReader("{}"))
	st := e.srv.Status()
	if st.Serial != e.set.Serial() || st.NotAfter != e.set.Cert.NotAfter || len(st.Listeners) != 1 || st.Listeners[0] != e.addr {
		t.Errorf("status %+v", st)
	}
	if len(st.Clients) != 1 {
		t.Fatalf("clients %+v", st.Clients)
	}
	cl := st.Clients[0]
	if cl.User != "bob" || cl.Groups[0] != "read-only" || cl.Requests != 2 || cl.Denied != 1 || !cl.LastSeen.Equal(now) || cl.Active != 1 {
		t.Errorf("client %+v", cl)
	}
	hits := map[string]uint64{}
	for _, r := range st.Policy.Rules {
		hits[r.Name] = r.Hits
	}
	if st.Policy.Source != DefaultPolicySource || hits["read-only-get"] != 1 || hits["read-only"] != 1 {
		t.Errorf("policy %+v", st.Policy)
	}
}

func TestRecentClientsBounded(t *testing.T) {
	e := newEnv(t, Options{RecentClients: 3})
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		cert, _ := e.pki.client(t, name)
		if err := pingWith(e.addr, e.tlsConfig(cert)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the connection to close", func() bool { return e.srv.Status().Connections == 0 })
	}
	if n := len(e.srv.Status().Clients); n > 3 {
		t.Fatalf("%d clients remembered, want at most 3", n)
	}
}

// waitFor polls cond until it holds; waitLimit only guards against a hang.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
