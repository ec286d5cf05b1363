package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Client bundle file names, as in DOCKER_CERT_PATH.
const (
	ClientCAFile   = "ca.pem"
	ClientCertFile = "cert.pem"
	ClientKeyFile  = "key.pem"
)

// LoadClientBundle builds the client side of mutual TLS from a client bundle
// directory (ca.pem, cert.pem, key.pem): TLS 1.2 or newer, the server
// verified against ca.pem.
func LoadClientBundle(dir string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ClientCertFile), filepath.Join(dir, ClientKeyFile))
	if err != nil {
		return nil, fmt.Errorf("loading the client bundle in %s: %w", dir, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, ClientCAFile))
	if err != nil {
		return nil, fmt.Errorf("loading the client bundle in %s: %w", dir, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("loading the client bundle: %s holds no PEM certificate", filepath.Join(dir, ClientCAFile))
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}

// TunnelConfig configures a Tunnel.
type TunnelConfig struct {
	// Listen is where local clients connect: unix:///PATH or
	// tcp://127.0.0.1:PORT (any loopback address, or localhost).
	Listen string
	// To is the proxy: tcp://HOST:PORT.
	To string
	// TLS is the client side of mutual TLS (see LoadClientBundle). Its
	// ServerName defaults to To's host.
	TLS *tls.Config
	// AllowRemote permits a non-loopback TCP listen address; anyone who
	// can connect to it gets the remote Docker API.
	AllowRemote bool
	// DialTimeout bounds the TCP connect and TLS handshake; default 10s.
	DialTimeout time.Duration
	// Logger; default slog.Default(), with component=tunnel.
	Logger *slog.Logger
}

// Tunnel gives tools that speak plain HTTP, or only a unix socket, the
// remote Docker API over mutual TLS: it accepts local connections and pipes
// their bytes, unchanged and in both directions (with half-close), through a
// TLS connection to the proxy.
type Tunnel struct {
	cfg  TunnelConfig
	to   string
	l    net.Listener
	log  *slog.Logger
	wg   sync.WaitGroup
	mu   sync.Mutex
	cons map[net.Conn]struct{}
	done bool
}

// NewTunnel validates cfg and starts listening. A unix socket is created
// mode 0600, replacing a stale socket file; a live one is an error.
func NewTunnel(cfg TunnelConfig) (*Tunnel, error) {
	if cfg.TLS == nil {
		return nil, errors.New("tunnel: no client TLS configuration: load a client bundle (ca.pem, cert.pem, key.pem)")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	to, err := parseTo(cfg.To)
	if err != nil {
		return nil, err
	}
	tc := cfg.TLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(to)
	}
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	cfg.TLS = tc
	network, addr, err := parseListen(cfg.Listen, cfg.AllowRemote)
	if err != nil {
		return nil, err
	}
	var l net.Listener
	if network == "unix" {
		l, err = listenUnix(addr)
	} else {
		l, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("tunnel: listening on %s: %w", cfg.Listen, err)
	}
	return &Tunnel{cfg: cfg, to: to, l: l, log: cfg.Logger.With("component", "tunnel"), cons: map[net.Conn]struct{}{}}, nil
}

func parseTo(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "tcp" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("tunnel: --to %q: expected tcp://HOST:PORT", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("tunnel: --to %q: expected tcp://HOST:PORT (the proxy usually listens on 2376)", s)
	}
	return u.Host, nil
}

// parseListen checks a listen address: unix:///PATH, or tcp://HOST:PORT on a
// loopback address unless allowRemote.
func parseListen(s string, allowRemote bool) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("tunnel: --listen %q: expected unix:///ABSOLUTE/PATH", s)
		}
		return "unix", p, nil
	case strings.HasPrefix(s, "tcp://"):
		hp := strings.TrimPrefix(s, "tcp://")
		host, port, err := net.SplitHostPort(hp)
		if err != nil || port == "" {
			return "", "", fmt.Errorf("tunnel: --listen %q: expected tcp://127.0.0.1:PORT", s)
		}
		if !allowRemote && !isLoopbackHost(host) {
			return "", "", fmt.Errorf("tunnel: --listen %q is not a loopback address: anyone who can reach it gets the remote Docker API without a certificate; use tcp://127.0.0.1:PORT or a unix socket, or pass --allow-remote", s)
		}
		return "tcp", hp, nil
	}
	return "", "", fmt.Errorf("tunnel: --listen %q: expected unix:///PATH or tcp://127.0.0.1:PORT", s)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: remove it or choose another path", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restricting %s to its owner: %w", path, err)
	}
	return l, nil
}

// Addr is the local address the tunnel listens on.
func (t *Tunnel) Addr() net.Addr { return t.l.Addr() }

// Serve accepts local connections until ctx ends or Close is called, then
// closes every connection and returns nil.
func (t *Tunnel) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { t.Close() })
	defer stop()
	t.log.Info("tunnel listening", "listen", t.l.Addr().String(), "to", t.to)
	for {
		c, err := t.l.Accept()
		if err != nil {
			t.mu.Lock()
			done := t.done
			t.mu.Unlock()
			if done {
				t.wg.Wait()
				return nil
			}
			if temporary(err) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("tunnel: accepting: %w", err)
		}
		if !t.track(c, true) {
			c.Close()
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer t.track(c, false)
			t.pipe(ctx, c)
		}()
	}
}

// Close stops the tunnel and closes every connection.
func (t *Tunnel) Close() error {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return nil
	}
	t.done = true
	for c := range t.cons {
		c.Close()
	}
	t.mu.Unlock()
	return t.l.Close()
}

func (t *Tunnel) track(c net.Conn, add bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if add {
		if t.done {
			return false
		}
		t.cons[c] = struct{}{}
	} else {
		delete(t.cons, c)
	}
	return true
}

func (t *Tunnel) pipe(ctx context.Context, local net.Conn) {
	defer local.Close()
	dctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	d := tls.Dialer{Config: t.cfg.TLS}
	rc, err := d.DialContext(dctx, "tcp", t.to)
	cancel()
	if err != nil {
		t.log.Warn("cannot reach the proxy", "to", t.to, "error", err)
		return
	}
	remote := rc.(*tls.Conn)
	if !t.track(remote, true) {
		remote.Close()
		return
	}
	defer t.track(remote, false)
	defer remote.Close()
	splice(local, remote)
}

// splice copies both ways until each side has closed its half: EOF from one
// side half-closes the other.
func splice(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(b, a); err == nil {
			closeWrite(b)
		} else {
			a.Close()
			b.Close()
		}
	}()
	if _, err := io.Copy(a, b); err == nil {
		closeWrite(a)
	} else {
		a.Close()
		b.Close()
	}
	<-done
}
