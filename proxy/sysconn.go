package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// sysConn reads and writes a socket with raw system calls on its
// non-blocking descriptor, and waits for readiness in the runtime's
// network poller, as net.Conn does.
//
// The difference is the system call entry: net.Conn's reads and writes go
// through the scheduler's syscall bookkeeping, and the first one after an
// idle moment wakes the runtime's monitor thread, which then polls every
// 20 µs for a while. On a proxy that idles between requests that costs a
// sixth of its CPU. A read or write on a non-blocking socket returns at
// once (data, EAGAIN or an error) and never blocks, so the bookkeeping
// buys nothing here. Built with -race, the reads and writes go through the
// syscall package instead (sysconn_race.go).
type sysConn struct {
	net.Conn
	rc  syscall.RawConn
	net string // for errors
}

// newSysConn wraps nc when it is a socket in non-blocking mode, as the net
// package's sockets are. Anything else (a pipe in tests, a descriptor in
// blocking mode, on which a raw read would stall the scheduler) is returned
// as it is.
func newSysConn(nc net.Conn) net.Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil || !nonBlocking(rc) {
		return nc
	}
	c := &sysConn{Conn: nc, rc: rc}
	for _, a := range []net.Addr{nc.LocalAddr(), nc.RemoteAddr()} {
		if a != nil {
			c.net = a.Network()
			break
		}
	}
	return c
}

// nonBlocking reports whether rc's descriptor has O_NONBLOCK set.
func nonBlocking(rc syscall.RawConn) bool {
	nb := false
	err := rc.Control(func(fd uintptr) {
		fl, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nb = errno == 0 && fl&syscall.O_NONBLOCK != 0
	})
	return err == nil && nb
}

func (c *sysConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// CloseWrite shuts the write side down, as *net.TCPConn and *net.UnixConn
// do.
func (c *sysConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *sysConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) (done bool) {
		n, errno, done = retryIO(rawRead, fd, p)
		return done
	})
	switch {
	case err != nil:
		return 0, netOp(err, "read")
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p under the connection's write lock, as net.Conn
// does, so writes from several goroutines never interleave: a partial write
// waits in the poller inside the same RawConn.Write and goes on from there.
func (c *sysConn) Write(p []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, e, ok := retryIO(rawWrite, fd, p[done:])
			switch {
			case !ok:
				return false // EAGAIN: wait until writable
			case e != 0:
				errno = e
				return true
			case n == 0:
				return true
			}
			done += n
		}
		return true
	})
	switch {
	case err != nil:
		return done, netOp(err, "write")
	case errno != 0:
		return done, c.opError("write", errno)
	case done < len(p):
		return done, io.ErrShortWrite
	}
	return done, nil
}

// retryIO calls op until it fails with other than EINTR. done is false on
// EAGAIN: the poller then waits until the socket is ready and calls again.
func retryIO(op func(fd uintptr, p []byte) (int, syscall.Errno), fd uintptr, p []byte) (n int, errno syscall.Errno, done bool) {
	for {
		n, errno = op(fd, p)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return n, errno, false
		}
		return n, errno, true
	}
}

func (c *sysConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.net, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// netOp names an error of the RawConn's Read or Write (a deadline, a closed
// connection: "raw-read tcp A->B: i/o timeout") by op, as net.Conn's own
// reads and writes do, for the journal and the audit log.
func netOp(err error, op string) error {
	oe, ok := err.(*net.OpError)
	if !ok || oe.Op == op {
		return err
	}
	e := *oe
	e.Op = op
	return &e
}
