package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// dockerdRoutes are the routes dockerd registers for API 1.41 to 1.52
// (daemon/server/router/*, api/server/router/* before it), the debug
// routes included.
const dockerdRoutes = `DELETE /configs/{id}|DELETE /containers/{name:.*}|DELETE /containers/{name}/checkpoints/{checkpoint}|DELETE /images/{name:.*}|DELETE /networks/{id:.*}|DELETE /nodes/{id}|DELETE /plugins/{name:.*}|DELETE /secrets/{id}|DELETE /services/{id}|DELETE /volumes/{name:.*}|GET /_ping|GET /configs|GET /configs/{id}|GET /containers/json|GET /containers/{name:.*}/archive|GET /containers/{name:.*}/attach/ws|GET /containers/{name:.*}/changes|GET /containers/{name:.*}/checkpoints|GET /containers/{name:.*}/export|GET /containers/{name:.*}/json|GET /containers/{name:.*}/logs|GET /containers/{name:.*}/stats|GET /containers/{name:.*}/top|GET /debug/pprof/|GET /debug/pprof/cmdline|GET /debug/pprof/profile|GET /debug/pprof/symbol|GET /debug/pprof/trace|GET /debug/pprof/{name}|GET /debug/vars|GET /distribution/{name:.*}/json|GET /events|GET /exec/{id:.*}/json|GET /images/get|GET /images/json|GET /images/search|GET /images/{name:.*}/attestations|GET /images/{name:.*}/get|GET /images/{name:.*}/history|GET /images/{name:.*}/json|GET /info|GET /networks|GET /networks/|GET /networks/{id:.+}|GET /nodes|GET /nodes/{id}|GET /plugins|GET /plugins/privileges|GET /plugins/{name:.*}/json|GET /secrets|GET /secrets/{id}|GET /services|GET /services/{id}|GET /services/{id}/logs|GET /swarm|GET /swarm/unlockkey|GET /system/df|GET /tasks|GET /tasks/{id}|GET /tasks/{id}/logs|GET /version|GET /volumes|GET /volumes/{name:.*}|HEAD /_ping|HEAD /containers/{name:.*}/archive|OPTIONS /{anyroute:.*}|POST /auth|POST /build|POST /build/cancel|POST /build/prune|POST /commit|POST /configs/create|POST /configs/{id}/update|POST /containers/create|POST /containers/prune|POST /containers/{name:.*}/attach|POST /containers/{name:.*}/checkpoints|POST /containers/{name:.*}/copy|POST /containers/{name:.*}/exec|POST /containers/{name:.*}/kill|POST /containers/{name:.*}/pause|POST /containers/{name:.*}/rename|POST /containers/{name:.*}/resize|POST /containers/{name:.*}/restart|POST /containers/{name:.*}/start|POST /containers/{name:.*}/stop|POST /containers/{name:.*}/unpause|POST /containers/{name:.*}/update|POST /containers/{name:.*}/wait|POST /exec/{name:.*}/resize|POST /exec/{name:.*}/start|POST /grpc|POST /images/create|POST /images/load|POST /images/prune|POST /images/{name:.*}/push|POST /images/{name:.*}/tag|POST /networks/create|POST /networks/prune|POST /networks/{id:.*}/connect|POST /networks/{id:.*}/disconnect|POST /nodes/{id}/update|POST /plugins/create|POST /plugins/pull|POST /plugins/{name:.*}/disable|POST /plugins/{name:.*}/enable|POST /plugins/{name:.*}/push|POST /plugins/{name:.*}/set|POST /plugins/{name:.*}/upgrade|POST /secrets/create|POST /secrets/{id}/update|POST /services/create|POST /services/{id}/update|POST /session|POST /swarm/init|POST /swarm/join|POST /swarm/leave|POST /swarm/unlock|POST /swarm/update|POST /volumes/create|POST /volumes/prune|PUT /containers/{name:.*}/archive|PUT /volumes/{name:.*}`

var routeVar = regexp.MustCompile(`\{[^}]*\}`)

