package proxy

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The route classification: under a guarded rule every request is matched
// against dockerd's own route table (the union of API 1.41 to 1.52, in
// dockerd's registration order, so that a path matches the route dockerd
// would serve it with) and is allowed as is, allowed after a body check,
// allowed with limited query parameters, or refused unless the guard's
// allow_endpoints names it. A route the table does not know is refused.

// routeClass is what the guard does with a route.
type routeClass int

const (
	routeAllow   routeClass = iota // allowed as is
	routeBody                      // allowed once its body passes checkBody
	routeQuery                     // allowed with limited query parameters
	routeRefused                   // refused unless allow_endpoints names it
)

// mountCheck is the bind confinement a route needs.
type mountCheck int

const (
	mountsNone      mountCheck = iota
	mountsBody                 // the host paths of the body (create, volume create)
	mountsContainer            // the container in the path, its mounts against every other's (start, restart)
	mountsTarget               // the container in the path, its mounts and host settings (exec, attach, archive)
	mountsExec                 // the exec instance in the path, and its container as mountsTarget (exec start)
)

// lockScope is how long a request holds the Server's guard mutex.
type lockScope int

const (
	lockNone   lockScope = iota
	lockCheck            // during the bind confinement
	lockAnswer           // from the bind confinement until dockerd has answered
)

// guardRoute is one of dockerd's routes.
type guardRoute struct {
	method string // "" for any method (the debug routes of old dockerd)
	tmpl   string // dockerd's path template, such as /containers/{name:.*}/start
	re     *regexp.Regexp
	class  routeClass
	kind   bodyKind
	query  func(q url.Values) string // routeQuery: the refusal, or ""
	mounts mountCheck
	lock   lockScope
	why    string // routeRefused: why the guard refuses it
}

const (
	whyPlugin     = "plugins run privileged code on the host"
	whySwarm      = "swarm services, nodes, secrets and configs create tasks and cluster state outside the guard's checks"
	whySession    = "BuildKit sessions run builds outside the guard's checks"
	whyCheckpoint = "checkpoints read and write host directories (dir, checkpoint-dir)"
	whyDebug      = "dockerd's debug endpoints expose the daemon's internals"
	whyCopy       = "the copy endpoint was removed in API 1.24"
	whyVolumePut  = "cluster volume updates belong to swarm"
)

func allow(method, tmpl string) guardRoute { return guardRoute{method: method, tmpl: tmpl} }

// target is a route into an existing container: its mounts and host
// settings are checked, since the container may be someone else's.
func target(method, tmpl string) guardRoute {
	return guardRoute{method: method, tmpl: tmpl, mounts: mountsTarget}
}

func body(method, tmpl string, kind bodyKind, m mountCheck) guardRoute {
	return guardRoute{method: method, tmpl: tmpl, class: routeBody, kind: kind, mounts: m}
}

func limited(method, tmpl string, q func(url.Values) string) guardRoute {
	return guardRoute{method: method, tmpl: tmpl, class: routeQuery, query: q}
}

func refused(method, tmpl, why string) guardRoute {
	return guardRoute{method: method, tmpl: tmpl, class: routeRefused, why: why}
}

