package proxy

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// DefaultSocket is dockerd's unix socket.
const DefaultSocket = "/var/run/docker.sock"

// Defaults of Options.
const (
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 1 << 20
	DefaultMaxConnsPerClient = 64
	DefaultMaxGuardBody      = 1 << 20
	DefaultHijackGrace       = 10 * time.Second
	DefaultRecentClients     = 128
	DefaultBodyIdleTimeout   = 30 * time.Second
)

// Options are the Server's settings and dependencies. The zero value of
// every field means its default.
type Options struct {
	// Socket is dockerd's unix socket (DefaultSocket).
	Socket string
	// Dial connects to dockerd; by default a unix-socket dial of Socket.
	Dial func(ctx context.Context) (net.Conn, error)
	// Logger receives the audit trail (one record per request) and events;
	// records carry component=proxy. Default: slog.Default().
	Logger *slog.Logger
	// AuditLog, when not nil, takes every request's audit record, and
	// Logger only the denials and errors (and a record AuditLog could not
	// take). The caller opens and closes it.
	AuditLog *AuditLog
	// Policy decides each request; default DefaultPolicy(). SetPolicy
	// replaces it.
	Policy *Policy
	// CRLs are the revocation lists in force at start; SetCRLs replaces
	// them.
	CRLs []*CRL

	// HandshakeTimeout bounds the TLS handshake.
	HandshakeTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's header once its first
	// byte has arrived.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long between
	// requests.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header; a larger one gets 431.
	MaxHeaderBytes int
	// MaxConnsPerClient caps concurrent connections per client certificate
	// (issuer and serial); a request on an extra connection gets 429 and
	// the connection is closed. Negative: no cap.
	MaxConnsPerClient int
	// MaxGuardBody bounds a request body a guard reads; a larger one gets
	// 413.
	MaxGuardBody int64
	// HijackGrace is the deadline Shutdown gives hijacked streams (attach,
	// exec) before it closes them.
	HijackGrace time.Duration
	// RecentClients bounds how many clients Status remembers.
	RecentClients int
	// BodyIdleTimeout bounds the wait for each read of a request body
	// (DefaultBodyIdleTimeout); every read that returns data starts it
	// again. A body that stops arriving, or ends before its length, fails
	// the request: the dockerd connection is closed at once (dockerd
	// aborts the request and releases what it holds), the client gets 408
	// or 400 and its connection is closed.
	BodyIdleTimeout time.Duration

	// Now is the clock for status and CRL staleness; default time.Now.
	// (Network deadlines always use the real clock.)
	Now func() time.Time
	// ResolvePath resolves symlinks of host paths for bind-mount guards;
	// default filepath.EvalSymlinks.
	ResolvePath func(string) (string, error)
}