// TestGuardRouteTableComplete: every route of dockerd is in the table and
// a request to it is classified by that route, not by another one.
func TestGuardRouteTableComplete(t *testing.T) {
	for _, r := range strings.Split(dockerdRoutes, "|") {
		method, tmpl, _ := strings.Cut(r, " ")
		p, err := cleanDecoded(routeVar.ReplaceAllString(tmpl, "web"))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := findRoute(method, p)
		switch {
		case got == nil:
			t.Errorf("%s %s (%s): no route in the table", method, tmpl, p)
		case strings.HasPrefix(tmpl, "/debug/"):
			if got.class != routeRefused {
				t.Errorf("%s %s: class %v, want refused", method, p, got.class)
			}
		case got.tmpl != strings.TrimSuffix(tmpl, "/") && tmpl != "/networks/":
			t.Errorf("%s %s is classified by %s %s, want %s", method, p, got.method, got.tmpl, tmpl)
		}
	}
}

func compiledGuard(t *testing.T, g Guard) *Guard {
	t.Helper()
	g.name = "g"
	if err := g.compile(); err != nil {
		t.Fatal(err)
	}
	return &g
}

func TestGuardClassify(t *testing.T) {
	g := compiledGuard(t, Guard{})
	named := compiledGuard(t, Guard{AllowEndpoints: []string{"/plugins/**", "/build", "/services/create", "/nope", "/containers/*/start"}})
	for _, tc := range []struct {
		name, method, target string
		ctype                string
		want                 string   // "" allowed; else a substring of the refusal
		kind                 bodyKind // when allowed
		mounts               mountCheck
		namedWant            string // the refusal with allow_endpoints; "-" same as want
	}{
		// allowed as is
		{"ping", "GET", "/_ping", "", "", bodyNone, mountsNone, "-"},
		{"head ping", "HEAD", "/v1.41/_ping", "", "", bodyNone, mountsNone, "-"},
		{"list", "GET", "/v1.43/containers/json?all=1", "", "", bodyNone, mountsNone, "-"},
		{"inspect", "GET", "/containers/web/json", "", "", bodyNone, mountsNone, "-"},
		{"logs", "GET", "/containers/web/logs?follow=1", "", "", bodyNone, mountsNone, "-"},
		{"kill", "POST", "/containers/web/kill?signal=KILL", "", "", bodyNone, mountsNone, "-"},
		{"stop", "POST", "/containers/web/stop", "", "", bodyNone, mountsNone, "-"},
		{"attach", "POST", "/containers/web/attach?stream=1", "", "", bodyNone, mountsTarget, "-"},
		{"attach ws", "GET", "/containers/web/attach/ws", "", "", bodyNone, mountsTarget, "-"},
		{"rename", "POST", "/containers/web/rename?name=db", "", "", bodyNone, mountsTarget, "-"},
		{"archive get", "GET", "/containers/web/archive?path=/", "", "", bodyNone, mountsTarget, "-"},
		{"archive put", "PUT", "/containers/web/archive?path=/tmp", "application/x-tar", "", bodyNone, mountsTarget, "-"},
		{"delete container", "DELETE", "/containers/web?force=1", "", "", bodyNone, mountsNone, "-"},
		{"exec start", "POST", "/exec/abc/start", "application/json", "", bodyNone, mountsExec, "-"},
		{"pull", "POST", "/images/create?fromImage=busybox&tag=latest", "", "", bodyNone, mountsNone, "-"},
		{"import from body", "POST", "/images/create?fromSrc=-&repo=x", "application/x-tar", "", bodyNone, mountsNone, "-"},
		{"push", "POST", "/images/busybox/push?tag=1", "", "", bodyNone, mountsNone, "-"},
		{"image load", "POST", "/images/load", "application/x-tar", "", bodyNone, mountsNone, "-"},
		{"commit", "POST", "/commit?container=web", "", "", bodyNone, mountsNone, "-"},
		{"prune", "POST", "/volumes/prune", "", "", bodyNone, mountsNone, "-"},
		{"options", "OPTIONS", "/anything/at/all", "", "", bodyNone, mountsNone, "-"},
		{"service list", "GET", "/services", "", "", bodyNone, mountsNone, "-"},
		{"plugin list", "GET", "/plugins", "", "", bodyNone, mountsNone, "-"},
		{"restart rechecks mounts", "POST", "/containers/web/restart", "", "", bodyNone, mountsContainer, "-"},
		// body checks
		{"create", "POST", "/v1.41/containers/create?name=web", "application/json", "", bodyCreate, mountsBody, "-"},
		{"update", "POST", "/containers/web/update", "application/json", "", bodyUpdate, mountsNone, "-"},
		{"exec", "POST", "/containers/web/exec", "application/json", "", bodyExec, mountsTarget, "-"},
		{"volume create", "POST", "/volumes/create", "application/json", "", bodyVolume, mountsBody, "-"},
		{"network create", "POST", "/networks/create", "application/json", "", bodyNetworkCreate, mountsNone, "-"},
		{"network connect", "POST", "/networks/n1/connect", "application/json", "", bodyNetworkConnect, mountsNone, "-"},
		{"start", "POST", "/containers/web/start", "", "", bodyStart, mountsContainer, "-"},
		// limited query
		{"start checkpoint", "POST", "/containers/web/start?checkpoint=c1&checkpoint-dir=/etc", "", "checkpoint", 0, 0, ""},
		{"start unknown param", "POST", "/containers/web/start?x=1", "", `"x" is not one`, 0, 0, ""},
		{"import from URL", "POST", "/images/create?fromSrc=http://169.254.169.254/", "", "fromSrc", 0, 0, "-"},
		{"import empty src", "POST", "/images/create?fromSrc=", "", "fromSrc", 0, 0, "-"},
		{"import second src", "POST", "/images/create?fromSrc=-&fromSrc=http://x/", "", "fromSrc", 0, 0, "-"},
		{"image create unknown", "POST", "/images/create?fromImage=x&evil=1", "", `"evil"`, 0, 0, "-"},
		{"build", "POST", "/build?t=app&rm=1&cgroupparent=&networkmode=default&version=1&memory=0&dockerfile=Dockerfile&buildargs=%7B%7D", "application/x-tar", "", bodyNone, mountsNone, "-"},
		{"build host network", "POST", "/build?networkmode=host", "", "networkmode", 0, 0, ""},
		{"build container network", "POST", "/build?networkmode=container:db", "", "networkmode", 0, 0, ""},
		{"build cgroup parent", "POST", "/build?cgroupparent=/", "", "cgroupparent", 0, 0, ""},
		{"build remote", "POST", "/build?remote=http://10.0.0.1/ctx.tar", "", "remote", 0, 0, ""},
		{"build outputs", "POST", "/build?outputs=%5B%7B%22Type%22%3A%22local%22%7D%5D", "", "outputs", 0, 0, ""},
		{"buildkit", "POST", "/build?version=2", "", "DOCKER_BUILDKIT=0", 0, 0, ""},
		{"build session", "POST", "/build?session=abc", "", "/session", 0, 0, ""},
		{"build unknown", "POST", "/build?Remote=x", "", `"Remote"`, 0, 0, ""},
		// refused unless named
		{"plugin install", "POST", "/plugins/pull?remote=evil/plugin", "", "plugins run privileged code", 0, 0, ""},
		{"plugin enable", "POST", "/plugins/evil/enable", "", "plugins", 0, 0, ""},
		{"plugin create", "POST", "/v1.41/plugins/create?name=x", "", "plugins", 0, 0, ""},
		{"plugin delete", "DELETE", "/plugins/evil", "", "plugins", 0, 0, ""},
		{"swarm init", "POST", "/swarm/init", "", "swarm", 0, 0, "-"},
		{"swarm inspect", "GET", "/swarm", "", "swarm", 0, 0, "-"},
		{"swarm unlock key", "GET", "/swarm/unlockkey", "", "swarm", 0, 0, "-"},
		{"service create", "POST", "/services/create", "", "swarm", 0, 0, ""},
		{"service update", "POST", "/services/s1/update", "", "swarm", 0, 0, "-"},
		{"service delete", "DELETE", "/services/s1", "", "swarm", 0, 0, "-"},
		{"node delete", "DELETE", "/nodes/n1", "", "swarm", 0, 0, "-"},
		{"secret create", "POST", "/secrets/create", "", "swarm", 0, 0, "-"},
		{"config create", "POST", "/configs/create", "", "swarm", 0, 0, "-"},
		{"cluster volume update", "PUT", "/volumes/v1?version=3", "", "swarm", 0, 0, "-"},
		{"session", "POST", "/session", "", "BuildKit", 0, 0, "-"},
		{"grpc", "POST", "/grpc", "", "BuildKit", 0, 0, "-"},
		{"checkpoint create", "POST", "/containers/web/checkpoints", "", "checkpoints", 0, 0, "-"},
		{"checkpoint list", "GET", "/containers/web/checkpoints?dir=/etc", "", "checkpoints", 0, 0, "-"},
		{"checkpoint delete masks container delete", "DELETE", "/containers/web/checkpoints/c1?dir=/", "", "checkpoints", 0, 0, "-"},
		{"debug", "GET", "/debug/pprof/cmdline", "", "debug", 0, 0, "-"},
		{"debug any method", "POST", "/debug/vars", "", "debug", 0, 0, "-"},
		{"copy", "POST", "/containers/web/copy", "", "copy", 0, 0, "-"},
		{"unknown", "POST", "/containers/web/frobnicate", "", "not a Docker Engine API route", 0, 0, "-"},
		{"unknown named", "GET", "/nope", "", "not a Docker Engine API route", 0, 0, ""},
		{"unknown method", "PATCH", "/containers/web/json", "", "not a Docker Engine API route", 0, 0, "-"},
		{"GET of a POST route", "GET", "/containers/create", "", "not a Docker Engine API route", 0, 0, "-"},
		// whatever the route
		{"version floor", "POST", "/v1.23/containers/web/start", "", "API version 1.23 is older than this guard's minimum 1.41: use /v1.41", 0, 0, "-"},
		{"version floor read", "GET", "/v1.40/_ping", "", "older than", 0, 0, "-"},
		{"version dot", "GET", "/v./_ping", "", "API version . is older", 0, 0, "-"},
		{"version numeric compare", "GET", "/v1.100/_ping", "", "", bodyNone, mountsNone, "-"},
		{"form body", "POST", "/build", "application/x-www-form-urlencoded", "Content-Type", 0, 0, "-"},
		{"form body with params", "POST", "/images/create?fromImage=x", "Application/X-WWW-Form-Urlencoded; charset=utf-8", "Content-Type", 0, 0, "-"},
		{"multipart body", "POST", "/containers/web/start", "multipart/form-data; boundary=x", "Content-Type", 0, 0, "-"},
		{"malformed query", "POST", "/images/create?fromImage=x&fromSrc%zz=http://evil/", "", "does not parse", 0, 0, "-"},
		{"semicolon", "POST", "/images/create?fromImage=x;fromSrc=http://evil/", "", `";"`, 0, 0, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, gg := range []struct {
				g    *Guard
				want string
			}{{g, tc.want}, {named, tc.namedWant}} {
				want := gg.want
				if want == "-" {
					want = tc.want
				}
				u, err := url.Parse(tc.target)
				if err != nil {
					t.Fatal(err)
				}
				clean, err := cleanDecoded(u.Path)
				if err != nil {
					t.Fatal(err)
				}
				h := http.Header{}
				if tc.ctype != "" {
					h.Set("Content-Type", tc.ctype)
				}
				rc := gg.g.classify(tc.method, clean, u, h)
				if want == "" {
					if rc.deny != "" {
						t.Fatalf("allow_endpoints %v: refused: %s", gg.g.AllowEndpoints, rc.deny)
					}
					if gg.g == g && (rc.kind != tc.kind || rc.mounts != tc.mounts) {
						t.Fatalf("kind %v mounts %v, want %v %v", rc.kind, rc.mounts, tc.kind, tc.mounts)
					}
					continue
				}
				if !strings.Contains(rc.deny, want) {
					t.Fatalf("allow_endpoints %v: got %q, want a refusal with %q", gg.g.AllowEndpoints, rc.deny, want)
				}
			}
		})
	}
}

