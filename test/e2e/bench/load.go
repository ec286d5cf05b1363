package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// loadTarget is one provisioned host and the client bundle (on this
// machine) that the load worker uses against it.
type loadTarget struct {
	name string
	h    *testhost.Host
	dir  string // ca.pem, cert.pem, key.pem
	addr string // in h's network namespace; empty: 127.0.0.1:2376
}

// runLoad runs the load worker in t's network namespace.
func (b *bench) runLoad(ctx context.Context, t loadTarget, mode string, d time.Duration) (*loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	addr := t.addr
	if addr == "" {
		addr = "127.0.0.1:2376"
	}
	out, _, err := t.h.ExecNet(ctx, nil, nil, b.self, "worker", "load", "-mode", mode,
		"-addr", addr,
		"-ca", filepath.Join(t.dir, "ca.pem"), "-cert", filepath.Join(t.dir, "cert.pem"), "-key", filepath.Join(t.dir, "key.pem"),
		"-c", strconv.Itoa(b.p.loadConc), "-d", d.String(), "-n", strconv.Itoa(b.p.loadMax))
	if err != nil {
		return nil, err
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("load worker printed %q: %w", out, err)
	}
	if r.Errors > 0 {
		return nil, fmt.Errorf("load worker against %s (%s): %d errors, first: %s", t.name, mode, r.Errors, r.FirstErr)
	}
	if r.Count == 0 {
		return nil, fmt.Errorf("load worker against %s (%s): no operation completed", t.name, mode)
	}
	return &r, nil
}

// loadFigures are one host's samples of row 3.
type loadFigures struct {
	handshakes, newconnRate, newconnP50, newconnP99, keepalive sample
	tls                                                        string
}

type loadResults struct {
	ecdsa, rsa loadFigures
}

var loadModes = []string{"handshake", "newconn", "keepalive"}

// benchLoad provisions two hosts, one with tlsdock's defaults and one with
// the openssl recipe's RSA-4096 set, and measures them in alternation.
func benchLoad(ctx context.Context, b *bench, rsaDir string) (*loadResults, error) {
	b.progress("new-connection cost: booting two hosts")
	ecdsaHost, err := b.bootHost(ctx, "ecdsa")
	if err != nil {
		return nil, err
	}
	defer b.closeHost(ecdsaHost)
	rsaHost, err := b.bootHost(ctx, "rsa")
	if err != nil {
		return nil, err
	}
	defer b.closeHost(rsaHost)

	if _, _, err := provision(ctx, ecdsaHost, "--generate", "--client-out", "/root/client"); err != nil {
		return nil, err
	}
	ecdsa := loadTarget{name: "tlsdock defaults (ECDSA P-256)", h: ecdsaHost, dir: filepath.Join(b.tmp, "client-ecdsa")}
	if err := fetch(ecdsaHost, "/root/client", ecdsa.dir, "ca.pem", "cert.pem", "key.pem"); err != nil {
		return nil, err
	}

	for _, f := range []struct{ from, to string }{
		{"ca.pem", "/root/certs/ca.pem"}, {"server-cert.pem", "/root/certs/server-cert.pem"}, {"server-key.pem", "/root/certs/server-key.pem"},
		{"cert.pem", "/root/client/cert.pem"}, {"key.pem", "/root/client/key.pem"},
	} {
		if err := rsaHost.CopyIn(filepath.Join(rsaDir, f.from), f.to, 0o600); err != nil {
			return nil, err
		}
	}
	if _, _, err := provision(ctx, rsaHost, "--certs", "/root/certs", "--probe-client", "/root/client"); err != nil {
		return nil, err
	}
	rsa := loadTarget{name: "openssl recipe (RSA-4096)", h: rsaHost, dir: rsaDir}

	// Warm up both (first connections, lazy initialisation): not counted.
	for _, t := range []loadTarget{ecdsa, rsa} {
		for _, m := range loadModes {
			if _, err := b.runLoad(ctx, t, m, 300*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}

	r := &loadResults{}
	for i := range b.p.loadRuns {
		for _, m := range loadModes {
			// Alternate which host goes first.
			order := []loadTarget{ecdsa, rsa}
			if i%2 == 1 {
				order = []loadTarget{rsa, ecdsa}
			}
			for _, t := range order {
				b.progress("new-connection cost %d/%d: %s against %s", i+1, b.p.loadRuns, m, t.name)
				res, err := b.runLoad(ctx, t, m, b.p.loadDur)
				if err != nil {
					return nil, err
				}
				fig := &r.ecdsa
				if t.h == rsaHost {
					fig = &r.rsa
				}
				switch m {
				case "handshake":
					fig.handshakes = append(fig.handshakes, res.rate())
					fig.tls = res.TLS
				case "newconn":
					fig.newconnRate = append(fig.newconnRate, res.rate())
					fig.newconnP50 = append(fig.newconnP50, ms(res.P50))
					fig.newconnP99 = append(fig.newconnP99, ms(res.P99))
				case "keepalive":
					fig.keepalive = append(fig.keepalive, res.rate())
				}
			}
		}
	}
	return r, nil
}
