package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/agent/agenttest"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// The bad-input suite runs the real CLI in-process (Run) against a host
// in a temporary root, with a fake systemd and dockerd. Every bad input
// must exit 2 with a message that names the file or flag and says what to
// do, leave every file of the root byte-identical and never touch docker.
// The cases that need the real systemd run in test/e2e
// (TestBadInputRealHost).

const debianFragment = agenttest.DockerFragment

const debianUnit = agenttest.DebianUnit

// dockerAPI is the fake host's dockerd local API with the agent's types.
type dockerAPI struct{ *agenttest.Host }

func (d dockerAPI) Info(ctx context.Context) (agent.DockerInfo, error) {
	i, err := d.Host.Info(ctx)
	return agent.DockerInfo(i), err
}

type okVerifier struct{}

func (okVerifier) Verify(_ context.Context, p agent.Probe) ([]agent.Check, error) {
	return []agent.Check{{Endpoint: p.Addr, Name: "fake probe", OK: true}}, nil
}

// fakeHostCLI is a Debian host with docker.io under a temporary root:
// the shared fake host (agenttest), systemd and dockerd included.
type fakeHostCLI struct {
	t    *testing.T
	root string
	sd   *agenttest.Host
}

func newFakeHostCLI(t *testing.T) *fakeHostCLI {
	t.Helper()
	sd := agenttest.NewHost(t)
	putFile(t, filepath.Join(sd.Root, "/etc/docker/key.json"), `{"kid":"x"}`)
	return &fakeHostCLI{t: t, root: sd.Root, sd: sd}
}

// run runs the CLI in-process on the fake host.
func (h *fakeHostCLI) run(args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	if len(args) > 0 && args[0] == "provision" {
		args = append(args, "--config", filepath.Join(h.root, agent.ConfigFile))
	}
	var out, errb bytes.Buffer
	env := Env{
		Stdout: &out, Stderr: &errb, Root: h.root,
		Connect: func(context.Context) (agent.Systemd, func(), error) { return h.sd, func() {}, nil },
		Agent: func(o *agent.Options) {
			o.Docker = dockerAPI{h.sd}
			o.Verifier = okVerifier{}
			o.Listeners, o.Attacker = h.sd, fakeAttacker{h.sd}
			// No hostname: the agent would look it up in DNS.
			o.Hostname = func() (string, error) { return "", errors.New("no hostname in tests") }
			o.Addrs = func() ([]net.IP, error) { return nil, nil }
			o.LiveRestoreWait = 2 * time.Second
		},
	}
	code = Run(env, args)
	return code, out.String(), errb.String()
}

// putExecutable writes an executable stub at path under root.
func putExecutable(t *testing.T, root, path string) {
	t.Helper()
	putFile(t, filepath.Join(root, path), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(root, path), 0o755); err != nil {
		t.Fatal(err)
	}
}

// putLink makes path under root a symbolic link to target.
func putLink(t *testing.T, root, path, target string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(root, path)); err != nil {
		t.Fatal(err)
	}
}

func putFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hashTree records every file, symlink and directory under root (mode,
// content hash, link target), except /run, where the lock lives.
func hashTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "run" {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %v", fi.Mode().Perm())
		case !fi.Mode().IsRegular():
			out[rel] = fmt.Sprintf("special %v", fi.Mode())
		default:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			sum := sha256.New()
			if _, err := f.WriteTo(sum); err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("%v %x", fi.Mode().Perm(), sum.Sum(nil))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func treeDiff(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	sort.Strings(d)
	return d
}

// Certificates for the cases.

var serialN atomic.Int64

type issued struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func ecP256(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mkCert signs tmpl (after mod) for key with parent, or self-signs when
// parent is nil.
func mkCert(t *testing.T, tmpl *x509.Certificate, key crypto.Signer, parent *issued, mod func(*x509.Certificate)) issued {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(1000 + serialN.Add(1))
	if mod != nil {
		mod(tmpl)
	}
	pc, pk := tmpl, key
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), pk)
	if err != nil {
		t.Fatalf("creating %q: %v", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return issued{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func caTmpl(cn string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
}

func serverTmpl() *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: "dockerhost"}, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, 90),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true,
	}
}

func keyPEM(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// certSet is the three files of a --certs directory.
type certSet struct{ ca, cert, key []byte }

// goodSet is a valid set for localhost and 127.0.0.1; mod changes the
// server certificate's template.
func goodSet(t *testing.T, mod func(*x509.Certificate)) (certSet, issued) {
	t.Helper()
	ca := mkCert(t, caTmpl("Test CA"), ecP256(t), nil, nil)
	k := ecP256(t)
	leaf := mkCert(t, serverTmpl(), k, &ca, mod)
	return certSet{ca: ca.pem, cert: leaf.pem, key: keyPEM(t, k)}, ca
}

// dir writes the set into a new directory outside the host's root.
func (s certSet) dir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for name, data := range map[string][]byte{"ca.pem": s.ca, "server-cert.pem": s.cert, "server-key.pem": s.key} {
		if data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(d, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

type badInputCase struct {
	name string
	// setup prepares the host and the inputs and returns the arguments.
	setup func(t *testing.T, h *fakeHostCLI) []string
	// field is the file or flag the message must name; hint is part of
	// what it says to do.
	field, hint string
	// maxAllocMB, when set, bounds what the run may allocate.
	maxAllocMB uint64
}

func certsCase(name string, set func(t *testing.T) certSet, extra []string, field, hint string) badInputCase {
	return badInputCase{name: name, field: field, hint: hint, setup: func(t *testing.T, h *fakeHostCLI) []string {
		return append([]string{"provision", "--certs", set(t).dir(t)}, extra...)
	}}
}

func generateCase(name, daemonJSON string, dropIns map[string]string, field, hint string) badInputCase {
	return badInputCase{name: name, field: field, hint: hint, setup: func(t *testing.T, h *fakeHostCLI) []string {
		if daemonJSON != "" {
			putFile(t, filepath.Join(h.root, agent.DaemonJSONPath), daemonJSON)
		}
		for name, body := range dropIns {
			putFile(t, filepath.Join(h.root, systemd.DropInDir, name), body)
		}
		return []string{"provision", "--generate"}
	}}
}

func badInputCases() []badInputCase {
	return []badInputCase{
		// Certificate sets.
		certsCase("expired", func(t *testing.T) certSet {
			s, _ := goodSet(t, func(c *x509.Certificate) {
				c.NotBefore, c.NotAfter = time.Now().AddDate(0, -3, 0), time.Now().Add(-time.Hour)
			})
			return s
		}, nil, "server-cert.pem", "issue a new certificate"),
		certsCase("not yet valid", func(t *testing.T) certSet {
			s, _ := goodSet(t, func(c *x509.Certificate) { c.NotBefore = time.Now().Add(48 * time.Hour) })
			return s
		}, nil, "server-cert.pem", "check the system clock"),
		certsCase("key does not match", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.key = keyPEM(t, ecP256(t))
			return s
		}, nil, "server-key.pem", "install the key that was issued together with this certificate"),
		certsCase("foreign CA", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			other, _ := goodSet(t, nil)
			s.ca = other.ca
			return s
		}, nil, "ca.pem", "put the CA that issued it in"),
		certsCase("missing SAN for the listener", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			return s
		}, []string{"--host", "tcp://10.1.2.3:2376"}, "10.1.2.3", "issue a certificate with subjectAltName IP:10.1.2.3"),
		certsCase("missing SAN for --san", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			return s
		}, []string{"--san", "docker.example.com"}, "docker.example.com", "issue a certificate with subjectAltName DNS:docker.example.com"),
		certsCase("client certificate (wrong EKU)", func(t *testing.T) certSet {
			s, _ := goodSet(t, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })
			return s
		}, nil, "server-cert.pem", "extendedKeyUsage = serverAuth"),
		certsCase("RSA 1024 key", func(t *testing.T) certSet {
			ca := mkCert(t, caTmpl("Test CA"), ecP256(t), nil, nil)
			k, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			leaf := mkCert(t, serverTmpl(), k, &ca, nil)
			return certSet{ca: ca.pem, cert: leaf.pem, key: keyPEM(t, k)}
		}, nil, "server-key.pem", "use an ECDSA P-256 key"),
		certsCase("ECDSA P-224 key", func(t *testing.T) certSet {
			ca := mkCert(t, caTmpl("Test CA"), ecP256(t), nil, nil)
			k, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			leaf := mkCert(t, serverTmpl(), k, &ca, nil)
			return certSet{ca: ca.pem, cert: leaf.pem, key: keyPEM(t, k)}
		}, nil, "server-key.pem", "use an ECDSA P-256 key"),
		certsCase("SHA-1 signature", func(t *testing.T) certSet {
			caKey, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			ca := mkCert(t, caTmpl("Old CA"), caKey, nil, nil)
			k := ecP256(t)
			leaf := mkCert(t, serverTmpl(), k, &ca, func(c *x509.Certificate) { c.SignatureAlgorithm = x509.SHA1WithRSA })
			return certSet{ca: ca.pem, cert: leaf.pem, key: keyPEM(t, k)}
		}, nil, "server-cert.pem", "reissue it with a SHA-256 signature"),
		certsCase("encrypted key", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.key = []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIb2e5\n-----END ENCRYPTED PRIVATE KEY-----\n")
			return s
		}, nil, "server-key.pem", "decrypt it with openssl pkey"),
		certsCase("legacy encrypted key (Proc-Type)", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.key = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: []byte("ciphertext")})
			return s
		}, nil, "server-key.pem", "decrypt it with openssl pkey"),
		certsCase("garbage", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.cert = []byte("this is not a certificate\n\x00\x01\x02")
			return s
		}, nil, "server-cert.pem", "it must hold the server certificate"),
		certsCase("empty key file", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.key = []byte{}
			return s
		}, nil, "server-key.pem", "wait for it to finish or fix the issuer"),
		certsCase("truncated certificate", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.cert = s.cert[:len(s.cert)/2]
			return s
		}, nil, "server-cert.pem", "wait for the issuer or copy it again"),
		certsCase("certificate and key swapped", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.cert, s.key = s.key, s.cert
			return s
		}, nil, "server-cert.pem", "keep the key in its own file"),
		certsCase("server certificate as ca.pem", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.ca = s.cert
			return s
		}, nil, "ca.pem", "put the certificate of the CA that issued the server certificate here"),
		certsCase("two keys in the key file", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.key = append(s.key, keyPEM(t, ecP256(t))...)
			return s
		}, nil, "server-key.pem", "keep only the key that belongs to the server certificate"),
		certsCase("key file missing", func(t *testing.T) certSet {
			s, _ := goodSet(t, nil)
			s.key = nil
			return s
		}, nil, "server-key.pem", "put the PEM file there"),
		{
			name: "directory where the certificate should be", field: "server-cert.pem", hint: "point tlsdock at the file itself",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				s.cert = nil
				d := s.dir(t)
				if err := os.Mkdir(filepath.Join(d, "server-cert.pem"), 0o755); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d}
			},
		},
		{
			name: "symlink loop", field: "ca.pem", hint: "fix the symlink so that it points at a PEM file",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				s.ca = nil
				d := s.dir(t)
				if err := os.Symlink("ca2.pem", filepath.Join(d, "ca.pem")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("ca.pem", filepath.Join(d, "ca2.pem")); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d}
			},
		},
		{
			name: "dangling symlink", field: "server-key.pem", hint: "point it at an existing PEM file",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				s.key = nil
				d := s.dir(t)
				if err := os.Symlink("/nonexistent/key.pem", filepath.Join(d, "server-key.pem")); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d}
			},
		},
		{
			// A sparse 100 MB file: reads stop at certstore.MaxFileSize
			// (1 MiB), so the run allocates a few MiB, never 100.
			name: "100 MB certificate file", field: "server-cert.pem", hint: "check that the path points at the right file", maxAllocMB: 24,
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				d := s.dir(t)
				p := filepath.Join(d, "server-cert.pem")
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := f.Truncate(100 << 20); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d}
			},
		},
		// The source is a trust boundary: only root may be able to change it.
		{
			name: "source directory owned by a PKI agent's user", field: "owner nobody (uid 65534)", hint: "&& chmod go-w ",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				if os.Geteuid() != 0 {
					t.Skip("needs root: chown")
				}
				s, _ := goodSet(t, nil)
				d := s.dir(t)
				if err := os.Chown(d, 65534, 65534); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d}
			},
		},
		{
			name: "source directory group-writable", field: "--certs", hint: "directory is writable by its group",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				d := s.dir(t)
				if err := os.Chmod(d, 0o770); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d}
			},
		},
		{
			name: "source directory sticky and world-writable", field: "--certs", hint: "the sticky bit does not protect a source",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				d := s.dir(t)
				if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d}
			},
		},
		{
			name: "source key readable by others", field: "server-key.pem", hint: "chmod 0600 ",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				d := s.dir(t)
				if err := os.Chmod(filepath.Join(d, "server-key.pem"), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d}
			},
		},
		{
			name: "allowed source owner, group-readable key", field: "server-key.pem", hint: "chmod 0600 ",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				d := s.dir(t)
				if err := os.Chmod(filepath.Join(d, "server-key.pem"), 0o640); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--certs", d, "--allow-source-owner", "nobody"}
			},
		},
		{name: "--allow-source-owner with --generate", field: "--allow-source-owner", hint: "applies only with --certs", setup: args("provision", "--generate", "--allow-source-owner", "nobody")},
		{name: "--allow-source-owner unknown user", field: "--allow-source-owner", hint: "give an existing account", setup: args("provision", "--certs", "/srv/certs", "--allow-source-owner", "no-such-user-x")},
		{name: "--allow-source-owner root", field: "--allow-source-owner", hint: "which may always write a source", setup: args("provision", "--certs", "/srv/certs", "--allow-source-owner", "root")},
		{
			name: "probe client that does not load", field: "--probe-client", hint: "give a directory with the cert.pem and key.pem of a client",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				s, _ := goodSet(t, nil)
				return []string{"provision", "--certs", s.dir(t), "--probe-client", t.TempDir()}
			},
		},

		// daemon.json.
		generateCase("daemon.json invalid JSON", "{\n  \"debug\": true,\n  \"log-level\": \n}\n", nil, agent.DaemonJSONPath, "fix the file or move it away"),
		generateCase("daemon.json not an object", `["debug"]`, nil, agent.DaemonJSONPath, "fix the file or move it away"),
		generateCase("daemon.json duplicate keys", "{\n  \"debug\": true,\n  \"debug\": false\n}\n", nil, agent.DaemonJSONPath, "remove one of them"),
		generateCase("daemon.json trailing data", `{"debug": true} {"debug": false}`, nil, agent.DaemonJSONPath, "fix the file or move it away"),
		generateCase("daemon.json with a byte order mark", "\xef\xbb\xbf{\"debug\": true}", nil, agent.DaemonJSONPath, "save it without the BOM"),
		generateCase("daemon.json hosts is a string", `{"hosts": "tcp://0.0.0.0:2375"}`, nil, agent.DaemonJSONPath, "fix it or remove the key"),
		generateCase("daemon.json hosts holds a number", `{"hosts": ["unix:///var/run/docker.sock", 2375]}`, nil, agent.DaemonJSONPath, "fix it or remove the key"),
		generateCase("daemon.json and ExecStart both set log-level", `{"log-level": "info"}`,
			map[string]string{"override.conf": "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --log-level=debug\n"},
			agent.DaemonJSONPath, "remove one of them"),
		generateCase("daemon.json and ExecStart both set data-root (-g)", `{"data-root": "/srv/docker"}`,
			map[string]string{"override.conf": "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -g /var/lib/docker\n"},
			agent.DaemonJSONPath, "remove one of them"),
		{
			name: "daemon.json is a directory", field: agent.DaemonJSONPath, hint: "move it away and run tlsdock again",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				if err := os.MkdirAll(filepath.Join(h.root, agent.DaemonJSONPath), 0o755); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "daemon.json is a symlink", field: agent.DaemonJSONPath, hint: "replace the link with a copy of the file it points to",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				putFile(t, filepath.Join(h.root, "srv/daemon.json"), `{"debug": true}`)
				if err := os.Symlink("/srv/daemon.json", filepath.Join(h.root, agent.DaemonJSONPath)); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "daemon.json larger than 1 MiB", field: agent.DaemonJSONPath, hint: "fix the file or move it away",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				putFile(t, filepath.Join(h.root, agent.DaemonJSONPath), `{"x": "`+strings.Repeat("a", 2<<20)+`"}`)
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "/etc/docker/ssl is a symlink", field: agent.SSLDir, hint: "replace the link with a directory",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				if err := os.MkdirAll(filepath.Join(h.root, "srv/ssl"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/srv/ssl", filepath.Join(h.root, agent.SSLDir)); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "/etc/docker/ssl is world-writable", field: agent.SSLDir, hint: "chmod 0755",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				d := filepath.Join(h.root, agent.SSLDir)
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--generate"}
			},
		},

		// Unit files.
		{
			name: "ExecStart missing", field: debianFragment, hint: "repair the docker package",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				putFile(t, filepath.Join(h.root, debianFragment), strings.Replace(debianUnit, "ExecStart=", "#ExecStart=", 1))
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "ExecStart runs a wrapper", field: "override.conf", hint: "remove -H and --tls flags from it yourself",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				putExecutable(t, h.root, "/usr/local/bin/start-docker")
				putFile(t, filepath.Join(h.root, systemd.DropInDir, "override.conf"), "[Service]\nExecStart=\nExecStart=/usr/local/bin/start-docker -H fd://\n")
				return []string{"provision", "--generate"}
			},
		},
		generateCase("a drop-in after tlsdock's sets ExecStart", "",
			map[string]string{"zzz-later.conf": "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n"},
			"zzz-later.conf", "merge it into an override.conf"),
		generateCase("two ExecStart lines", "",
			map[string]string{"override.conf": "[Service]\nExecStart=/usr/sbin/dockerd -H fd:// --debug\n"},
			"override.conf", `add an empty "ExecStart=" before the last one`),
		// docker.service cannot start as the host is (agent/preflight.go).
		{
			name: "docker.socket masked, docker.service requires it", field: "docker.socket", hint: "systemctl unmask docker.socket",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				putFile(t, filepath.Join(h.root, agenttest.SocketFragment), agenttest.DebianSocket)
				putLink(t, h.root, "/etc/systemd/system/docker.socket", os.DevNull)
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "docker.socket masked, ExecStart passes -H fd://", field: "docker.socket", hint: "systemctl unmask docker.socket",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				putFile(t, filepath.Join(h.root, agenttest.DockerFragment), strings.Replace(debianUnit, "Requires=docker.socket\n", "Wants=docker.socket\n", 1))
				putFile(t, filepath.Join(h.root, agenttest.SocketFragment), agenttest.DebianSocket)
				putLink(t, h.root, "/etc/systemd/system/docker.socket", os.DevNull)
				return []string{"provision", "--generate", "--mode", "proxy"}
			},
		},
		{
			name: "dockerd missing", field: debianFragment, hint: "install docker.io (Debian, Ubuntu) or docker-ce",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				if err := os.Remove(filepath.Join(h.root, agenttest.Dockerd)); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "dockerd not executable", field: debianFragment, hint: "chmod 0755 /usr/sbin/dockerd",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				if err := os.Chmod(filepath.Join(h.root, agenttest.Dockerd), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "docker.service masked", field: "docker.service", hint: "systemctl unmask docker.service",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				h.sd.SetLoadState("masked")
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "docker.service not found", field: "docker.service", hint: "install docker.io (Debian, Ubuntu) or docker-ce",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				h.sd.SetLoadState("not-found")
				return []string{"provision", "--generate"}
			},
		},
		{
			name: "systemd refuses the unit (bad-setting)", field: "docker.service", hint: "systemctl status docker.service",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				h.sd.SetLoadState("bad-setting")
				return []string{"provision", "--generate"}
			},
		},

		// Flags and the config file.
		{name: "no certificates", field: "--certs", hint: "pass --certs DIR", setup: args("provision")},
		{name: "--certs with --generate", field: "--generate", hint: "exclude each other", setup: args("provision", "--generate", "--certs", "/srv/certs")},
		{name: "host without a scheme", field: "--host", hint: "use tcp://ADDRESS:PORT", setup: args("provision", "--generate", "--host", "0.0.0.0:2376")},
		{name: "host is a unix socket", field: "--host", hint: "use tcp://ADDRESS:PORT", setup: args("provision", "--generate", "--host", "unix:///var/run/docker.sock")},
		{name: "host is not a URL", field: "--host", hint: "use tcp://ADDRESS:PORT", setup: args("provision", "--generate", "--host", "tcp://[::1")},
		{name: "host without a port", field: "--host", hint: "use tcp://0.0.0.0:2376", setup: args("provision", "--generate", "--host", "tcp://0.0.0.0")},
		{name: "port out of range", field: "--host", hint: "use 1-65535", setup: args("provision", "--generate", "--host", "tcp://0.0.0.0:70000")},
		{name: "port zero", field: "--host", hint: "use 1-65535", setup: args("provision", "--generate", "--host", "tcp://0.0.0.0:0")},
		{name: "unknown key type", field: "--key-type", hint: "use one of ecdsa-p256", setup: args("provision", "--generate", "--key-type", "dsa-1024")},
		{name: "unknown mode", field: "--mode", hint: "use daemon-json (the default)", setup: args("provision", "--generate", "--mode", "socat")},
		{name: "--client-out without the local CA", field: "--client-out", hint: "add --generate", setup: args("provision", "--certs", "/srv/certs", "--client-out", "/root/client")},
		{name: "bad --san", field: "--san", hint: "give a name such as docker.example.com", setup: args("provision", "--generate", "--san", "bad name!")},
		{name: "timeout zero", field: "--timeout", hint: "must be positive", setup: args("provision", "--generate", "--timeout", "0s")},
		{name: "timeout not a duration", field: "--timeout", hint: "tlsdock provision --help", setup: args("provision", "--generate", "--timeout", "soon")},
		{
			name: "config file with an unknown key", field: "tlsdock.conf:2", hint: "the keys are the long flag names",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				putFile(t, filepath.Join(h.root, agent.ConfigFile), "generate = true\nhostname = docker.example.com\n")
				return []string{"provision"}
			},
		},
		{
			name: "config file: generate is not a boolean", field: "generate", hint: "is not true or false",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				putFile(t, filepath.Join(h.root, agent.ConfigFile), "generate = yes please\n")
				return []string{"provision"}
			},
		},
		{
			name: "certs client without the local CA", field: agent.CADir, hint: "run `tlsdock provision --generate` first",
			setup: func(t *testing.T, h *fakeHostCLI) []string {
				return []string{"certs", "client", "alice", "--out", filepath.Join(h.root, "root/alice")}
			},
		},
	}
}