func TestGuardClassifyStartContainer(t *testing.T) {
	g := compiledGuard(t, Guard{})
	u, _ := url.Parse("/v1.44/containers/web/start")
	if rc := g.classify("POST", u.Path, u, nil); rc.container != "web" || rc.kind != bodyStart {
		t.Fatalf("got %+v", rc)
	}
}

func TestGuardMinAPIVersion(t *testing.T) {
	for _, tc := range []struct {
		min, version string
		allowed      bool
	}{
		{"", "1.41", true},
		{"", "1.52", true},
		{"", "1.40", false},
		{"", "1.4", false},
		{"1.44", "1.43", false},
		{"1.44", "1.44", true},
		{"1.24", "1.24", true},
		{"1.24", "1.23", false},
		{"1.41", "1.41.0", true},
		{"1.41", "2", true},
		{"1.41", "1", false},
	} {
		g := compiledGuard(t, Guard{MinAPIVersion: tc.min})
		u, _ := url.Parse("/v" + tc.version + "/info")
		rc := g.classify("GET", u.Path, u, nil)
		if (rc.deny == "") != tc.allowed {
			t.Errorf("min %q, version %s: refusal %q, want allowed %v", tc.min, tc.version, rc.deny, tc.allowed)
		}
	}
	for _, bad := range []string{"1.23", "1.12", "0.9", "x", "1.", "v1.41", "1,41"} {
		g := Guard{MinAPIVersion: bad}
		if err := g.compile(); err == nil || !strings.Contains(err.Error(), "min_api_version") {
			t.Errorf("min_api_version %q: compile error %v", bad, err)
		}
	}
}

