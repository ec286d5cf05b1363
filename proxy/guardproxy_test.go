package proxy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// guardEnv is a proxy whose rule "ci" applies guard "sandbox" with
// bind_roots root, in front of the fake dockerd, with st as dockerd's
// containers and volumes.
func guardEnv(t *testing.T, root string, st *fakeState, extra string) (*env, func(method, url, body string) (int, string)) {
	t.Helper()
	pol, err := ParsePolicy([]byte(fmt.Sprintf(`{
		"rules": [{"name": "ci", "users": ["ci"], "action": "allow", "guard": "sandbox"}],
		"guards": {"sandbox": {"bind_roots": [%q]%s}}
	}`, root, extra)), "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{Policy: pol})
	e.srv.setDockerState(st)
	cert, _ := e.pki.client(t, "ci")
	c := e.httpClient(t, cert)
	return e, func(method, url, body string) (int, string) {
		t.Helper()
		var r *strings.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		var resp, got = get(t, c, method, url, nilIfEmpty(r))
		return resp.StatusCode, got
	}
}

func nilIfEmpty(r *strings.Reader) interface{ Read([]byte) (int, error) } {
	if r == nil {
		return nil
	}
	return r
}

// TestGuardSymlinkSwapAtStart: a bind allowed at create is refused at
// start once a component of its source has become a symlink.
func TestGuardSymlinkSwapAtStart(t *testing.T) {
	root, outside := hostTree(t)
	src := filepath.Join(root, "data", "sub")
	st := &fakeState{}
	_, do := guardEnv(t, root, st, "")
	create := fmt.Sprintf(`{"Image":"x","HostConfig":{"Binds":[%q]}}`, src+":/d")
	if status, body := do("POST", "/v1.41/containers/create?name=web", create); status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	// dockerd now has the container; start is checked against it.
	st.mu.Lock()
	st.cs = []dockerContainer{{ID: cid("web"), Name: "/web", Mounts: []dockerMount{bindMount(src, true)}}}
	st.mu.Unlock()
	if status, body := do("POST", "/v1.41/containers/web/start", ""); status != 404 || !strings.Contains(body, "page not found") {
		t.Fatalf("start before the swap was not forwarded: %d %s", status, body)
	}
	// The swap: data becomes a symlink to outside.
	if err := os.RemoveAll(filepath.Join(root, "data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "data")); err != nil {
		t.Fatal(err)
	}
	status, body := do("POST", "/v1.41/containers/web/start", "")
	msg := dockerMessage(t, body)
	if status != 403 || !strings.Contains(msg, "is a symlink") || !strings.Contains(msg, `rule "ci"`) || !strings.Contains(msg, `guard "sandbox"`) {
		t.Fatalf("start after the swap: %d %q", status, msg)
	}
	if status, _ := do("POST", "/v1.41/containers/web/restart", ""); status != 403 {
		t.Fatalf("restart after the swap: %d", status)
	}
	if status, body := do("POST", "/v1.41/containers/nosuch/start", ""); status != 404 || !strings.Contains(body, "no such container") {
		t.Fatalf("start of a missing container: %d %s", status, body)
	}
}

// TestGuardNestedMounts: a container with a writable mount of a directory
// and one with a mount below it cannot both exist, in either order.
func TestGuardNestedMounts(t *testing.T) {
	root, _ := hostTree(t)
	data, sub := filepath.Join(root, "data"), filepath.Join(root, "data", "sub")
	createWith := func(src string) string { // src may end in :ro
		s, mode, _ := strings.Cut(src, ":")
		if mode != "" {
			mode = ":" + mode
		}
		return fmt.Sprintf(`{"Image":"x","HostConfig":{"Binds":[%q]}}`, s+":/d"+mode)
	}
	t.Run("ancestor first", func(t *testing.T) {
		st := &fakeState{cs: []dockerContainer{{ID: cid("a"), Name: "/a", Mounts: []dockerMount{bindMount(data, true)}}}}
		_, do := guardEnv(t, root, st, "")
		if status, body := do("POST", "/containers/create", createWith(sub)); status != 403 || !strings.Contains(body, "could replace a component") {
			t.Fatalf("create below a writable mount: %d %s", status, body)
		}
	})
	t.Run("descendant first", func(t *testing.T) {
		st := &fakeState{cs: []dockerContainer{{ID: cid("b"), Name: "/b", Mounts: []dockerMount{bindMount(sub, false)}}}}
		_, do := guardEnv(t, root, st, "")
		if status, body := do("POST", "/containers/create", createWith(data)); status != 403 || !strings.Contains(body, "below it") {
			t.Fatalf("writable create above a mount: %d %s", status, body)
		}
		if status, body := do("POST", "/containers/create", createWith(data+":ro")); status != 201 {
			t.Fatalf("read-only create above a mount: %d %s", status, body)
		}
	})
	t.Run("at start", func(t *testing.T) {
		st := &fakeState{cs: []dockerContainer{
			{ID: cid("a"), Name: "/a", Mounts: []dockerMount{bindMount(data, true)}},
			{ID: cid("b"), Name: "/b", Mounts: []dockerMount{bindMount(sub, false)}},
		}}
		_, do := guardEnv(t, root, st, "")
		for _, name := range []string{"a", "b"} {
			if status, body := do("POST", "/containers/"+name+"/start", ""); status != 403 {
				t.Fatalf("start %s: %d %s", name, status, body)
			}
		}
	})
}

// TestGuardFailsClosed: without an answer from dockerd, a create with a
// bind and any start are refused.
func TestGuardFailsClosed(t *testing.T) {
	root, _ := hostTree(t)
	st := &fakeState{err: errors.New("dial unix /var/run/docker.sock: connection refused")}
	_, do := guardEnv(t, root, st, "")
	status, body := do("POST", "/containers/create", fmt.Sprintf(`{"Image":"x","HostConfig":{"Binds":[%q]}}`, root+"/data:/d"))
	if status != 503 || !strings.Contains(dockerMessage(t, body), "connection refused") {
		t.Fatalf("create: %d %s", status, body)
	}
	if status, body := do("POST", "/containers/web/start", ""); status != 503 {
		t.Fatalf("start: %d %s", status, body)
	}
	if status, body := do("POST", "/containers/create", `{"Image":"x"}`); status != 201 {
		t.Fatalf("a create without mounts needs no answer: %d %s", status, body)
	}
}

// TestGuardSerializes: the check of a guarded create runs with the
// Server's guard mutex held, and the mutex is free after the answer.
func TestGuardSerializes(t *testing.T) {
	root, _ := hostTree(t)
	st := &fakeState{}
	e, do := guardEnv(t, root, st, "")
	held := false
	st.onCheck = func() {
		if e.srv.guards.mu.TryLock() {
			e.srv.guards.mu.Unlock()
			return
		}
		held = true
	}
	if status, body := do("POST", "/containers/create", fmt.Sprintf(`{"Image":"x","HostConfig":{"Binds":[%q]}}`, root+"/data:/d")); status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	st.mu.Lock()
	asked := st.asked
	st.mu.Unlock()
	if asked != 1 || !held {
		t.Fatalf("asked %d times, mutex held %v", asked, held)
	}
	// The mutex is released just after the answer is written.
	free := make(chan struct{})
	go func() {
		e.srv.guards.mu.Lock()
		e.srv.guards.mu.Unlock() //nolint:staticcheck // SA2001: the empty section waits for the mutex to be released
		close(free)
	}()
	select {
	case <-free:
	case <-time.After(waitLimit):
		t.Fatal("the guard mutex is still held after the answer")
	}
}

// TestGuardRoutesThroughProxy: refusals of the route classification are
// 403 with Docker's body naming the rule, the guard and the reason, and
// allow_endpoints lets a route through.
func TestGuardRoutesThroughProxy(t *testing.T) {
	root, _ := hostTree(t)
	_, do := guardEnv(t, root, &fakeState{}, `, "allow_endpoints": ["/swarm/**"]`)
	for _, tc := range []struct {
		method, url, body string
		status            int
		want              string
	}{
		{"POST", "/v1.41/plugins/pull?remote=evil", "", 403, "plugins run privileged code"},
		{"POST", "/v1.41/services/create", `{"TaskTemplate":{}}`, 403, "swarm"},
		{"POST", "/v1.23/containers/web/start", `{"Binds":["/:/host"]}`, 403, "use /v1.41"},
		{"POST", "/v1.41/containers/web/start", `{"Binds":["/:/host"]}`, 403, "start body"},
		{"POST", "/v1.41/build?networkmode=host", "", 403, "networkmode"},
		{"POST", "/v1.41/images/create?fromSrc=http://169.254.169.254/latest", "", 403, "fromSrc"},
		{"GET", "/v1.41/swarm", "", 404, "page not found"}, // named: forwarded
		{"GET", "/v1.41/_ping", "", 200, "OK"},
	} {
		status, body := do(tc.method, tc.url, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.url, status, body, tc.status, tc.want)
			continue
		}
		if status == 403 {
			msg := dockerMessage(t, body)
			if !strings.Contains(msg, `rule "ci"`) || !strings.Contains(msg, `guard "sandbox"`) || !strings.Contains(msg, `user "ci"`) {
				t.Errorf("%s %s: message %q does not name the user, rule and guard", tc.method, tc.url, msg)
			}
		}
	}
}

// TestGuardForeignContainers: a guarded client cannot run code in, or
// copy through, a container whose host settings or mounts its guard would
// not allow, such as an administrator's privileged one.
func TestGuardForeignContainers(t *testing.T) {
	root, _ := hostTree(t)
	st := &fakeState{cs: []dockerContainer{
		{ID: cid("admin"), Name: "/admin", HostConfig: &dockerHostConfig{Privileged: true}},
		{ID: cid("agent"), Name: "/agent", HostConfig: &dockerHostConfig{}, Mounts: []dockerMount{bindMount("/", false)}},
		{ID: cid("mine"), Name: "/mine", HostConfig: &dockerHostConfig{NetworkMode: "bridge"}, Mounts: []dockerMount{bindMount(root+"/data", true)}},
	}}
	_, do := guardEnv(t, root, st, "")
	for _, tc := range []struct {
		method, url, body string
		status            int
		want              string
	}{
		{"POST", "/containers/admin/exec", `{"Cmd":["sh"]}`, 403, "privileged"},
		{"POST", "/containers/admin/attach?stream=1&stdin=1", "", 403, "privileged"},
		{"POST", "/containers/admin/start", "", 403, "privileged"},
		{"PUT", "/containers/admin/archive?path=/", "x", 403, "privileged"},
		{"POST", "/containers/admin/rename?name=old", "", 403, "privileged"},
		{"GET", "/containers/agent/archive?path=/host/etc/shadow", "", 403, "outside the allowed roots"},
		{"POST", "/containers/agent/exec", `{"Cmd":["sh"]}`, 403, "outside the allowed roots"},
		{"POST", "/containers/mine/exec", `{"Cmd":["sh"]}`, 201, ""},
		{"POST", "/containers/nosuch/exec", `{"Cmd":["sh"]}`, 404, "no such container"},
	} {
		status, body := do(tc.method, tc.url, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.url, status, body, tc.status, tc.want)
		}
	}
}

