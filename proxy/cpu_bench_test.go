package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// pingResponse is dockerd 20.10's answer to GET /_ping, byte for byte but
// the date.
const pingResponse = "HTTP/1.1 200 OK\r\n" +
	"Api-Version: 1.41\r\n" +
	"Cache-Control: no-cache, no-store, must-revalidate\r\n" +
	"Content-Length: 2\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Date: Thu, 03 Dec 2026 14:00:00 GMT\r\n" +
	"Docker-Experimental: false\r\n" +
	"Ostype: linux\r\n" +
	"Pragma: no-cache\r\n" +
	"Server: Docker/20.10.24 (linux)\r\n" +
	"\r\n" +
	"OK"

// rawPingDockerd serves pingResponse to every request (without a body) on
// a unix socket, at as little CPU as it can: the benchmark's process
// counts it too.
func rawPingDockerd(b *testing.B) string {
	dir, err := os.MkdirTemp("", "tlsdock-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := io.WriteString(c, pingResponse); err != nil {
						return
					}
				}
			}()
		}
	}()
	return sock
}

// readPing reads one response with a Content-Length, as little parsing as
// it takes.
func readPing(br *bufio.Reader) (status string, err error) {
	n := -1
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return "", err
		}
		if first {
			status, first = string(line), false
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return "", err
			}
		}
	}
	if n < 0 {
		return status, io.ErrUnexpectedEOF
	}
	_, err = br.Discard(n)
	return status, err
}

func cpuMicros() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3, nil
}

// BenchmarkKeepAliveCPU measures the CPU time (user and system, of the
// whole process: client, proxy and a minimal fake dockerd) per GET /_ping
// on one kept-alive TLS connection through the proxy, with the audit log
// on a file and without it. cpu-µs/op is the figure to compare; it holds
// on a loaded machine where ns/op does not:
// go test -run '^$' -bench KeepAliveCPU -count 5 ./proxy/
func BenchmarkKeepAliveCPU(b *testing.B) {
	sock := rawPingDockerd(b)
	pk := newPKI(b)
	set := pk.serverSet(b)
	admin, _ := pk.client(b, "admin")
	for _, tc := range []struct {
		name  string
		audit bool
	}{{"audit-file", true}, {"no-audit", false}} {
		b.Run(tc.name, func(b *testing.B) {
			o := Options{Socket: sock, Logger: slog.New(slog.DiscardHandler)}
			if tc.audit {
				al, err := OpenAuditLog(filepath.Join(b.TempDir(), "audit.jsonl"), AuditLogOptions{Logger: o.Logger})
				if err != nil {
					b.Fatal(err)
				}
				defer al.Close()
				o.AuditLog = al
			}
			srv, err := New(set, o)
			if err != nil {
				b.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pk.pool, Certificates: []tls.Certificate{admin}, ServerName: "localhost", MinVersion: tls.VersionTLS12})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(10 * time.Minute)); err != nil {
				b.Fatal(err)
			}
			br := bufio.NewReader(c)
			req := []byte("GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: Docker-Client/20.10.24 (linux)\r\n\r\n")
			ping := func() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				st, err := readPing(br)
				if err != nil {
					b.Fatal(err)
				}
				if st != "HTTP/1.1 200 OK\r\n" {
					b.Fatalf("status line %q", st)
				}
			}
			ping() // the upstream connection is dialed
			b.ReportAllocs()
			b.ResetTimer()
			before, err := cpuMicros()
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				ping()
			}
			after, err := cpuMicros()
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric((after-before)/float64(b.N), "cpu-µs/op")
		})
	}
}