// TestGuardAllowEndpointsKeepsBodyChecks: naming a route never skips its
// body check, its bind confinement or the version floor.
func TestGuardAllowEndpointsKeepsBodyChecks(t *testing.T) {
	g := compiledGuard(t, Guard{AllowEndpoints: []string{"/**"}})
	for _, tc := range []struct {
		method, target string
		kind           bodyKind
		mounts         mountCheck
	}{
		{"POST", "/containers/create", bodyCreate, mountsBody},
		{"POST", "/containers/web/start?checkpoint=c", bodyStart, mountsContainer},
		{"POST", "/volumes/create", bodyVolume, mountsBody},
		{"POST", "/networks/create", bodyNetworkCreate, mountsNone},
		{"POST", "/containers/web/exec", bodyExec, mountsTarget},
		{"POST", "/plugins/pull", bodyNone, mountsNone},
	} {
		u, _ := url.Parse(tc.target)
		rc := g.classify(tc.method, u.Path, u, nil)
		if rc.deny != "" || rc.kind != tc.kind || rc.mounts != tc.mounts {
			t.Errorf("%s %s: %+v, want kind %v mounts %v", tc.method, tc.target, rc, tc.kind, tc.mounts)
		}
	}
	u, _ := url.Parse("/v1.23/plugins/pull")
	if rc := g.classify("POST", u.Path, u, nil); !strings.Contains(rc.deny, "older than") {
		t.Errorf("version floor with allow_endpoints: %+v", rc)
	}
}