// guardRoutes is dockerd's route table (daemon/server/router/*, and
// api/server/router/* before it) in registration order: dockerd serves a
// request with the first route whose method and path match. It is
// compiled on first use: a tlsdock that never guards a request (every
// command but the proxy's) does not build it.
var guardRoutes = sync.OnceValue(func() []guardRoute {
	return compileRoutes([]guardRoute{
		// checkpoint (before container: it masks DELETE /containers/{name:.*})
		refused("GET", "/containers/{name:.*}/checkpoints", whyCheckpoint),
		refused("POST", "/containers/{name:.*}/checkpoints", whyCheckpoint),
		refused("DELETE", "/containers/{name}/checkpoints/{checkpoint}", whyCheckpoint),
		// container
		target("HEAD", "/containers/{name:.*}/archive"),
		allow("GET", "/containers/json"),
		allow("GET", "/containers/{name:.*}/export"),
		allow("GET", "/containers/{name:.*}/changes"),
		allow("GET", "/containers/{name:.*}/json"),
		allow("GET", "/containers/{name:.*}/top"),
		allow("GET", "/containers/{name:.*}/logs"),
		allow("GET", "/containers/{name:.*}/stats"),
		target("GET", "/containers/{name:.*}/attach/ws"),
		allow("GET", "/exec/{id:.*}/json"),
		target("GET", "/containers/{name:.*}/archive"),
		{method: "POST", tmpl: "/containers/create", class: routeBody, kind: bodyCreate, mounts: mountsBody, lock: lockAnswer},
		allow("POST", "/containers/{name:.*}/kill"),
		allow("POST", "/containers/{name:.*}/pause"),
		allow("POST", "/containers/{name:.*}/unpause"),
		// restart waits up to its ?t= for the container to stop: it holds the
		// mutex only for its check.
		{method: "POST", tmpl: "/containers/{name:.*}/restart", mounts: mountsContainer, lock: lockCheck},
		{method: "POST", tmpl: "/containers/{name:.*}/start", class: routeQuery, kind: bodyStart, query: startQuery, mounts: mountsContainer, lock: lockAnswer},
		allow("POST", "/containers/{name:.*}/stop"),
		allow("POST", "/containers/{name:.*}/wait"),
		allow("POST", "/containers/{name:.*}/resize"),
		target("POST", "/containers/{name:.*}/attach"),
		refused("POST", "/containers/{name:.*}/copy", whyCopy),
		body("POST", "/containers/{name:.*}/exec", bodyExec, mountsTarget),
		// exec start: the instance may be someone else's (an administrator's
		// docker exec into a privileged container, whose ID /events shows).
		{method: "POST", tmpl: "/exec/{name:.*}/start", mounts: mountsExec},
		allow("POST", "/exec/{name:.*}/resize"),
		// rename: a guarded client cannot rename a container it could not
		// exec into (an administrator's, whose name their tooling trusts).
		target("POST", "/containers/{name:.*}/rename"),
		body("POST", "/containers/{name:.*}/update", bodyUpdate, mountsNone),
		allow("POST", "/containers/prune"),
		allow("POST", "/commit"),
		target("PUT", "/containers/{name:.*}/archive"),
		allow("DELETE", "/containers/{name:.*}"),
		// image
		allow("GET", "/images/json"),
		allow("GET", "/images/search"),
		allow("GET", "/images/get"),
		allow("GET", "/images/{name:.*}/get"),
		allow("GET", "/images/{name:.*}/history"),
		allow("GET", "/images/{name:.*}/json"),
		allow("GET", "/images/{name:.*}/attestations"),
		allow("POST", "/images/load"),
		limited("POST", "/images/create", imageCreateQuery),
		allow("POST", "/images/{name:.*}/push"),
		allow("POST", "/images/{name:.*}/tag"),
		allow("POST", "/images/prune"),
		allow("DELETE", "/images/{name:.*}"),
		// system
		allow("OPTIONS", "/{anyroute:.*}"),
		allow("GET", "/_ping"),
		allow("HEAD", "/_ping"),
		allow("GET", "/events"),
		allow("GET", "/info"),
		allow("GET", "/version"),
		allow("GET", "/system/df"),
		allow("POST", "/auth"),
		// volume
		allow("GET", "/volumes"),
		allow("GET", "/volumes/{name:.*}"),
		body("POST", "/volumes/create", bodyVolume, mountsBody),
		allow("POST", "/volumes/prune"),
		refused("PUT", "/volumes/{name:.*}", whyVolumePut),
		allow("DELETE", "/volumes/{name:.*}"),
		// build
		limited("POST", "/build", buildQuery),
		allow("POST", "/build/prune"),
		allow("POST", "/build/cancel"),
		// session
		refused("POST", "/session", whySession),
		// swarm
		refused("POST", "/swarm/init", whySwarm),
		refused("POST", "/swarm/join", whySwarm),
		refused("POST", "/swarm/leave", whySwarm),
		refused("GET", "/swarm", whySwarm),
		refused("GET", "/swarm/unlockkey", whySwarm),
		refused("POST", "/swarm/update", whySwarm),
		refused("POST", "/swarm/unlock", whySwarm),
		allow("GET", "/services"),
		allow("GET", "/services/{id}"),
		refused("POST", "/services/create", whySwarm),
		refused("POST", "/services/{id}/update", whySwarm),
		refused("DELETE", "/services/{id}", whySwarm),
		allow("GET", "/services/{id}/logs"),
		allow("GET", "/nodes"),
		allow("GET", "/nodes/{id}"),
		refused("DELETE", "/nodes/{id}", whySwarm),
		refused("POST", "/nodes/{id}/update", whySwarm),
		allow("GET", "/tasks"),
		allow("GET", "/tasks/{id}"),
		allow("GET", "/tasks/{id}/logs"),
		allow("GET", "/secrets"),
		refused("POST", "/secrets/create", whySwarm),
		refused("DELETE", "/secrets/{id}", whySwarm),
		allow("GET", "/secrets/{id}"),
		refused("POST", "/secrets/{id}/update", whySwarm),
		allow("GET", "/configs"),
		refused("POST", "/configs/create", whySwarm),
		refused("DELETE", "/configs/{id}", whySwarm),
		allow("GET", "/configs/{id}"),
		refused("POST", "/configs/{id}/update", whySwarm),
		// plugin
		allow("GET", "/plugins"),
		allow("GET", "/plugins/{name:.*}/json"),
		allow("GET", "/plugins/privileges"),
		refused("DELETE", "/plugins/{name:.*}", whyPlugin),
		refused("POST", "/plugins/{name:.*}/enable", whyPlugin),
		refused("POST", "/plugins/{name:.*}/disable", whyPlugin),
		refused("POST", "/plugins/pull", whyPlugin),
		refused("POST", "/plugins/{name:.*}/push", whyPlugin),
		refused("POST", "/plugins/{name:.*}/upgrade", whyPlugin),
		refused("POST", "/plugins/{name:.*}/set", whyPlugin),
		refused("POST", "/plugins/create", whyPlugin),
		// distribution
		allow("GET", "/distribution/{name:.*}/json"),
		// network
		allow("GET", "/networks"),
		allow("GET", "/networks/{id:.+}"),
		body("POST", "/networks/create", bodyNetworkCreate, mountsNone),
		body("POST", "/networks/{id:.*}/connect", bodyNetworkConnect, mountsNone),
		allow("POST", "/networks/{id:.*}/disconnect"),
		allow("POST", "/networks/prune"),
		allow("DELETE", "/networks/{id:.*}"),
		// debug (any method: dockerd 20.10 registers them without one)
		refused("", "/debug/{path:.*}", whyDebug),
		// grpc
		refused("POST", "/grpc", whySession),
	})
})

