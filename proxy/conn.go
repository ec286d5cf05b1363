package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Connection states, for Shutdown and Status.
const (
	stateNew int32 = iota // handshake
	stateIdle
	stateActive
	stateHijacked
)

// conn is one client connection. Its goroutine reads a request, decides,
// writes it to a persistent dockerd connection (its own while it lives, from
// and back to the Server's pool), streams the response back, and waits for
// the next request.
type conn struct {
	s      *Server
	raw    net.Conn
	tc     *tls.Conn  // the handshake
	cc     clientConn // what requests are read from and responses written to: tc
	remote string
	rd     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	state  atomic.Int32

	// Set once after the handshake.
	cl  *client
	key string

	up *upstream // only the conn goroutine touches it

	upMu   sync.Mutex
	upConn net.Conn // the current upstream connection, for abort
	dead   bool

	graceSet bool // guarded by s.mu

	plain plainHead // respondPlain's, reused
	rec   record    // the request's audit record, reused
}

// clientConn is the client's side of a connection once the handshake is
// done.
type clientConn interface {
	io.ReadWriter
	CloseWrite() error
}

// upstream is a persistent connection to dockerd.
type upstream struct {
	conn   net.Conn
	rd     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	reused bool
}

// connReader reads a connection. Before a read that may block it flushes
// flush, so data buffered for the other side goes out exactly when no more
// input is at hand: streaming responses and uploads flow as they arrive,
// and a short response costs one write. During a request header it
// enforces the header size limit.
type connReader struct {
	r     io.Reader
	flush *bufio.Writer
	limit int64 // < 0: no limit
	hit   bool
	n     int64
	// idle, when positive, is the read deadline set before each read
	// (Options.BodyIdleTimeout while a request body may be read) on dl.
	idle time.Duration
	dl   interface{ SetReadDeadline(time.Time) error }
}

var errHeaderTooLarge = errors.New("request header too large")

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.flush != nil && cr.flush.Buffered() > 0 {
		if err := cr.flush.Flush(); err != nil {
			return 0, err
		}
	}
	if cr.idle > 0 {
		cr.dl.SetReadDeadline(time.Now().Add(cr.idle))
	}
	if cr.limit >= 0 {
		if cr.limit == 0 {
			cr.hit = true
			return 0, errHeaderTooLarge
		}
		if int64(len(p)) > cr.limit {
			p = p[:cr.limit]
		}
	}
	n, err := cr.r.Read(p)
	cr.n += int64(n)
	if cr.limit >= 0 {
		cr.limit -= int64(n)
	}
	return n, err
}

// Buffer sizes: small, since bodies larger than a buffer bypass it.
const (
	clientReadBuf  = 4 << 10
	clientWriteBuf = 4 << 10
	upReadBuf      = 4 << 10
	upWriteBuf     = 4 << 10
	// maxDiscard is how much of a refused request's body is read and
	// dropped to keep the connection; beyond it the connection closes.
	maxDiscard = 256 << 10
)

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (s *Server) newConn(raw net.Conn) *conn {
	tc := tls.Server(raw, s.base)
	c := s.wrapConn(raw, tc)
	c.tc = tc
	if !s.trackConn(c) {
		return nil
	}
	return c
}

// wrapConn builds a connection that carries requests over cc on raw.
func (s *Server) wrapConn(raw net.Conn, cc clientConn) *conn {
	c := &conn{s: s, raw: raw, cc: cc, remote: raw.RemoteAddr().String()}
	c.rd = connReader{r: cc, limit: -1, dl: raw}
	c.br = bufio.NewReaderSize(&c.rd, clientReadBuf)
	c.bw = bufio.NewWriterSize(cc, clientWriteBuf)
	return c
}

func (c *conn) serve() {
	defer c.s.untrackConn(c)
	defer c.close()
	c.raw.SetDeadline(time.Now().Add(c.s.o.HandshakeTimeout))
	if err := c.tc.HandshakeContext(context.Background()); err != nil {
		c.s.log.Debug("TLS handshake failed", "remote", c.remote, "error", err)
		return
	}
	c.raw.SetDeadline(time.Time{})
	leaf := c.tc.ConnectionState().PeerCertificates[0]
	c.serveRequests(IdentityOf(leaf), certRevKey(leaf))
}

