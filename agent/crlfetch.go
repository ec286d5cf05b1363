package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/proxy"
)

// The bounds of --crl-refresh, and its default.
const (
	DefaultCRLRefresh = 5 * time.Minute
	MinCRLRefresh     = 10 * time.Second
	MaxCRLRefresh     = 24 * time.Hour
)

// DefaultCRLFetchTimeout bounds one fetch of a --crl-url, connection, TLS
// handshake and body included: a server that stalls is a failed fetch.
const DefaultCRLFetchTimeout = 15 * time.Second

// maxCRLRedirects bounds the redirects a fetch follows (same scheme only).
const maxCRLRedirects = 3

// CRLURLFromCDP is the --crl-url that stands for the CRL distribution
// points (http and https) of the installed set's own certificates: the CA
// bundle's, the intermediates' of the server chain and the server
// certificate's (DistributionPointURLs). It is opt-in: a distribution
// point that is down refuses every client, as any URL does.
const CRLURLFromCDP = "cdp"

// checkCRLURL checks one --crl-url: CRLURLFromCDP, or an absolute http or
// https URL with a host, only characters that print, and no credentials
// (they would end up in the unit file and logs).
func checkCRLURL(v string) error {
	if v == CRLURLFromCDP {
		return nil
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL (%v): give one such as https://ca.example:9000/crl", v, err)
	case strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }):
		// It is shown as given, in `tlsdock status` among others.
		return fmt.Errorf("%q has a character that does not print: percent-encode it", v)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: the scheme must be http or https (step-ca: https://CA:PORT/crl)", v)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host: give one such as https://ca.example:9000/crl", v)
	case u.User != nil:
		return fmt.Errorf("%q carries credentials: they would be written into the unit and the logs; serve the CRL without them (it is public and signed)", v)
	case u.Fragment != "":
		return fmt.Errorf("%q has a fragment (#...): remove it", v)
	}
	return nil
}

