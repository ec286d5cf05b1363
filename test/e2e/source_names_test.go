package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// pkgIssueFor is pkgIssueSet with another validity: step-ca's default is
// 24 hours.
func pkgIssueFor(t *testing.T, ca *certstore.CA, validity time.Duration) *pkgSet {
	t.Helper()
	s := pkgIssueSet(t, ca)
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{
		CommonName: "tlsdock-e2e", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: validity, Server: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := certstore.ParseSet(ca.CertPEM, certPEM, keyPEM, certstore.SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	s.Cert, s.Key, s.Serial = certPEM, keyPEM, set.Cert.SerialNumber
	return s
}

// clientPEM issues a client certificate of ca for the Docker CLI.
func clientPEM(t *testing.T, ca *certstore.CA) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{CommonName: "e2e-cli", KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 24 * time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// writeStepSet writes s under step's file names into dir inside h
// (`step ca root root_ca.crt`, `step ca certificate NAME server.crt
// server.key`).
func writeStepSet(t *testing.T, h *testhost.Host, dir string, s *pkgSet) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"root_ca.crt", s.CA, 0o644}, {"server.crt", s.Cert, 0o644}, {"server.key", s.Key, 0o600}} {
		if err := h.WriteFile(dir+"/"+f.name, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPackagedUnitServesTheProvisionedSource: on a host with the .deb
// installed, a native provision (dropin mode) from a source with step's
// file names is
// what the packaged tlsdock.service watches afterwards, with no --certs
// on its command line: a renewal written there is served, the real Docker
// CLI gets in, and status says where the source comes from, with no
// standing warning for step's 24-hour certificates. A source under /root
// is refused first, naming the sandbox.
func TestPackagedUnitServesTheProvisionedSource(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	b := pkgPackages(t, "")
	h := testhost.Start(t)
	ctx := ctxFor(t, 8*time.Minute)
	if err := h.CopyIn(b.Deb, "/root/tlsdock.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dpkg -i:\n%s", pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock.deb"))
	ca := pkgNewCA(t)
	setA, setB := pkgIssueFor(t, ca, 24*time.Hour), pkgIssueFor(t, ca, 24*time.Hour)
	names := []string{"--ca-file", "root_ca.crt", "--cert-file", "server.crt", "--key-file", "server.key"}

	t.Run("a source under /root is refused", func(t *testing.T) {
		writeStepSet(t, h, "/root/step", setA)
		pidBefore := dockerPID(t, ctx, h)
		out, code := pkgExec(ctx, h, append([]string{"tlsdock", "provision", "--certs", "/root/step"}, names...)...)
		if code != 2 {
			t.Fatalf("provision --certs /root/step: exit %d, want 2\n%s", code, out)
		}
		for _, want := range []string{"/root/step is under /root", "ProtectHome=yes in /lib/systemd/system/tlsdock.service", "ProtectHome=read-only"} {
			if !strings.Contains(out, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, out)
			}
		}
		if pkgExists(h, "/etc/docker/ssl/server-cert.pem") || pkgExists(h, "/var/lib/tlsdock/state.json") || dockerPID(t, ctx, h) != pidBefore {
			t.Fatal("the refused provision changed the host")
		}
		t.Logf("refused:\n%s", out)
	})

	const src = "/etc/tlsdock/step"
	writeStepSet(t, h, src, setA)
	out := pkgMustExec(t, ctx, h, append([]string{"tlsdock", "provision", "--mode", "dropin", "--certs", src}, names...)...)
	t.Logf("provision:\n%s", out)
	pkgAssertServes(t, h, setA)
	pkgMustExec(t, ctx, h, "systemctl", "start", "tlsdock.service")
	if exec := pkgShow(t, ctx, h, "tlsdock.service", "ExecStart"); !strings.Contains(exec, "argv[]=/usr/bin/tlsdock run ;") {
		t.Fatalf("tlsdock.service does not run the packaged command line: %s", exec)
	}
	if got := pkgShow(t, ctx, h, "tlsdock.service", "ProtectHome"); got != "yes" {
		t.Fatalf("tlsdock.service runs with ProtectHome=%s", got)
	}

	// The issuer renews: the new set, under the same names, is served.
	writeStepSet(t, h, src, setB)
	took := waitServes(t, ctx, h, setB, "the renewal in "+src)
	t.Logf("renewal served %v after it was written", took.Round(100*time.Millisecond))
	pkgAssertServes(t, h, setB)

	// The real Docker CLI, with a client of that CA.
	bundle := t.TempDir()
	cliCert, cliKey := clientPEM(t, ca)
	for n, data := range map[string][]byte{"ca.pem": setB.CA, "cert.pem": cliCert, "key.pem": cliKey} {
		if err := os.WriteFile(filepath.Join(bundle, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := remoteDocker(ctx, t, h, bundle, "", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("docker version over TLS: %v\n%s", err, out)
	} else {
		t.Logf("docker version over TLS: server %s", strings.TrimSpace(out))
	}

	status := pkgMustExec(t, ctx, h, "tlsdock", "status")
	t.Logf("status:\n%s", status)
	if want := "source:      " + src + " (from tlsdock provision (/var/lib/tlsdock/state.json)), files root_ca.crt, server.crt, server.key"; !strings.Contains(status, want) {
		t.Errorf("status does not say %q", want)
	}
	if !strings.Contains(status, "mode:        dropin\n") {
		t.Errorf("the daemon's rotation did not keep the provision's mode (dropin)")
	}
	if strings.Contains(status, "attention:") {
		t.Errorf("status stands in attention for a 24-hour certificate just renewed")
	}
	pkgAssertCleanJournal(t, ctx, h)
}

// waitServes polls 127.0.0.1:2376 inside h until it serves s's serial to
// a client of s's CA.
func waitServes(t *testing.T, ctx context.Context, h *testhost.Host, s *pkgSet, what string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(2 * time.Minute) // a bound only
	for {
		serial, err := pkgPing(h, s.Pool, &s.Client)
		if err == nil && serial.Cmp(s.Serial) == 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not served (last: serial %v, %v); tlsdock.service:\n%s", what, serial, err, h.Journal(ctx, "tlsdock.service", 40))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestProxyServesRenamedSource: proxy mode reads, watches and hot-swaps a
// source under Kubernetes' file names, the client CA given by an absolute
// path elsewhere, without restarting dockerd.
func TestProxyServesRenamedSource(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	ca := pkgNewCA(t)
	setA, setB := pkgIssueFor(t, ca, 24*time.Hour), pkgIssueFor(t, ca, 24*time.Hour)
	const src, caPath = "/etc/tlsdock/k8s", "/etc/tlsdock/client-ca/ca.crt"
	write := func(s *pkgSet) {
		for p, data := range map[string][]byte{caPath: s.CA, src + "/tls.crt": s.Cert, src + "/tls.key": s.Key} {
			mode := os.FileMode(0o644)
			if strings.HasSuffix(p, ".key") {
				mode = 0o600
			}
			if err := h.WriteFile(p, data, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(setA)
	out := mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--certs", src, "--ca-file", caPath, "--cert-file", "tls.crt", "--key-file", "tls.key")
	t.Logf("provision:\n%s", out)
	pkgAssertServes(t, h, setA)
	pid := dockerPID(t, ctx, h)
	write(setB)
	t.Logf("renewal served %v after it was written", waitServes(t, ctx, h, setB, "the renewal in "+src).Round(100*time.Millisecond))
	if got := dockerPID(t, ctx, h); got != pid {
		t.Errorf("dockerd restarted in proxy mode (MainPID %s -> %s)", pid, got)
	}
}