// serveRequests serves the requests of an authenticated client.
func (c *conn) serveRequests(id Identity, key string) {
	over := c.s.register(c, id, key)
	defer c.s.unregister(c)
	for c.serveRequest(over) {
	}
}

// close flushes what is buffered and closes the client connection. The
// dockerd connection goes back to the pool when it is between requests.
func (c *conn) close() {
	if c.bw.Buffered() > 0 {
		c.raw.SetWriteDeadline(time.Now().Add(time.Second))
		c.bw.Flush()
	}
	c.raw.Close()
	c.upMu.Lock()
	c.dead = true
	up := c.up
	if up != nil {
		c.upConn = nil
	} else if c.upConn != nil {
		c.upConn.Close()
	}
	c.upMu.Unlock()
	if up != nil {
		c.s.putIdle(up)
	}
}

// abort closes both connections from another goroutine.
func (c *conn) abort() {
	c.raw.Close()
	c.upMu.Lock()
	c.dead = true
	if c.upConn != nil {
		c.upConn.Close()
	}
	c.upMu.Unlock()
}

func (c *conn) setDeadline(t time.Time) {
	c.raw.SetDeadline(t)
	c.upMu.Lock()
	if c.upConn != nil {
		c.upConn.SetDeadline(t)
	}
	c.upMu.Unlock()
}

// record is one audit record.
type record struct {
	start    time.Time
	method   string
	path     string
	status   int
	decision string
	rule     string
	guard    string
	hijacked bool
	err      string
	logged   bool
	// readOnly: allowed by a read-only rule; should dockerd hijack the
	// connection anyway, the client's bytes are not carried to it.
	readOnly bool
}

func (c *conn) audit(r *record) {
	if r.logged {
		return
	}
	r.logged = true
	if al := c.s.o.AuditLog; al != nil {
		groups := c.cl.id.Groups
		if groups == nil {
			groups = []string{}
		}
		err := al.Write(&AuditRecord{
			Time: r.start, User: c.cl.id.User, Groups: groups, Serial: c.cl.id.Serial, Remote: c.remote,
			Method: r.method, Path: r.path, Status: r.status, Decision: r.decision, Rule: r.rule, Guard: r.guard,
			Hijacked: r.hijacked, Duration: time.Since(r.start), Error: r.err,
		})
		if err == nil && r.decision == "allow" {
			return // the journal keeps denials, errors and events
		}
	}
	ctx := context.Background()
	if !c.s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("user", c.cl.id.User),
		slog.Any("groups", c.cl.id.Groups),
		slog.String("serial", c.cl.id.Serial),
		slog.String("remote", c.remote),
		slog.String("method", r.method),
		slog.String("path", r.path),
		slog.Int("status", r.status),
		slog.String("decision", r.decision),
		slog.String("rule", r.rule),
		slog.Duration("duration", time.Since(r.start)),
	)
	if r.guard != "" {
		attrs = append(attrs, slog.String("guard", r.guard))
	}
	if r.hijacked {
		attrs = append(attrs, slog.Bool("hijacked", true))
	}
	if r.err != "" {
		attrs = append(attrs, slog.String("error", r.err))
	}
	c.s.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

var allowedMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true, "OPTIONS": true, "PATCH": true}

