package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
)

func checkWriteHeader(t *testing.T, h http.Header) {
	t.Helper()
	ex := excludeFor(h)
	var want bytes.Buffer
	if err := h.WriteSubset(&want, ex); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	w := bufio.NewWriter(&got)
	writeHeader(w, h, ex)
	w.Flush()
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("header %q:\nwriteHeader writes\n%q\nWriteSubset\n%q", h, got.Bytes(), want.Bytes())
	}
}

// TestWriteHeaderMatchesWriteSubset: writeHeader writes what
// http.Header.WriteSubset writes, for headers from empty to more names than
// its stack array, with hop-by-hop and Connection-named ones excluded,
// several values, and values to clean.
func TestWriteHeaderMatchesWriteSubset(t *testing.T) {
	checkWriteHeader(t, http.Header{})
	checkWriteHeader(t, http.Header{
		"User-Agent": {"Docker-Client/20.10.24 (linux)"}, "Content-Type": {"application/json"},
		"Connection": {"close, X-Hop"}, "X-Hop": {"1"}, "Transfer-Encoding": {"chunked"}, "Content-Length": {"3"},
		"X-Multi": {"a", " b ", "c\r\nd", "\te\n"}, "X-Empty": {""}, "X-None": {}, "bad name": {"v"}, "lower": {"v"},
		"X-Registry-Auth": {"eyJ1c2VybmFtZSI6ImEifQ=="}, "Upgrade": {"tcp"}, "Te": {"trailers"}, "Keep-Alive": {"1"},
	})
	rng := rand.New(rand.NewPCG(1, 2))
	chars := "aZ-09 \t\r\n:!~\x00\x7f\xff"
	str := func(n int) string {
		b := make([]byte, rng.IntN(n))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		return string(b)
	}
	for i := range 500 {
		h := http.Header{}
		for j := range rng.IntN(50) {
			k := fmt.Sprintf("X-H%d", rng.IntN(60))
			if j%7 == 0 {
				k = str(6)
			}
			for range rng.IntN(3) + 1 {
				h[k] = append(h[k], str(12))
			}
		}
		if i%3 == 0 {
			h["Connection"] = []string{"X-H1, " + str(5), "x-h2"}
		}
		checkWriteHeader(t, h)
	}
}

// FuzzWriteHeader: writeHeader writes what http.Header.WriteSubset writes.
func FuzzWriteHeader(f *testing.F) {
	f.Add("User-Agent", "docker", "Connection", "close, X-A", "X-A", "1")
	f.Add("X-B", " a\r\nb ", "bad name", "v", "Te", "trailers")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		h := http.Header{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}, {k3, v3}, {k1, v2}} {
			h[kv[0]] = append(h[kv[0]], kv[1])
		}
		checkWriteHeader(t, h)
	})
}
