package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
)

// The fast path forwards dockerd's plain responses (most of them: /_ping,
// inspect, lists) without building an http.Response: the status line and
// header are checked and parsed in the read buffer and written to the
// client as respond would write them. Anything it does not take, it
// leaves unread for http.ReadResponse and respond:
//
//   - other than HTTP/1.1, a status outside 200-599, 204 or 304 (a HEAD
//     request never comes here);
//   - a header that is not whole in the read buffer, or has more than
//     maxFastHeaders lines;
//   - a line not ending in CRLF, a folded line, a name that is not in
//     canonical form ([A-Z0-9][a-z0-9]* segments joined by '-'), a value
//     other than printable ASCII, or a value with surrounding space, or
//     a separator other than ": ";
//   - Connection, Keep-Alive, Proxy-Connection, Te, Trailer,
//     Transfer-Encoding or Upgrade; Pragma without Cache-Control;
//   - no Content-Length, or more than one, or one that is not 1 to 18
//     digits.
//
// What it writes is byte for byte what respond writes for the same
// response (FuzzPlainResponse): the status line as read, the header lines
// sorted by name (as http.Header.WriteSubset does; lines of one name keep
// their order), Content-Length last, then "Connection: close" when the
// client's connection closes.

const maxFastHeaders = 32

// plainHead is a parsed plain response head. Its slices point into the
// read buffer: valid until the reader is read further.
type plainHead struct {
	status []byte // "200 OK": after "HTTP/1.1 ", before the CRLF
	code   int
	length int64
	size   int                           // bytes of the head, with the empty line
	lines  [maxFastHeaders]plainHeadLine // forwarded header lines, in order read
	n      int
	num    [20]byte // for Content-Length
}

type plainHeadLine struct {
	name int    // length of the name in line
	line []byte // "Name: value", without the CRLF
}

// Results of parsePlainHead.
const (
	plainNo   = iota // not a response for the fast path
	plainMore        // not whole in buf: more input may decide
	plainOK
)

// parsePlainHead parses the start of buf as a plain response head.
func parsePlainHead(buf []byte, h *plainHead) int {
	const proto = "HTTP/1.1 "
	line, rest, ok := cutLine(buf)
	if !ok {
		if len(buf) < len(proto) && !bytes.HasPrefix([]byte(proto), buf) {
			return plainNo
		}
		return plainMore
	}
	if !bytes.HasPrefix(line, []byte(proto)) {
		return plainNo
	}
	st := line[len(proto):]
	if len(st) < 3 || (len(st) > 3 && st[3] != ' ') || !printable(st) {
		return plainNo
	}
	code := 0
	for _, b := range st[:3] {
		if b < '0' || b > '9' {
			return plainNo
		}
		code = code*10 + int(b-'0')
	}
	if code < 200 || code > 599 || code == 204 || code == 304 {
		return plainNo
	}
	h.status, h.code, h.length, h.n = st, code, -1, 0
	pragma, cacheControl := false, false
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			if bytes.IndexByte(rest, '\n') >= 0 {
				return plainNo // a bare LF
			}
			return plainMore
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := splitHeaderLine(line)
		if !ok {
			return plainNo
		}
		switch string(name) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			return plainNo
		case "Content-Length":
			if h.length >= 0 || len(value) == 0 || len(value) > 18 {
				return plainNo
			}
			var n int64
			for _, b := range value {
				if b < '0' || b > '9' {
					return plainNo
				}
				n = n*10 + int64(b-'0')
			}
			h.length = n
			continue
		case "Pragma":
			pragma = true
		case "Cache-Control":
			cacheControl = true
		}
		if h.n == maxFastHeaders {
			return plainNo
		}
		h.lines[h.n] = plainHeadLine{name: len(name), line: line}
		h.n++
	}
	if h.length < 0 || (pragma && !cacheControl) {
		// (http.ReadResponse adds Cache-Control to a Pragma alone.)
		return plainNo
	}
	h.size = len(buf) - len(rest)
	return plainOK
}

// cutLine cuts a CRLF-terminated line off buf; ok is false without one,
// or when the line has a bare CR or LF.
func cutLine(buf []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(buf, '\n')
	if i < 1 || buf[i-1] != '\r' {
		return nil, buf, false
	}
	line = buf[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, buf, false
	}
	return line, buf[i+1:], true
}