// serveRequest handles one request and reports whether the connection can
// carry another.
func (c *conn) serveRequest(over bool) bool {
	s := c.s
	if s.shutting.Load() {
		return false
	}
	c.state.Store(stateIdle)
	c.rd.flush = c.bw
	c.rd.idle = 0
	c.raw.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
	if s.shutting.Load() {
		return false
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	c.state.Store(stateActive)
	start := time.Now()
	if !headerBuffered(c.br) {
		// (A header already whole in the buffer is read without reading
		// the connection: no deadline to set.)
		c.raw.SetReadDeadline(start.Add(s.o.ReadHeaderTimeout))
	}
	c.rd.limit = int64(s.o.MaxHeaderBytes) + 4096
	req, err := http.ReadRequest(c.br)
	c.rd.limit = -1
	// From here on every read is of the request body (a guard's, a
	// refused request's or a forwarded one's), and connReader sets each
	// one's deadline; the header's deadline stays until then. (A
	// hijack's and the next request's reads set their own.)
	c.rd.idle = s.o.BodyIdleTimeout
	if err != nil {
		if c.rd.hit {
			c.writeError(http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("tlsdock: request header larger than %d bytes", s.o.MaxHeaderBytes), true)
			c.cl.requests.Add(1)
			c.audit(&record{start: start, method: "?", path: "?", status: http.StatusRequestHeaderFieldsTooLarge, decision: "error", err: "header too large"})
		} else if !errors.Is(err, io.EOF) && !isTimeout(err) {
			c.writeError(http.StatusBadRequest, "tlsdock: malformed request: "+err.Error(), true)
			c.cl.requests.Add(1)
			c.audit(&record{start: start, method: "?", path: "?", status: http.StatusBadRequest, decision: "error", err: err.Error()})
		}
		return false
	}
	c.cl.requests.Add(1)
	c.cl.lastSeen.Store(s.o.Now().UnixNano())
	c.rec = record{start: start, method: req.Method, path: req.URL.Path, decision: "error"}
	rec := &c.rec
	defer c.audit(rec)

	refuse := func(status int, msg string) bool {
		rec.status = status
		if rec.decision == "deny" {
			c.cl.denied.Add(1)
		}
		return c.refuse(req, status, msg, false)
	}
	if over {
		rec.status = http.StatusTooManyRequests
		return c.refuse(req, rec.status, fmt.Sprintf("tlsdock: too many concurrent connections for client %s (serial %s): the limit is %d", c.cl.id.User, c.cl.id.Serial, s.o.MaxConnsPerClient), true)
	}
	if s.revoc.Load().revoked(c.key) {
		rec.decision, rec.rule, rec.status = "deny", "revoked", http.StatusForbidden
		c.cl.denied.Add(1)
		return c.refuse(req, rec.status, fmt.Sprintf("tlsdock: client certificate %s (serial %s) is revoked", c.cl.id.User, c.cl.id.Serial), true)
	}
	if !allowedMethods[req.Method] {
		return refuse(http.StatusMethodNotAllowed, fmt.Sprintf("tlsdock: method %q is not supported", req.Method))
	}
	clean, err := cleanDecoded(req.URL.Path)
	if err != nil {
		return refuse(http.StatusBadRequest, "tlsdock: "+err.Error())
	}
	rec.path = clean
	pol := s.policy.Load()
	d := pol.Decide(c.cl.id, req.Method, clean, Writes(req.Header, clean))
	pol.count(d)
	rec.rule = d.Rule
	rec.readOnly = d.ReadOnly
	if !d.Allow {
		rec.decision = "deny"
		return refuse(http.StatusForbidden, d.Message)
	}
	var prebody []byte
	if d.Guard != nil {
		rec.guard = d.Guard.Name()
		gr := c.guardRequest(req, clean, d) // guardroute.go
		if gr.status != 0 {
			if gr.status == http.StatusForbidden {
				rec.decision = "deny"
			}
			return refuse(gr.status, gr.msg)
		}
		if gr.unlock != nil {
			defer gr.unlock()
		}
		prebody = gr.body
		if gr.path != "" {
			clean = gr.path // the checked container, named by its ID
		}
	}
	rec.decision = "allow"
	target := req.URL.EscapedPath()
	if clean != req.URL.Path {
		target = EscapePath(clean)
	}
	if req.URL.RawQuery != "" || req.URL.ForceQuery {
		target += "?" + req.URL.RawQuery
	}
	return c.forward(req, target, prebody, rec)
}

// readGuarded reads a body a guard must see, up to MaxGuardBody.
func (c *conn) readGuarded(req *http.Request) (body []byte, status int, msg string) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, 0, ""
	}
	if req.ContentLength > c.s.o.MaxGuardBody {
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("tlsdock: request body of %d bytes is larger than the %d bytes the policy guard reads", req.ContentLength, c.s.o.MaxGuardBody)
	}
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		req.Header.Del("Expect")
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.bw.Flush(); err != nil {
			return nil, http.StatusBadRequest, "tlsdock: " + err.Error()
		}
	}
	if enc := req.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, http.StatusUnsupportedMediaType, fmt.Sprintf("tlsdock: Content-Encoding %q: the policy guard reads only plain JSON bodies", enc)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, c.s.o.MaxGuardBody+1))
	if err != nil {
		return nil, http.StatusBadRequest, "tlsdock: reading the request body: " + err.Error()
	}
	if int64(len(body)) > c.s.o.MaxGuardBody {
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("tlsdock: request body is larger than the %d bytes the policy guard reads", c.s.o.MaxGuardBody)
	}
	return body, 0, ""
}

