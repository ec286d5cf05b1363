package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/proxy"
)

// ProxyDaemonOptions are the proxy daemon's settings and dependencies.
type ProxyDaemonOptions struct {
	Paths  Paths
	Config Config
	Logger *slog.Logger
	// Listen opens the listeners; the default listens on each --host.
	// `tlsdock run` passes systemd's sockets when it was socket-activated.
	Listen func() ([]net.Listener, error)
	// Proxy are the proxy's own options (limits); Policy, CRLs, Logger and
	// AuditLog are set by the daemon.
	Proxy proxy.Options
	// ReloadDelay coalesces a burst of changes to the CRL and policy files;
	// default 100ms.
	ReloadDelay time.Duration
	// Metrics, when set, get the CRL fetches (--crl-url).
	Metrics *Metrics
	// CRLFetchTimeout bounds one fetch of a --crl-url; default
	// DefaultCRLFetchTimeout.
	CRLFetchTimeout time.Duration
}

// ProxyDaemon runs a proxy.Server for `tlsdock run --mode proxy`: it opens
// the listeners once the first set is served (Reload), keeps the policy and
// the CRLs (the external ones and the local CA's) current by watching their
// files and fetching each --crl-url every --crl-refresh, and answers
// `tlsdock status` on ProxyStatusSocket.
type ProxyDaemon struct {
	o   ProxyDaemonOptions
	log *slog.Logger

	mu       sync.Mutex
	srv      *proxy.Server
	crls     []*crlSource          // the configured CRL files, then the URLs, then the local CA's; fixed once serving
	newest   map[string]*proxy.CRL // the newest CRL of each issuer in force (IssuerID); also in CRLStateDir
	policy   *proxy.Policy
	audit    *proxy.AuditLog // nil: audit records go to the journal
	watch    *fsnotify.Watcher
	statusL  net.Listener
	done     chan struct{}
	fetchCtx context.Context // the CRL fetches; cancelled by Shutdown
	cancel   context.CancelFunc
	cdp      bool // --crl-url cdp: the first set's distribution points are fetched too
	serveErr chan error
	wg       sync.WaitGroup
}

// NewProxyDaemon checks the policy (it must load; a mistake is bad input
// at startup) and starts watching it and the CRL files. Nothing listens
// before the first Reload, which loads the CRLs (see loadCRLsLocked): a
// configured CRL that is missing or broken at startup, with no last good
// one persisted, does not stop the daemon; every client is refused until a
// good one loads (fail closed).
func NewProxyDaemon(o ProxyDaemonOptions) (*ProxyDaemon, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ReloadDelay <= 0 {
		o.ReloadDelay = 100 * time.Millisecond
	}
	d := &ProxyDaemon{o: o, log: o.Logger.With("component", "proxyd"), done: make(chan struct{}), serveErr: make(chan error, 1)}
	for _, c := range o.Config.CRLs {
		d.crls = append(d.crls, &crlSource{key: c, file: c})
	}
	for _, u := range o.Config.CRLURLs {
		if u == CRLURLFromCDP {
			d.cdp = true // expanded with the first set (Reload)
			continue
		}
		d.addURLSource(u)
	}
	d.fetchCtx, d.cancel = context.WithCancel(context.Background())
	d.crls = append(d.crls, &crlSource{key: LocalCRLPath, file: d.localCRL(), local: true})
	if o.Listen == nil {
		d.o.Listen = d.listenHosts
	}
	d.policy = proxy.DefaultPolicy()
	if o.Config.Policy != "" {
		p, err := proxy.LoadPolicy(o.Config.Policy)
		if err != nil {
			return nil, &InputError{Field: "--policy", Err: err}
		}
		d.policy = p
	}
	if err := d.openAuditLog(); err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.closeAuditLog()
		return nil, fmt.Errorf("watching the CRL and policy files: %w", err)
	}
	d.watch = w
	for _, dir := range d.watchedDirs() {
		if err := w.Add(dir); err != nil {
			d.log.Warn("cannot watch a directory; its changes are seen on SIGHUP or restart", "dir", dir, "err", err)
		}
	}
	d.wg.Add(1)
	go d.watchLoop()
	return d, nil
}

