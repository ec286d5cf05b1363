package certstore

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func wantErrContains(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\n  does not contain %q", err, w)
		}
	}
}

func TestParseSetErrors(t *testing.T) {
	good, _ := goodFixture(t)
	names := SetNames{CA: "/src/ca.pem", Cert: "/src/server-cert.pem", Key: "/src/server-key.pem"}

	legacyEncrypted := pem.EncodeToMemory(&pem.Block{
		Type:    "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   bytes.Repeat([]byte{0x42}, 64),
	})
	pkcs8Encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: bytes.Repeat([]byte{0x42}, 64)})
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	corruptCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER at all")})

	tests := []struct {
		name          string
		ca, cert, key []byte
		want          []string
	}{
		{"garbage CA", []byte("hello world\n"), good.cert, good.key,
			[]string{"ca.pem (/src/ca.pem)", "no PEM block found", "PEM format"}},
		{"empty cert", good.ca, []byte("  \n"), good.key,
			[]string{"server-cert.pem (/src/server-cert.pem)", "is empty"}},
		{"truncated cert", good.ca, good.cert[:len(good.cert)/2], good.key,
			[]string{"server-cert.pem (/src/server-cert.pem)", "truncated or corrupted PEM block", "wait for the issuer"}},
		{"truncated second cert", good.ca, cat(good.cert, good.ca[:len(good.ca)-40]), good.key,
			[]string{"server-cert.pem", "truncated", "2 \"-----BEGIN\" lines, 1 complete"}},
		{"chain cut inside the next BEGIN line", good.ca, cat(good.cert, []byte("-----BEG")), good.key,
			[]string{"server-cert.pem", "truncated", "2 \"-----BEGIN\" lines, 1 complete"}},
		{"chain cut after the next block's dashes", good.ca, cat(good.cert, []byte("\n-----\n")), good.key,
			[]string{"server-cert.pem", "truncated"}},
		{"truncated key", good.ca, good.cert, good.key[:40],
			[]string{"server-key.pem (/src/server-key.pem)", "truncated"}},
		{"corrupt DER", good.ca, corruptCert, good.key,
			[]string{"server-cert.pem", "certificate 1 cannot be parsed", "valid X.509"}},
		{"key in CA bundle", cat(good.ca, good.key), good.cert, good.key,
			[]string{"ca.pem", `PEM block 2 is "PRIVATE KEY"`, "does not belong here"}},
		{"legacy encrypted key", good.ca, good.cert, legacyEncrypted,
			[]string{"server-key.pem (/src/server-key.pem)", "is encrypted; tlsdock needs an unencrypted key readable only by root: decrypt it with openssl pkey -in /src/server-key.pem -out /src/server-key.pem.plain"}},
		{"pkcs8 encrypted key", good.ca, good.cert, pkcs8Encrypted,
			[]string{"server-key.pem", "is encrypted; tlsdock needs an unencrypted key readable only by root"}},
		{"cert in key file", good.ca, good.cert, good.cert,
			[]string{"server-key.pem", "holds a CERTIFICATE", "swapped"}},
		{"two keys", good.ca, good.cert, cat(good.key, good.key),
			[]string{"server-key.pem", "holds 2 private keys"}},
		{"public key block", good.ca, good.cert, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}),
			[]string{"server-key.pem", `"PUBLIC KEY" is not a supported private key`}},
		{"corrupt key", good.ca, good.cert, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
			[]string{"server-key.pem", `"EC PRIVATE KEY" block cannot be parsed`}},
		{"x25519 key cannot sign", good.ca, good.cert, pkcs8(t, x25519),
			[]string{"server-key.pem", "cannot sign"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSet(tc.ca, tc.cert, tc.key, names)
			if s != nil {
				t.Errorf("got a set, want nil")
			}
			wantErrContains(t, err, tc.want...)
		})
	}
}

