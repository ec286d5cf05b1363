package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// startTunnel runs a tunnel from a unix socket to the proxy with a client
// bundle.
func startTunnel(t *testing.T, e *env, bundle string) *Tunnel {
	t.Helper()
	cfg, err := LoadClientBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tlsdock-tunnel")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_, port, _ := net.SplitHostPort(e.addr)
	tun, err := NewTunnel(TunnelConfig{Listen: "unix://" + filepath.Join(dir, "docker.sock"), To: "tcp://localhost:" + port, TLS: cfg, Logger: e.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tun.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return tun
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: waitLimit, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

func TestTunnel(t *testing.T) {
	e := newEnv(t, Options{})
	tun := startTunnel(t, e, e.pki.writeBundle(t, "alice", "read-only"))
	sock := tun.Addr().String()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v %v, want mode 0600", sock, fi.Mode(), err)
	}
	c := unixClient(sock)
	resp, err := c.Get("http://docker/_ping")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "OK" {
		t.Fatalf("/_ping through the tunnel: %d %q", resp.StatusCode, b)
	}
	// The proxy sees the bundle's identity.
	resp, err = c.Post("http://docker/v1.41/containers/create", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(dockerMessage(t, string(b)), `"alice"`) {
		t.Fatalf("read-only create through the tunnel: %d %q", resp.StatusCode, b)
	}
}

func TestTunnelHijackHalfClose(t *testing.T) {
	e := newEnv(t, Options{})
	tun := startTunnel(t, e, e.pki.writeBundle(t, "admin"))
	c, err := net.Dial("unix", tun.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /v1.41/containers/x/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	resp, err := readResponse(br)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	io.WriteString(c, "hi\n")
	c.(*net.UnixConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "hi\nbye" {
		t.Fatalf("got %q, %v; want \"hi\\nbye\"", rest, err)
	}
}

func TestTunnelListenAddresses(t *testing.T) {
	p := newPKI(t)
	cfg, err := LoadClientBundle(p.writeBundle(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		listen, to string
		remote     bool
		want       string // "" = accepted
	}{
		{"tcp://127.0.0.1:0", "tcp://host:2376", false, ""},
		{"tcp://[::1]:0", "tcp://host:2376", false, ""},
		{"tcp://localhost:0", "tcp://host:2376", false, ""},
		{"tcp://0.0.0.0:0", "tcp://host:2376", false, "not a loopback address"},
		{"tcp://:0", "tcp://host:2376", false, "not a loopback address"},
		{"tcp://0.0.0.0:0", "tcp://host:2376", true, ""},
		{"unix://relative.sock", "tcp://host:2376", false, "ABSOLUTE"},
		{"http://127.0.0.1:0", "tcp://host:2376", false, "expected unix"},
		{"tcp://127.0.0.1:0", "host:2376", false, "tcp://HOST:PORT"},
		{"tcp://127.0.0.1:0", "tcp://host", false, "tcp://HOST:PORT"},
	} {
		t.Run(tc.listen+" "+tc.to, func(t *testing.T) {
			tun, err := NewTunnel(TunnelConfig{Listen: tc.listen, To: tc.to, TLS: cfg, AllowRemote: tc.remote})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				tun.Close()
				return
			}
			if err == nil {
				tun.Close()
				t.Fatalf("accepted, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("live socket", func(t *testing.T) {
		dir, _ := os.MkdirTemp("", "tlsdock-tunnel")
		defer os.RemoveAll(dir)
		sock := filepath.Join(dir, "s")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := NewTunnel(TunnelConfig{Listen: "unix://" + sock, To: "tcp://h:1", TLS: cfg}); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("regular file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewTunnel(TunnelConfig{Listen: "unix://" + f, To: "tcp://h:1", TLS: cfg}); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("error %v", err)
		}
	})
}