// refuse answers a request that is not forwarded, and reports whether the
// connection can carry another request: only when the request body, if
// any, could be read to its end.
func (c *conn) refuse(req *http.Request, status int, msg string, closeConn bool) bool {
	keep := !closeConn && !req.Close && !c.s.shutting.Load()
	unread := req.Body != nil && req.Body != http.NoBody
	if keep && unread {
		if req.Header.Get("Expect") != "" {
			keep = false // the client waits for 100 Continue: don't
		} else {
			n, err := io.CopyN(io.Discard, req.Body, maxDiscard+1)
			keep = err == io.EOF && n <= maxDiscard
			unread = !keep
		}
	}
	c.writeError(status, msg, !keep)
	if !keep && unread {
		c.lingerClose()
	}
	return keep
}

// lingerClose half-closes and drains what the client still sends for a
// moment, so that it reads the refusal instead of a connection reset.
func (c *conn) lingerClose() {
	c.rd.idle = 0
	c.bw.Flush()
	c.cc.CloseWrite()
	c.raw.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, c.br, 4<<20)
}

// writeError writes Docker's JSON error body {"message": msg}.
func (c *conn) writeError(status int, msg string, closeConn bool) error {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	body = append(body, '\n')
	w := c.bw
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(status))
	w.WriteByte(' ')
	w.WriteString(http.StatusText(status))
	w.WriteString("\r\nContent-Type: application/json\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(body)))
	if closeConn {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	w.Write(body)
	return w.Flush()
}

// headerBuffered reports whether br holds the end of a request header (an
// empty line), so that http.ReadRequest reads nothing from the connection.
func headerBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// getUpstream returns the connection's persistent dockerd connection,
// dialing one when there is none.
func (c *conn) getUpstream() (*upstream, error) {
	if c.up != nil {
		c.up.reused = true
		return c.up, nil
	}
	if up := c.s.getIdle(); up != nil {
		c.upMu.Lock()
		if c.dead {
			c.upMu.Unlock()
			up.conn.Close()
			return nil, net.ErrClosed
		}
		c.upConn = up.conn
		c.upMu.Unlock()
		up.reused = true
		c.up = up
		return up, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := c.s.o.Dial(ctx)
	if err != nil {
		return nil, err
	}
	nc = newSysConn(nc)
	c.upMu.Lock()
	if c.dead {
		c.upMu.Unlock()
		nc.Close()
		return nil, net.ErrClosed
	}
	c.upConn = nc
	c.upMu.Unlock()
	up := &upstream{conn: nc}
	up.rd = connReader{r: nc, limit: -1}
	up.br = bufio.NewReaderSize(&up.rd, upReadBuf)
	up.bw = bufio.NewWriterSize(nc, upWriteBuf)
	c.up = up
	return up, nil
}

func (c *conn) dropUpstream() {
	if c.up == nil {
		return
	}
	c.up.conn.Close()
	c.upMu.Lock()
	c.upConn = nil
	c.upMu.Unlock()
	c.up = nil
}

// Hop-by-hop headers, dropped in both directions (the proxy writes its own
// framing and connection management).
var hopHeaders = map[string]bool{
	"Connection":        true,
	"Keep-Alive":        true,
	"Proxy-Connection":  true,
	"Te":                true,
	"Transfer-Encoding": true,
	"Upgrade":           true,
	"Content-Length":    true,
}

// excludeFor returns the headers not to forward: the hop-by-hop ones and
// those the Connection header names.
func excludeFor(h http.Header) map[string]bool {
	ex := hopHeaders
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			tok = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(tok))
			switch tok {
			case "", "Close", "Keep-Alive", "Upgrade":
				continue
			}
			if ex[tok] {
				continue
			}
			if len(ex) == len(hopHeaders) {
				ex = make(map[string]bool, len(hopHeaders)+2)
				for k := range hopHeaders {
					ex[k] = true
				}
			}
			ex[tok] = true
		}
	}
	return ex
}

func hasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func isChunked(te []string) bool { return len(te) > 0 && te[0] == "chunked" }

// forward sends an allowed request to dockerd and streams the response
// back. prebody, when not nil, is the body already read for a guard.
func (c *conn) forward(req *http.Request, target string, prebody []byte, rec *record) bool {
	upgrade := isUpgrade(req.Header)
	hasBody := len(prebody) > 0 || (prebody == nil && req.Body != nil && req.Body != http.NoBody)
	for attempt := 0; ; attempt++ {
		up, err := c.getUpstream()
		if err != nil {
			return c.badGateway(rec, "cannot reach dockerd", err)
		}
		// A reused connection may have been closed by dockerd (a restart):
		// a request without a body is sent again once, on a new one, if
		// dockerd answered nothing.
		retry := !hasBody && up.reused && attempt == 0
		writeRequestHead(up.bw, req, target, upgrade, prebody)
		var bodyDone chan error
		if hasBody {
			// The body goes to dockerd while its response comes back:
			// dockerd may answer before it has read everything.
			bodyDone = make(chan error, 1)
			c.rd.flush = up.bw
			go func() {
				err := sendBody(up.bw, req, prebody)
				if isBodyErr(err) {
					// The client's body failed (stalled, cut short, reset):
					// close dockerd's connection at once, so that dockerd
					// aborts the request and releases what it holds (a
					// container's archive lock), and readResponse returns.
					up.conn.Close()
				}
				bodyDone <- err
			}()
		} else if err := up.bw.Flush(); err != nil {
			c.dropUpstream()
			if retry && staleErr(err) {
				continue
			}
			return c.badGateway(rec, "cannot send to dockerd", err)
		}
		up.rd.flush = c.bw
		before := up.rd.n
		if bodyDone == nil && req.Method != "HEAD" {
			if keep, ok := c.respondPlain(req, up, rec); ok {
				return keep
			}
		}
		resp, err := c.readResponse(up, req)
		if err != nil {
			c.dropUpstream() // unblocks the body goroutine
			if bodyDone != nil {
				berr := <-bodyDone
				c.rd.flush = nil
				if isBodyErr(berr) {
					return c.bodyFailed(rec, berr)
				}
			}
			if retry && up.rd.n == before && staleErr(err) {
				continue
			}
			return c.badGateway(rec, "dockerd did not answer", err)
		}
		return c.respond(req, resp, up, rec, bodyDone)
	}
}

// bodyError is a failure to read the client's request body, as opposed to
// one writing it to dockerd.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

func isBodyErr(err error) bool {
	var be *bodyError
	return errors.As(err, &be)
}

// clientBody marks the errors of reading a request body (not io.EOF) as
// bodyErrors. It is only a Reader, so that io.CopyBuffer uses its buffer.
type clientBody struct{ r io.Reader }

func (b clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// bodyFailed answers a request whose body the client did not deliver:
// 408 when it stopped sending, else 400, and the connection closes.
func (c *conn) bodyFailed(rec *record, err error) bool {
	status, msg := http.StatusBadRequest, "request body: "+err.Error()
	if isTimeout(err) {
		status, msg = http.StatusRequestTimeout, fmt.Sprintf("request body: the client sent nothing for %v", c.s.o.BodyIdleTimeout)
	}
	rec.status, rec.err = status, msg
	c.writeError(status, "tlsdock: "+msg, true)
	return false
}

// readResponse reads dockerd's response, forwarding interim 1xx responses
// (such as 100 Continue) to the client.
func (c *conn) readResponse(up *upstream, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(up.br, req)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols || resp.StatusCode < 100 {
			return resp, err
		}
		writeInterim(c.bw, resp)
		if err := c.bw.Flush(); err != nil {
			return nil, err
		}
	}
}

func (c *conn) badGateway(rec *record, what string, err error) bool {
	rec.status, rec.err = http.StatusBadGateway, err.Error()
	c.writeError(http.StatusBadGateway, fmt.Sprintf("tlsdock: %s: %v", what, err), true)
	return false
}