// openAuditLog opens Config.AuditLog (under Paths), the proxy's sink for
// per-request audit records; none when it is "".
func (d *ProxyDaemon) openAuditLog() error {
	if d.o.Config.AuditLog == "" {
		return nil
	}
	maxSize := d.o.Config.AuditLogMaxSize
	if maxSize == 0 {
		maxSize = -1 // never rotate
	}
	al, err := proxy.OpenAuditLog(d.o.Paths.Abs(d.o.Config.AuditLog), proxy.AuditLogOptions{MaxSize: maxSize, Logger: d.o.Logger})
	if err != nil {
		return &InputError{Field: "--audit-log", Err: fmt.Errorf("%w (audit-log = \"\" keeps the audit records in the journal)", err)}
	}
	d.audit = al
	d.log.Info("audit records go to their own file; the journal keeps denials, errors and events", "audit_log", al.Path())
	return nil
}

// closeAuditLog writes out and closes the audit log.
func (d *ProxyDaemon) closeAuditLog() {
	if d.audit == nil {
		return
	}
	if err := d.audit.Close(); err != nil {
		d.log.Error("closing the audit log", "audit_log", d.audit.Path(), "err", err)
	}
}

// Errors delivers a listener that stopped serving (the daemon should exit).
func (d *ProxyDaemon) Errors() <-chan error { return d.serveErr }

func (d *ProxyDaemon) localCRL() string { return d.o.Paths.Abs(LocalCRLPath) }

func (d *ProxyDaemon) watchedDirs() []string {
	seen := map[string]bool{}
	var dirs []string
	for _, f := range append([]string{d.localCRL(), d.o.Config.Policy}, d.o.Config.CRLs...) {
		if f == "" {
			continue
		}
		dir := filepath.Dir(f)
		if !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

func (d *ProxyDaemon) listenHosts() ([]net.Listener, error) {
	ls, err := d.o.Config.Listeners()
	if err != nil {
		return nil, err
	}
	var out []net.Listener
	for _, l := range ls {
		nl, err := net.Listen("tcp", net.JoinHostPort(l.Host, fmt.Sprint(l.Port)))
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("proxy: listening on %s: %w", l.URL, err)
		}
		out = append(out, nl)
	}
	return out, nil
}

// Serving reports whether the proxy serves (a set was loaded).
func (d *ProxyDaemon) Serving() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.srv != nil
}

// Reload serves set: the first call builds the server and opens the
// listeners, later ones swap the set in without dropping a connection. The
// CRLs are checked again against the new client CAs. It is
// what the agent's serve step calls (Options.Proxy).
func (d *ProxyDaemon) Reload(set *certstore.Set) error {
	first := !d.Serving()
	if first && d.cdp {
		d.addCDPSources(set)
	}
	if first && len(d.urlSources()) > 0 {
		// Before anything listens: the first client is decided by
		// the CRLs the URLs serve now, not by an older saved copy.
		d.fetchAll(crlFetchRoots(set.CAs))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.srv != nil {
		if err := d.srv.SetCertificates(set); err != nil {
			return err
		}
		d.loadCRLsLocked()
		return nil
	}
	po := d.o.Proxy
	po.Logger = d.o.Logger
	po.Policy = d.policy
	po.AuditLog = d.audit
	srv, err := proxy.New(set, po)
	if err != nil {
		return err
	}
	ls, err := d.o.Listen()
	if err != nil {
		return err
	}
	d.srv = srv
	d.loadCRLsLocked()
	for _, s := range d.urlSources() {
		d.wg.Add(1)
		go d.fetchLoop(s)
	}
	for _, l := range ls {
		d.wg.Add(1)
		go func(l net.Listener) {
			defer d.wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, proxy.ErrServerClosed) {
				d.log.Error("the proxy stopped serving a listener", "listener", l.Addr().String(), "err", err)
				select {
				case d.serveErr <- err:
				default:
				}
			}
		}(l)
		d.log.Info("proxy listening", "addr", l.Addr().String(), "serial", set.Serial())
	}
	d.startStatus()
	return nil
}

// startStatus answers `tlsdock status` on ProxyStatusSocket.
func (d *ProxyDaemon) startStatus() {
	sock := d.o.Paths.Abs(ProxyStatusSocket)
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		d.log.Warn("no status socket", "err", err)
		return
	}
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		d.log.Warn("no status socket: `tlsdock status` shows no proxy details", "socket", sock, "err", err)
		return
	}
	_ = os.Chmod(sock, 0o600)
	d.statusL = l
	srv := &http.Server{Handler: proxyStatusHandler(d.status), ReadHeaderTimeout: 5 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = srv.Serve(l)
	}()
}

