package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// apiClient speaks raw HTTP/1.1 over mutual TLS to the proxy at
// 127.0.0.1:2376 inside a test host, from this process (the network
// namespace of the host only): an attacker that writes every byte itself.
type apiClient struct {
	name string
	h    *testhost.Host
	cfg  *tls.Config
}

func newAPIClient(t *testing.T, h *testhost.Host, name, dir string) *apiClient {
	t.Helper()
	cert := loadPair(t, dir)
	return &apiClient{name: name, h: h, cfg: &tls.Config{
		RootCAs: poolOf(t, dir), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}}
}

// dial opens one TLS connection and finishes the handshake.
func (a *apiClient) dial() (*tls.Conn, error) {
	c, err := pkgDial(a.h, "127.0.0.1:2376")
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, a.cfg)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake as %s: %w", a.name, err)
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// apiReq is one request written by hand: header lines as given, and the
// body with a Content-Length, or chunked when chunked is set.
type apiReq struct {
	method, target string
	header         []string // "Key: value"
	body           []byte
	chunked        bool
}

type apiResp struct {
	Status int
	Header http.Header
	Body   string
}

// message is the "message" of Docker's JSON error body, or the raw body.
func (r apiResp) message() string {
	var m struct{ Message string }
	if json.Unmarshal([]byte(r.Body), &m) == nil && m.Message != "" {
		return m.Message
	}
	return strings.TrimSpace(r.Body)
}

func (r apiResp) String() string {
	b := r.Body
	if len(b) > 600 {
		b = b[:600] + "..."
	}
	// A tar (GET archive) or a raw stream prints as dots.
	b = strings.Map(func(c rune) rune {
		if c == '\n' || (c >= ' ' && c < 0x7f) {
			return c
		}
		return '.'
	}, b)
	return fmt.Sprintf("%d %s", r.Status, strings.TrimSpace(b))
}