func TestGuardCheckTarget(t *testing.T) {
	strict := compiledGuard(t, Guard{})
	loose := compiledGuard(t, Guard{AllowPrivileged: true, AllowHostNetwork: true, AllowHostPID: true, AllowHostIPC: true,
		AllowHostUTS: true, AllowHostUserns: true, AllowCapAdd: true, AllowDevices: true, AllowSecurityOpt: true, AllowContainerNamespaces: true})
	for _, tc := range []struct {
		name string
		h    *dockerHostConfig
		want string
	}{
		{"no host config", nil, ""},
		{"plain", &dockerHostConfig{NetworkMode: "bridge", IpcMode: "private", SecurityOpt: []string{"no-new-privileges"}, CapAdd: []string{"CAP_NET_BIND_SERVICE"}}, ""},
		{"privileged", &dockerHostConfig{Privileged: true}, "privileged"},
		{"host network", &dockerHostConfig{NetworkMode: "host"}, "allow_host_network"},
		{"host pid", &dockerHostConfig{PidMode: "host"}, "allow_host_pid"},
		{"container pid", &dockerHostConfig{PidMode: "container:abc"}, "allow_container_namespaces"},
		{"host ipc", &dockerHostConfig{IpcMode: "host"}, "allow_host_ipc"},
		{"host uts", &dockerHostConfig{UTSMode: "host"}, "allow_host_uts"},
		{"host userns", &dockerHostConfig{UsernsMode: "host"}, "allow_host_userns"},
		{"cap add", &dockerHostConfig{CapAdd: []string{"SYS_ADMIN"}}, "allow_cap_add"},
		{"devices", &dockerHostConfig{DeviceCgroupRules: []string{"b *:* rwm"}}, "allow_devices"},
		{"unconfined", &dockerHostConfig{SecurityOpt: []string{"apparmor=unconfined"}}, "allow_security_opt"},
		{"writable cgroups", &dockerHostConfig{SecurityOpt: []string{"writable-cgroups=true"}}, "allow_security_opt"},
		{"bare writable cgroups", &dockerHostConfig{SecurityOpt: []string{"writable-cgroups"}}, "allow_security_opt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := dockerContainer{ID: "abc", Name: "/admin", HostConfig: tc.h}
			got := strict.checkTarget(ct)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if got := loose.checkTarget(ct); got != "" {
				t.Fatalf("the permissive guard refused: %s", got)
			}
		})
	}
}

