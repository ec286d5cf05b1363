package certstore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// File names of an installed set, as in Docker's documentation.
const (
	CAFile   = "ca.pem"
	CertFile = "server-cert.pem"
	KeyFile  = "server-key.pem"
)

// MaxFileSize bounds every read of a PEM file. A larger file is an error that
// names the file.
const MaxFileSize = 1 << 20

// Set is one certificate set: CA bundle, server certificate (the leaf,
// optionally followed by intermediates) and server key.
type Set struct {
	// CAPEM, CertPEM and KeyPEM are the bytes exactly as read or given,
	// except CertPEM when CertReordered.
	CAPEM, CertPEM, KeyPEM []byte
	// CertReordered says the server certificate file did not start with
	// the leaf (an intermediate came first). CertPEM is then the leaf
	// followed by the other certificates in file order, each re-encoded
	// as a plain PEM block: the form dockerd needs (it takes the first
	// certificate of tlscert as its own), which is what Install writes
	// and Fingerprint hashes. The source file stays as it is.
	CertReordered bool

	// CAs are the certificates of the CA bundle, in file order.
	CAs []*x509.Certificate
	// Cert is the server (leaf) certificate: the certificate in CertPEM whose
	// public key matches Key, or the first one when none matches.
	Cert *x509.Certificate
	// Intermediates are the other certificates of CertPEM, in file order.
	Intermediates []*x509.Certificate
	// Key is the server private key.
	Key crypto.Signer

	// Names says where each part came from, for error messages.
	Names SetNames
}

// SetNames says where each part of a Set came from: usually file paths.
type SetNames struct{ CA, Cert, Key string }

func (n SetNames) withDefaults() SetNames {
	if n.CA == "" {
		n.CA = CAFile
	}
	if n.Cert == "" {
		n.Cert = CertFile
	}
	if n.Key == "" {
		n.Key = KeyFile
	}
	return n
}

// label renders a source name for an error message: "server-cert.pem
// (/etc/docker/ssl/server-cert.pem)" for a path, the bare name otherwise.
func label(name string) string {
	base := filepath.Base(name)
	if base == name {
		return name
	}
	return base + " (" + name + ")"
}

// LoadDir reads dir/ca.pem, dir/server-cert.pem and dir/server-key.pem and
// parses them with ParseSet. Symlinks are followed (certbot and Kubernetes
// ..data layouts), but a symlink loop, a dangling symlink, a directory, a
// non-regular file, an empty file or a file larger than MaxFileSize is an
// error that names the file. A missing file gives an error wrapping
// os.ErrNotExist.
func LoadDir(dir string) (*Set, error) {
	names := SetNames{
		CA:   filepath.Join(dir, CAFile),
		Cert: filepath.Join(dir, CertFile),
		Key:  filepath.Join(dir, KeyFile),
	}
	var data [3][]byte
	for i, p := range []string{names.CA, names.Cert, names.Key} {
		b, err := readBounded(p)
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	return ParseSet(data[0], data[1], data[2], names)
}

// readBounded reads one PEM file, following symlinks, with every check of
// LoadDir. Errors name the file.
func readBounded(path string) ([]byte, error) {
	l := label(path)
	fi, err := os.Stat(path)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ELOOP):
			return nil, fmt.Errorf("%s: symlink loop: fix the symlink so that it points at a PEM file", l)
		case errors.Is(err, os.ErrNotExist):
			if target, lerr := os.Readlink(path); lerr == nil {
				return nil, fmt.Errorf("%s: dangling symlink to %q: %w: point it at an existing PEM file", l, target, os.ErrNotExist)
			}
			return nil, fmt.Errorf("%s: %w: put the PEM file there", l, os.ErrNotExist)
		}
		return nil, fmt.Errorf("%s: %w", l, err)
	}
	if err := checkRegular(l, fi); err != nil {
		return nil, err
	}
	f, _, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllBounded(f, l)
}

func checkRegular(l string, fi os.FileInfo) error {
	switch {
	case fi.IsDir():
		return fmt.Errorf("%s: is a directory, not a PEM file: point tlsdock at the file itself", l)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: is not a regular file (mode %v): point tlsdock at a regular PEM file", l, fi.Mode())
	}
	return nil
}

// ParseSet parses a set from its three PEM blobs. names says where they came
// from; empty names default to the standard file names.
//
// The CA bundle must hold one or more CERTIFICATE blocks. The server
// certificate file holds the leaf and optionally intermediates in any order:
// the leaf is the certificate whose public key matches the key. CertPEM is
// kept exactly as given when the leaf comes first; otherwise it is put in
// the order dockerd needs, leaf first (see Set.CertReordered). The key may be PKCS#1 ("RSA PRIVATE KEY"), SEC 1
// ("EC PRIVATE KEY") or PKCS#8 ("PRIVATE KEY"); an encrypted key is refused.
//
// ParseSet checks syntax only; Validate checks that the set is usable.
func ParseSet(caPEM, certPEM, keyPEM []byte, names SetNames) (*Set, error) {
	names = names.withDefaults()
	s := &Set{CAPEM: caPEM, CertPEM: certPEM, KeyPEM: keyPEM, Names: names}

	cas, err := parseCertificates(caPEM, names.CA, "the CA certificate that issued the server certificate")
	if err != nil {
		return nil, err
	}
	s.CAs = cas

	certs, err := parseCertificates(certPEM, names.Cert, "the server certificate, optionally followed by intermediates")
	if err != nil {
		return nil, err
	}

	key, err := parsePrivateKey(keyPEM, names.Key)
	if err != nil {
		return nil, err
	}
	s.Key = key

	leaf := 0
	for i, c := range certs {
		if publicKeysEqual(key.Public(), c.PublicKey) {
			leaf = i
			break
		}
	}
	s.Cert = certs[leaf]
	for i, c := range certs {
		if i != leaf {
			s.Intermediates = append(s.Intermediates, c)
		}
	}
	if leaf != 0 {
		s.CertPEM, s.CertReordered = leafFirstPEM(s.Cert, s.Intermediates), true
	}
	return s, nil
}