// abortUpstream closes the upstream connection so that a body goroutine
// blocked on it returns.
func (c *conn) abortUpstream() {
	if c.up != nil {
		c.up.conn.Close()
	}
}

func staleErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// respond streams resp to the client, or splices a hijacked connection.
// bodyDone, when not nil, reports the end of the request body.
func (c *conn) respond(req *http.Request, resp *http.Response, up *upstream, rec *record, bodyDone chan error) bool {
	rec.status = resp.StatusCode
	noBody := req.Method == "HEAD" || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	chunked := isChunked(resp.TransferEncoding)
	if resp.StatusCode == http.StatusSwitchingProtocols || (!noBody && !chunked && resp.ContentLength < 0) {
		// 101 UPGRADED, or dockerd's 200 with a raw stream that lasts until
		// the connection closes: the connection now carries raw bytes.
		// (resp.Body is not closed: closing drains it.)
		if bodyDone != nil {
			if err := <-bodyDone; err != nil {
				rec.err = "request body: " + err.Error()
				c.dropUpstream()
				return false
			}
		}
		return c.hijack(resp, up, rec)
	}
	closeConn := req.Close || c.s.shutting.Load()
	http10 := !req.ProtoAtLeast(1, 1)
	if chunked && http10 {
		closeConn = true
	}
	w := c.bw
	writeResponseHead(w, resp, noBody, chunked && !http10, closeConn)
	var err error
	if !noBody {
		bp := copyBufPool.Get().(*[]byte)
		if chunked && !http10 {
			cw := httputil.NewChunkedWriter(w)
			_, err = io.CopyBuffer(cw, onlyReader{resp.Body}, *bp)
			if err == nil {
				cw.Close()
				writeTrailer(w, resp.Trailer)
			}
		} else {
			_, err = io.CopyBuffer(onlyWriter{w}, onlyReader{resp.Body}, *bp)
		}
		copyBufPool.Put(bp)
	}
	if err == nil {
		err = w.Flush()
	}
	up.rd.flush = nil
	if err != nil {
		// Close dockerd's side first: closing an unread body drains it.
		rec.err = err.Error()
		c.abortUpstream()
		closeConn = true
	}
	resp.Body.Close()
	if bodyDone != nil {
		if berr := <-bodyDone; berr != nil {
			if rec.err == "" {
				rec.err = "request body: " + berr.Error()
			}
			closeConn = true
			c.dropUpstream()
		}
		c.rd.flush = nil
	}
	if err != nil || resp.Close {
		c.dropUpstream()
	}
	return !closeConn
}

// respondPlain forwards a plain response (fastpath.go) as respond would;
// ok is false, with nothing read, for one it does not take.
func (c *conn) respondPlain(req *http.Request, up *upstream, rec *record) (keep, ok bool) {
	if !peekPlainHead(up.br, &c.plain) {
		return false, false
	}
	// (Shutdown may have begun while dockerd answered.)
	closeConn := req.Close || c.s.shutting.Load()
	code, err := writePlain(up.br, c.bw, closeConn, &c.plain)
	rec.status = code
	up.rd.flush = nil
	if err != nil {
		rec.err = err.Error()
		c.dropUpstream()
		return false, true
	}
	return !closeConn, true
}