func args(a ...string) func(*testing.T, *fakeHostCLI) []string {
	return func(*testing.T, *fakeHostCLI) []string { return a }
}

// TestBadInput: every case exits 2, names the file or flag, says what to
// do, changes no file and leaves docker alone.
func TestBadInput(t *testing.T) {
	cases := badInputCases()
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHostCLI(t)
			argv := tt.setup(t, h)
			before := hashTree(t, h.root)
			pid := h.sd.MainPID()

			var m0, m1 runtime.MemStats
			if tt.maxAllocMB > 0 {
				runtime.GC()
				runtime.ReadMemStats(&m0)
			}
			code, stdout, stderr := h.run(argv...)
			if tt.maxAllocMB > 0 {
				runtime.ReadMemStats(&m1)
				if got := (m1.TotalAlloc - m0.TotalAlloc) >> 20; got > tt.maxAllocMB {
					t.Errorf("the run allocated %d MiB, want at most %d: a read is not bounded", got, tt.maxAllocMB)
				}
			}

			t.Logf("stderr: %s", strings.TrimSpace(stderr))
			if code != ExitBadInput {
				t.Errorf("exit %d, want %d (bad input)\nstdout:\n%s", code, ExitBadInput, stdout)
			}
			for _, want := range []string{tt.field, tt.hint} {
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
			if got := h.sd.MainPID(); got != pid {
				t.Errorf("docker's MainPID %d -> %d", pid, got)
			}
		})
	}
}

