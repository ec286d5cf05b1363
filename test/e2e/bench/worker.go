package main

// The workers are this same binary started again as `bench worker KIND`:
// certgen (tlsdock's certificate setup in a fresh process, timed from
// outside), load (the TLS load client) and serial (polls the serial an
// endpoint serves). load and serial run in a test host's network namespace
// (nsenter -n, through testhost.ExecNet), so they reach its dockerd on
// 127.0.0.1 and nothing else.

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
)

func worker(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "bench worker: give certgen, load or serial")
		return 2
	}
	var err error
	switch args[0] {
	case "certgen":
		err = workerCertgen(args[1:])
	case "load":
		err = workerLoad(args[1:], os.Stdout)
	case "serial":
		err = workerSerial(args[1:])
	default:
		err = fmt.Errorf("unknown worker %q", args[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench worker %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// tlsdockCertSetup is tlsdock's default certificate setup, in memory: a
// local CA (ECDSA P-256, as LoadOrCreateCA makes it), a server certificate
// and a client certificate (both ECDSA P-256, the lifetimes tlsdock uses).
func tlsdockCertSetup(now time.Time) (ca *certstore.CA, serverCert, serverKey, clientCert, clientKey []byte, err error) {
	ca, err = certstore.NewCA(certstore.ECDSAP256, now, nil)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	serverCert, serverKey, err = ca.Issue(certstore.IssueRequest{
		CommonName: "dockerhost", DNSNames: []string{"dockerhost", "localhost"},
		IPs: loopbackIPs, KeyType: certstore.ECDSAP256, Now: now,
		Validity: agent.ServerValidity, Server: true,
	}, nil)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	clientCert, clientKey, err = ca.Issue(certstore.IssueRequest{
		CommonName: "client", KeyType: certstore.ECDSAP256, Now: now,
		Validity: agent.ClientValidity,
	}, nil)
	return ca, serverCert, serverKey, clientCert, clientKey, err
}

var loopbackIPs = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}

// workerCertgen does tlsdockCertSetup and writes the files the openssl
// recipe leaves behind, with tlsdock's own writer (temp file, fchmod,
// fsync, rename, fsync of the directory): ca-key.pem, ca.pem,
// server-key.pem, server-cert.pem, key.pem and cert.pem.
func workerCertgen(args []string) error {
	fs := flag.NewFlagSet("certgen", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write the set to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	ca, sc, sk, cc, ck, err := tlsdockCertSetup(time.Now())
	if err != nil {
		return err
	}
	if err := ca.Save(*dir); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"server-key.pem", sk, 0o400}, {"server-cert.pem", sc, 0o444}, {"key.pem", ck, 0o400}, {"cert.pem", cc, 0o444}} {
		if err := certstore.WriteFileAtomic(filepath.Join(*dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// loadResult is what the load worker prints (JSON).
type loadResult struct {
	Mode     string        `json:"mode"`
	Count    int64         `json:"count"`
	Errors   int64         `json:"errors"`
	FirstErr string        `json:"first_error,omitempty"`
	Elapsed  time.Duration `json:"elapsed"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	TLS      string        `json:"tls"` // version, cipher suite and key exchange of one connection
	// KeyExchange and Cipher are what that connection negotiated
	// (kxName of tls.ConnectionState.CurveID, tls.CipherSuiteName).
	KeyExchange string `json:"key_exchange,omitempty"`
	Cipher      string `json:"cipher,omitempty"`
}

func (r loadResult) rate() float64 { return float64(r.Count) / r.Elapsed.Seconds() }

// clientTLS is the client side of mutual TLS, verifying the server like
// the docker CLI does (against ca.pem, by the address it dials). No
// session cache: every connection is a full handshake, as every docker
// CLI command makes one.
func clientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

func describeTLS(cs tls.ConnectionState) string {
	s := tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite)
	if cs.CurveID != 0 {
		s += " " + kxName(cs.CurveID)
	}
	if len(cs.PeerCertificates) > 0 {
		s += ", server key " + keyDesc(cs.PeerCertificates[0])
	}
	return s
}

// keyExchanges are the names the -curves flag takes and the tables print,
// in Go's order of preference.
var keyExchanges = []tls.CurveID{
	tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024,
	tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521,
}

// kxName names a key exchange as the tables print it: X25519MLKEM768,
// X25519, P-256 (not Go's "CurveP256").
func kxName(id tls.CurveID) string {
	switch id {
	case tls.CurveP256:
		return "P-256"
	case tls.CurveP384:
		return "P-384"
	case tls.CurveP521:
		return "P-521"
	}
	return id.String()
}

// parseCurves reads the -curves flag: key exchanges separated by commas,
// by kxName or Go's constant name, in any case. Empty: nil, Go's defaults.
func parseCurves(s string) ([]tls.CurveID, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ids []tls.CurveID
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, id := range keyExchanges {
			if strings.EqualFold(name, kxName(id)) || strings.EqualFold(name, id.String()) {
				ids = append(ids, id)
				found = true
				break
			}
		}
		if !found {
			var known []string
			for _, id := range keyExchanges {
				known = append(known, kxName(id))
			}
			return nil, fmt.Errorf("-curves %q: unknown key exchange %q; known: %s", s, name, strings.Join(known, ", "))
		}
	}
	return ids, nil
}

func keyDesc(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return c.PublicKeyAlgorithm.String()
}

// workerLoad drives one endpoint with -c workers for -d (or -n
// operations, whichever comes first) and prints a loadResult to stdout,
// with the key exchange and cipher suite of its first handshake. Modes:
//   - handshake: TCP connect + full mutual-TLS handshake + close;
//   - newconn: a new connection for each GET /_ping (handshake included);
//   - keepalive: GET /_ping over -c kept-alive connections.
func workerLoad(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:2376", "endpoint")
	mode := fs.String("mode", "handshake", "handshake, newconn or keepalive")
	caFile := fs.String("ca", "", "ca.pem")
	certFile := fs.String("cert", "", "client cert.pem")
	keyFile := fs.String("key", "", "client key.pem")
	conc := fs.Int("c", 4, "concurrent workers")
	dur := fs.Duration("d", 5*time.Second, "duration")
	maxOps := fs.Int64("n", 200000, "bound on operations")
	stdinStop := fs.Bool("stdin-stop", false, "also stop when stdin ends (the orchestrator closes it)")
	errPause := fs.Duration("err-pause", 0, "pause of a worker after a failed operation, as a client that retries")
	curves := fs.String("curves", "", "key exchanges the client offers, separated by commas (X25519MLKEM768, X25519, P-256, ...); empty: Go's defaults, the X25519MLKEM768 hybrid first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	cfg, err := clientTLS(*caFile, *certFile, *keyFile, host)
	if err != nil {
		return err
	}
	if cfg.CurvePreferences, err = parseCurves(*curves); err != nil {
		return err
	}
	res := loadResult{Mode: *mode}
	var first atomic.Pointer[tls.ConnectionState]
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		first.CompareAndSwap(nil, &cs)
		return nil
	}

	dialer := &net.Dialer{Timeout: 5 * time.Second}
	var op func(ctx context.Context) error
	switch *mode {
	case "handshake":
		op = func(ctx context.Context) error {
			c, err := (&tls.Dialer{NetDialer: dialer, Config: cfg}).DialContext(ctx, "tcp", *addr)
			if err != nil {
				return err
			}
			return c.Close()
		}
	case "newconn", "keepalive":
		tr := &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     cfg,
			DisableKeepAlives:   *mode == "newconn",
			MaxIdleConnsPerHost: *conc,
			MaxConnsPerHost:     *conc,
			IdleConnTimeout:     time.Minute,
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		url := "https://" + *addr + "/_ping"
		op = func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64))
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || string(body) != "OK" {
				return fmt.Errorf("/_ping: %s %q", resp.Status, body)
			}
			return nil
		}
		if *mode == "keepalive" {
			// Open the kept-alive connections before the clock starts.
			var wg sync.WaitGroup
			for range *conc {
				wg.Go(func() { _ = op(context.Background()) })
			}
			wg.Wait()
		}
	default:
		return fmt.Errorf("unknown -mode %q", *mode)
	}

	start := time.Now()
	deadline := start.Add(*dur)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// The socket deadline derived from ctx can fire a moment before ctx
	// reports it: both are checked.
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(deadline) }
	if *stdinStop {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	var count, errs atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, *conc)
	var wg sync.WaitGroup
	for i := range *conc {
		wg.Go(func() {
			for !over() {
				if count.Add(1) > *maxOps {
					count.Add(-1)
					cancel()
					return
				}
				t := time.Now()
				err := op(ctx)
				if over() {
					count.Add(-1) // cut off by the deadline: not counted
					return
				}
				if err != nil {
					count.Add(-1)
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					if *errPause > 0 {
						select {
						case <-ctx.Done():
						case <-time.After(*errPause):
						}
					}
					continue
				}
				lats[i] = append(lats[i], time.Since(t))
			}
		})
	}
	wg.Wait()
	res.Elapsed = min(time.Since(start), *dur) // operations cut off at the deadline are not counted
	res.Count, res.Errors = count.Load(), errs.Load()
	if s, ok := firstErr.Load().(string); ok {
		res.FirstErr = s
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res.P50, res.P99 = percentile(all, 50), percentile(all, 99)
	if cs := first.Load(); cs != nil {
		res.TLS = describeTLS(*cs)
		res.KeyExchange, res.Cipher = kxName(cs.CurveID), tls.CipherSuiteName(cs.CipherSuite)
	}
	return json.NewEncoder(stdout).Encode(res)
}

// serialResult is what the serial worker prints (JSON). Times are Unix
// nanoseconds of this machine's clock, which the orchestrator shares.
type serialResult struct {
	Want      string `json:"want"`
	SeenNS    int64  `json:"seen_ns"`     // end of the first handshake that showed Want
	LastOldNS int64  `json:"last_old_ns"` // end of the last handshake that showed another serial
	OldCount  int    `json:"old_count"`
	Fails     int    `json:"fails"` // attempts without a server certificate (dockerd down)
	LastErr   string `json:"last_error,omitempty"`
}

// workerSerial polls the serial number of the certificate an endpoint
// presents until it is -want, and prints a serialResult.
func workerSerial(args []string) error {
	fs := flag.NewFlagSet("serial", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:2376", "endpoint")
	want := fs.String("want", "", "serial to wait for (hex)")
	certFile := fs.String("cert", "", "client cert.pem (optional: the server sends its certificate first)")
	keyFile := fs.String("key", "", "client key.pem")
	interval := fs.Duration("interval", 20*time.Millisecond, "poll interval")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	want2 := strings.ToLower(strings.TrimLeft(*want, "0"))
	cfg, err := clientTLS("", *certFile, *keyFile, "")
	if err != nil {
		return err
	}
	cfg.InsecureSkipVerify = true // only the serial matters here
	res := serialResult{Want: want2}
	deadline := time.Now().Add(*timeout)
	for time.Now().Before(deadline) {
		var serial string
		c := cfg.Clone()
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				serial = cs.PeerCertificates[0].SerialNumber.Text(16)
			}
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := (&tls.Dialer{Config: c}).DialContext(ctx, "tcp", *addr)
		cancel()
		if conn != nil {
			conn.Close()
		}
		now := time.Now().UnixNano()
		switch {
		case serial == want2:
			res.SeenNS = now
			return json.NewEncoder(os.Stdout).Encode(res)
		case serial != "":
			res.LastOldNS = now
			res.OldCount++
		default:
			res.Fails++
			if err != nil {
				res.LastErr = err.Error()
			}
		}
		time.Sleep(*interval)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return fmt.Errorf("serial %s not served within %v (saw an older one %d times, no certificate %d times, last error %q)", want2, *timeout, res.OldCount, res.Fails, res.LastErr)
}