// onlyReader and onlyWriter hide ReadFrom and WriteTo, so that io.CopyBuffer
// uses the pooled buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// hijack splices the client and dockerd after an upgrade: bytes flow both
// ways until each side has closed its half.
func (c *conn) hijack(resp *http.Response, up *upstream, rec *record) bool {
	// A stream may idle for hours: only the body of the request was
	// bounded.
	c.rd.idle = 0
	c.raw.SetReadDeadline(time.Time{})
	c.state.Store(stateHijacked)
	w := c.bw
	w.WriteString("HTTP/1.1 ")
	w.WriteString(statusLine(resp))
	w.WriteString("\r\n")
	resp.Header.Write(w)
	w.WriteString("\r\n")
	if err := w.Flush(); err != nil {
		rec.err = err.Error()
		return false
	}
	rec.hijacked = true
	c.audit(rec) // logged at the start of the stream
	c.rd.flush, up.rd.flush = nil, nil
	c.up = nil // consumed: closed with the connection

	done := make(chan struct{})
	go func() {
		defer close(done)
		var dst io.Writer = onlyWriter{up.conn}
		if rec.readOnly {
			// A read-only rule let this through (Writes said it does not
			// write): whatever dockerd made of it, nothing the client
			// sends reaches the container.
			closeWrite(up.conn)
			dst = io.Discard
		}
		_, err := io.Copy(dst, c.br)
		if err == nil {
			if !rec.readOnly {
				closeWrite(up.conn)
			}
			return
		}
		up.conn.Close()
		c.raw.Close()
	}()
	_, err := io.Copy(onlyWriter{c.cc}, up.br)
	if err == nil {
		// close_notify, then FIN: clients see EOF either way.
		c.cc.CloseWrite()
		closeWrite(c.raw)
		// dockerd is done; a client that never closes its half is cut
		// off after the idle timeout.
		c.raw.SetReadDeadline(time.Now().Add(c.s.o.IdleTimeout))
	} else {
		up.conn.Close()
		c.raw.Close()
	}
	<-done
	up.conn.Close()
	return false
}

func closeWrite(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	nc.Close()
}

func statusLine(resp *http.Response) string {
	if st := resp.Status; st != "" {
		return st
	}
	return strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
}

// writeRequestHead writes the request line and header for dockerd.
func writeRequestHead(w *bufio.Writer, req *http.Request, target string, upgrade bool, prebody []byte) {
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = "docker"
	}
	w.WriteString(host)
	w.WriteString("\r\n")
	writeHeader(w, req.Header, excludeFor(req.Header))
	if upgrade {
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.WriteString(strings.Join(req.Header["Upgrade"], ", "))
		w.WriteString("\r\n")
	}
	switch {
	case prebody != nil:
		if len(prebody) > 0 || req.Header.Get("Content-Length") != "" || isChunked(req.TransferEncoding) {
			w.WriteString("Content-Length: ")
			w.WriteString(strconv.Itoa(len(prebody)))
			w.WriteString("\r\n")
		}
	case isChunked(req.TransferEncoding):
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case req.ContentLength > 0 || req.Header.Get("Content-Length") != "":
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(max(req.ContentLength, 0), 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
}

// sendBody streams the request body to dockerd (re-chunked when the client
// chunked it) and flushes.
func sendBody(w *bufio.Writer, req *http.Request, prebody []byte) error {
	var err error
	switch {
	case prebody != nil:
		_, err = w.Write(prebody)
	case isChunked(req.TransferEncoding):
		bp := copyBufPool.Get().(*[]byte)
		cw := httputil.NewChunkedWriter(w)
		_, err = io.CopyBuffer(cw, clientBody{req.Body}, *bp)
		copyBufPool.Put(bp)
		if err == nil {
			cw.Close()
			writeTrailer(w, req.Trailer)
		}
	default:
		bp := copyBufPool.Get().(*[]byte)
		_, err = io.CopyBuffer(onlyWriter{w}, clientBody{req.Body}, *bp)
		copyBufPool.Put(bp)
	}
	if err == nil {
		err = w.Flush()
	}
	return err
}

func writeTrailer(w *bufio.Writer, tr http.Header) {
	tr.Write(w)
	w.WriteString("\r\n")
}

// writeInterim forwards a 1xx response such as 100 Continue.
func writeInterim(w *bufio.Writer, resp *http.Response) {
	w.WriteString("HTTP/1.1 ")
	w.WriteString(statusLine(resp))
	w.WriteString("\r\n")
	resp.Header.Write(w)
	w.WriteString("\r\n")
}

// writeResponseHead writes the status line and header for the client with
// the proxy's own framing.
func writeResponseHead(w *bufio.Writer, resp *http.Response, noBody, chunked, closeConn bool) {
	w.WriteString("HTTP/1.1 ")
	w.WriteString(statusLine(resp))
	w.WriteString("\r\n")
	writeHeader(w, resp.Header, excludeFor(resp.Header))
	switch {
	case noBody:
		for _, v := range resp.Header["Content-Length"] {
			w.WriteString("Content-Length: ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case resp.ContentLength >= 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(resp.ContentLength, 10))
		w.WriteString("\r\n")
	}
	if closeConn {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
}