// TestUnusualInputSucceeds: inputs that look wrong but are handled, each
// with what tlsdock must do about them.
func TestUnusualInputSucceeds(t *testing.T) {
	readJSON := func(t *testing.T, h *fakeHostCLI) *daemonjson.Doc {
		t.Helper()
		d, _, err := daemonjson.Load(filepath.Join(h.root, agent.DaemonJSONPath))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	wrongOrder := func(t *testing.T) (certSet, issued) {
		t.Helper()
		root := mkCert(t, caTmpl("Root"), ecP256(t), nil, nil)
		inter := mkCert(t, caTmpl("Intermediate"), ecP256(t), &root, nil)
		k := ecP256(t)
		leaf := mkCert(t, serverTmpl(), k, &inter, nil)
		return certSet{ca: root.pem, cert: append(append([]byte{}, inter.pem...), leaf.pem...), key: keyPEM(t, k)}, leaf
	}
	t.Run("chain in the wrong order", func(t *testing.T) {
		// Intermediate first, leaf second: certstore finds the leaf by its
		// key and installs the chain leaf first; the source stays as given.
		h := newFakeHostCLI(t)
		s, leaf := wrongOrder(t)
		dir := s.dir(t)
		code, stdout, stderr := h.run("provision", "--mode", "proxy", "--host", "tcp://127.0.0.1:2376", "--certs", dir)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "install serial "+leaf.cert.SerialNumber.Text(16)) {
			t.Errorf("the leaf was not recognised:\n%s", stdout)
		}
		got, err := os.ReadFile(filepath.Join(h.root, agent.SSLDir, "server-cert.pem"))
		if want := append(append([]byte{}, leaf.pem...), s.cert[:len(s.cert)-len(leaf.pem)]...); err != nil || !bytes.Equal(got, want) {
			t.Errorf("installed server-cert.pem is not the chain leaf first (%v):\n%s", err, got)
		}
		if src, err := os.ReadFile(filepath.Join(dir, "server-cert.pem")); err != nil || !bytes.Equal(src, s.cert) {
			t.Errorf("the source file was changed (%v)", err)
		}
	})
	t.Run("chain in the wrong order, dockerd's own TLS", func(t *testing.T) {
		// dockerd loads the pair with Go's tls.LoadX509KeyPair, which
		// takes the first certificate as the leaf and refuses a key that
		// does not match it: the chain is installed leaf first, and
		// docker starts with it.
		h := newFakeHostCLI(t)
		s, _ := wrongOrder(t)
		code, stdout, stderr := h.run("provision", "--certs", s.dir(t))
		if code != ExitOK {
			t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitOK, stdout, stderr)
		}
		if h.sd.ActiveState() != "active" {
			t.Fatalf("docker is %s after the run (%v)", h.sd.ActiveState(), h.sd.LastStartError())
		}
		if !strings.Contains(stdout, "starts with an intermediate, not the server certificate: installed leaf first") {
			t.Errorf("provision does not say the chain was installed leaf first:\n%s", stdout)
		}
	})
	t.Run("a source the allowed account owns is installed, with a warning everywhere", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root: chown")
		}
		h := newFakeHostCLI(t)
		s, _ := goodSet(t, nil)
		d := s.dir(t)
		if err := os.Chmod(d, 0o775); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{d, filepath.Join(d, "ca.pem"), filepath.Join(d, "server-cert.pem"), filepath.Join(d, "server-key.pem")} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		code, stdout, stderr := h.run("provision", "--certs", d)
		if code != ExitBadInput || !strings.Contains(stderr, "--allow-source-owner USER") {
			t.Fatalf("without the opt-in: exit %d, want 2 with a hint at --allow-source-owner\n%s", code, stderr)
		}
		for i := 0; i < 2; i++ { // the second run changes nothing and still warns
			code, stdout, stderr = h.run("provision", "--certs", d, "--allow-source-owner", "nobody")
			if code != 0 {
				t.Fatalf("run %d: exit %d\n%s\n%s", i+1, code, stdout, stderr)
			}
			if !strings.Contains(stdout, "WARNING: allow-source-owner nobody: account uid 65534") || !strings.Contains(stderr, "warning: allow-source-owner nobody") {
				t.Errorf("run %d does not warn loudly:\nstdout:\n%s\nstderr:\n%s", i+1, stdout, stderr)
			}
		}
		if !strings.Contains(stdout, "No changes") {
			t.Errorf("second run:\n%s", stdout)
		}
		code, stdout, stderr = h.run("status")
		if code != 0 || !strings.Contains(stdout, "WARNING:     allow-source-owner nobody") {
			t.Errorf("status (exit %d) does not show the warning:\n%s\n%s", code, stdout, stderr)
		}
	})
	t.Run("plaintext tcp listeners are removed", func(t *testing.T) {
		h := newFakeHostCLI(t)
		putFile(t, filepath.Join(h.root, agent.DaemonJSONPath), `{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375", ":2377", "127.0.0.1:2378"], "debug": true}`)
		code, stdout, stderr := h.run("provision", "--generate")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		for _, l := range []string{"tcp://0.0.0.0:2375", ":2377", "127.0.0.1:2378"} {
			if !strings.Contains(stdout, "note: removed plaintext listener "+l) {
				t.Errorf("the output does not report that %s was removed:\n%s", l, stdout)
			}
		}
		hosts, err := readJSON(t, h).Hosts()
		if err != nil || strings.Join(hosts, " ") != "fd:// unix:///var/run/docker.sock tcp://0.0.0.0:2376" {
			t.Errorf("hosts = %q (%v)", hosts, err)
		}
	})
	t.Run("tls keys of odd types are replaced", func(t *testing.T) {
		// tlsdock owns these keys; dockerd would refuse the strings.
		h := newFakeHostCLI(t)
		putFile(t, filepath.Join(h.root, agent.DaemonJSONPath), `{"tlsverify": "yes", "tls": "no", "tlscacert": 5, "tlscert": null, "tlskey": ["x"], "log-level": "warn"}`)
		code, stdout, stderr := h.run("provision", "--generate")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		d := readJSON(t, h)
		for key, want := range map[string]string{"tls": "true", "tlsverify": "true", "tlscacert": `"/etc/docker/ssl/..data/ca.pem"`, "tlscert": `"/etc/docker/ssl/..data/server-cert.pem"`, "tlskey": `"/etc/docker/ssl/..data/server-key.pem"`, "log-level": `"warn"`} {
			if got, _ := d.Get(key); string(got) != want {
				t.Errorf("%s = %s, want %s", key, got, want)
			}
		}
	})
}