// cid is a full container ID, as dockerd writes it, made from name.
func cid(name string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(name)))
}

// TestGuardPinsTheContainerID: a request into an existing container
// reaches dockerd with the full ID of the container the guard checked in
// place of the name or ID prefix the client wrote, with the version
// prefix, the rest of the path and the query kept.
func TestGuardPinsTheContainerID(t *testing.T) {
	root, _ := hostTree(t)
	web := cid("web")
	st := &fakeState{cs: []dockerContainer{{ID: web, Name: "/web", HostConfig: &dockerHostConfig{}, Mounts: []dockerMount{bindMount(root+"/data", true)}}}}
	e, _ := guardEnv(t, root, st, "")
	cert, _ := e.pki.client(t, "ci")
	c := e.httpClient(t, cert)
	for _, tc := range []struct {
		method, url, body string
		path, query       string // what dockerd saw
	}{
		{"POST", "/v1.41/containers/web/start", "", "/v1.41/containers/" + web + "/start", ""},
		{"POST", "/containers/web/restart?t=1", "", "/containers/" + web + "/restart", "t=1"},
		{"POST", "/v1.43/containers/" + web[:12] + "/start", "", "/v1.43/containers/" + web + "/start", ""},
		{"POST", "/containers/web/exec", `{"Cmd":["sh"]}`, "/containers/" + web + "/exec", ""},
		{"GET", "/containers/web/archive?path=/d", "", "/containers/" + web + "/archive", "path=/d"},
		{"PUT", "/containers/web/archive?path=/d&noOverwriteDirNonDir=1", "x", "/containers/" + web + "/archive", "path=/d&noOverwriteDirNonDir=1"},
		{"HEAD", "/containers/web/archive?path=/d", "", "/containers/" + web + "/archive", "path=/d"},
		{"GET", "/containers/web/attach/ws?stream=1", "", "/containers/" + web + "/attach/ws", "stream=1"},
		{"POST", "/containers/web/rename?name=web2", "", "/containers/" + web + "/rename", "name=web2"},
		{"POST", "/containers/./web/start", "", "/containers/" + web + "/start", ""}, // cleaned first
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		resp, got := get(t, c, tc.method, tc.url, body)
		if resp.StatusCode == 403 || resp.StatusCode == 503 {
			t.Errorf("%s %s: %d %s", tc.method, tc.url, resp.StatusCode, got)
			continue
		}
		if p, q := resp.Header.Get("X-Got-Path"), resp.Header.Get("X-Got-Query"); p != tc.path || q != tc.query {
			t.Errorf("%s %s: dockerd saw %s?%s, want %s?%s", tc.method, tc.url, p, q, tc.path, tc.query)
		}
	}
	// Routes that inspect nothing are forwarded as written.
	if resp, _ := get(t, c, "POST", "/containers/web/kill", nil); resp.Header.Get("X-Got-Path") != "/containers/web/kill" {
		t.Errorf("kill: dockerd saw %s", resp.Header.Get("X-Got-Path"))
	}
}

