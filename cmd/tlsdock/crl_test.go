package main

import (
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore/certtest"
	"github.com/tlsdock/tlsdock/proxy"
)

// TestProvisionRefusesAnUnusableCRL: `provision --mode proxy --crl` exits 2
// on a CRL the proxy could not use, names the file, says what to do and
// changes nothing.
func TestProvisionRefusesAnUnusableCRL(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		// crl makes the CRL file's content (nil: no file) and may persist
		// a CRL in force under root.
		crl  func(t *testing.T, p *certtest.PKI, root, path string) []byte
		hint string
	}{
		{"missing", func(*testing.T, *certtest.PKI, string, string) []byte { return nil }, "no such file"},
		{"garbage", func(*testing.T, *certtest.PKI, string, string) []byte { return []byte("garbage") }, "cannot be parsed"},
		{"foreign-signed", func(t *testing.T, _ *certtest.PKI, _, _ string) []byte {
			return certtest.NewCA(t, "Other CA", nil).CRL(t, big.NewInt(1), now, now.Add(time.Hour))
		}, "signed by the CA that issues the client certificates"},
		{"expired", func(t *testing.T, p *certtest.PKI, _, _ string) []byte {
			return p.Inter.CRL(t, big.NewInt(1), now.Add(-2*time.Hour), now.Add(-time.Hour))
		}, "expired"},
		{"older than the one in force", func(t *testing.T, p *certtest.PKI, root, path string) []byte {
			state := agent.CRLStatePath(agent.Paths{Root: root}, path)
			if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(state, p.Inter.CRL(t, big.NewInt(5), now, now.Add(time.Hour)), 0o600); err != nil {
				t.Fatal(err)
			}
			return p.Inter.CRL(t, big.NewInt(3), now, now.Add(time.Hour))
		}, "number 3 < 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHostCLI(t)
			p := certtest.New(t)
			certPEM, keyPEM := p.Server(t)
			certs := certSet{ca: p.Root.PEM, cert: certPEM, key: keyPEM}.dir(t)
			crl := filepath.Join(t.TempDir(), "crl.pem")
			if data := tc.crl(t, p, h.root, crl); data != nil {
				if err := os.WriteFile(crl, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := hashTree(t, h.root)
			code, stdout, stderr := h.run("provision", "--mode", "proxy", "--certs", certs, "--host", "tcp://127.0.0.1:2376", "--crl", crl)
			t.Logf("stderr: %s", strings.TrimSpace(stderr))
			if code != ExitBadInput {
				t.Errorf("exit %d, want %d\nstdout:\n%s", code, ExitBadInput, stdout)
			}
			for _, want := range []string{"--crl", crl, tc.hint} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not contain %q", want)
				}
			}
			if d := treeDiff(before, hashTree(t, h.root)); len(d) > 0 {
				t.Errorf("bad input changed files:\n%s", strings.Join(d, "\n"))
			}
			if calls := h.sd.Calls(); len(calls) > 0 {
				t.Errorf("bad input called systemd: %q", calls)
			}
		})
	}
}

// TestProvisionTakesAnIntermediateCRL: the CRL of the intermediate that
// issues the clients is usable although ca.pem holds only the root.
func TestProvisionTakesAnIntermediateCRL(t *testing.T) {
	h := newFakeHostCLI(t)
	p := certtest.New(t)
	certPEM, keyPEM := p.Server(t)
	certs := certSet{ca: p.Root.PEM, cert: certPEM, key: keyPEM}.dir(t)
	crl := filepath.Join(t.TempDir(), "crl.pem")
	if err := os.WriteFile(crl, p.Inter.CRL(t, big.NewInt(1), time.Now(), time.Now().Add(time.Hour)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := h.run("provision", "--mode", "proxy", "--certs", certs, "--host", "tcp://127.0.0.1:2376", "--crl", crl, "--dry-run")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestPrintProxyStatusShowsRefusedCRLs(t *testing.T) {
	var b strings.Builder
	printProxyStatus(&b, &agent.ProxyDaemonStatus{Status: proxy.Status{
		CRLs: []proxy.CRLStatus{{Source: "/etc/tlsdock/crl.pem", Issuer: "CN=Intermediate", Number: "5", Revoked: 2}},
		CRLProblems: []proxy.CRLProblem{
			{Source: "/etc/tlsdock/crl.pem", Reason: "older than the CRL in force (number 3 < 5)", Keeping: "number 5"},
			{Source: "/etc/pki/other.crl", Reason: "missing: the file does not exist"},
		},
	}}, nil, time.Now())
	for _, want := range []string{
		"  crl:       /etc/tlsdock/crl.pem number 5 by CN=Intermediate, 2 revoked\n",
		"  crl:       /etc/tlsdock/crl.pem: rejected: older than the CRL in force (number 3 < 5); keeping number 5\n",
		"  crl:       /etc/pki/other.crl: rejected: missing: the file does not exist; no good CRL was ever loaded from it: EVERY CLIENT IS REFUSED until one loads\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

func TestPrintProxyStatusShowsCRLFetches(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	printProxyStatus(&b, &agent.ProxyDaemonStatus{CRLFetches: []agent.CRLFetchStatus{
		{URL: "https://ca:9000/crl", LastSuccess: now.Add(-42 * time.Second), LastAttempt: now.Add(-42 * time.Second), InForce: true, Number: "7", NextUpdate: now.Add(time.Hour), Refresh: "5m0s"},
		{URL: "http://ca2/crl", LastSuccess: now.Add(-20 * time.Minute), LastAttempt: now.Add(-3 * time.Second), InForce: true, Number: "3", Refresh: "5m0s",
			LastError: "fetch failed: dial tcp 10.0.0.9:80: connect: connection refused", Failures: 4},
		{URL: "http://ca3/crl", LastAttempt: now.Add(-time.Second), Refresh: "5m0s", LastError: "fetch failed: HTTP 404 Not Found", Failures: 1},
	}}, nil, now)
	for _, want := range []string{
		"  crl-url:   https://ca:9000/crl: fetched 42s ago (every 5m0s), number 7, next update 2026-12-06 13:00:00 UTC\n",
		"  crl-url:   http://ca2/crl: fetched 20m0s ago (every 5m0s), number 3; last fetch 3s ago: fetch failed: dial tcp 10.0.0.9:80: connect: connection refused (failures since the start: 4)\n",
		"  crl-url:   http://ca3/crl: never fetched successfully (every 5m0s), NO CRL IN FORCE: every client is refused; last fetch 1s ago: fetch failed: HTTP 404 Not Found (failures since the start: 1)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
