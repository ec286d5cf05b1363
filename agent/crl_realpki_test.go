package agent

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/proxy"
)

// TestRealPKICRL runs against files made by a real PKI, when
// TLSDOCK_REAL_PKI_DIR names a directory with: ca.pem (the root only),
// server-cert.pem (leaf then intermediate) and server-key.pem, alice.crt
// and alice.key (revoked), bob.crt and bob.key (not revoked), and crl.der
// (the CRL the PKI published). test/e2e/realpki.sh makes it with step-ca.
func TestRealPKICRL(t *testing.T) {
	dir := os.Getenv("TLSDOCK_REAL_PKI_DIR")
	if dir == "" {
		t.Skip("set TLSDOCK_REAL_PKI_DIR (see test/e2e/realpki.sh)")
	}
	set, err := certstore.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	crl := filepath.Join(dir, "crl.der")
	if err := checkCRLs(Paths{Root: t.TempDir()}, []string{crl}, set, time.Now()); err != nil {
		t.Fatalf("provision's check refuses the PKI's CRL: %v", err)
	}
	cfg := Defaults()
	cfg.Mode, cfg.CRLs = ModeProxy, []string{crl}
	var addr string
	d, err := NewProxyDaemon(ProxyDaemonOptions{
		Paths: Paths{Root: t.TempDir()}, Config: cfg,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Proxy:  proxy.Options{Socket: fakeDockerd(t)},
		Listen: func() ([]net.Listener, error) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			addr = l.Addr().String()
			return []net.Listener{l}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	if err := d.Reload(set); err != nil {
		t.Fatal(err)
	}
	ping := func(name string) error {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return pingWith(addr, set.CAs[0], c)
	}
	if err := ping("bob"); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if err := ping("alice"); err == nil {
		t.Fatal("alice, revoked in the PKI's CRL, gets in")
	}
}