// compileRoutes turns dockerd's templates into anchored expressions:
// {name} is one segment, {name:re} is re (".*" crosses slashes).
func compileRoutes(rs []guardRoute) []guardRoute {
	for i := range rs {
		var b strings.Builder
		b.WriteString("^")
		t := rs[i].tmpl
		for t != "" {
			open := strings.IndexByte(t, '{')
			if open < 0 {
				b.WriteString(regexp.QuoteMeta(t))
				break
			}
			end := strings.IndexByte(t[open:], '}')
			if end < 0 {
				panic("proxy: route template " + rs[i].tmpl)
			}
			b.WriteString(regexp.QuoteMeta(t[:open]))
			v := t[open+1 : open+end]
			if _, re, ok := strings.Cut(v, ":"); ok {
				b.WriteString("(" + re + ")")
			} else {
				b.WriteString("([^/]+)")
			}
			t = t[open+end+1:]
		}
		b.WriteString("$")
		rs[i].re = regexp.MustCompile(b.String())
	}
	return rs
}

// findRoute returns the route dockerd serves method and the version-less
// clean path p with, and the value of its first path variable.
func findRoute(method, p string) (*guardRoute, string) {
	routes := guardRoutes()
	for i := range routes {
		r := &routes[i]
		if r.method != "" && r.method != method {
			continue
		}
		if m := r.re.FindStringSubmatch(p); m != nil {
			v := ""
			if len(m) > 1 {
				v = m[1]
			}
			return r, v
		}
	}
	return nil, ""
}

