// Package certstore handles tlsdock's certificates at rest.
//
// It parses and validates a certificate set (CA bundle, server certificate
// with optional intermediates, server key), runs the built-in CA that issues
// server and client certificates and the CRL of what it revoked
// (CA.IssueCRL, RevokedCert, ParseSerial and FormatSerial), and installs a
// set into dockerd's TLS directory (by default /etc/docker/ssl) as one unit.
//
// Installation uses the Kubernetes atomic-writer layout: every set is written
// into a fresh hidden generation directory (..tlsdock-<random>), a ..data
// symlink is swapped atomically to point at it. dockerd is configured with
// ..data/ca.pem, ..data/server-cert.pem and ..data/server-key.pem
// (Store.Paths): regular files, as the CIS Docker Benchmark wants them, in
// the generation ..data points at. The stable links ca.pem, server-cert.pem
// and server-key.pem (Store.LinkPaths) are relative symlinks through ..data.
// A crash at any moment leaves either the old set or the new set, never a
// certificate next to another generation's key.
//
// WriteFileAtomic is the single atomic-write helper of the whole project.
//
// Nothing in this package reads the clock or a global random source for
// decisions: the time and the random source are passed in. The filesystem
// root of every operation is a parameter, so tests run against t.TempDir().
package certstore
