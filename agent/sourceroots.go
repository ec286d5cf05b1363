package agent

import (
	"crypto/x509"
	"log/slog"
)

// serverRoots are the trusted roots of this system, which a server
// certificate from a public CA (certbot's fullchain.pem) may chain to
// instead of the source's CA bundle: the bundle (ca-file, dockerd's
// tlscacert) then only verifies the clients. load is Options.SystemRoots
// (nil: x509.SystemCertPool). They are loaded when the returned function
// is first called, which certstore does only for a chain that does not
// lead to the CA bundle: loading them costs tlsdock run about 4.5 MiB of
// resident memory, which a private PKI should not pay. When the roots
// cannot be read, the server certificate must chain to the CA bundle, as
// before, and a warning says why.
func serverRoots(load func() (*x509.CertPool, error), log *slog.Logger) func() *x509.CertPool {
	if load == nil {
		load = x509.SystemCertPool
	}
	return func() *x509.CertPool {
		pool, err := load()
		if err != nil {
			if log != nil {
				log.Warn("the system's trusted roots do not load: a server certificate must chain to the CA bundle of its source", "err", err)
			}
			return nil
		}
		return pool
	}
}