// routeCheck is the route classification of one request.
type routeCheck struct {
	kind      bodyKind   // the body to read and check; bodyNone: none
	mounts    mountCheck // the bind confinement to run
	container string     // mountsContainer, mountsTarget: the container in the path
	at        [2]int     // where container is in the clean path (with its version prefix)
	lock      lockScope
	deny      string // the refusal reason, or ""
}

// pinned returns the clean path with the container replaced by id, the
// full ID of the container the guard checked: dockerd looks a full ID up
// before any name, so a rename between the check and dockerd's handling
// of the request cannot send it to another container.
func (rc routeCheck) pinned(clean, id string) string {
	return clean[:rc.at[0]] + id + clean[rc.at[1]:]
}

// fullID reports whether id is a container ID as dockerd writes it: 64
// lowercase hex digits.
func fullID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

const allowHint = " (a guard's allow_endpoints can allow it)"

// classify decides a request under the guard from its method, clean path
// (with its version prefix), query and header.
func (g *Guard) classify(method, clean string, u *url.URL, h http.Header) routeCheck {
	v, rest := SplitVersion(clean)
	if v != "" && versionLess(v, g.minVersion) {
		return routeCheck{deny: fmt.Sprintf("API version %s is older than this guard's minimum %s: use /v%s or newer, or no version prefix (DOCKER_API_VERSION=%s)", v, g.minVersion, g.minVersion, g.minVersion)}
	}
	// dockerd reads its parameters with ParseForm, which also takes them
	// from a form-encoded body, and old Go versions split a query at ";":
	// either would let a parameter past the query the guard reads.
	if strings.Contains(u.RawQuery, ";") {
		return routeCheck{deny: "a \";\" in the query string is not allowed"}
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return routeCheck{deny: fmt.Sprintf("the query string does not parse: %v", err)}
	}
	for _, ct := range h.Values("Content-Type") {
		mt, _, _ := mime.ParseMediaType(ct)
		if low := strings.ToLower(ct); strings.Contains(low, "form") || strings.Contains(mt, "form") {
			return routeCheck{deny: fmt.Sprintf("Content-Type %q is not allowed: dockerd would read parameters from the body", ct)}
		}
	}
	named := g.allowsEndpoint(rest)
	r, name := findRoute(method, rest)
	if r == nil {
		if named {
			return routeCheck{}
		}
		return routeCheck{deny: fmt.Sprintf("%s %s is not a Docker Engine API route this guard knows%s", method, rest, allowHint)}
	}
	rc := routeCheck{kind: r.kind, mounts: r.mounts, lock: r.lock}
	if r.mounts == mountsExec {
		rc.container = name // the exec instance: dockerd finds it by its full ID only
	}
	if r.mounts == mountsContainer || r.mounts == mountsTarget {
		rc.container = name
		m := r.re.FindStringSubmatchIndex(rest)
		off := len(clean) - len(rest)
		rc.at = [2]int{off + m[2], off + m[3]}
	}
	switch r.class {
	case routeRefused:
		if !named {
			rc.deny = fmt.Sprintf("%s %s is refused: %s%s", method, rest, r.why, allowHint)
		}
	case routeQuery:
		if !named {
			if msg := r.query(u.Query()); msg != "" {
				rc.deny = fmt.Sprintf("%s %s: %s%s", method, rest, msg, allowHint)
			}
		}
	}
	return rc
}

func (g *Guard) allowsEndpoint(p string) bool {
	for _, pt := range g.endpoints {
		if pt.match(p) {
			return true
		}
	}
	return false
}

// queryRule limits the values of one query parameter: the refusal of a
// value, or "".
type queryRule func(v string) string

func anyValue(string) string { return "" }

// only allows the listed values.
func only(vals ...string) queryRule {
	return func(v string) string {
		for _, ok := range vals {
			if v == ok {
				return ""
			}
		}
		return fmt.Sprintf("only %q are allowed", vals)
	}
}

// empty refuses a parameter that is set to something (clients send some
// of them empty).
func empty(why string) queryRule {
	return func(v string) string {
		if v != "" {
			return why
		}
		return ""
	}
}