func TestParseSetKeyFormats(t *testing.T) {
	root := newRoot(t, "Root")
	ec := ecKey(t).(*ecdsa.PrivateKey)
	rs := rsaKey(t, 2048).(*rsa.PrivateKey)
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	tests := []struct {
		name string
		key  any
		pem  []byte
	}{
		{"PKCS8 ECDSA", ec, pkcs8(t, ec)},
		{"SEC1 EC PRIVATE KEY", ec, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})},
		{"openssl ecparam -genkey output", ec, cat(ecParams, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))},
		{"PKCS1 RSA", rs, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rs)})},
		{"PKCS8 RSA", rs, pkcs8(t, rs)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var leaf issuer
			switch k := tc.key.(type) {
			case *ecdsa.PrivateKey:
				leaf = sign(t, leafTemplate("srv"), k.Public(), &root, k)
			case *rsa.PrivateKey:
				leaf = sign(t, leafTemplate("srv"), k.Public(), &root, k)
			}
			s, err := ParseSet(root.pem, leaf.pem, tc.pem, SetNames{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(Requirements{Now: now, DNSNames: []string{"docker.example.com"}}); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if !bytes.Equal(s.KeyPEM, tc.pem) {
				t.Error("KeyPEM is not kept as given")
			}
			if s.Names != (SetNames{CA: CAFile, Cert: CertFile, Key: KeyFile}) {
				t.Errorf("Names = %+v, want the default file names", s.Names)
			}
		})
	}
}