func (q apiReq) bytes() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n", q.method, q.target)
	for _, h := range q.header {
		b.WriteString(h + "\r\n")
	}
	switch {
	case q.chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if len(q.body) > 0 {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(q.body), q.body)
		}
		b.WriteString("0\r\n\r\n")
	case q.body != nil:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(q.body))
		b.Write(q.body)
	default:
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// do sends q on a fresh connection and reads the whole response (streams
// end when dockerd closes them; 60 s bound).
func (a *apiClient) do(q apiReq) (apiResp, error) {
	c, err := a.dial()
	if err != nil {
		return apiResp{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(q.bytes()); err != nil {
		return apiResp{}, fmt.Errorf("%s %s: writing: %w", q.method, q.target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return apiResp{}, fmt.Errorf("%s %s: reading the response: %w", q.method, q.target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return apiResp{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}, nil
}

// json sends a JSON body with method to target.
func (a *apiClient) json(method, target, body string) (apiResp, error) {
	q := apiReq{method: method, target: target, header: []string{"Content-Type: application/json"}}
	if body != "" {
		q.body = []byte(body)
	}
	return a.do(q)
}

// wantRefused checks that the proxy itself refused: 403 with Docker's JSON
// error body from tlsdock naming rule (when rule is not ""). It reports
// whether it was.
func wantRefused(t *testing.T, what string, r apiResp, err error, rule string) bool {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return false
	}
	var m struct{ Message string }
	isJSON := json.Unmarshal([]byte(r.Body), &m) == nil
	msg := m.Message
	if r.Status != http.StatusForbidden || !isJSON || !strings.HasPrefix(msg, "tlsdock:") || (rule != "" && !strings.Contains(msg, fmt.Sprintf("rule %q", rule))) {
		named := ""
		if rule != "" {
			named = fmt.Sprintf(" naming rule %q", rule)
		}
		t.Errorf("%s: NOT REFUSED BY THE PROXY: got %s; want 403 with tlsdock's JSON message%s", what, r, named)
		return false
	}
	t.Logf("%s: refused: %s", what, msg)
	return true
}

// hostDocker runs the docker CLI inside h against the local socket: the
// inspector, which sees what dockerd really holds.
func hostDocker(ctx context.Context, h *testhost.Host, args ...string) (string, error) {
	out, _, err := h.Exec(ctx, nil, append([]string{"docker"}, args...)...)
	return string(out), err
}

// ctrInfo is the part of `docker inspect` the attack checks read.
type ctrInfo struct {
	ID    string
	Name  string
	State struct {
		Running bool
		Pid     int
	}
	HostConfig struct {
		Privileged                                                   bool
		Binds                                                        []string
		PidMode, NetworkMode, IpcMode, UTSMode, UsernsMode           string
		CgroupnsMode, CgroupParent, Runtime                          string
		CapAdd, SecurityOpt, MaskedPaths, ReadonlyPaths, VolumesFrom []string
		Devices                                                      []json.RawMessage
		Sysctls                                                      map[string]string
		OomScoreAdj                                                  int
	}
	Mounts []struct {
		Type, Name, Source, Destination string
		RW                              bool
	}
	raw string
}

// summary is what matters of a container for the attacks.
func (c *ctrInfo) summary() string {
	hc := c.HostConfig
	ms := make([]string, 0, len(c.Mounts))
	for _, m := range c.Mounts {
		ms = append(ms, fmt.Sprintf("%s %s(%s)->%s rw=%v", m.Type, m.Source, m.Name, m.Destination, m.RW))
	}
	return fmt.Sprintf("container %s %s running=%v pid=%d Privileged=%v Binds=%q Mounts=%q PidMode=%q NetworkMode=%q IpcMode=%q UTSMode=%q UsernsMode=%q CgroupnsMode=%q CgroupParent=%q Runtime=%q CapAdd=%q SecurityOpt=%q Devices=%d Sysctls=%v OomScoreAdj=%d MaskedPaths=%d ReadonlyPaths=%d",
		c.Name, shortID(c.ID), c.State.Running, c.State.Pid, hc.Privileged, hc.Binds, ms, hc.PidMode, hc.NetworkMode, hc.IpcMode, hc.UTSMode, hc.UsernsMode,
		hc.CgroupnsMode, hc.CgroupParent, hc.Runtime, hc.CapAdd, hc.SecurityOpt, len(hc.Devices), hc.Sysctls, hc.OomScoreAdj, len(hc.MaskedPaths), len(hc.ReadonlyPaths))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// inspectCtr inspects a container through the local socket; nil when
// dockerd has none of that name or ID.
func inspectCtr(t *testing.T, ctx context.Context, h *testhost.Host, name string) *ctrInfo {
	t.Helper()
	out, _, err := h.Exec(ctx, nil, "docker", "inspect", "--type", "container", name)
	if err != nil {
		if strings.Contains(err.Error(), "No such") {
			return nil
		}
		t.Fatalf("docker inspect %s: %v", name, err)
	}
	var cs []ctrInfo
	if err := json.Unmarshal(out, &cs); err != nil || len(cs) != 1 {
		t.Fatalf("docker inspect %s: %v\n%s", name, err, out)
	}
	cs[0].raw = string(out)
	return &cs[0]
}

// attackRandomHex is n random bytes in hex.
func attackRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// partialTar is the first size bytes of a tar that announces one file of
// announced bytes: an upload that stops in the middle of a file.
func partialTar(t *testing.T, announced, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: announced, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	// No Flush: the file is unfinished on purpose; the header is written.
	buf.Write(make([]byte, size-int64(buf.Len())))
	return buf.Bytes()
}

// tarOf is a complete tar of files (name -> content).
func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names) // a directory before what it holds
	for _, name := range names {
		content := files[name]
		typ, mode := byte(tar.TypeReg), int64(0o755) // executable: a plugin's rootfs holds tiny
		if strings.HasSuffix(name, "/") {
			typ, mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(content)), Typeflag: typ, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wsFrame is one masked binary websocket frame from a client (RFC 6455).
func wsFrame(payload []byte) []byte {
	if len(payload) > 125 {
		panic("wsFrame: payload too long")
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	f := []byte{0x82, 0x80 | byte(len(payload))}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