func (o Options) withDefaults() Options {
	if o.Socket == "" {
		o.Socket = DefaultSocket
	}
	if o.Dial == nil {
		sock := o.Socket
		o.Dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Policy == nil {
		o.Policy = DefaultPolicy()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	def(&o.HijackGrace, DefaultHijackGrace)
	def(&o.BodyIdleTimeout, DefaultBodyIdleTimeout)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxConnsPerClient == 0 {
		o.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	if o.MaxGuardBody <= 0 {
		o.MaxGuardBody = DefaultMaxGuardBody
	}
	if o.RecentClients <= 0 {
		o.RecentClients = DefaultRecentClients
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ResolvePath == nil {
		o.ResolvePath = defaultResolver
	}
	return o
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Server terminates mutual TLS on its listeners and forwards each allowed
// request to dockerd's unix socket. Certificates, client CAs, policy and
// CRLs are swapped atomically while it serves: a handshake uses the
// certificates current when its ClientHello arrived, and a request the
// policy current when its header was read.
type Server struct {
	o   Options
	log *slog.Logger

	base   *tls.Config
	certs  atomic.Pointer[certState]
	policy atomic.Pointer[Policy]
	revoc  atomic.Pointer[revocation]

	shutting atomic.Bool
	setMu    sync.Mutex // serializes the setters
	// newest is the newest CRL of each issuer (IssuerID) ever in force,
	// under setMu: LoadCRLFiles refuses an older one from any file.
	newest map[string]*CRL

	poolMu sync.Mutex
	pool   []*upstream // idle dockerd connections, shared by client connections

	guards guardState // the guards' mutex and dockerd client (dockerstate.go)

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	clients   map[string]*client
}

// certState is one immutable generation of certificates.
type certState struct {
	set *certstore.Set
	tls *tls.Config
	// crlIssuers are the CAs whose CRLs are accepted (CRLIssuers).
	crlIssuers []*x509.Certificate
}

// client is a client certificate seen recently.
type client struct {
	id       Identity
	active   atomic.Int64
	requests atomic.Uint64
	denied   atomic.Uint64
	lastSeen atomic.Int64 // unix nanoseconds
}

// New returns a Server serving set: its certificate and key to clients, and
// its CA bundle as the client CAs.
func New(set *certstore.Set, opts Options) (*Server, error) {
	s := &Server{
		o:         opts.withDefaults(),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		clients:   map[string]*client{},
	}
	s.log = s.o.Logger.With("component", "proxy")
	st, err := s.newCertState(set)
	if err != nil {
		return nil, err
	}
	s.certs.Store(st)
	s.policy.Store(s.o.Policy)
	s.revoc.Store(newRevocation(Revocation{CRLs: s.o.CRLs}))
	s.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.certs.Load().tls, nil
		},
	}
	return s, nil
}

func (s *Server) newCertState(set *certstore.Set) (*certState, error) {
	switch {
	case set == nil || set.Cert == nil || set.Key == nil:
		return nil, errors.New("proxy: certificate set is incomplete: it needs a server certificate and its key")
	case len(set.CAs) == 0:
		return nil, errors.New("proxy: certificate set has no CA certificate: ca.pem verifies the clients")
	}
	if pub, ok := set.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(set.Cert.PublicKey) {
		return nil, fmt.Errorf("proxy: the key does not match the server certificate (serial %s)", set.Serial())
	}
	chain := [][]byte{set.Cert.Raw}
	for _, c := range set.Intermediates {
		chain = append(chain, c.Raw)
	}
	pool := x509.NewCertPool()
	for _, c := range set.CAs {
		pool.AddCert(c)
	}
	return &certState{set: set, crlIssuers: CRLIssuers(set, s.o.Now()), tls: &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: set.Key, Leaf: set.Cert}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// No ALPN, as dockerd: a client offering h2 falls back to HTTP/1.1.
		// Without tickets, every connection's chain is verified against
		// the client CAs in force; a resumed session would skip that
		// after a CA swap. The docker CLI never resumes anyway.
		SessionTicketsDisabled: true,
		VerifyConnection:       s.verifyConnection,
	}}, nil
}

// verifyConnection runs after the chain is verified: it refuses a
// certificate that does not name exactly one user or lacks the clientAuth
// extended key usage (checkClientCert), a revoked one (the leaf or a CA of
// its chain), and, while CRLs are in force, one whose issuer has no CRL in
// force or any client while a configured CRL source never had a good CRL.
func (s *Server) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	leaf := cs.PeerCertificates[0]
	if err := checkClientCert(leaf); err != nil {
		s.log.Warn("refused a client certificate", "user", leaf.Subject.CommonName, "serial", leaf.SerialNumber.Text(16), "reason", err.Error())
		return err
	}
	if err := s.revoc.Load().check(leaf, cs.VerifiedChains); err != nil {
		id := IdentityOf(leaf)
		var rerr *errRevoked
		msg := err.Error()
		attrs := []any{"user", id.User, "serial", id.Serial}
		if errors.As(err, &rerr) {
			attrs = append(attrs, rerr.logs...)
		}
		s.log.Warn("refused a revoked client certificate", append(attrs, "reason", msg)...)
		return fmt.Errorf("client certificate %s (serial %s) %s", id.User, id.Serial, msg)
	}
	return nil
}

// SetCertificates swaps in a new certificate set: the server certificate and
// key, and the CA bundle as client CAs. Handshakes already under way finish
// with the previous set; connections stay open, except those of clients the
// new client CAs no longer verify (a CA taken out of ca.pem cuts off its
// clients, hijacked streams included). An incomplete set is refused and the
// current one keeps serving. The CRLs in force stay in force.
func (s *Server) SetCertificates(set *certstore.Set) error {
	st, err := s.newCertState(set)
	if err != nil {
		return err
	}
	s.setMu.Lock()
	defer s.setMu.Unlock()
	old := s.certs.Swap(st)
	s.log.Info("serving a new certificate", "serial", set.Serial(), "previous", old.set.Serial())
	if !sameCAs(old.set.CAs, set.CAs) {
		s.recheckAll()
	}
	return nil
}

func sameCAs(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return x.Equal(y) })
}

// ClientCAs returns the client CAs in force.
func (s *Server) ClientCAs() []*x509.Certificate {
	return slices.Clone(s.certs.Load().set.CAs)
}

// CRLIssuers returns the CAs whose CRLs the server accepts (CRLIssuers of
// the set in force).
func (s *Server) CRLIssuers() []*x509.Certificate {
	return slices.Clone(s.certs.Load().crlIssuers)
}

