package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// startCISHost boots a test host named cis-LABEL-<hex> with tlsdock
// installed as /usr/local/bin/tlsdock.
func startCISHost(t *testing.T, label string) *testhost.Host {
	t.Helper()
	testhost.SkipUnlessEnabled(t)
	bin := tlsdockBinary(t)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := testhost.Boot(ctx, testhost.Options{Name: "cis-" + label + "-" + hex.EncodeToString(b[:]), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := h.CopyIn(bin, "/usr/local/bin/tlsdock", 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// cisScript reads the TLS paths dockerd is configured with the way
// docker-bench-security's checks 3.9 to 3.14 do
// (tests/3_docker_daemon_configuration_files.sh and helper_lib.sh): the
// last --tlscacert, --tlscert, --tlskey word of the running dockerd's
// command line, overridden by the key in /etc/docker/daemon.json (its
// jq-less branch: split on commas, grep the key, cut at the last colon,
// drop quotes and spaces); then `[ -f PATH ]` and `stat` without -L. It
// prints one line per option: OPTION PATH OWNER:GROUP MODE, or
// OPTION PATH missing.
const cisScript = `
cmd=$(ps -ef | grep '[d]ockerd' | head -n1)
for opt in tlscacert tlscert tlskey; do
  p=$(printf '%s\n' $cmd | grep -- "^--$opt" | tail -n1 | sed 's/^[^=]*=//')
  if [ -f /etc/docker/daemon.json ]; then
    j=$(tr , '\n' < /etc/docker/daemon.json | grep "\"$opt\"" | sed 's/.*://' | tr -d '" ')
    if [ -n "$j" ]; then p=$j; fi
  fi
  if [ -f "$p" ]; then echo "$opt $p $(stat -c '%U:%G %a' "$p")"; else echo "$opt $p missing"; fi
done
`

// checkCIS runs cisScript inside h and asserts what CIS 3.9 to 3.14 ask:
// root:root, 444 for the CA and the certificate, 400 for the key (the
// benchmark accepts 444 "or more restrictive", and the key exactly 400).
// It returns the configured paths.
func checkCIS(t *testing.T, ctx context.Context, h *testhost.Host, when string) map[string]string {
	t.Helper()
	out := run(t, ctx, h, "sh", "-c", cisScript)
	t.Logf("%s: CIS 3.9-3.14 read:\n%s", when, out)
	want := map[string]string{"tlscacert": "root:root 444", "tlscert": "root:root 444", "tlskey": "root:root 400"}
	paths := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			t.Errorf("%s: unexpected line %q", when, line)
			continue
		}
		paths[f[0]] = f[1]
		if f[2] != want[f[0]] {
			t.Errorf("%s: %s = %s reads %q, want %q", when, f[0], f[1], f[2], want[f[0]])
		}
	}
	if len(paths) != 3 {
		t.Fatalf("%s: the script found %d paths:\n%s", when, len(paths), out)
	}
	return paths
}

// checkStatusFiles asserts that `tlsdock status --json` lists the paths
// dockerd is configured with, each ok or not as want says.
func checkStatusFiles(t *testing.T, ctx context.Context, h *testhost.Host, when string, paths []string, want bool) {
	t.Helper()
	var st struct {
		Files []struct {
			Path, Mode, Owner string
			OK                bool
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(mustTlsdock(t, ctx, h, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Files) != len(paths) {
		t.Fatalf("%s: status files %+v, want %q", when, st.Files, paths)
	}
	for i, f := range st.Files {
		if f.Path != paths[i] || f.OK != want {
			t.Errorf("%s: status file %+v, want %s ok=%v", when, f, paths[i], want)
		}
	}
}

// cisIssuer makes server sets and a client bundle from one CA.
type cisIssuer struct {
	ca *certstore.CA
}

// writeClient writes a client bundle (ca.pem, cert.pem, key.pem) both into
// h at guestDir (for --probe-client) and into a directory on this machine,
// which it returns (for the machine's docker CLI).
func (i cisIssuer) writeClient(t *testing.T, h *testhost.Host, guestDir string) string {
	t.Helper()
	cert, key, err := i.ca.Issue(certstore.IssueRequest{CommonName: "cis-client", KeyType: certstore.ECDSAP256, Now: time.Now(), Validity: 24 * time.Hour}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	for name, data := range map[string][]byte{"ca.pem": i.ca.CertPEM, "cert.pem": cert, "key.pem": key} {
		if err := h.WriteFile(guestDir+"/"+name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return local
}

// TestCISPaths: after provision in each native mode, the TLS paths
// dockerd is configured with pass CIS 3.9 to 3.14 as docker-bench-security
// reads them, and still do after a rotation; dockerd serves mutual TLS
// with the set read through them. A host that an older tlsdock configured
// with the stable links (which read 777) converges on its next provision.
// Proxy mode, which reads the set itself, keeps serving and rotating.
func TestCISPaths(t *testing.T) {
	for _, mode := range []string{"daemon-json", "dropin", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			start := time.Now()
			h := startCISHost(t, strings.ReplaceAll(mode, "-", ""))
			ctx := ctxFor(t, 6*time.Minute)
			iss := cisIssuer{ca: e2eCA(t, time.Now())}
			const src, probe = "/srv/cis/certs", "/srv/cis/probe"
			client := iss.writeClient(t, h, probe)
			provision := func(when string) provisionResult {
				t.Helper()
				cert, key := e2eSet(t, iss.ca, time.Now())
				writeSet(t, h, src, iss.ca.CertPEM, cert, key)
				want := pemSerial(t, cert)
				res := parseResult(t, mustTlsdock(t, ctx, h, "provision", "--certs", src, "--probe-client", probe, "--mode", mode, "--json"))
				// In proxy mode tlsdock.service watches src since the
				// first provision and acts on a complete set at once, so
				// the daemon may have rotated to it before this provision
				// looks: then the provision has nothing to change, and
				// what counts is that the new serial is the one installed.
				if res.Serial != want || (!res.Changed && !(mode == "proxy" && when == "rotation")) {
					t.Fatalf("%s: want serial %s: %+v", when, want, res)
				}
				for _, c := range res.Checks {
					if !c.OK {
						t.Errorf("%s: check failed: %+v", when, c)
					}
				}
				if out, err := remoteDocker(ctx, t, h, client, "", "version", "--format", "{{.Server.Version}}"); err != nil || strings.TrimSpace(out) == "" {
					t.Fatalf("%s: docker version over mutual TLS: %q %v", when, out, err)
				}
				if out, err := remoteDocker(ctx, t, h, "", "", "version", "--format", "{{.Server.Version}}"); err == nil {
					t.Fatalf("%s: docker without a client certificate got in: %q", when, out)
				}
				return res
			}

			first := provision("provision")
			if mode == "proxy" {
				second := provision("rotation")
				if second.Serial == first.Serial {
					t.Errorf("rotation kept serial %s", first.Serial)
				}
				t.Logf("proxy: provisioned and rotated in %v", time.Since(start).Round(time.Second))
				return
			}
			paths := checkCIS(t, ctx, h, "after provision")
			ssl := certstore.Store{Dir: "/etc/docker/ssl"}
			ca, cert, key := ssl.Paths()
			if paths["tlscacert"] != ca || paths["tlscert"] != cert || paths["tlskey"] != key {
				t.Errorf("configured paths %v, want %s %s %s", paths, ca, cert, key)
			}
			// The links an older tlsdock configured stay, for clients that
			// name them; stat reads them as symlinks (777), which is why
			// dockerd is no longer configured with them.
			checkStatusFiles(t, ctx, h, "after provision", []string{ca, cert, key}, true)
			lca, lcert, lkey := ssl.LinkPaths()
			t.Logf("stable links: %s", run(t, ctx, h, "stat", "-c", "%n %F %a", lca, lcert, lkey))
			if out := run(t, ctx, h, "stat", "-L", "-c", "%a", lkey); strings.TrimSpace(out) != "400" {
				t.Errorf("%s resolves to mode %s, want 400", lkey, out)
			}
			gen1 := strings.TrimSpace(run(t, ctx, h, "readlink", "/etc/docker/ssl/..data"))

			second := provision("rotation")
			if !second.Restarted || second.Serial == first.Serial {
				t.Errorf("rotation: restarted=%v serial %s -> %s", second.Restarted, first.Serial, second.Serial)
			}
			if again := checkCIS(t, ctx, h, "after rotation"); again["tlskey"] != key {
				t.Errorf("after rotation dockerd reads the key from %s, want %s", again["tlskey"], key)
			}
			if gen2 := strings.TrimSpace(run(t, ctx, h, "readlink", "/etc/docker/ssl/..data")); gen2 == gen1 {
				t.Errorf("..data still points at %s after the rotation", gen1)
			}
			// The configured certificate is the rotated one.
			served, err := h.ReadFile(cert)
			if err != nil {
				t.Fatal(err)
			}
			set, err := certstore.ParseSet(iss.ca.CertPEM, served, mustRead(t, h, key), certstore.SetNames{})
			if err != nil || set.Serial() != second.Serial {
				t.Errorf("%s holds serial %v (%v), want %s", cert, set, err, second.Serial)
			}

			// A host an older tlsdock configured: dockerd named the links.
			// Its next provision moves dockerd to the regular files.
			for _, f := range []string{"/etc/docker/daemon.json", "/etc/systemd/system/docker.service.d/zz-tlsdock.conf"} {
				b, err := h.ReadFile(f)
				if err != nil {
					continue
				}
				old := strings.NewReplacer(ca, lca, cert, lcert, key, lkey).Replace(string(b))
				if err := h.WriteFile(f, []byte(old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run(t, ctx, h, "systemctl", "daemon-reload")
			run(t, ctx, h, "systemctl", "restart", "docker.service")
			out := run(t, ctx, h, "sh", "-c", cisScript)
			t.Logf("as an older tlsdock left it, CIS 3.9-3.14 read:\n%s", out)
			if !strings.Contains(out, lkey+" root:root 777") {
				t.Errorf("the older layout does not read as symlinks:\n%s", out)
			}
			checkStatusFiles(t, ctx, h, "as an older tlsdock left it", []string{lca, lcert, lkey}, false)
			provision("next provision")
			if again := checkCIS(t, ctx, h, "after the next provision"); again["tlscacert"] != ca || again["tlscert"] != cert || again["tlskey"] != key {
				t.Errorf("after the next provision dockerd reads %v", again)
			}
			checkStatusFiles(t, ctx, h, "after the next provision", []string{ca, cert, key}, true)
			t.Logf("%s: provisioned, checked, rotated, converged from the links and checked in %v", mode, time.Since(start).Round(time.Second))
		})
	}
}

// pemSerial is the serial of the first certificate in certPEM, formatted as
// tlsdock reports it.
func pemSerial(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM block in certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return certstore.FormatSerial(c.SerialNumber)
}