// CRLStateDir keeps the last good CRL of each source, as DER
// (<sha256 of the source path>.der, 0600), so that a restart with a broken
// or missing CRL file still enforces it.
const CRLStateDir = StateDir + "/crl"

// crlSource is one CRL file or URL and what it put in force.
type crlSource struct {
	key   string // the host path or URL as configured: names the persisted copy
	file  string // where it is read, or the URL
	local bool   // the local CA's CRL: applies only when it exists and the local CA issues the clients
	fetch *urlFetch
	good  *proxy.CRL
	// problem is the last refusal ("" none), logged once per change.
	problem string
}

// state is where the source's last good CRL is kept.
func (src *crlSource) state(p Paths) string {
	if src.fetch != nil {
		return CRLURLStatePath(p, src.key)
	}
	return CRLStatePath(p, src.key)
}

// read is the source's CRL now: its file, or the last answer of its URL.
func (src *crlSource) read(issuers []*x509.Certificate) (*proxy.CRL, error) {
	if src.fetch != nil {
		return src.fetch.read(issuers)
	}
	return proxy.LoadCRL(src.file, issuers)
}

func (d *ProxyDaemon) now() time.Time {
	if d.o.Proxy.Now != nil {
		return d.o.Proxy.Now()
	}
	return time.Now()
}

// CRLStatePath is where the last good CRL of the source at hostPath (as
// configured, made absolute) is kept.
func CRLStatePath(p Paths, hostPath string) string {
	if a, err := filepath.Abs(hostPath); err == nil {
		hostPath = a
	}
	sum := sha256.Sum256([]byte(hostPath))
	return filepath.Join(p.Abs(CRLStateDir), hex.EncodeToString(sum[:16])+".der")
}

// loadCRLsLocked loads every CRL source and puts the result in force. A CRL
// file that is missing, does not parse, is past its next update, is signed
// by no CA of the clients, or is older than the one in force is refused:
// the last good CRL of its source stays in force (loaded from CRLStateDir
// after a restart), the refusal is logged as a warning and shown in
// `tlsdock status`. A configured source that never had a good CRL refuses
// every client (fail closed). The local CA's CRL applies only once it
// exists and is signed by a CA of the clients.
func (d *ProxyDaemon) loadCRLsLocked() {
	if d.srv == nil {
		return
	}
	issuers := d.srv.CRLIssuers()
	now := d.now()
	var rev proxy.Revocation
	for _, src := range d.crls {
		problem := d.loadSource(src, issuers, now)
		if problem != "" {
			p := proxy.CRLProblem{Source: src.file, Reason: problem}
			if src.good != nil {
				p.Keeping = src.good.Describe()
			}
			rev.Problems = append(rev.Problems, p)
			if problem != src.problem {
				if src.good != nil {
					d.log.Warn("a CRL was rejected; the last good one stays in force", "crl", src.file, "reason", problem, "keeping", p.Keeping)
				} else {
					d.log.Warn("a CRL was rejected and no good one was ever loaded from it: every client is refused until one loads", "crl", src.file, "reason", problem)
				}
			}
		}
		src.problem = problem
		if src.fetch != nil {
			d.noteFetched(src, problem)
		}
		if src.good != nil {
			rev.CRLs = append(rev.CRLs, src.good)
		}
	}
	d.srv.SetRevocation(rev)
}