// SetPolicy swaps in a new policy for the requests that follow; nil is the
// built-in policy.
func (s *Server) SetPolicy(p *Policy) {
	if p == nil {
		p = DefaultPolicy()
	}
	s.setMu.Lock()
	defer s.setMu.Unlock()
	s.policy.Store(p)
	s.log.Info("policy in force", "source", p.Source(), "rules", len(p.rules))
}

// SetCRLs replaces the revocation lists with crls and no problems; see
// SetRevocation. No CRL at all turns revocation off.
func (s *Server) SetCRLs(crls ...*CRL) { s.SetRevocation(Revocation{CRLs: crls}) }

// SetRevocation replaces what the server enforces. New handshakes are
// decided by it, and open connections that it refuses (a revoked
// certificate in their chain, hijacked streams included, an issuer without
// a CRL, or a source without a good CRL) are closed at once.
func (s *Server) SetRevocation(r Revocation) {
	r.CRLs, r.Problems = slices.Clone(r.CRLs), slices.Clone(r.Problems)
	rev := newRevocation(r)
	s.setMu.Lock()
	s.revoc.Store(rev)
	if s.newest == nil {
		s.newest = map[string]*CRL{}
	}
	for _, c := range r.CRLs {
		if cur := s.newest[c.IssuerID()]; cur == nil || CheckUpdate(cur, c, time.Time{}) == nil {
			s.newest[c.IssuerID()] = c
		}
	}
	s.setMu.Unlock()
	s.log.Info("revocation lists in force", "crls", len(r.CRLs), "revoked", len(rev.keys), "problems", len(r.Problems))
	s.recheckAll()
}

// recheckAll closes the open connections that the client CAs and the
// revocation in force refuse.
func (s *Server) recheckAll() {
	type open struct {
		c          *conn
		registered bool
	}
	s.mu.Lock()
	var conns []open
	for c := range s.conns {
		conns = append(conns, open{c, c.key != ""})
	}
	s.mu.Unlock()
	for _, o := range conns {
		if o.registered {
			s.recheck(o.c)
		} else {
			// Its handshake may be under way with the previous
			// revocation: recheck once it is done.
			go s.recheck(o.c)
		}
	}
}

