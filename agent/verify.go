package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Check is the outcome of one probe of an endpoint.
type Check struct {
	Endpoint string `json:"endpoint"`
	Name     string `json:"check"`
	OK       bool   `json:"ok"`
	Detail   string `json:"detail,omitempty"`
}

// Probe checks a TLS endpoint of dockerd the way an attacker and a client
// would: plain HTTP, no client certificate, a client certificate from a
// foreign CA and TLS below 1.2 must all be refused; the endpoint must present
// exactly the expected certificate; a valid client must get /_ping = OK.
type Probe struct {
	Addr   string
	Roots  *x509.CertPool
	Expect *x509.Certificate
	// Client is a certificate the endpoint must accept. With none, the
	// client check is reported as skipped.
	Client *tls.Certificate
	// Wait bounds how long to wait for the listener to accept connections.
	Wait time.Duration
	// Now is the time used to make the foreign client certificate.
	Now time.Time
}

// Run performs every check and returns them all; err is non-nil if any
// failed.
func (p Probe) Run(ctx context.Context) ([]Check, error) {
	if err := p.waitListening(ctx); err != nil {
		c := Check{Endpoint: p.Addr, Name: "listening", Detail: err.Error()}
		return []Check{c}, fmt.Errorf("%s: %s", p.Addr, c.Detail)
	}
	checks := []Check{
		p.check(ctx, "plain HTTP is refused", p.plainHTTP),
		p.check(ctx, "a client without a certificate is refused", p.noClientCert),
		p.check(ctx, "a client certificate from a foreign CA is refused", p.foreignClient),
		p.check(ctx, "TLS 1.1 is refused", p.oldTLS),
		p.check(ctx, "the installed certificate is served", p.servedCert),
	}
	if p.Client != nil {
		checks = append(checks, p.check(ctx, "a valid client gets /_ping = OK", p.validClient))
	} else {
		checks = append(checks, Check{Endpoint: p.Addr, Name: "a valid client gets /_ping = OK", OK: true, Detail: "skipped: no client certificate to probe with (set probe-client)"})
	}
	var failed []string
	for _, c := range checks {
		if !c.OK {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	if len(failed) > 0 {
		return checks, fmt.Errorf("%s failed verification: %s", p.Addr, strings.Join(failed, "; "))
	}
	return checks, nil
}

func (p Probe) check(ctx context.Context, name string, fn func(context.Context) error) Check {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := Check{Endpoint: p.Addr, Name: name, OK: true}
	if err := fn(ctx); err != nil {
		c.OK, c.Detail = false, err.Error()
	}
	return c
}

// listenRetry is how long waitListening waits after a refused connection.
// dockerd that holds its TCP listener itself (hosts in daemon.json) opens
// it a few milliseconds after it told systemd it is ready, which is when
// the restart job ends: a refused connect costs microseconds, so the wait
// stays short rather than adding up to a whole poll interval.
const listenRetry = 10 * time.Millisecond

func (p Probe) waitListening(ctx context.Context) error {
	deadline := time.Now().Add(p.Wait)
	for {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := d.DialContext(dctx, "tcp", p.Addr)
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(listenRetry):
		}
	}
}

// ping sends GET /_ping on conn and returns the status and body.
func ping(conn net.Conn) (int, string, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, string(body), err
}

// refused runs a /_ping with the given TLS config (nil for plain TCP) and
// fails if the endpoint answered OK.
func (p Probe) refused(ctx context.Context, cfg *tls.Config) error {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return fmt.Errorf("could not connect: %w", err)
	}
	defer raw.Close()
	conn := raw
	if cfg != nil {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil // refused at the handshake
		}
		conn = tc
	}
	status, body, err := ping(conn)
	if err != nil || status != http.StatusOK {
		return nil
	}
	return fmt.Errorf("the endpoint answered %d %q", status, body)
}

func (p Probe) plainHTTP(ctx context.Context) error { return p.refused(ctx, nil) }

func (p Probe) noClientCert(ctx context.Context) error {
	return p.refused(ctx, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // probing as an attacker
}

func (p Probe) foreignClient(ctx context.Context) error {
	cert, err := selfSignedClient(p.now())
	if err != nil {
		return err
	}
	return p.refused(ctx, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}) //nolint:gosec // probing as an attacker
}

func (p Probe) oldTLS(ctx context.Context) error {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11} //nolint:gosec // probing as an attacker
	if p.Client != nil {
		cfg.Certificates = []tls.Certificate{*p.Client}
	}
	return p.refused(ctx, cfg)
}

// servedCert checks the leaf the endpoint presents, whether or not a client
// certificate is at hand: the server sends it before it asks for ours.
func (p Probe) servedCert(ctx context.Context) error {
	var got *x509.Certificate
	cfg := &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the leaf is compared byte for byte below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				got = cs.PeerCertificates[0]
			}
			return nil
		},
	}
	if p.Client != nil {
		cfg.Certificates = []tls.Certificate{*p.Client}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	_ = tls.Client(raw, cfg).HandshakeContext(ctx)
	switch {
	case got == nil:
		return errors.New("no certificate was presented")
	case p.Expect == nil:
		return nil
	case !bytes.Equal(got.Raw, p.Expect.Raw):
		return fmt.Errorf("serves serial %x, expected %x", got.SerialNumber, p.Expect.SerialNumber)
	}
	return nil
}

func (p Probe) validClient(ctx context.Context) error {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{*p.Client},
		InsecureSkipVerify: true, //nolint:gosec // the chain is verified in VerifyConnection; a wildcard listener has no name to check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: p.Roots, Intermediates: inter, CurrentTime: p.now()})
			return err
		},
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	status, body, err := ping(tc)
	if err != nil {
		return fmt.Errorf("GET /_ping: %w", err)
	}
	if status != http.StatusOK || body != "OK" {
		return fmt.Errorf("GET /_ping answered %d %q", status, body)
	}
	return nil
}

func (p Probe) now() time.Time {
	if p.Now.IsZero() {
		return time.Now()
	}
	return p.Now
}

// selfSignedClient makes a throwaway client certificate that no CA signed.
func selfSignedClient(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "tlsdock foreign probe"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