// checkQuery checks every value of every parameter against rules; a
// parameter rules does not know is refused.
func checkQuery(q url.Values, rules map[string]queryRule) string {
	for k, vs := range q {
		rule, ok := rules[k]
		if !ok {
			return fmt.Sprintf("query parameter %q is not one the guard knows", k)
		}
		for _, v := range vs {
			if msg := rule(v); msg != "" {
				return fmt.Sprintf("query parameter %s=%q: %s", k, v, msg)
			}
		}
	}
	return ""
}

// buildRules are the query parameters of POST /build (API 1.41 to 1.52,
// the classic builder).
var buildRules = map[string]queryRule{
	"dockerfile": anyValue, "t": anyValue, "extrahosts": anyValue, "q": anyValue,
	"nocache": anyValue, "cachefrom": anyValue, "pull": anyValue, "rm": anyValue,
	"forcerm": anyValue, "memory": anyValue, "memswap": anyValue, "cpushares": anyValue,
	"cpusetcpus": anyValue, "cpusetmems": anyValue, "cpuperiod": anyValue, "cpuquota": anyValue,
	"buildargs": anyValue, "shmsize": anyValue, "squash": anyValue, "labels": anyValue,
	"platform": anyValue, "target": anyValue, "buildid": anyValue, "ulimits": anyValue,
	"networkmode":  only("", "default", "bridge", "none"),
	"isolation":    only("", "default"),
	"version":      only("", "1"),
	"remote":       empty("dockerd would fetch the build context from this URL or repository itself"),
	"cgroupparent": empty("build containers would be placed in a host cgroup of the client's choice"),
	"outputs":      empty("build outputs are written by BuildKit"),
	"session":      empty("a build session needs /session"),
	"securityopt":  empty("build security options are not allowed"),
}

func buildQuery(q url.Values) string {
	if msg := checkQuery(q, buildRules); msg != "" {
		if vs := q["version"]; len(vs) > 0 && vs[0] == "2" {
			msg += " (BuildKit needs /session: build with DOCKER_BUILDKIT=0)"
		}
		return msg
	}
	return ""
}

// imageCreateRules are the query parameters of POST /images/create.
var imageCreateRules = map[string]queryRule{
	"fromImage": anyValue, "repo": anyValue, "tag": anyValue, "message": anyValue,
	"changes": anyValue, "platform": anyValue,
	"fromSrc": only("-"), // anything else is a URL dockerd fetches from the host
}

func imageCreateQuery(q url.Values) string { return checkQuery(q, imageCreateRules) }

// startRules are the query parameters of POST /containers/{id}/start.
var startRules = map[string]queryRule{
	"checkpoint":     empty("restoring a checkpoint is not allowed"),
	"checkpoint-dir": empty("a checkpoint directory is a host path"),
}

func startQuery(q url.Values) string { return checkQuery(q, startRules) }

// versionLess compares API versions as dockerd does: dot-separated
// numbers, a missing or malformed part counting as 0.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// guarded is the guard's outcome for one request.
type guarded struct {
	status int // not 0: refuse with this status and msg
	msg    string
	body   []byte // the body read for the check, forwarded as read (nil: none)
	unlock func() // not nil: call after the answer (create, start)
	path   string // not "": the clean path to forward, the checked container named by its ID
}