// TestParseSetChainOrder: the leaf is found by its key wherever it is in
// the server certificate file. A file that starts with the leaf is kept
// as given; one that starts with an intermediate is put leaf first (the
// form dockerd loads: tls.X509KeyPair takes the first certificate as the
// server's), and its fingerprint is that of the leaf-first file, so that
// the source read again matches what was installed from it.
func TestParseSetChainOrder(t *testing.T) {
	root := newRoot(t, "Root")
	ik := ecKey(t)
	itmpl := caTemplate("Intermediate")
	itmpl.MaxPathLenZero = true
	inter := sign(t, itmpl, ik.Public(), &root, ik)
	k := ecKey(t)
	leaf := sign(t, leafTemplate("srv"), k.Public(), &inter, k)
	key := pkcs8(t, k)
	leafFirst := cat(leaf.pem, inter.pem)
	canonical, err := ParseSet(root.pem, leafFirst, key, SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	noNewline := bytes.TrimRight(leaf.pem, "\n")

	for _, tc := range []struct {
		name      string
		chain     []byte
		reordered bool
	}{
		{"leaf first", leafFirst, false},
		{"leaf first, text around the blocks", cat([]byte("subject=CN=srv\n"), leaf.pem, []byte("issuer=CN=Intermediate\n"), inter.pem), false},
		{"intermediate first", cat(inter.pem, leaf.pem), true},
		{"intermediate first, leaf without a final newline", cat(inter.pem, noNewline), true},
		{"intermediate first, text around the blocks", cat([]byte("# intermediate\n"), inter.pem, []byte("\n# leaf\n"), leaf.pem, []byte("# end\n")), true},
		{"root, leaf, intermediate", cat(root.pem, leaf.pem, inter.pem), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSet(root.pem, tc.chain, key, SetNames{})
			if err != nil {
				t.Fatal(err)
			}
			if !s.Cert.Equal(leaf.cert) {
				t.Errorf("Cert = %q, want the leaf", s.Cert.Subject.CommonName)
			}
			if len(s.Intermediates) == 0 || !s.Intermediates[len(s.Intermediates)-1].Equal(inter.cert) {
				t.Errorf("Intermediates = %d certs, want the intermediate last", len(s.Intermediates))
			}
			if s.CertReordered != tc.reordered {
				t.Errorf("CertReordered = %v, want %v", s.CertReordered, tc.reordered)
			}
			// What dockerd does with the file Install writes.
			if _, err := tls.X509KeyPair(s.CertPEM, key); err != nil {
				t.Errorf("dockerd would not load CertPEM with the key: %v", err)
			}
			if tc.reordered {
				want := leafFirst
				if len(s.Intermediates) == 2 {
					want = cat(leaf.pem, root.pem, inter.pem)
				}
				if !bytes.Equal(s.CertPEM, want) {
					t.Errorf("CertPEM =\n%s\nwant the leaf, then the others in file order:\n%s", s.CertPEM, want)
				}
				if len(s.Intermediates) == 1 && s.Fingerprint() != canonical.Fingerprint() {
					t.Error("the reordered set's fingerprint is not that of the same chain leaf first")
				}
				again, err := ParseSet(root.pem, s.CertPEM, key, SetNames{})
				if err != nil || again.CertReordered || again.Fingerprint() != s.Fingerprint() {
					t.Errorf("parsing the reordered CertPEM again: reordered %v, same fingerprint %v, %v", again != nil && again.CertReordered, again != nil && again.Fingerprint() == s.Fingerprint(), err)
				}
			} else if !bytes.Equal(s.CertPEM, tc.chain) {
				t.Error("CertPEM was changed; a file that starts with the leaf is kept as given")
			}
			if err := s.Validate(Requirements{Now: now, DNSNames: []string{"docker.example.com"}}); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if got, want := s.Serial(), leaf.cert.SerialNumber.Text(16); got != want {
				t.Errorf("Serial = %q, want %q", got, want)
			}
		})
	}

	// A key that matches no certificate: nothing to reorder by.
	other := pkcs8(t, ecKey(t))
	s, err := ParseSet(root.pem, cat(inter.pem, leaf.pem), other, SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	if s.CertReordered || !bytes.Equal(s.CertPEM, cat(inter.pem, leaf.pem)) {
		t.Error("a chain without the key's certificate was reordered")
	}
	wantErrContains(t, s.Validate(Requirements{Now: now}), "private key does not match")
}

func TestFingerprintAndSerial(t *testing.T) {
	good, _ := goodFixture(t)
	s, err := ParseSet(good.ca, good.cert, good.key, SetNames{})
	if err != nil {
		t.Fatal(err)
	}
	fp := s.Fingerprint()
	if len(fp) != 64 || strings.ToLower(fp) != fp {
		t.Errorf("Fingerprint = %q, want 64 lower-case hex digits", fp)
	}
	if fp != fingerprint(good.ca, good.cert, good.key) {
		t.Error("Fingerprint is not a function of the three PEMs")
	}
	if fingerprint([]byte("ab"), []byte("c"), nil) == fingerprint([]byte("a"), []byte("bc"), nil) {
		t.Error("Fingerprint is not length-prefixed: moving bytes between parts kept it")
	}
	other := *s
	other.KeyPEM = append([]byte("# comment\n"), s.KeyPEM...)
	if other.Fingerprint() == fp {
		t.Error("Fingerprint did not change with the key PEM")
	}
	if got, want := s.Serial(), s.Cert.SerialNumber.Text(16); got != want || got != strings.ToLower(got) {
		t.Errorf("Serial = %q, want %q", got, want)
	}
}

// writeSet writes a fixture into dir with the standard names.
func writeSet(t *testing.T, dir string, f fixture) {
	t.Helper()
	for name, b := range map[string][]byte{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadDirKubernetesLayout(t *testing.T) {
	good, _ := goodFixture(t)
	dir := t.TempDir()
	gen := filepath.Join(dir, "..2026_11_01_12_00_00.123")
	if err := os.Mkdir(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSet(t, gen, good)
	if err := os.Symlink(filepath.Base(gen), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{CAFile, CertFile, KeyFile} {
		if err := os.Symlink("..data/"+n, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Fingerprint() != fingerprint(good.ca, good.cert, good.key) {
		t.Error("LoadDir through symlinks read different bytes")
	}
	if want := filepath.Join(dir, CertFile); s.Names.Cert != want {
		t.Errorf("Names.Cert = %q, want %q", s.Names.Cert, want)
	}
}

func TestLoadDirErrors(t *testing.T) {
	good, _ := goodFixture(t)
	tests := []struct {
		name    string
		file    string
		prepare func(t *testing.T, path string)
		want    []string
		notExit bool
	}{
		{"missing", KeyFile, func(t *testing.T, p string) { os.Remove(p) },
			[]string{"server-key.pem (", "file does not exist"}, true},
		{"too large", CertFile, func(t *testing.T, p string) {
			if err := os.WriteFile(p, bytes.Repeat([]byte("A"), MaxFileSize+1), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"server-cert.pem (", "larger than 1048576 bytes"}, false},
		{"symlink loop", CAFile, func(t *testing.T, p string) {
			os.Remove(p)
			loop := filepath.Join(filepath.Dir(p), "loop")
			if err := os.Symlink(loop, p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(p, loop); err != nil {
				t.Fatal(err)
			}
		}, []string{"ca.pem (", "symlink loop", "fix the symlink"}, false},
		{"dangling symlink", CAFile, func(t *testing.T, p string) {
			os.Remove(p)
			if err := os.Symlink("..data/ca.pem", p); err != nil {
				t.Fatal(err)
			}
		}, []string{"ca.pem (", `dangling symlink to "..data/ca.pem"`}, true},
		{"directory", CertFile, func(t *testing.T, p string) {
			os.Remove(p)
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, []string{"server-cert.pem (", "is a directory"}, false},
		{"fifo", KeyFile, func(t *testing.T, p string) {
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skip("mkfifo:", err)
			}
		}, []string{"server-key.pem (", "is not a regular file"}, false},
		{"empty", KeyFile, func(t *testing.T, p string) {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"server-key.pem (", "is empty", "still be writing"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSet(t, dir, good)
			p := filepath.Join(dir, tc.file)
			tc.prepare(t, p)
			s, err := LoadDir(dir)
			if s != nil {
				t.Error("got a set, want nil")
			}
			wantErrContains(t, err, append(tc.want, p)...)
			if got := errors.Is(err, os.ErrNotExist); got != tc.notExit {
				t.Errorf("errors.Is(err, os.ErrNotExist) = %v, want %v", got, tc.notExit)
			}
		})
	}
}

func TestLoadDirExactlyMaxSize(t *testing.T) {
	good, _ := goodFixture(t)
	dir := t.TempDir()
	writeSet(t, dir, good)
	// A CA bundle padded with comment text to exactly MaxFileSize is accepted.
	pad := bytes.Repeat([]byte("#"), MaxFileSize-len(good.ca)-1)
	if err := os.WriteFile(filepath.Join(dir, CAFile), cat(pad, []byte("\n"), good.ca), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(dir); err != nil {
		t.Fatalf("file of exactly MaxFileSize bytes: %v", err)
	}
}

func FuzzParseSet(f *testing.F) {
	good, _ := goodFixture(f)
	f.Add(good.ca, good.cert, good.key)
	f.Add(good.ca, cat(good.ca, good.cert), good.key)
	f.Add([]byte("garbage"), good.cert[:100], good.key)
	f.Add(good.ca, good.cert, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, ca, cert, key []byte) {
		s, err := ParseSet(ca, cert, key, SetNames{})
		if err != nil {
			if s != nil {
				t.Fatal("error with a non-nil set")
			}
			return
		}
		if s.Cert == nil || s.Key == nil || len(s.CAs) == 0 {
			t.Fatalf("set without Cert, Key or CAs: %+v", s)
		}
		_ = s.Validate(Requirements{Now: now, DNSNames: []string{"docker.example.com"}})
		_ = s.Fingerprint()
		_ = s.Serial()
	})
}