// loadSource updates src.good from its persisted copy and its file, and
// returns why the file was refused ("" when it was not, or when a local
// CRL does not apply).
func (d *ProxyDaemon) loadSource(src *crlSource, issuers []*x509.Certificate, now time.Time) string {
	state := src.state(d.o.Paths)
	if src.good != nil {
		// The client CAs may have changed: re-check the CRL in force.
		if c, err := proxy.ParseCRL(src.good.Raw, src.file, issuers); err != nil {
			d.log.Warn("the CRL in force no longer verifies against the CAs of the clients; dropping it", "crl", src.file, "err", err)
			src.good = nil
		} else {
			src.good = c
		}
	}
	if src.good == nil {
		if data, err := certstore.ReadFileBounded(state); err == nil {
			if c, err := proxy.ParseCRL(data, src.file, issuers); err == nil {
				// A crash between writing the issuer's floor and this
				// copy leaves the floor newer: it is the last good one.
				if f := issuerFloor(d.o.Paths, d.newest, c, issuers); f != nil && !bytes.Equal(f.Raw, c.Raw) && proxy.CheckUpdate(c, f, time.Time{}) == nil {
					c = f
				}
				src.good = c
				if fi, err := os.Stat(state); err == nil && src.fetch != nil && src.fetch.lastSuccess.IsZero() {
					src.fetch.lastSuccess = fi.ModTime()
				}
				d.log.Info("loaded the last good CRL", "crl", src.file, "crl_number", c.Number, "state", state)
			} else if !errors.Is(err, proxy.ErrUnknownIssuer) {
				d.log.Warn("the persisted last good CRL does not load", "crl", src.file, "state", state, "err", err)
			}
		}
	}
	c, err := src.read(issuers)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if src.local && src.good == nil {
			return "" // no revoke yet
		}
		return "missing: the file does not exist"
	case errors.Is(err, proxy.ErrUnknownIssuer) && src.local && src.good == nil:
		d.log.Debug("the local CA's CRL does not apply: the local CA issues no client of this set", "crl", src.file)
		return ""
	case err != nil:
		return strings.TrimPrefix(err.Error(), "CRL "+src.file+": ")
	}
	if src.good != nil && bytes.Equal(src.good.Raw, c.Raw) {
		src.good = c // unchanged; its status shows when it is stale
		if src.fetch != nil {
			// A URL that still serves it past its next update (a
			// replay on the path, a stuck CA) is a failed fetch: the
			// CRL stays in force, as a stale file's does.
			if err := proxy.CheckUpdate(nil, c, now); err != nil {
				return err.Error()
			}
		}
		return ""
	}
	if src.fetch != nil {
		if err := checkURLIssuer(src.good, c); err != nil {
			return err.Error()
		}
	}
	if floor := issuerFloor(d.o.Paths, d.newest, c, issuers); floor != nil {
		if err := proxy.CheckUpdate(floor, c, time.Time{}); err != nil {
			return err.Error()
		}
	}
	if err := proxy.CheckUpdate(src.good, c, now); err != nil {
		if !src.local || src.good != nil || !c.Stale(now) {
			return err.Error()
		}
		// The local CA's CRL goes stale 30 days after the last revoke.
		// With none in force, enforcing it beats refusing every client.
		d.log.Warn("the local CA's CRL is past its next update; it is enforced anyway: run `tlsdock certs revoke` to publish a fresh one", "crl", src.file, "next_update", c.NextUpdate)
	}
	// The issuer's floor first: a crash between the two writes leaves a
	// floor at least as new as the source's copy.
	d.noteNewest(c, issuers)
	src.good = c
	d.log.Info("a new CRL is in force", "crl", src.file, "crl_number", c.Number, "revoked", len(c.Revoked))
	if err := persistCRL(state, c.Raw); err != nil {
		d.log.Error("cannot persist the CRL in force; a restart with a broken CRL file would not have it", "crl", src.file, "state", state, "err", err)
	}
	return ""
}

// CRLIssuerStatePath is where the newest CRL of c's issuer ever in force
// (from any source) is kept: the floor below which no CRL of that issuer
// goes back in force, even through a CRL of another issuer in the same
// file, or after a restart.
func CRLIssuerStatePath(p Paths, c *proxy.CRL) string {
	return filepath.Join(p.Abs(CRLStateDir), "issuer-"+c.IssuerID()+".der")
}

// issuerFloor returns the newest CRL of c's issuer ever in force: in
// memory, else persisted (nil when there is none).
func issuerFloor(p Paths, mem map[string]*proxy.CRL, c *proxy.CRL, issuers []*x509.Certificate) *proxy.CRL {
	if f := mem[c.IssuerID()]; f != nil {
		return f
	}
	data, err := certstore.ReadFileBounded(CRLIssuerStatePath(p, c))
	if err != nil {
		return nil
	}
	f, err := proxy.ParseCRL(data, c.Source, issuers)
	if err != nil || f.IssuerID() != c.IssuerID() {
		return nil
	}
	return f
}

