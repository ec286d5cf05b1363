package agent

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore/certtest"
)

// TestProvisionPublicServerChainPrivateClientCA is certbot's layout:
// fullchain.pem (a public CA's leaf and intermediate) and privkey.pem in
// the source, the client CA a private CA at an absolute path. Provision
// refuses it when the system's roots do not hold the public root (the
// leaf chains to neither), takes it when they do, installs the client CA
// as dockerd's tlscacert, and the probe verifies the server against the
// system's roots, not the client CA.
func TestProvisionPublicServerChainPrivateClientCA(t *testing.T) {
	h := newFakeHost(t)
	public := certtest.New(t)
	certPEM, keyPEM := public.Server(t)
	clientCA := certtest.NewCA(t, "Private Client CA", nil)
	dir, err := os.MkdirTemp(h.root, "letsencrypt")
	must(t, err)
	caDir, err := os.MkdirTemp(h.root, "client-ca")
	must(t, err)
	for path, data := range map[string][]byte{
		filepath.Join(dir, "fullchain.pem"): certPEM, filepath.Join(dir, "privkey.pem"): keyPEM,
		filepath.Join(caDir, "client-ca.pem"): clientCA.PEM,
	} {
		must(t, os.WriteFile(path, data, 0o600))
	}
	cfg := Defaults()
	cfg.Certs, cfg.CAFile, cfg.CertFile, cfg.KeyFile = dir, filepath.Join(caDir, "client-ca.pem"), "fullchain.pem", "privkey.pem"
	now := time.Now() // certtest issues around the real time
	agentWith := func(v *fakeVerifier, roots ...*x509.Certificate) *Agent {
		return h.agent(v, func(o *Options) {
			o.Now = func() time.Time { return now }
			o.SystemRoots = func() (*x509.CertPool, error) {
				pool := x509.NewCertPool()
				for _, c := range roots {
					pool.AddCert(c)
				}
				return pool, nil
			}
		})
	}

	if _, err := agentWith(&fakeVerifier{}).Provision(context.Background(), cfg); err == nil ||
		!strings.Contains(err.Error(), "is not signed by any CA in client-ca.pem") || !strings.Contains(err.Error(), "nor does it chain to the system's trusted roots") {
		t.Fatalf("without the public root among the system's roots: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(h.root, SSLDir, "ca.pem")); err == nil {
		t.Fatal("the refused provision installed a set")
	}

	v := &fakeVerifier{}
	mustProvision(t, agentWith(v, public.Root.Cert), cfg)
	if got := readFile(t, h.root, SSLDir+"/ca.pem"); got != string(clientCA.PEM) {
		t.Errorf("dockerd's tlscacert is not the client CA:\n%s", got)
	}
	if len(v.probes) == 0 {
		t.Fatal("no probe ran")
	}
	p := v.probes[len(v.probes)-1]
	var chain []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		must(t, err)
		chain = append(chain, c)
	}
	inter := x509.NewCertPool()
	inter.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: p.Roots, Intermediates: inter, CurrentTime: now}); err != nil {
		t.Errorf("the probe's roots do not verify the served chain (a client of the system's roots would): %v", err)
	}
	if p.Expect == nil || !p.Expect.Equal(chain[0]) {
		t.Error("the probe does not expect the source's leaf")
	}
}

// TestDaemonSourcePublicServerChain: the daemon's read of its source
// takes a public CA's chain with a private client CA when the system's
// roots hold the public root (RunOptions.SystemRoots), and refuses it
// when they do not, as provision does.
func TestDaemonSourcePublicServerChain(t *testing.T) {
	public := certtest.New(t)
	certPEM, keyPEM := public.Server(t)
	clientCA := certtest.NewCA(t, "Private Client CA", nil)
	now := time.Now() // certtest issues around the real time
	for _, tt := range []struct {
		name  string
		roots []*x509.Certificate
		ok    bool
	}{{"the public root among the system's", []*x509.Certificate{public.Root.Cert}, true}, {"without it", nil, false}} {
		t.Run(tt.name, func(t *testing.T) {
			g := newRig(t, func(_ *RunConfig, o *RunOptions) {
				o.SystemRoots = func() (*x509.CertPool, error) {
					pool := x509.NewCertPool()
					for _, c := range tt.roots {
						pool.AddCert(c)
					}
					return pool, nil
				}
			})
			writeSource(t, g.src, "ca.pem", clientCA.PEM)
			writeSource(t, g.src, "server-cert.pem", certPEM)
			writeSource(t, g.src, "server-key.pem", keyPEM)
			_, _, err := g.dir().load(now)
			if tt.ok && err != nil {
				t.Fatalf("load: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "nor does it chain to the system's trusted roots")) {
				t.Fatalf("load: %v, want a refusal", err)
			}
		})
	}
}