// TestGuardRenameCannotRedirect: a rename on the host between the
// guard's inspect and dockerd's handling of the request (here, just after
// the inspect: an administrator's privileged container takes the name the
// guard checked) does not send the request to the renamed container.
func TestGuardRenameCannotRedirect(t *testing.T) {
	root, _ := hostTree(t)
	mine, admin := cid("mine"), cid("admin")
	st := &fakeState{cs: []dockerContainer{
		{ID: mine, Name: "/web", HostConfig: &dockerHostConfig{}},
		{ID: admin, Name: "/admin", HostConfig: &dockerHostConfig{Privileged: true}},
	}}
	renamed := false
	st.onInspect = func() {
		if !renamed {
			renamed = true
			st.cs[0].Name, st.cs[1].Name = "/old", "/web"
		}
	}
	e, do := guardEnv(t, root, st, "")
	cert, _ := e.pki.client(t, "ci")
	resp, body := get(t, e.httpClient(t, cert), "POST", "/v1.41/containers/web/start", nil)
	if got := resp.Header.Get("X-Got-Path"); resp.StatusCode != 404 || got != "/v1.41/containers/"+mine+"/start" {
		t.Fatalf("start: %d %s: dockerd saw %q, want the checked container's ID %s", resp.StatusCode, body, got, mine)
	}
	// The name now is the administrator's container: refused.
	if status, body := do("POST", "/v1.41/containers/web/start", ""); status != 403 || !strings.Contains(body, "privileged") {
		t.Fatalf("start after the rename: %d %s", status, body)
	}
}