// guardRequest runs the guard of rule d on a request: the route
// classification, the body check and the bind confinement. A request
// into an existing container is forwarded with the full ID of the
// container it checked in place of the name the client wrote. Guarded
// create and start hold the Server's guard mutex from the check until
// dockerd has answered (restart only during its check), so two guarded
// creates cannot each miss the other's container.
func (c *conn) guardRequest(req *http.Request, clean string, d Decision) guarded {
	g := d.Guard
	deny := func(reason string) guarded {
		return guarded{status: http.StatusForbidden, msg: fmt.Sprintf("tlsdock: %s %s denied for user %q by policy rule %q: guard %q: %s",
			req.Method, clean, c.cl.id.User, d.Rule, g.Name(), reason)}
	}
	rc := g.classify(req.Method, clean, req.URL, req.Header)
	if rc.deny != "" {
		return deny(rc.deny)
	}
	var (
		out    guarded
		mounts []hostMount
		vols   []volumeUse
	)
	if rc.kind != bodyNone {
		body, status, msg := c.readGuarded(req)
		if status != 0 {
			return guarded{status: status, msg: msg}
		}
		if body == nil {
			body = []byte{}
		}
		out.body = body
		ms, vs, msg := g.checkBody(rc.kind, body)
		if msg != "" {
			return deny(msg)
		}
		mounts = ms
		for _, v := range vs {
			vols = append(vols, volumeUse{name: v, rw: true})
		}
	}
	if rc.mounts == mountsNone {
		return out
	}
	// The mutex makes two guarded creates see each other's container.
	s := c.s
	lock := rc.lock != lockNone
	if lock {
		s.guards.mu.Lock()
	}
	released := false
	release := func() {
		if lock && !released {
			released = true
			s.guards.mu.Unlock()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultGuardStateTimeout)
	defer cancel()
	cf := &confinement{g: g, state: s.dockerState(), resolve: s.o.ResolvePath, lstat: os.Lstat}
	if rc.mounts == mountsExec {
		ex, err := cf.state.exec(ctx, rc.container)
		if err != nil {
			release()
			if errors.Is(err, errNoSuchExec) {
				return guarded{status: http.StatusNotFound, msg: fmt.Sprintf("tlsdock: no such exec instance: %s", rc.container)}
			}
			return guarded{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("tlsdock: %s %s: guard %q cannot check the exec instance, so it refuses: %v", req.Method, clean, g.Name(), errDockerState{err})}
		}
		if ex.ProcessConfig.Privileged && !g.AllowPrivileged {
			release()
			return deny(fmt.Sprintf("exec instance %.12s is privileged, which this guard does not allow (allow_privileged)", rc.container))
		}
		if ex.ContainerID == "" {
			release()
			return guarded{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("tlsdock: %s %s: guard %q refuses: dockerd's answer for exec instance %q names no container", req.Method, clean, g.Name(), rc.container)}
		}
		ct, err := cf.state.container(ctx, ex.ContainerID)
		if err != nil {
			release()
			if errors.Is(err, errNoSuchContainer) {
				return guarded{status: http.StatusNotFound, msg: fmt.Sprintf("tlsdock: no such container: %s", ex.ContainerID)}
			}
			return guarded{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("tlsdock: %s %s: guard %q cannot check the exec instance's container, so it refuses: %v", req.Method, clean, g.Name(), errDockerState{err})}
		}
		if msg := g.checkTarget(ct); msg != "" {
			release()
			return deny(msg)
		}
		cf.self = ct.ID
		mounts, vols = containerMounts(ct)
	}
	if rc.mounts == mountsContainer || rc.mounts == mountsTarget {
		ct, err := cf.state.container(ctx, rc.container)
		if err != nil {
			release()
			if errors.Is(err, errNoSuchContainer) {
				return guarded{status: http.StatusNotFound, msg: fmt.Sprintf("tlsdock: no such container: %s", rc.container)}
			}
			return guarded{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("tlsdock: %s %s: guard %q cannot check the container's mounts, so it refuses: %v", req.Method, clean, g.Name(), errDockerState{err})}
		}
		if !fullID(ct.ID) {
			release()
			return guarded{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("tlsdock: %s %s: guard %q refuses: dockerd's answer for container %q has no full container ID (%q) to forward the request with", req.Method, clean, g.Name(), rc.container, ct.ID)}
		}
		if msg := g.checkTarget(ct); msg != "" {
			release()
			return deny(msg)
		}
		cf.self = ct.ID
		out.path = rc.pinned(clean, ct.ID)
		mounts, vols = containerMounts(ct)
	}
	msg, err := cf.check(ctx, mounts, vols, lock)
	if err != nil {
		release()
		return guarded{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("tlsdock: %s %s: guard %q cannot check the mounts, so it refuses: %v", req.Method, clean, g.Name(), err)}
	}
	if msg != "" {
		release()
		return deny(msg)
	}
	if rc.lock == lockAnswer {
		out.unlock = release
	} else {
		release()
	}
	return out
}

// containerMounts returns what dockerd mounts when it starts a container.
func containerMounts(ct dockerContainer) ([]hostMount, []volumeUse) {
	var ms []hostMount
	var vs []volumeUse
	for _, m := range ct.Mounts {
		switch strings.ToLower(m.Type) {
		case "bind":
			ms = append(ms, hostMount{Field: fmt.Sprintf("the bind mount on %q", m.Destination), Source: m.Source, ReadOnly: !m.RW})
		case "volume":
			if m.Name != "" {
				vs = append(vs, volumeUse{name: m.Name, rw: m.RW})
			}
		}
	}
	return ms, vs
}

// defaultMaskedPaths and defaultReadonlyPaths are dockerd 20.10's
// defaults (oci/defaults.go), which every newer dockerd keeps: an existing
// container's lists must hold them.
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// checkTarget refuses a request into an existing container (exec, attach,
// archive, start) whose host settings this guard would not allow at
// create: the container may be someone else's, such as an administrator's
// privileged one, and running code in it reaches the host.
func (g *Guard) checkTarget(ct dockerContainer) string {
	h := ct.HostConfig
	if h == nil {
		return ""
	}
	what := "container " + ct.label()
	ns := func(field, mode string, allowHost bool, knob string) string {
		switch {
		case mode == "host" && !allowHost:
			return fmt.Sprintf("%s has %s %q, which this guard does not allow (%s)", what, field, mode, knob)
		case strings.HasPrefix(mode, "container:") && !g.AllowContainerNamespaces:
			return fmt.Sprintf("%s has %s %q, which this guard does not allow (allow_container_namespaces)", what, field, mode)
		}
		return ""
	}
	for _, m := range []string{
		ns("NetworkMode", h.NetworkMode, g.AllowHostNetwork, "allow_host_network"),
		ns("PidMode", h.PidMode, g.AllowHostPID, "allow_host_pid"),
		ns("IpcMode", h.IpcMode, g.AllowHostIPC, "allow_host_ipc"),
		ns("UTSMode", h.UTSMode, g.AllowHostUTS, "allow_host_uts"),
		ns("UsernsMode", h.UsernsMode, g.AllowHostUserns, "allow_host_userns"),
	} {
		if m != "" {
			return m
		}
	}
	if h.Privileged && !g.AllowPrivileged {
		return fmt.Sprintf("%s is privileged, which this guard does not allow (allow_privileged)", what)
	}
	if !g.AllowCapAdd {
		for _, c := range h.CapAdd {
			if n := strings.TrimPrefix(strings.ToUpper(c), "CAP_"); n != "NET_BIND_SERVICE" {
				return fmt.Sprintf("%s has CapAdd %q, which this guard does not allow (allow_cap_add)", what, c)
			}
		}
	}
	if !g.AllowDevices && len(h.Devices)+len(h.DeviceCgroupRules)+len(h.DeviceRequests) > 0 {
		return fmt.Sprintf("%s has host devices, which this guard does not allow (allow_devices)", what)
	}
	// An unmasked or writable /proc (systempaths=unconfined, which the
	// docker CLI sends as empty lists and drops from SecurityOpt) lets
	// root in the container write /proc/sys/kernel/core_pattern. No knob
	// allows it, as at create.
	for _, l := range []struct {
		field    string
		got      []string
		defaults []string
	}{{"ReadonlyPaths", h.ReadonlyPaths, defaultReadonlyPaths}, {"MaskedPaths", h.MaskedPaths, defaultMaskedPaths}} {
		if l.got == nil {
			continue // dockerd applies its defaults
		}
		for _, p := range l.defaults {
			if !slices.Contains(l.got, p) {
				return fmt.Sprintf("%s has %s without %q (dockerd's default), which this guard does not allow", what, l.field, p)
			}
		}
	}
	if !g.AllowSecurityOpt {
		for _, o := range h.SecurityOpt {
			// writable-cgroups (dockerd 28) mounts the cgroup filesystem
			// read-write, which the create model refuses too.
			if l := strings.ToLower(o); strings.Contains(l, "unconfined") || strings.Contains(l, "disable") || strings.Contains(l, "writable-cgroups") {
				return fmt.Sprintf("%s has SecurityOpt %q, which this guard does not allow (allow_security_opt)", what, o)
			}
		}
	}
	return ""
}
