package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore/certtest"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// pfCertbotWrite lays out one certbot lineage version N as certbot does:
// archive/DOMAIN/{cert,chain,fullchain,privkey}N.pem (the key 0600, the
// directories 0700) and live/DOMAIN/NAME.pem symlinks into it, re-pointed
// on a renewal.
func pfCertbotWrite(t *testing.T, h *testhost.Host, n string, leafPEM, chainPEM, keyPEM []byte) {
	t.Helper()
	const archive = "/etc/letsencrypt/archive/pf.example"
	for name, f := range map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"cert": {leafPEM, 0o644}, "chain": {chainPEM, 0o644},
		"fullchain": {append(append([]byte{}, leafPEM...), chainPEM...), 0o644}, "privkey": {keyPEM, 0o600},
	} {
		if err := h.WriteFile(archive+"/"+name+n+".pem", f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxFor(t, time.Minute)
	run(t, ctx, h, "sh", "-euc", `
		mkdir -p /etc/letsencrypt/live/pf.example
		chmod 0700 /etc/letsencrypt/archive /etc/letsencrypt/live
		cd /etc/letsencrypt/live/pf.example
		for f in cert chain fullchain privkey; do ln -sfn ../../archive/pf.example/${f}`+n+`.pem ${f}.pem; done`)
}

// pfSplitLeaf splits a PEM chain into its first certificate and the rest.
func pfSplitLeaf(t *testing.T, chain []byte) (leafPEM, rest []byte, leaf *x509.Certificate) {
	t.Helper()
	b, rest := pem.Decode(chain)
	if b == nil {
		t.Fatal("no certificate in the chain")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(b), rest, c
}

// TestCertbotWithPrivateClientCA: certbot's live directory (symlinks
// into archive) holds a public CA's chain, and the clients' CA is a
// private one (--ca-file, absolute). The public root is among the host's
// trusted roots (update-ca-certificates), as Let's Encrypt's is. cert.pem
// without its intermediate is refused naming fullchain.pem; fullchain.pem
// is served, to a client of the private CA only (a client certificate of
// the public CA is refused); the packaged daemon serves certbot's renewal
// (new archive files, re-pointed links); and the Docker CLI, which trusts
// only DOCKER_CERT_PATH/ca.pem, gets in with ca.pem = the public root and
// not with the client CA there. Verification gets in as a probe client
// of the private CA, verifying the server with the public root; proxy
// mode serves the same source the same way.
func TestCertbotWithPrivateClientCA(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	b := pkgPackages(t, "")
	h := pfStart(t, "certbot")
	ctx := ctxFor(t, 8*time.Minute)
	if err := h.CopyIn(b.Deb, "/root/tlsdock.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dpkg -i:\n%s", pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock.deb"))

	public := certtest.New(t)
	clientCA := certtest.NewCA(t, "pf private client CA", nil)
	if err := h.WriteFile("/usr/local/share/ca-certificates/pf-public-root.crt", public.Root.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("update-ca-certificates: %s", run(t, ctx, h, "update-ca-certificates"))
	if err := h.WriteFile("/etc/tlsdock/client-ca.pem", clientCA.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	chain1, key1 := public.Server(t)
	leaf1PEM, inter1PEM, leaf1 := pfSplitLeaf(t, chain1)
	pfCertbotWrite(t, h, "1", leaf1PEM, inter1PEM, key1)

	publicPool := x509.NewCertPool()
	publicPool.AddCert(public.Root.Cert)
	alice, _ := certtest.Client(t, clientCA, "alice", nil)
	mallory, _ := certtest.Client(t, public.Inter, "mallory", nil)
	const live = "/etc/letsencrypt/live/pf.example"
	// The probe's client, of the private CA: verification connects as it
	// and must verify the server with the public root.
	probeCert, probeKey, _ := certtest.ClientPEM(t, clientCA, "probe")
	for n, data := range map[string][]byte{"cert.pem": probeCert, "key.pem": probeKey} {
		if err := h.WriteFile("/etc/tlsdock/probe-client/"+n, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := func(certFile string, more ...string) []string {
		return append([]string{"tlsdock", "provision", "--mode", "dropin", "--certs", live, "--cert-file", certFile, "--key-file", "privkey.pem",
			"--ca-file", "/etc/tlsdock/client-ca.pem", "--probe-client", "/etc/tlsdock/probe-client"}, more...)
	}

	t.Run("cert.pem without its intermediate is refused", func(t *testing.T) {
		pid := dockerPID(t, ctx, h)
		out, code := pkgExec(ctx, h, args("cert.pem")...)
		if code != 2 || !strings.Contains(out, "as certbot's fullchain.pem has them (its cert.pem does not)") {
			t.Fatalf("provision --cert-file cert.pem: exit %d, want 2 with the hint at fullchain.pem\n%s", code, out)
		}
		if pkgExists(h, "/etc/docker/ssl/server-cert.pem") || dockerPID(t, ctx, h) != pid {
			t.Fatal("the refused provision changed the host")
		}
	})

	out, code := pkgExec(ctx, h, args("fullchain.pem")...)
	t.Logf("provision --cert-file fullchain.pem (exit %d):\n%s", code, out)
	if code != 0 {
		t.Fatalf("provision of certbot's fullchain.pem with a private client CA: exit %d", code)
	}
	if !strings.Contains(out, "ok   127.0.0.1:2376: a valid client gets /_ping = OK\n") {
		t.Errorf("verification did not get in as the probe client, verifying the server with the public root")
	}
	if got, err := h.ReadFile("/etc/docker/ssl/ca.pem"); err != nil || string(got) != string(clientCA.PEM) {
		t.Errorf("dockerd's tlscacert is not the private client CA (%v)", err)
	}
	serial, err := pkgPing(h, publicPool, &alice)
	if err != nil || serial.Cmp(leaf1.SerialNumber) != 0 {
		t.Fatalf("a client of the private CA, verifying the server with the public root: serial %v, %v", serial, err)
	}
	if _, err := pkgPing(h, publicPool, &mallory); err == nil {
		t.Fatal("a client certificate of the public CA got in: tlscacert must be the private client CA only")
	}

	t.Run("the packaged daemon serves certbot's renewal", func(t *testing.T) {
		pkgMustExec(t, ctx, h, "systemctl", "start", "tlsdock.service")
		chain2, key2 := public.Server(t)
		leaf2PEM, inter2PEM, leaf2 := pfSplitLeaf(t, chain2)
		pfCertbotWrite(t, h, "2", leaf2PEM, inter2PEM, key2)
		took := waitServes(t, ctx, h, &pkgSet{Pool: publicPool, Client: alice, Serial: leaf2.SerialNumber}, "certbot's renewal")
		t.Logf("renewal served %v after the links were re-pointed", took.Round(100*time.Millisecond))
		pkgAssertCleanJournal(t, ctx, h)
	})

	t.Run("the Docker CLI trusts only DOCKER_CERT_PATH/ca.pem", func(t *testing.T) {
		certPEM, keyPEM, _ := certtest.ClientPEM(t, clientCA, "cli")
		bundle := func(ca []byte) string {
			dir := t.TempDir()
			for n, data := range map[string][]byte{"ca.pem": ca, "cert.pem": certPEM, "key.pem": keyPEM} {
				if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return dir
		}
		if out, err := remoteDocker(ctx, t, h, bundle(public.Root.PEM), "", "version", "--format", "{{.Server.Version}}"); err != nil {
			t.Fatalf("docker with ca.pem = the server's public root: %v\n%s", err, out)
		}
		out, err := remoteDocker(ctx, t, h, bundle(clientCA.PEM), "", "version", "--format", "{{.Server.Version}}")
		t.Logf("docker with ca.pem = the client CA (%v):\n%s", err, out)
		if err == nil {
			t.Error("the Docker CLI verified the public server chain with only the client CA in ca.pem")
		}
	})

	t.Run("proxy mode", func(t *testing.T) {
		out, code := pkgExec(ctx, h, append(args("fullchain.pem"), "--mode", "proxy")...)
		t.Logf("provision --mode proxy (exit %d):\n%s", code, out)
		if code != 0 {
			t.Fatalf("provision --mode proxy: exit %d", code)
		}
		if !strings.Contains(out, "ok   127.0.0.1:2376: a valid client gets /_ping = OK\n") {
			t.Errorf("proxy mode: verification did not get in as the probe client")
		}
		if _, err := pkgPing(h, publicPool, &alice); err != nil {
			t.Errorf("proxy mode: a client of the private CA: %v", err)
		}
		if _, err := pkgPing(h, publicPool, &mallory); err == nil {
			t.Error("proxy mode: a client certificate of the public CA got in")
		}
	})
}