// TestGuardNeedsTheFullID: an inspect answer without a full container ID
// leaves nothing to pin the request to, and the request is refused.
func TestGuardNeedsTheFullID(t *testing.T) {
	root, _ := hostTree(t)
	for _, id := range []string{"", "abc123", strings.ToUpper(cid("web")), cid("web")[:63] + "/"} {
		st := &fakeState{cs: []dockerContainer{{ID: id, Name: "/web", HostConfig: &dockerHostConfig{}}}}
		_, do := guardEnv(t, root, st, "")
		if status, body := do("POST", "/containers/web/start", ""); status != 503 || !strings.Contains(body, "no full container ID") {
			t.Errorf("ID %q: %d %s", id, status, body)
		}
	}
}

// TestGuardDotDotAfterSymlink: the local driver hands a volume's device
// to mount(2) as written, and the kernel resolves ".." after following
// the symlink before it. root/escape/.. cleans to root, but the kernel
// mounts the parent of outside: a guarded client that has made a symlink
// in a writable bind (ln -s / /w/a) mounts the host's root with it.
func TestGuardDotDotAfterSymlink(t *testing.T) {
	root, _ := hostTree(t)
	st := &fakeState{}
	_, do := guardEnv(t, root, st, "")
	dev := root + "/escape/.."
	body := fmt.Sprintf(`{"Name":"v","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":%q}}`, dev)
	if status, got := do("POST", "/v1.41/volumes/create", body); status != 403 || !strings.Contains(dockerMessage(t, got), `".."`) {
		t.Fatalf("volume create with device %q: %d %s", dev, status, got)
	}
	// The same volume, created by someone else, is refused when used.
	st.vols = []dockerVolume{{Name: "v", Driver: "local", Options: map[string]string{"type": "none", "o": "bind", "device": dev}}}
	if status, got := do("POST", "/v1.41/containers/create", `{"Image":"x","HostConfig":{"Binds":["v:/d"]}}`); status != 403 || !strings.Contains(dockerMessage(t, got), `".."`) {
		t.Fatalf("create with the volume: %d %s", status, got)
	}
	// A bind source with ".." is refused too (dockerd cleans it, but
	// nothing is lost).
	if status, got := do("POST", "/v1.41/containers/create", fmt.Sprintf(`{"Image":"x","HostConfig":{"Binds":[%q]}}`, root+"/data/../data:/d")); status != 403 || !strings.Contains(dockerMessage(t, got), `".."`) {
		t.Fatalf("create with a bind through ..: %d %s", status, got)
	}
}