// recheck closes c when the client CAs or the revocation in force refuse
// its client. It waits for a handshake under way (ConnectionState holds the
// handshake lock); a handshake that starts later is decided by the set and
// revocation in force.
func (s *Server) recheck(c *conn) {
	cs := c.tc.ConnectionState()
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return
	}
	leaf := cs.PeerCertificates[0]
	chains := cs.VerifiedChains
	if st := s.certs.Load(); !chainsEndIn(chains, st.set.CAs) {
		// The client CAs changed since the handshake: verify again, now
		// or, for a certificate that expired meanwhile, when it was
		// valid: only the CAs decide.
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		var err error
		for _, at := range []time.Time{time.Now(), leaf.NotBefore.Add(time.Second)} {
			chains, err = leaf.Verify(x509.VerifyOptions{Roots: st.tls.ClientCAs, Intermediates: inter,
				CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err == nil {
				break
			}
		}
		if err != nil {
			id := IdentityOf(leaf)
			s.log.Warn("closing a connection of a client the client CAs no longer verify", "user", id.User, "serial", id.Serial, "remote", c.remote, "reason", err.Error())
			c.abort()
			return
		}
	}
	if err := s.revoc.Load().check(leaf, chains); err != nil {
		id := IdentityOf(leaf)
		s.log.Warn("closing a connection of a revoked client", "user", id.User, "serial", id.Serial, "remote", c.remote, "reason", err.Error())
		c.abort()
	}
}

// chainsEndIn reports whether every chain's trust anchor is one of cas.
func chainsEndIn(chains [][]*x509.Certificate, cas []*x509.Certificate) bool {
	for _, ch := range chains {
		if len(ch) == 0 || !slices.ContainsFunc(cas, ch[len(ch)-1].Equal) {
			return false
		}
	}
	return len(chains) > 0
}

// LoadCRLFiles reads the CRL files (PEM or DER), verifies each against the
// CRL issuers in force (CRLIssuers), refuses one already past its next
// update or older than the CRL in force from the same file or than the
// newest CRL of its issuer ever in force, from any file (CheckUpdate), and
// swaps them in with SetCRLs. On any error nothing changes and the
// error names the file. No path clears the CRLs.
func (s *Server) LoadCRLFiles(paths ...string) error {
	issuers := s.CRLIssuers()
	now := s.o.Now()
	inForce := map[string]*CRL{}
	for _, c := range s.revoc.Load().crls {
		inForce[c.Source] = c
	}
	var crls []*CRL
	var errs []error
	for _, p := range paths {
		c, err := LoadCRL(p, issuers)
		if err == nil {
			s.setMu.Lock()
			newest := s.newest[c.IssuerID()]
			s.setMu.Unlock()
			for _, cur := range []*CRL{inForce[p], newest} {
				if uerr := CheckUpdate(cur, c, now); uerr != nil {
					err = fmt.Errorf("CRL %s: %w", p, uerr)
					break
				}
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		crls = append(crls, c)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.SetCRLs(crls...)
	return nil
}

// Serve accepts connections on l until Shutdown or Close, and then returns
// ErrServerClosed. Call it once per listener (TCP from --host, or a socket
// from systemd activation), each in its own goroutine.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if s.shutting.Load() {
				return ErrServerClosed
			}
			if temporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "listener", l.Addr().String(), "error", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accepting on %s: %w", l.Addr(), err)
		}
		delay = 0
		c := s.newConn(newSysConn(raw))
		if c == nil {
			raw.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Shutdown stops accepting, closes idle keep-alive connections, lets
// requests in flight finish, gives hijacked streams Options.HijackGrace,
// and returns once every connection is closed. When ctx ends first it
// closes the rest and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.drainPool()
	defer s.drainPool()
	grace := time.Now().Add(s.o.HijackGrace)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			switch c.state.Load() {
			case stateIdle:
				c.raw.SetReadDeadline(aLongTimeAgo)
			case stateHijacked:
				if !c.graceSet {
					c.graceSet = true
					c.setDeadline(grace)
				}
			}
		}
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.shutting.Store(true)
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.closeAll()
	s.drainPool()
	return nil
}

// maxIdleUpstream bounds the pool of idle dockerd connections.
const maxIdleUpstream = 32

// getIdle takes an idle dockerd connection from the pool, skipping those
// dockerd has closed meanwhile; nil when there is none.
func (s *Server) getIdle() *upstream {
	for {
		s.poolMu.Lock()
		n := len(s.pool)
		if n == 0 {
			s.poolMu.Unlock()
			return nil
		}
		up := s.pool[n-1]
		s.pool = s.pool[:n-1]
		s.poolMu.Unlock()
		if alive(up.conn) {
			return up
		}
		up.conn.Close()
	}
}

// putIdle returns a dockerd connection that is between requests to the
// pool, or closes it.
func (s *Server) putIdle(up *upstream) {
	up.rd.flush = nil
	s.poolMu.Lock()
	if !s.shutting.Load() && len(s.pool) < maxIdleUpstream {
		s.pool = append(s.pool, up)
		up = nil
	}
	s.poolMu.Unlock()
	if up != nil {
		up.conn.Close()
	}
}

func (s *Server) drainPool() {
	s.poolMu.Lock()
	pool := s.pool
	s.pool = nil
	s.poolMu.Unlock()
	for _, up := range pool {
		up.conn.Close()
	}
}

// alive reports whether dockerd still holds an idle connection open: a
// non-blocking peek finds neither data nor EOF.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = rerr == syscall.EAGAIN
		return true
	})
	return err == nil && open
}

func (s *Server) closeAll() {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.abort()
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// trackConn adds a new connection; false once the server is closed.
func (s *Server) trackConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrackConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// register binds an authenticated connection to its client entry and
// reports whether the client is over its connection cap.
func (s *Server) register(c *conn, id Identity, key string) (over bool) {
	now := s.o.Now().UnixNano()
	s.mu.Lock()
	cl := s.clients[key]
	if cl == nil {
		s.evictLocked()
		cl = &client{id: id}
		s.clients[key] = cl
	}
	c.cl, c.key = cl, key
	s.mu.Unlock()
	cl.lastSeen.Store(now)
	n := cl.active.Add(1)
	return s.o.MaxConnsPerClient > 0 && n > int64(s.o.MaxConnsPerClient)
}

func (s *Server) unregister(c *conn) {
	if c.cl != nil {
		c.cl.active.Add(-1)
	}
}

// evictLocked drops the least recently seen idle clients above the
// RecentClients bound.
func (s *Server) evictLocked() {
	if len(s.clients) < s.o.RecentClients {
		return
	}
	type kv struct {
		k    string
		seen int64
	}
	var idle []kv
	for k, cl := range s.clients {
		if cl.active.Load() == 0 {
			idle = append(idle, kv{k, cl.lastSeen.Load()})
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].seen < idle[j].seen })
	for i := 0; i < len(idle) && len(s.clients) >= s.o.RecentClients; i++ {
		delete(s.clients, idle[i].k)
	}
}
