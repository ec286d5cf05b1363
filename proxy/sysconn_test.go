package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, the first wrapped
// in a sysConn.
func tcpPair(t *testing.T) (*sysConn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	sc, ok := newSysConn(server).(*sysConn)
	if !ok {
		t.Fatalf("newSysConn(%T) did not wrap a TCP connection", server)
	}
	return sc, client
}

// Data crosses both ways whole, also when a write outgrows the socket
// buffers and must wait for the peer to read (EAGAIN, partial writes).
func TestSysConnReadWrite(t *testing.T) {
	sc, peer := tcpPair(t)
	big := make([]byte, 8<<20)
	rand.Read(big)
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the send buffer fill
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	n, err := sc.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer read %d bytes, not the %d written", len(b), len(big))
	}

	go peer.Write([]byte("ping"))
	buf := make([]byte, 16)
	n, err = io.ReadAtLeast(sc, buf, 4)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read = %q, %v; want \"ping\"", buf[:n], err)
	}
	if n, err := sc.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}

	peer.Close()
	if n, err := sc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want 0, io.EOF", n, err)
	}
}

// A read or write deadline, a close from another goroutine and a reset
// end a read or write with the errors net.Conn gives: the ones the proxy's
// callers test for, and the same text in the journal and the audit log.
func TestSysConnErrors(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		sc, _ := tcpPair(t)
		sc.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		_, err := sc.Read(make([]byte, 8))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read past the deadline: %v; want a timeout (os.ErrDeadlineExceeded)", err)
		}
		_, want := sc.Conn.Read(make([]byte, 8))
		sameText(t, "Read past the deadline", err, want)
	})
	t.Run("write deadline", func(t *testing.T) {
		sc, _ := tcpPair(t)
		sc.SetWriteDeadline(aLongTimeAgo)
		_, err := sc.Write([]byte("x"))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write past the deadline: %v; want os.ErrDeadlineExceeded", err)
		}
		_, want := sc.Conn.Write([]byte("x"))
		sameText(t, "Write past the deadline", err, want)
	})
	t.Run("close", func(t *testing.T) {
		sc, _ := tcpPair(t)
		go func() {
			time.Sleep(30 * time.Millisecond)
			sc.Close()
		}()
		_, err := sc.Read(make([]byte, 8))
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read while another goroutine closes: %v; want net.ErrClosed", err)
		}
		_, want := sc.Conn.Read(make([]byte, 8))
		sameText(t, "Read while another goroutine closes", err, want)
		_, err = sc.Write([]byte("x"))
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after close: %v; want net.ErrClosed", err)
		}
		_, want = sc.Conn.Write([]byte("x"))
		sameText(t, "Write after close", err, want)
		_, err = sc.Write(nil)
		_, want = sc.Conn.Write(nil)
		sameText(t, "Write of nothing after close", err, want)
	})
	t.Run("reset", func(t *testing.T) {
		sc, peer := tcpPair(t)
		if err := peer.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		peer.Close()
		time.Sleep(30 * time.Millisecond)
		_, err := sc.Read(make([]byte, 8))
		var oe *net.OpError
		if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) || oe.Op != "read" || oe.Net != "tcp" {
			t.Fatalf("Read after a reset: %#v; want a read OpError on tcp wrapping ECONNRESET", err)
		}
	})
	t.Run("closewrite", func(t *testing.T) {
		sc, peer := tcpPair(t)
		if err := sc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if n, err := peer.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("peer read after CloseWrite = %d, %v; want 0, io.EOF", n, err)
		}
	})
}

// Unix sockets, as the proxy dials dockerd, are wrapped too, and a
// dialed socket without a local name still gets named errors.
func TestSysConnUnix(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc, ok := newSysConn(nc).(*sysConn)
	if !ok {
		t.Fatal("a unix connection was not wrapped")
	}
	b, err := io.ReadAll(sc)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if sc.net != "unix" {
		t.Fatalf("network %q, want unix", sc.net)
	}
}

// blockingConn is a net.Conn whose descriptor is in blocking mode.
type blockingConn struct {
	net.Conn
	f *os.File
}

func (c blockingConn) SyscallConn() (syscall.RawConn, error) { return c.f.SyscallConn() }

// A descriptor in blocking mode is not wrapped: a raw read on it would
// hold the scheduler until data came.
func TestSysConnSkipsBlocking(t *testing.T) {
	f, err := os.Open(os.DevNull) // regular files stay in blocking mode
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	bc := blockingConn{Conn: a, f: f}
	if _, wrapped := newSysConn(bc).(*sysConn); wrapped {
		t.Fatal("a descriptor in blocking mode was wrapped")
	}
	if _, wrapped := newSysConn(a).(*sysConn); wrapped {
		t.Fatal("a pipe without a descriptor was wrapped")
	}
}

// sameText fails t unless got reads as want, what the wrapped net.Conn
// itself gives for the same operation ("read tcp A->B: i/o timeout").
func sameText(t *testing.T, what string, got, want error) {
	t.Helper()
	if got == nil || want == nil || got.Error() != want.Error() {
		t.Fatalf("%s: %v; want %v, as net.Conn gives", what, got, want)
	}
}

// Writes from several goroutines do not interleave, as net.Conn's do not:
// a write holds the connection until all of it is written, also across the
// partial writes of a small send buffer and a slow reader.
func TestSysConnWritesWhole(t *testing.T) {
	const size, writers = 256 << 10, 4
	for round := range 10 {
		sc, peer := tcpPair(t)
		if err := sc.Conn.(*net.TCPConn).SetWriteBuffer(4 << 10); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, writers)
		for w := range writers {
			b := bytes.Repeat([]byte{byte('a' + w)}, size)
			go func() {
				_, err := sc.Write(b)
				errs <- err
			}()
		}
		got := make([]byte, 0, writers*size)
		buf := make([]byte, 4<<10)
		for len(got) < writers*size {
			n, err := peer.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
		}
		for range writers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		pieces := 1
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1] {
				pieces++
			}
		}
		if pieces != writers {
			t.Fatalf("round %d: %d writes arrived in %d pieces", round, writers, pieces)
		}
	}
}

// A listener systemd passes (socket activation: go-systemd's
// activation.Listeners makes it with net.FileListener from the inherited
// descriptor) gives the server connections it wraps, and they serve.
func TestSysConnActivatedListener(t *testing.T) {
	e := newEnv(t, Options{})
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := tl.(*net.TCPListener).File()
	tl.Close()
	if err != nil {
		t.Fatal(err)
	}
	fl, err := net.FileListener(f) // what activation.Listeners does with fd 3
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.Serve(fl)
	e.addr = fl.Addr().String() // clients of e now dial the activated listener

	cert, _ := e.pki.client(t, "alice")
	c := e.dial(t, cert)
	resp, body := roundTrip(t, c, bufio.NewReader(c), "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
	if resp.StatusCode != 200 || body != "OK" {
		t.Fatalf("GET /_ping over an activated listener: %d %q", resp.StatusCode, body)
	}
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	if len(e.srv.conns) != 1 {
		t.Fatalf("%d connections tracked, want the one open", len(e.srv.conns))
	}
	for c := range e.srv.conns {
		if _, ok := c.raw.(*sysConn); !ok {
			t.Fatalf("a connection from an activated listener is a %T, not a sysConn", c.raw)
		}
	}
}
