package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// opensslRecipe is the recipe of Docker's documentation ("Protect the
// Docker daemon socket"), run as real openssl commands: a passphrase-
// protected RSA-4096 CA key and a self-signed CA; an RSA-4096 server key,
// a CSR, an extfile with the names and serverAuth, signed by the CA; an
// RSA-4096 client key, a CSR, an extfile with clientAuth, signed; then the
// clean-up and chmod steps. Only the interactive prompts are replaced: the
// passphrase comes from the command line and the subjects from -subj.
const opensslRecipe = `set -e
openssl genrsa -aes256 -passout pass:bench-passphrase -out ca-key.pem 4096 2>/dev/null
openssl req -new -x509 -days 365 -key ca-key.pem -passin pass:bench-passphrase -sha256 -out ca.pem -subj "/CN=docker-ca"
openssl genrsa -out server-key.pem 4096 2>/dev/null
openssl req -subj "/CN=dockerhost" -sha256 -new -key server-key.pem -out server.csr
echo "subjectAltName = DNS:dockerhost,DNS:localhost,IP:127.0.0.1,IP:::1" >> extfile.cnf
echo "extendedKeyUsage = serverAuth" >> extfile.cnf
openssl x509 -req -days 365 -sha256 -in server.csr -CA ca.pem -CAkey ca-key.pem -passin pass:bench-passphrase -CAcreateserial -out server-cert.pem -extfile extfile.cnf 2>/dev/null
openssl genrsa -out key.pem 4096 2>/dev/null
openssl req -subj "/CN=client" -new -key key.pem -out client.csr
echo "extendedKeyUsage = clientAuth" > extfile-client.cnf
openssl x509 -req -days 365 -sha256 -in client.csr -CA ca.pem -CAkey ca-key.pem -passin pass:bench-passphrase -CAcreateserial -out cert.pem -extfile extfile-client.cnf 2>/dev/null
rm client.csr server.csr extfile.cnf extfile-client.cnf
chmod 0400 ca-key.pem key.pem server-key.pem
chmod 0444 ca.pem server-cert.pem cert.pem
`

// runOpenSSLRecipe runs the recipe in a new directory below parent and
// returns the directory and how long the whole script took.
func runOpenSSLRecipe(ctx context.Context, parent string) (string, time.Duration, error) {
	dir, err := os.MkdirTemp(parent, "openssl-")
	if err != nil {
		return "", 0, err
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", opensslRecipe)
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return "", 0, fmt.Errorf("openssl recipe: %w: %s", err, out)
	}
	return dir, d, nil
}

// certResults are the samples of row 1, in milliseconds.
type certResults struct {
	inProcess, process, openssl sample
	rsaDir                      string // one recipe set, kept for the RSA-4096 host
}

// benchCerts times, interleaved, n times each: tlsdock's certificate setup
// in this process; the same in a fresh process that also writes the six
// files; and the openssl recipe.
func benchCerts(ctx context.Context, b *bench) (*certResults, error) {
	r := &certResults{}
	parent := filepath.Join(b.tmp, "certs")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, err
	}
	for i := range b.p.certRuns {
		b.progress("certificate setup %d/%d", i+1, b.p.certRuns)
		start := time.Now()
		if _, _, _, _, _, err := tlsdockCertSetup(time.Now()); err != nil {
			return nil, err
		}
		r.inProcess = append(r.inProcess, ms(time.Since(start)))

		dir := filepath.Join(parent, fmt.Sprintf("tlsdock-%d", i))
		cmd := exec.CommandContext(ctx, b.self, "worker", "certgen", "-dir", dir)
		start = time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("certgen worker: %w: %s", err, out)
		}
		r.process = append(r.process, ms(d))

		odir, d, err := runOpenSSLRecipe(ctx, parent)
		if err != nil {
			return nil, err
		}
		r.openssl = append(r.openssl, ms(d))
		r.rsaDir = odir
	}
	return r, nil
}