// DistributionPointURLs are the http and https CRL distribution points of
// set's own certificates, trusted material the host was given: the CA
// bundle, the CA certificates among the server chain's intermediates, and
// the server certificate (its distribution point names the CRL of the
// intermediate that issues it, in most PKIs the one that issues the
// clients). Never those of a certificate a client presents: any client
// could make the host fetch a URL of its choosing.
func DistributionPointURLs(set *certstore.Set) []string {
	if set == nil {
		return nil
	}
	certs := append([]*x509.Certificate{}, set.CAs...)
	for _, c := range set.Intermediates {
		if c.BasicConstraintsValid && c.IsCA {
			certs = append(certs, c)
		}
	}
	certs = append(certs, set.Cert)
	var out []string
	for _, c := range certs {
		if c == nil {
			continue
		}
		for _, u := range c.CRLDistributionPoints {
			if checkCRLURL(u) == nil && u != CRLURLFromCDP && !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// ExpandCRLURLs replaces CRLURLFromCDP in urls with set's distribution
// points (DistributionPointURLs), each URL once; cdp reports whether it
// was given.
func ExpandCRLURLs(urls []string, set *certstore.Set) (out []string, cdp bool) {
	for _, u := range urls {
		add := []string{u}
		if u == CRLURLFromCDP {
			cdp, add = true, DistributionPointURLs(set)
		}
		for _, a := range add {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out, cdp
}

// addURLSource adds a source fetched from u, before the local CA's (not
// yet added); each URL once.
func (d *ProxyDaemon) addURLSource(u string) {
	if slices.ContainsFunc(d.crls, func(s *crlSource) bool { return s.fetch != nil && s.key == u }) {
		return
	}
	d.crls = append(d.crls, &crlSource{key: u, file: u, fetch: &urlFetch{url: u, kick: make(chan struct{}, 1)}})
}

// addCDPSources adds the distribution points of set, the first set
// served, for --crl-url cdp: the daemon may start before any set is
// installed, and its sources are fixed once it serves (a set with other
// points takes effect at the next start).
func (d *ProxyDaemon) addCDPSources(set *certstore.Set) {
	dps := DistributionPointURLs(set)
	if len(dps) == 0 {
		d.log.Warn("--crl-url cdp: the set names no http or https CRL distribution point; none is fetched until tlsdock restarts with a set that does", "dir", SSLDir)
		return
	}
	d.log.Info("fetching the CRL distribution points of the set", "crl_urls", strings.Join(dps, " "))
	d.mu.Lock()
	defer d.mu.Unlock()
	local := d.crls[len(d.crls)-1] // the local CA's comes last
	d.crls = d.crls[:len(d.crls)-1]
	for _, u := range dps {
		d.addURLSource(u)
	}
	d.crls = append(d.crls, local)
}

// checkCRLRefresh checks --crl-refresh.
func checkCRLRefresh(d time.Duration) error {
	if d < MinCRLRefresh || d > MaxCRLRefresh {
		return inputErr("--crl-refresh", "%v is out of bounds: give %v to %v (default %v); each --crl-url is fetched that often", d, MinCRLRefresh, MaxCRLRefresh, DefaultCRLRefresh)
	}
	return nil
}

// validateCRLURLs checks the URL settings (proxy mode or not: see
// validateProxy).
func (c Config) validateCRLURLs() error {
	seen := map[string]bool{}
	for _, u := range c.CRLURLs {
		if err := checkCRLURL(u); err != nil {
			return &InputError{Field: "--crl-url", Err: err}
		}
		if seen[u] {
			return inputErr("--crl-url", "%s is given twice: keep one", u)
		}
		seen[u] = true
	}
	if c.CRLRefresh == 0 { // not set: DefaultCRLRefresh
		return nil
	}
	return checkCRLRefresh(c.CRLRefresh)
}

// crlRefresh is how often each URL is fetched.
func (c Config) crlRefresh() time.Duration {
	if c.CRLRefresh <= 0 {
		return DefaultCRLRefresh
	}
	return c.CRLRefresh
}

// CRLURLStatePath is where the last good CRL fetched from rawURL is kept
// (DER, 0600). Its modification time is the last successful fetch.
func CRLURLStatePath(p Paths, rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return filepath.Join(p.Abs(CRLStateDir), "url-"+hex.EncodeToString(sum[:16])+".der")
}

// crlFetchRoots is the trust of a fetch over https: the system's roots and
// the client CAs (step-ca serves its CRL over TLS from its own root).
func crlFetchRoots(clientCAs []*x509.Certificate) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, c := range clientCAs {
		pool.AddCert(c)
	}
	return pool
}

// fetchCRL GETs a CRL from rawURL, trusting roots over https, within
// timeout (a stalled server fails, body included). It follows at most
// maxCRLRedirects redirects, never to another scheme (an https URL never
// ends in plain http), refuses any answer but 200 and a body over
// proxy.MaxCRLSize. The body is not verified here: the caller parses it
// against the CRL issuers.
func fetchCRL(ctx context.Context, rawURL string, roots *x509.CertPool, timeout time.Duration) (_ []byte, err error) {
	defer func() {
		if err != nil {
			err = printableError{err}
		}
	}()
	hc := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // direct: a CRL server is the PKI's own
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: timeout,
			DisableKeepAlives:   true,
			ForceAttemptHTTP2:   false,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxCRLRedirects {
				return fmt.Errorf("more than %d redirects", maxCRLRedirects)
			}
			if req.URL.Scheme != via[0].URL.Scheme {
				return fmt.Errorf("redirected to %s, another scheme than %s: refused", req.URL.Redacted(), via[0].URL.Scheme)
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/pkix-crl, application/x-pem-file;q=0.9, */*;q=0.5")
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named by the caller
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	if resp.ContentLength > proxy.MaxCRLSize {
		return nil, fmt.Errorf("the answer is %d bytes, larger than %d", resp.ContentLength, proxy.MaxCRLSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, proxy.MaxCRLSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if len(data) > proxy.MaxCRLSize {
		return nil, fmt.Errorf("the answer is larger than %d bytes", proxy.MaxCRLSize)
	}
	return data, nil
}

// printableError is a fetch's error as the status, the problems and the
// journal show it: its text comes in part from the CRL server (the reason
// phrase of its status line, the names of its certificate), so every
// character that does not print is escaped (\r, \x1b, \u202e): none can
// draw a line of its own on a terminal.
type printableError struct{ err error }

func (e printableError) Error() string {
	var b strings.Builder
	for _, r := range e.err.Error() {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func (e printableError) Unwrap() error { return e.err }

// CRLFetchStatus is the fetching of one --crl-url, for `tlsdock status`.
type CRLFetchStatus struct {
	URL string `json:"url"`
	// LastSuccess is the last fetch that brought a CRL that verifies
	// (after a restart: when the persisted one was last fetched).
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// LastError is why the last fetch failed or its CRL was refused ("":
	// it succeeded).
	LastError string `json:"last_error,omitempty"`
	Failures  uint64 `json:"failures"`
	// Number and NextUpdate are of the CRL from this URL in force.
	Number     string    `json:"number,omitempty"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	InForce    bool      `json:"in_force"`
	Refresh    string    `json:"refresh"`
}

// ProxyDaemonStatus is what the proxy daemon answers on ProxyStatusSocket:
// the proxy's status and the CRL fetches.
type ProxyDaemonStatus struct {
	proxy.Status
	CRLFetches []CRLFetchStatus `json:"crl_fetches,omitempty"`
}

// urlFetch is the fetch state of a URL source, under ProxyDaemon.mu.
type urlFetch struct {
	url  string
	kick chan struct{} // a fetch now (SIGHUP)
	// data is the body of the last fetch that answered (nil: none yet);
	// err the last fetch's failure (nil: it answered).
	data        []byte
	err         error
	pending     bool // a fetch not yet accounted (noteFetched)
	lastSuccess time.Time
	lastAttempt time.Time
	failures    uint64
}

// errNotFetched is a URL source before its first fetch answered.
var errNotFetched = errors.New("not fetched yet")

// read is the CRL of a URL source: the last answer, parsed and verified
// against issuers.
func (f *urlFetch) read(issuers []*x509.Certificate) (*proxy.CRL, error) {
	switch {
	case f.err != nil:
		return nil, fmt.Errorf("fetch failed: %w", f.err)
	case f.data == nil:
		return nil, errNotFetched
	}
	return proxy.ParseCRL(f.data, f.url, issuers)
}

// checkURLIssuer refuses next from a URL whose CRL in force, cur, another
// CA signed while cur still verifies (nil: none in force). Whoever is on a
// plain http path cannot forge a CRL but can serve another genuine one,
// such as the root's: in cur's place, it would leave cur's clients
// without a CRL and refuse them all. After a CA rotation cur no longer
// verifies once its CA leaves the set, and the new CA's CRL goes in.
func checkURLIssuer(cur, next *proxy.CRL) error {
	if cur == nil || cur.IssuerID() == next.IssuerID() {
		return nil
	}
	return fmt.Errorf("signed by %q, not by %q whose CRL from this URL is in force: refused while that CRL still verifies (it gives way once its CA leaves the set)", next.Issuer, cur.Issuer)
}

// fetchRoots is the trust of the fetches: the system's roots and the
// client CAs in force.
func (d *ProxyDaemon) fetchRoots() *x509.CertPool {
	d.mu.Lock()
	var cas []*x509.Certificate
	if d.srv != nil {
		cas = d.srv.ClientCAs()
	}
	d.mu.Unlock()
	return crlFetchRoots(cas)
}

func (d *ProxyDaemon) fetchTimeout() time.Duration {
	if d.o.CRLFetchTimeout > 0 {
		return d.o.CRLFetchTimeout
	}
	return DefaultCRLFetchTimeout
}

// urlSources are the URL sources.
func (d *ProxyDaemon) urlSources() []*crlSource {
	var out []*crlSource
	for _, s := range d.crls {
		if s.fetch != nil {
			out = append(out, s)
		}
	}
	return out
}

// fetchAll fetches every URL source at once, waits for them, and records
// the answers (under d.mu, without loading them: the caller does).
func (d *ProxyDaemon) fetchAll(roots *x509.CertPool) {
	srcs := d.urlSources()
	res := make([][]byte, len(srcs))
	errs := make([]error, len(srcs))
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Go(func() { res[i], errs[i] = fetchCRL(d.fetchCtx, s.fetch.url, roots, d.fetchTimeout()) })
	}
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, s := range srcs {
		d.recordFetch(s, res[i], errs[i])
	}
}

// recordFetch records a fetch's result (under d.mu), to be accounted by
// noteFetched once loaded, and reports whether the source must be loaded
// again: the answer or the failure changed.
func (d *ProxyDaemon) recordFetch(s *crlSource, data []byte, err error) bool {
	f := s.fetch
	f.lastAttempt, f.pending = d.now(), true
	var changed bool
	switch {
	case err != nil:
		changed = f.err == nil || err.Error() != f.err.Error()
		f.err = err
	default:
		changed = f.err != nil || f.data == nil || !bytes.Equal(data, f.data)
		f.err, f.data = nil, data
	}
	return changed
}

// noteFetched accounts for a URL source once loaded (under d.mu), problem
// being why its answer was refused: a fetch that answered with the CRL in
// force is a success, any other a failure. Loads without a new fetch
// count nothing.
func (d *ProxyDaemon) noteFetched(s *crlSource, problem string) {
	f := s.fetch
	var next time.Time
	if s.good != nil {
		next = s.good.NextUpdate
	}
	d.o.Metrics.crlNextUpdate(f.url, next)
	if !f.lastSuccess.IsZero() {
		d.o.Metrics.crlFetchSucceeded(f.url, f.lastSuccess) // the saved copy's, after a start
	}
	if !f.pending {
		return
	}
	f.pending = false
	if f.err != nil || problem != "" || s.good == nil {
		f.failures++
		d.o.Metrics.crlFetchFailed(f.url)
		return
	}
	f.lastSuccess = f.lastAttempt
	d.o.Metrics.crlFetchSucceeded(f.url, f.lastSuccess)
	// The persisted copy's time is the last success, for the next start.
	_ = os.Chtimes(s.state(d.o.Paths), f.lastSuccess, f.lastSuccess)
}

// fetchLoop fetches one URL source every refresh, or at once when kicked,
// and loads it. It runs only when URLs are configured: an idle daemon
// without one never wakes up for them.
func (d *ProxyDaemon) fetchLoop(s *crlSource) {
	defer d.wg.Done()
	refresh := d.o.Config.crlRefresh()
	t := time.NewTimer(refresh)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
		case <-s.fetch.kick:
		}
		data, err := fetchCRL(d.fetchCtx, s.fetch.url, d.fetchRoots(), d.fetchTimeout())
		select {
		case <-d.done:
			return
		default:
		}
		d.mu.Lock()
		if d.recordFetch(s, data, err) || (s.problem == "" && s.good != nil && s.good.Stale(d.now())) {
			// A new answer, or the CRL in force went stale since
			// it was loaded: the refusal of this answer must be
			// seen.
			d.loadCRLsLocked()
		} else {
			// The same answer: the CRL in force stays, and only the
			// accounting moves.
			d.noteFetched(s, s.problem)
		}
		d.mu.Unlock()
		t.Reset(refresh)
	}
}

// kickFetches asks every URL source for a fetch now (SIGHUP).
func (d *ProxyDaemon) kickFetches() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.urlSources() {
		select {
		case s.fetch.kick <- struct{}{}:
		default:
		}
	}
}

// crlFetchStatus lists the URL sources' fetching (under d.mu).
func (d *ProxyDaemon) crlFetchStatus() []CRLFetchStatus {
	refresh := d.o.Config.crlRefresh()
	var out []CRLFetchStatus
	for _, s := range d.urlSources() {
		f := s.fetch
		st := CRLFetchStatus{URL: f.url, LastSuccess: f.lastSuccess, LastAttempt: f.lastAttempt, Failures: f.failures, Refresh: refresh.String()}
		if s.problem != "" {
			st.LastError = s.problem
		}
		if s.good != nil {
			st.InForce, st.NextUpdate = true, s.good.NextUpdate
			if s.good.Number != nil {
				st.Number = s.good.Number.String()
			}
		}
		out = append(out, st)
	}
	return out
}

// status is what the status socket answers.
func (d *ProxyDaemon) status() ProxyDaemonStatus {
	d.mu.Lock()
	srv := d.srv
	fetches := d.crlFetchStatus()
	d.mu.Unlock()
	st := ProxyDaemonStatus{CRLFetches: fetches}
	if srv != nil {
		st.Status = srv.Status()
	}
	return st
}

// checkCRLURLs fetches each --crl-url as the proxy will, for provision:
// the answer must be a CRL signed by a CA of the clients of set, current,
// and not older than the one in force. A URL that cannot be fetched is
// refused when no CRL of it was ever good (the proxy would refuse every
// client); with a last good one, it is only a warning.
func checkCRLURLs(ctx context.Context, p Paths, logger *slog.Logger, urls []string, set *certstore.Set, now time.Time) error {
	urls, cdp := ExpandCRLURLs(urls, set)
	if cdp && len(DistributionPointURLs(set)) == 0 {
		return inputErr("--crl-url", "%s: no certificate of the CA bundle or of the server certificate file names an http or https CRL distribution point: give the URL of the CRL of the CA that issues the clients instead", CRLURLFromCDP)
	}
	issuers := proxy.CRLIssuers(set, now)
	roots := crlFetchRoots(set.CAs)
	for _, u := range urls {
		var cur *proxy.CRL
		if data, err := certstore.ReadFileBounded(CRLURLStatePath(p, u)); err == nil {
			cur, _ = proxy.ParseCRL(data, u, issuers)
		}
		data, err := fetchCRL(ctx, u, roots, DefaultCRLFetchTimeout)
		if err != nil {
			if cur != nil {
				logger.Warn("a CRL URL does not answer; the proxy keeps its last good CRL and retries", "crl_url", u, "keeping", cur.Describe(), "err", err)
				continue
			}
			return inputErr("--crl-url", "%s: fetch failed: %v: no CRL of it was ever good, so the proxy would refuse every client: fix the URL or start the CRL server, then run provision again", u, err)
		}
		c, err := proxy.ParseCRL(data, u, issuers)
		if err != nil {
			return inputErr("--crl-url", "%v: serve a CRL (PEM or DER) signed by the CA that issues the client certificates: one in ca.pem, or the intermediate of the server certificate's chain", err)
		}
		if err := checkURLIssuer(cur, c); err != nil {
			return inputErr("--crl-url", "CRL %s: %v: serve the CRL of the CA that issues the clients", u, err)
		}
		for _, cur := range []*proxy.CRL{cur, issuerFloor(p, nil, c, issuers)} {
			if err := proxy.CheckUpdate(cur, c, now); err != nil {
				return inputErr("--crl-url", "CRL %s: %v: publish a current CRL from its CA (a higher CRL number, a next update in the future) and run provision again", u, err)
			}
		}
	}
	return nil
}