// leafFirstPEM encodes leaf and then rest as PEM CERTIFICATE blocks.
//
// dockerd (and Go's tls.X509KeyPair, which it loads tlscert with) takes
// the first certificate of the file as the server's own, so a chain with
// an intermediate first would stop docker.service from starting. The
// installed set is the reordered one, and its fingerprint is of these
// bytes, so that a source read again (with the same intermediates first)
// has the fingerprint of what is installed and is not installed again.
func leafFirstPEM(leaf *x509.Certificate, rest []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range append([]*x509.Certificate{leaf}, rest...) {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// decodePEM returns every PEM block of data. It fails on data without any
// block and on data with a block that does not decode (truncated or
// corrupted), which pem.Decode would otherwise skip silently.
func decodePEM(data []byte, name, want string) ([]*pem.Block, error) {
	l := label(name)
	var blocks []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	begins := bytes.Count(data, []byte("-----BEGIN "))
	if cutInBegin(data) {
		begins++ // the file ends inside the next block's BEGIN line
	}
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return nil, fmt.Errorf("%s: is empty: it must hold %s in PEM format", l, want)
	case len(blocks) == 0 && begins == 0:
		return nil, fmt.Errorf("%s: no PEM block found (no \"-----BEGIN\" line): it must hold %s in PEM format; convert DER with openssl x509 -inform der", l, want)
	case len(blocks) < begins:
		return nil, fmt.Errorf("%s: holds a truncated or corrupted PEM block (%d \"-----BEGIN\" lines, %d complete blocks): the file may be partly written; wait for the issuer or copy it again", l, begins, len(blocks))
	}
	return blocks, nil
}

// cutInBegin says data ends in the middle of a "-----BEGIN " line: a file
// cut there while being written holds whole blocks only, and would
// otherwise read as a valid shorter chain.
func cutInBegin(data []byte) bool {
	t := bytes.TrimRight(data, " \t\r\n")
	if i := bytes.LastIndexByte(t, '\n'); i >= 0 {
		t = t[i+1:]
	}
	return len(t) > 0 && bytes.HasPrefix([]byte("-----BEGIN "), t)
}

func parseCertificates(data []byte, name, want string) ([]*x509.Certificate, error) {
	l := label(name)
	blocks, err := decodePEM(data, name, want)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			hint := "keep only CERTIFICATE blocks in it"
			if strings.Contains(b.Type, "PRIVATE KEY") {
				hint = "a private key does not belong here: remove it and keep the key in its own file"
			}
			return nil, fmt.Errorf("%s: PEM block %d is %q, expected \"CERTIFICATE\": %s", l, i+1, b.Type, hint)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d cannot be parsed: %v: replace it with a valid X.509 certificate", l, i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func encryptedKeyError(name string) error {
	return fmt.Errorf("%s: private key is encrypted; tlsdock needs an unencrypted key readable only by root: decrypt it with openssl pkey -in %s -out %s.plain && mv %s.plain %s", label(name), name, name, name, name)
}

func parsePrivateKey(data []byte, name string) (crypto.Signer, error) {
	l := label(name)
	blocks, err := decodePEM(data, name, "the server's private key")
	if err != nil {
		return nil, err
	}
	var keyBlocks []*pem.Block
	for _, b := range blocks {
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, encryptedKeyError(name)
		}
		switch b.Type {
		case "EC PARAMETERS":
			// openssl ecparam -genkey writes these before the key.
			continue
		case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
			keyBlocks = append(keyBlocks, b)
		case "CERTIFICATE":
			return nil, fmt.Errorf("%s: holds a CERTIFICATE, not a private key: the certificate and the key may be swapped; put the key here", l)
		default:
			return nil, fmt.Errorf("%s: PEM block %q is not a supported private key: use \"PRIVATE KEY\" (PKCS#8), \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\"", l, b.Type)
		}
	}
	switch len(keyBlocks) {
	case 0:
		return nil, fmt.Errorf("%s: no private key block found: put the server's private key here", l)
	case 1:
	default:
		return nil, fmt.Errorf("%s: holds %d private keys: keep only the key that belongs to the server certificate", l, len(keyBlocks))
	}
	b := keyBlocks[0]
	var k any
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %q block cannot be parsed: %v: replace it with a valid unencrypted key", l, b.Type, err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return k.(crypto.Signer), nil
	default:
		return nil, fmt.Errorf("%s: key type %T cannot sign: use an ECDSA or RSA key", l, k)
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// Fingerprint identifies the set: the hex SHA-256 over the three PEMs, each
// prefixed with its length.
func (s *Set) Fingerprint() string { return fingerprint(s.CAPEM, s.CertPEM, s.KeyPEM) }

func fingerprint(parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Serial returns the leaf certificate's serial number in lower-case hex.
func (s *Set) Serial() string {
	if s == nil || s.Cert == nil {
		return ""
	}
	return serialHex(s.Cert)
}

func serialHex(c *x509.Certificate) string { return FormatSerial(c.SerialNumber) }