// TestGuardPinnedPath: for every route into an existing container, the
// path forwarded has the container, even a name that crosses slashes as
// dockerd's {name:.*} does, replaced by its ID and nothing else changed.
func TestGuardPinnedPath(t *testing.T) {
	g := compiledGuard(t, Guard{})
	id := strings.Repeat("0123456789abcdef", 4)
	n := 0
	for _, r := range guardRoutes() {
		if r.mounts != mountsContainer && r.mounts != mountsTarget {
			continue
		}
		n++
		for _, prefix := range []string{"", "/v1.41", "/v1.52"} {
			for _, name := range []string{"web", "a/b", id[:12]} {
				clean := prefix + strings.Replace(r.tmpl, "{name:.*}", name, 1)
				u, _ := url.Parse(clean)
				rc := g.classify(r.method, clean, u, http.Header{})
				if rc.deny != "" || rc.container != name {
					t.Errorf("%s %s: container %q, refusal %q", r.method, clean, rc.container, rc.deny)
					continue
				}
				want := prefix + strings.Replace(r.tmpl, "{name:.*}", id, 1)
				if got := rc.pinned(clean, id); got != want {
					t.Errorf("%s %s: pinned %s, want %s", r.method, clean, got, want)
				}
			}
		}
	}
	if n != 9 {
		t.Errorf("%d routes into a container, want 9 (start, restart, exec, attach, attach/ws, rename, archive GET, HEAD, PUT)", n)
	}
}

// TestGuardCheckTargetSystemPaths: an existing container whose /proc is
// unmasked or writable (MaskedPaths or ReadonlyPaths without dockerd's
// defaults, as `docker run --security-opt systempaths=unconfined` makes
// it: the CLI drops the option from SecurityOpt) lets root in it write
// /proc/sys/kernel/core_pattern, so exec into it reaches the host. No
// knob allows it, as at create. The lists come from inspect, where
// dockerd stores its defaults, or null (the defaults too).
func TestGuardCheckTargetSystemPaths(t *testing.T) {
	defaults := `"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi","/sys/firmware"],` +
		`"ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]`
	loose := compiledGuard(t, Guard{AllowPrivileged: true, AllowHostNetwork: true, AllowHostPID: true, AllowHostIPC: true,
		AllowHostUTS: true, AllowHostUserns: true, AllowCapAdd: true, AllowDevices: true, AllowSecurityOpt: true, AllowContainerNamespaces: true})
	for _, tc := range []struct {
		name, hc, want string
	}{
		{"dockerd's defaults", defaults, ""},
		{"null", `"MaskedPaths":null,"ReadonlyPaths":null`, ""},
		{"more than the defaults", strings.Replace(defaults, `"/proc/bus",`, `"/proc/bus","/proc/extra",`, 1), ""},
		{"systempaths=unconfined", `"MaskedPaths":[],"ReadonlyPaths":[]`, "ReadonlyPaths"},
		{"/proc/sys writable", strings.Replace(defaults, `"/proc/sys",`, "", 1), `"/proc/sys"`},
		{"/proc/kcore unmasked", strings.Replace(defaults, `"/proc/kcore",`, "", 1), `"/proc/kcore"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ct dockerContainer
			if err := json.Unmarshal([]byte(`{"Id":"abc","Name":"/admin","HostConfig":{`+tc.hc+`}}`), &ct); err != nil {
				t.Fatal(err)
			}
			got := loose.checkTarget(ct)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