// noteNewest makes c the floor of its issuer when it is newer.
func (d *ProxyDaemon) noteNewest(c *proxy.CRL, issuers []*x509.Certificate) {
	if d.newest == nil {
		d.newest = map[string]*proxy.CRL{}
	}
	if f := issuerFloor(d.o.Paths, d.newest, c, issuers); f != nil && proxy.CheckUpdate(f, c, time.Time{}) != nil {
		d.newest[c.IssuerID()] = f
		return
	}
	d.newest[c.IssuerID()] = c
	path := CRLIssuerStatePath(d.o.Paths, c)
	if err := persistCRL(path, c.Raw); err != nil {
		d.log.Error("cannot persist the newest CRL of an issuer", "crl", c.Source, "state", path, "err", err)
	}
}

// persistCRL writes the CRL in force of a source into CRLStateDir, a real
// directory (never a symlink), 0700.
func persistCRL(state string, der []byte) error {
	dir := filepath.Dir(state)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (a symlink?): remove it", dir)
	}
	return certstore.WriteFileAtomic(state, der, 0o600)
}

// checkCRLs validates each --crl as the proxy will load it, for provision:
// it must parse (PEM or DER), be signed by a CA of the clients of set (a
// client CA, or an intermediate of the server's chain: CRLIssuers), not be
// past its next update, and not be older than the CRL of that source in
// force (persisted in CRLStateDir).
func checkCRLs(p Paths, crls []string, set *certstore.Set, now time.Time) error {
	issuers := proxy.CRLIssuers(set, now)
	for _, path := range crls {
		c, err := proxy.LoadCRL(path, issuers)
		if err != nil {
			return inputErr("--crl", "%v: give a CRL file (PEM or DER) signed by the CA that issues the client certificates: one in ca.pem, or the intermediate of the server certificate's chain", err)
		}
		var cur *proxy.CRL
		if data, err := certstore.ReadFileBounded(CRLStatePath(p, path)); err == nil {
			cur, _ = proxy.ParseCRL(data, path, issuers)
		}
		for _, cur := range []*proxy.CRL{cur, issuerFloor(p, nil, c, issuers)} {
			if err := proxy.CheckUpdate(cur, c, now); err != nil {
				return inputErr("--crl", "CRL %s: %v: publish a current CRL from its CA (a higher CRL number, a next update in the future) and run provision again", path, err)
			}
		}
	}
	return nil
}

// reloadFiles re-reads the policy and the CRLs after their files changed.
func (d *ProxyDaemon) reloadFiles() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.o.Config.Policy != "" {
		p, err := proxy.LoadPolicy(d.o.Config.Policy)
		switch {
		case err != nil:
			d.log.Error("the policy does not load; the previous one stays in force", "policy", d.o.Config.Policy, "err", err)
		default:
			d.policy = p
			if d.srv != nil {
				d.srv.SetPolicy(p)
			}
		}
	}
	d.loadCRLsLocked()
}

// watchLoop reloads the files a short while after they changed.
func (d *ProxyDaemon) watchLoop() {
	defer d.wg.Done()
	var fire <-chan time.Time
	var t *time.Timer
	for {
		select {
		case <-d.done:
			if t != nil {
				t.Stop()
			}
			return
		case _, ok := <-d.watch.Events:
			if !ok {
				return
			}
			if t == nil {
				t = time.NewTimer(d.o.ReloadDelay)
				fire = t.C
			}
		case err, ok := <-d.watch.Errors:
			if !ok {
				return
			}
			d.log.Warn("watching the CRL and policy files failed; reloading them", "err", err)
			d.reloadFiles()
		case <-fire:
			t, fire = nil, nil
			d.reloadFiles()
		}
	}
}

// Hangup re-reads the policy and CRL files, fetches each --crl-url again
// and reopens the audit log (SIGHUP, as logrotate sends after moving it
// away).
func (d *ProxyDaemon) Hangup() {
	d.reloadFiles()
	d.kickFetches()
	if d.audit != nil {
		if err := d.audit.Reopen(); err != nil {
			d.log.Error("reopening the audit log; records go to the journal until it opens", "audit_log", d.audit.Path(), "err", err)
		}
	}
}

// Shutdown stops the proxy gracefully (requests in flight finish, hijacked
// streams get their grace) and stops watching.
func (d *ProxyDaemon) Shutdown(ctx context.Context) error {
	close(d.done)
	d.cancel()
	d.watch.Close()
	d.mu.Lock()
	srv, sl := d.srv, d.statusL
	d.mu.Unlock()
	if sl != nil {
		sl.Close()
		_ = os.Remove(d.o.Paths.Abs(ProxyStatusSocket))
	}
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	d.wg.Wait()
	d.closeAuditLog() // after the last request's record
	return err
}
