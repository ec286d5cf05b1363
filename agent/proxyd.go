package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
}

// ProxyDaemon runs a proxy.Server for `tlsdock run --mode proxy`: it opens
// the listeners once the first set is served (Reload), keeps the policy and
// the CRLs (the external ones and the local CA's) current by watching their
// files, and answers `tlsdock status` on ProxyStatusSocket.
type ProxyDaemon struct {
	o   ProxyDaemonOptions
	log *slog.Logger

	mu       sync.Mutex
	srv      *proxy.Server
	crls     map[string]*proxy.CRL // by file, the last that loaded
	policy   *proxy.Policy
	audit    *proxy.AuditLog // nil: audit records go to the journal
	watch    *fsnotify.Watcher
	statusL  net.Listener
	done     chan struct{}
	serveErr chan error
	wg       sync.WaitGroup
}

// NewProxyDaemon checks the policy and the CRL files (they must load; a
// mistake is bad input at startup) and starts watching them. Nothing
// listens before the first Reload.
func NewProxyDaemon(o ProxyDaemonOptions) (*ProxyDaemon, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ReloadDelay <= 0 {
		o.ReloadDelay = 100 * time.Millisecond
	}
	d := &ProxyDaemon{o: o, log: o.Logger.With("component", "proxyd"), crls: map[string]*proxy.CRL{}, done: make(chan struct{}), serveErr: make(chan error, 1)}
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
	for _, c := range o.Config.CRLs {
		if _, err := os.Stat(c); err != nil {
			return nil, inputErr("--crl", "%v: give a CRL file (PEM or DER) signed by the CA in ca.pem", err)
		}
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
// Options.ProxyReload.
func (d *ProxyDaemon) Reload(set *certstore.Set) error {
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
	srv := &http.Server{Handler: proxyStatusHandler(d.srv.Status), ReadHeaderTimeout: 5 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = srv.Serve(l)
	}()
}

// loadCRLsLocked loads the configured CRLs and the local CA's (when it
// exists). A file that does not load keeps its last good CRL in force.
func (d *ProxyDaemon) loadCRLsLocked() {
	if d.srv == nil {
		return
	}
	cas := d.srv.ClientCAs()
	paths := append([]string{}, d.o.Config.CRLs...)
	local := d.localCRL()
	if _, err := os.Stat(local); err == nil {
		paths = append(paths, local)
	} else {
		delete(d.crls, local)
	}
	for _, p := range paths {
		c, err := proxy.LoadCRL(p, cas)
		if err != nil {
			if p == local && d.crls[p] == nil {
				// The local CA's CRL does not apply to a set of another CA.
				d.log.Debug("the local CA's CRL does not apply", "crl", p, "err", err)
				continue
			}
			d.log.Error("a CRL does not load; its last good version stays in force", "crl", p, "err", err)
			continue
		}
		d.crls[p] = c
	}
	var all []*proxy.CRL
	for _, c := range d.crls {
		all = append(all, c)
	}
	d.srv.SetCRLs(all...)
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

// Hangup re-reads the policy and CRL files and reopens the audit log
// (SIGHUP, as logrotate sends after moving it away).
func (d *ProxyDaemon) Hangup() {
	d.reloadFiles()
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
