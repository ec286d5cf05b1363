//go:build race

package proxy

import "syscall"

// Under the race detector a sysConn reads and writes through syscall.Read
// and syscall.Write: the detector credits those (and not raw system calls)
// with the synchronization socket I/O gives, a write happening before the
// read that sees its data, and the tests share state with the proxy that
// way. make unit also runs the sysConn tests without -race, on the raw
// calls below.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return n, errnoOf(err)
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return n, errnoOf(err)
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return err.(syscall.Errno)
}
