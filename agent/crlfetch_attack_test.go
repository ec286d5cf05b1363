package agent

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
	"unicode"
)

// TestCRLFetchErrorPrintable: what a CRL server puts in its answer (the
// reason phrase of the status line; over https the names of its
// certificate) reaches `tlsdock status`, the journal and the problems as
// the fetch's error: no control character may come through (a carriage
// return or an escape sequence would draw a fake status line).
func TestCRLFetchErrorPrintable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			c.Write([]byte("HTTP/1.1 503 down\r  crl-url:   http://ca/crl: fetched 1s ago\x1b[K\u202e\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			c.Close()
		}
	}()
	_, err = fetchCRL(context.Background(), "http://"+l.Addr().String()+"/crl", nil, 5*time.Second)
	if err == nil {
		t.Fatal("a 503 is a failed fetch")
	}
	if i := strings.IndexFunc(err.Error(), func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
		t.Fatalf("the fetch error carries the server's control characters: %q", err.Error())
	}
	if !strings.Contains(err.Error(), "503") {
		t.Fatalf("the fetch error %q does not name the status", err)
	}
}