// splitHeaderLine splits "Name: value" with a canonical name and a
// printable value without surrounding space (or empty).
func splitHeaderLine(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i < 1 || i+1 >= len(line) || line[i+1] != ' ' {
		return nil, nil, false
	}
	name, value = line[:i], line[i+2:]
	start := true
	for _, b := range name {
		switch {
		case b == '-':
			if start {
				return nil, nil, false // empty segment
			}
			start = true
			continue
		case b >= '0' && b <= '9':
		case b >= 'A' && b <= 'Z':
			if !start {
				return nil, nil, false
			}
		case b >= 'a' && b <= 'z':
			if start {
				return nil, nil, false
			}
		default:
			return nil, nil, false
		}
		start = false
	}
	if start || !printable(value) {
		return nil, nil, false
	}
	if len(value) > 0 && (value[0] == ' ' || value[len(value)-1] == ' ') {
		return nil, nil, false
	}
	return name, value, true
}

// printable reports whether b is printable ASCII (space included).
func printable(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// sortLines sorts h's header lines by name, stably: as
// http.Header.WriteSubset writes them.
func (h *plainHead) sortLines() {
	l := h.lines[:h.n]
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && bytes.Compare(l[j].line[:l[j].name], l[j-1].line[:l[j-1].name]) < 0; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// peekPlainHead waits for a response head in br and parses it without
// consuming anything. ok is false for a response the fast path does not
// take, and on a read error (which http.ReadResponse then meets and
// reports).
func peekPlainHead(br *bufio.Reader, h *plainHead) bool {
	want := 1
	for {
		if _, err := br.Peek(want); err != nil {
			return false
		}
		buf, _ := br.Peek(br.Buffered())
		switch parsePlainHead(buf, h) {
		case plainOK:
			return true
		case plainNo:
			return false
		}
		if len(buf) >= br.Size() {
			return false
		}
		want = len(buf) + 1
	}
}

// forwardPlain forwards a plain response from br to w, as respond does
// (respond's closeConn: "Connection: close" is added) and flushes w.
// handled is false, with nothing read, for a response it does not take:
// http.ReadResponse and respond then forward it. code is the status, err
// a failure reading the body or writing.
func forwardPlain(br *bufio.Reader, w *bufio.Writer, closeConn bool, h *plainHead) (handled bool, code int, err error) {
	if !peekPlainHead(br, h) {
		return false, 0, nil
	}
	code, err = writePlain(br, w, closeConn, h)
	return true, code, err
}

// writePlain forwards the plain response peekPlainHead parsed into h.
func writePlain(br *bufio.Reader, w *bufio.Writer, closeConn bool, h *plainHead) (code int, err error) {
	h.sortLines()
	w.WriteString("HTTP/1.1 ")
	w.Write(h.status)
	w.WriteString("\r\n")
	for _, l := range h.lines[:h.n] {
		w.Write(l.line)
		w.WriteString("\r\n")
	}
	w.WriteString("Content-Length: ")
	w.Write(strconv.AppendInt(h.num[:0], h.length, 10))
	if closeConn {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	code = h.code
	if _, err := br.Discard(h.size); err != nil {
		return code, err // cannot be: the head is buffered
	}
	h.status, h.n = nil, 0 // points into the buffer no more
	if n := h.length; n > 0 {
		if n <= int64(br.Buffered()) {
			b, _ := br.Peek(int(n))
			w.Write(b)
			_, err = br.Discard(int(n)) // buffered: cannot fail
		} else {
			bp := copyBufPool.Get().(*[]byte)
			var got int64
			got, err = io.CopyBuffer(onlyWriter{w}, onlyReader{io.LimitReader(br, n)}, *bp)
			copyBufPool.Put(bp)
			if err == nil && got < n {
				err = io.ErrUnexpectedEOF
			}
		}
	}
	if err == nil {
		err = w.Flush()
	}
	return code, err
}

// writeHeader writes h without the names in exclude as
// h.WriteSubset(w, exclude) does (TestWriteHeaderMatchesWriteSubset,
// FuzzWriteHeader): names sorted, invalid ones dropped, each value with
// CR and LF made spaces and surrounding space trimmed. It sorts the names
// on the stack instead of in WriteSubset's pooled map-and-sort.
func writeHeader(w *bufio.Writer, h http.Header, exclude map[string]bool) {
	var arr [32]string
	keys := arr[:0]
	for k := range h {
		if !exclude[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !validFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			if strings.ContainsAny(v, "\r\n") {
				v = headerNewlineToSpace.Replace(v)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(textproto.TrimString(v))
			w.WriteString("\r\n")
		}
	}
}

var headerNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// validFieldName reports whether k is an RFC 7230 token, as
// httpguts.ValidHeaderFieldName.
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