// TestGuardForeignExecStart: an exec instance is checked when it is
// started too. Someone else's exec instance (an administrator's docker
// exec -it into a privileged container, announced by an exec_create
// event with its ID) started by the guarded client would hand it that
// shell; so would a privileged exec instance.
func TestGuardForeignExecStart(t *testing.T) {
	root, _ := hostTree(t)
	eid := func(n string) string { return cid("exec " + n) }
	st := &fakeState{
		cs: []dockerContainer{
			{ID: cid("admin"), Name: "/admin", HostConfig: &dockerHostConfig{Privileged: true}},
			{ID: cid("agent"), Name: "/agent", HostConfig: &dockerHostConfig{}, Mounts: []dockerMount{bindMount("/", false)}},
			{ID: cid("mine"), Name: "/mine", HostConfig: &dockerHostConfig{}, Mounts: []dockerMount{bindMount(root+"/data", true)}},
		},
		execs: []dockerExec{
			{ID: eid("admin"), ContainerID: cid("admin")},
			{ID: eid("agent"), ContainerID: cid("agent")},
			{ID: eid("priv"), ContainerID: cid("mine"), ProcessConfig: execProcess{Privileged: true}},
			{ID: eid("mine"), ContainerID: cid("mine")},
		},
	}
	_, do := guardEnv(t, root, st, "")
	for _, tc := range []struct {
		exec   string
		status int
		want   string
	}{
		{eid("admin"), 403, "privileged"},
		{eid("agent"), 403, "outside the allowed roots"},
		{eid("priv"), 403, "allow_privileged"},
		{eid("mine"), 404, "page not found"}, // forwarded
		{eid("nosuch"), 404, "no such exec instance"},
	} {
		status, body := do("POST", "/v1.41/exec/"+tc.exec+"/start", `{"Detach":true}`)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("start exec %s: %d %s, want %d with %q", tc.exec[:12], status, body, tc.status, tc.want)
		}
	}
}