// TestFailureExitCodes: a restart that fails is rolled back (exit 3); when
// the rollback cannot bring docker back either, exit 4 keeps the journal,
// and the next run restores it and converges.
func TestFailureExitCodes(t *testing.T) {
	h := newFakeHostCLI(t)
	putFile(t, filepath.Join(h.root, agent.DaemonJSONPath), "{\"live-restore\": true}\n")
	// dockerd runs with that file.
	if err := h.sd.Boot(); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, h.root)
	tlsOn := func() bool {
		b, _ := os.ReadFile(filepath.Join(h.root, agent.DaemonJSONPath))
		return bytes.Contains(b, []byte("tlsverify"))
	}

	h.sd.FailRestart(func(string) bool { return tlsOn() })
	code, stdout, stderr := h.run("provision", "--generate")
	if code != ExitRolledBack || !strings.Contains(stdout, "Rolled back: docker is active on its previous configuration.") {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitRolledBack, stdout, stderr)
	}
	// Only the local CA and tlsdock's state are new.
	after := hashTree(t, h.root)
	for k := range after {
		if strings.HasPrefix(k, "etc/tlsdock") || strings.HasPrefix(k, "var/lib/tlsdock") {
			delete(after, k)
		}
	}
	if d := treeDiff(before, after); len(d) > 0 {
		t.Errorf("rollback left changes:\n%s", strings.Join(d, "\n"))
	}

	h.sd.FailRestart(func(string) bool { return true })
	code, stdout, stderr = h.run("provision", "--generate")
	if code != ExitRollbackFailed || !strings.Contains(stderr, "backup kept in /var/lib/tlsdock/journal.json") {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitRollbackFailed, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(h.root, agent.StateDir, "journal.json")); err != nil {
		t.Fatalf("journal not kept after a failed rollback: %v", err)
	}

	h.sd.FailRestart(nil)
	code, stdout, stderr = h.run("provision", "--generate", "--json")
	var res struct {
		Changed bool     `json:"changed"`
		Notes   []string `json:"notes"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || !res.Changed || !strings.Contains(strings.Join(res.Notes, "\n"), "an earlier run was interrupted") {
		t.Fatalf("recovery run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ = h.run("provision", "--generate"); code != 0 || !strings.Contains(stdout, "No changes") {
		t.Fatalf("not converged: exit %d\n%s", code, stdout)
	}
}
