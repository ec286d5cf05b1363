package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Guard is a named set of checks that an allow rule applies: the route
// classification (guardroute.go), the body model (guardbody.go) and the
// bind confinement (below). Everything that can reach the host is denied
// unless the guard allows it.
type Guard struct {
	// AllowPrivileged allows HostConfig.Privileged and privileged exec.
	AllowPrivileged bool `json:"allow_privileged,omitempty"`
	// AllowHostNetwork allows NetworkMode "host".
	AllowHostNetwork bool `json:"allow_host_network,omitempty"`
	// AllowHostPID allows PidMode "host".
	AllowHostPID bool `json:"allow_host_pid,omitempty"`
	// AllowHostIPC allows IpcMode "host".
	AllowHostIPC bool `json:"allow_host_ipc,omitempty"`
	// AllowHostUserns allows UsernsMode "host" (only matters when dockerd
	// runs with user namespace remapping).
	AllowHostUserns bool `json:"allow_host_userns,omitempty"`
	// AllowCapAdd allows a non-empty CapAdd.
	AllowCapAdd bool `json:"allow_cap_add,omitempty"`
	// AllowDevices allows Devices, DeviceCgroupRules and DeviceRequests.
	AllowDevices bool `json:"allow_devices,omitempty"`
	// AllowSecurityOpt allows SecurityOpt entries, which can switch off
	// seccomp, AppArmor or SELinux confinement or load a custom profile;
	// "no-new-privileges" is always allowed.
	AllowSecurityOpt bool `json:"allow_security_opt,omitempty"`
	// AllowVolumesFrom allows VolumesFrom, which can inherit another
	// container's bind mounts.
	AllowVolumesFrom bool `json:"allow_volumes_from,omitempty"`
	// BindRoots are host directories under which bind mounts are allowed
	// (HostConfig.Binds, HostConfig.Mounts of type bind, and local volumes
	// with o=bind). Empty: no bind mount at all.
	BindRoots []string `json:"bind_roots,omitempty"`
	// AllowEndpoints are path patterns, written as in rules, of routes
	// the guard refuses (plugins, swarm, BuildKit sessions, checkpoints,
	// dockerd's debug endpoints, routes it does not know) or whose query
	// parameters it limits (POST /build, POST /images/create, container
	// start). A request to a matching path passes the route check; its
	// body is still checked and its binds still confined.
	AllowEndpoints []string `json:"allow_endpoints,omitempty"`
	// MinAPIVersion is the oldest API version prefix a client may use
	// (default DefaultMinAPIVersion, at least 1.24): older versions bring
	// back request shapes, such as start with a HostConfig body, that
	// the guard does not model. A request without a prefix gets dockerd's
	// newest version.
	MinAPIVersion string `json:"min_api_version,omitempty"`

	// --- knobs of the body model (guardbody.go) ---
	// AllowHostUTS allows UTSMode "host".
	AllowHostUTS bool `json:"allow_host_uts,omitempty"`
	// AllowContainerNamespaces allows joining another container's
	// namespaces: "container:<id>" as NetworkMode, PidMode or IpcMode.
	AllowContainerNamespaces bool `json:"allow_container_namespaces,omitempty"`
	// --- end of the body model's knobs ---

	name       string
	endpoints  []pattern
	minVersion string
}

// DefaultMinAPIVersion is a guard's default min_api_version (dockerd 20.10).
const DefaultMinAPIVersion = "1.41"

// lowestAPIVersion is the oldest min_api_version a guard accepts: below
// it, dockerd applies a HostConfig sent with start.
const lowestAPIVersion = "1.24"

// Name is the guard's name in the policy file.
func (g *Guard) Name() string { return g.name }

func (g *Guard) compile() error {
	for i, r := range g.BindRoots {
		if !path.IsAbs(r) {
			return fmt.Errorf("bind root %q is not an absolute path", r)
		}
		g.BindRoots[i] = path.Clean(r)
	}
	for _, s := range g.AllowEndpoints {
		pt, err := compilePattern(s)
		if err != nil {
			return fmt.Errorf("allow_endpoints: %v", err)
		}
		g.endpoints = append(g.endpoints, pt)
	}
	g.minVersion = g.MinAPIVersion
	if g.minVersion == "" {
		g.minVersion = DefaultMinAPIVersion
	}
	if !validAPIVersion(g.minVersion) {
		return fmt.Errorf("min_api_version %q: write an API version such as %q", g.MinAPIVersion, DefaultMinAPIVersion)
	}
	if versionLess(g.minVersion, lowestAPIVersion) {
		return fmt.Errorf("min_api_version %q: below %s dockerd applies a HostConfig sent with start, which the guard does not check; use %s or newer", g.MinAPIVersion, lowestAPIVersion, lowestAPIVersion)
	}
	return nil
}

// validAPIVersion accepts numbers separated by dots, such as 1.41.
func validAPIVersion(v string) bool {
	for _, p := range strings.Split(v, ".") {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// pathResolver resolves symlinks of an existing host path.
type pathResolver func(string) (string, error)

// resolvedRoots returns the roots with their symlinks resolved.
func (g *Guard) resolvedRoots(resolve pathResolver) []string {
	out := make([]string, 0, len(g.BindRoots))
	for _, r := range g.BindRoots {
		if real, err := resolveExisting(r, resolve); err == nil {
			out = append(out, real)
		}
	}
	return out
}

// resolveExisting resolves the symlinks of the longest existing prefix of p
// and appends the rest: dockerd creates a missing bind source with MkdirAll,
// which follows the symlinks of the existing part.
func resolveExisting(p string, resolve pathResolver) (string, error) {
	rest := ""
	for cur := p; ; {
		real, err := resolve(cur)
		if err == nil {
			return path.Join(real, rest), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if cur == "/" {
			return "", err
		}
		rest = path.Join(path.Base(cur), rest)
		cur = path.Dir(cur)
	}
}

func underRoots(p string, roots []string) bool {
	for _, r := range roots {
		if r == "/" || p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// defaultResolver resolves symlinks on this host.
func defaultResolver(p string) (string, error) {
	return filepath.EvalSymlinks(p)
}

// The bind confinement. dockerd resolves a bind source when it mounts it,
// at every container start, not when the container is created: mount(2)
// follows symlinks. So a host path must lie under bind_roots as written,
// have no symlink among its existing components below the resolved root,
// and no container may be able to swap one of its components: no
// container has a writable mount of a strict ancestor of it inside the
// roots, and a writable new mount has no mount of another container below
// it.

// lstatFunc is os.Lstat, or a fake.
type lstatFunc func(string) (fs.FileInfo, error)

// checkSource checks one host path a request would mount.
func (g *Guard) checkSource(src string, resolve pathResolver, lstat lstatFunc) string {
	if len(g.BindRoots) == 0 {
		return "bind mounts are not allowed (the guard has no bind_roots)"
	}
	if !path.IsAbs(src) {
		return "the source is not an absolute path"
	}
	clean := path.Clean(src)
	first := ""
	for _, r := range g.BindRoots {
		if r != "/" && clean != r && !strings.HasPrefix(clean, r+"/") {
			continue
		}
		if r == "/" {
			return ""
		}
		// The local driver hands a device to mount(2) as written, and
		// the kernel resolves ".." after the symlink before it: a/..
		// with a -> /etc is /, not the clean path checked below.
		if slices.Contains(strings.Split(src, "/"), "..") {
			return `the path has a ".." component, which mount(2) resolves after following the symlinks before it: write it without ".."`
		}
		msg := checkBelowRoot(r, strings.TrimPrefix(clean, r), resolve, lstat)
		if msg == "" {
			return ""
		}
		if first == "" {
			first = msg
		}
	}
	if first != "" {
		return first
	}
	return fmt.Sprintf("outside the allowed roots %v", g.BindRoots)
}

// checkBelowRoot refuses a symlink among the existing components of rel
// below root (resolved); a missing tail is fine, dockerd creates it.
func checkBelowRoot(root, rel string, resolve pathResolver, lstat lstatFunc) string {
	rr, err := resolveExisting(root, resolve)
	if err != nil {
		return fmt.Sprintf("cannot resolve the bind root %q: %v", root, err)
	}
	cur := rr
	for _, c := range strings.Split(strings.TrimPrefix(rel, "/"), "/") {
		if c == "" {
			continue
		}
		cur = path.Join(cur, c)
		fi, err := lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		if err != nil {
			return fmt.Sprintf("cannot check %q for symlinks: %v", cur, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Sprintf("%q is a symlink, which dockerd would follow when it mounts", cur)
		}
	}
	return ""
}

// mountRef is a host path that is or would be mounted into a container.
type mountRef struct {
	what  string   // for refusals: a field of the request, or a container
	id    string   // the container's ID ("" for the request)
	paths []string // the clean path, and its resolution when it differs
	rw    bool
}

// volumeUse is a named volume a container mounts.
type volumeUse struct {
	name string
	rw   bool
}

// confinement checks the host paths of one guarded request against the
// roots and the mounts of every container on the host.
type confinement struct {
	g       *Guard
	state   dockerState
	resolve pathResolver
	lstat   lstatFunc
	self    string // the container being started: its current mounts are not "other"
}

// errDockerState wraps a failure to ask dockerd: the request is refused.
type errDockerState struct{ err error }

func (e errDockerState) Error() string { return "asking dockerd for the mounts: " + e.err.Error() }
func (e errDockerState) Unwrap() error { return e.err }

// check returns the refusal of mounts and volumes, or "". An error means
// dockerd could not be asked, and the request is refused.
func (cf *confinement) check(ctx context.Context, mounts []hostMount, volumes []volumeUse, conflicts bool) (string, error) {
	if len(mounts) == 0 && len(volumes) == 0 {
		return "", nil
	}
	var news []mountRef
	for _, m := range mounts {
		if msg := cf.g.checkSource(m.Source, cf.resolve, cf.lstat); msg != "" {
			return fmt.Sprintf("%s %q: %s", m.Field, m.Source, msg), nil
		}
		news = append(news, cf.ref(m.Field, "", m.Source, !m.ReadOnly))
	}
	var vols map[string]dockerVolume
	if len(volumes) > 0 || conflicts {
		list, err := cf.state.volumes(ctx)
		if err != nil {
			return "", errDockerState{err}
		}
		vols = make(map[string]dockerVolume, len(list))
		for _, v := range list {
			vols[v.Name] = v
		}
	}
	for _, u := range volumes {
		v, ok := vols[u.name]
		if !ok {
			continue // dockerd creates it, from a checked body or with no options
		}
		ms, msg := cf.volumeMounts(v)
		if msg != "" {
			return fmt.Sprintf("volume %q: %s", u.name, msg), nil
		}
		for _, m := range ms {
			if msg := cf.g.checkSource(m, cf.resolve, cf.lstat); msg != "" {
				return fmt.Sprintf("volume %q (device %q): %s", u.name, m, msg), nil
			}
			news = append(news, cf.ref(fmt.Sprintf("volume %q", u.name), "", m, u.rw))
		}
	}
	if !conflicts || len(news) == 0 || slices.Contains(cf.g.BindRoots, "/") {
		return "", nil
	}
	cs, err := cf.state.containers(ctx)
	if err != nil {
		return "", errDockerState{err}
	}
	var others []mountRef
	for _, c := range cs {
		if c.ID == cf.self {
			continue
		}
		for _, m := range c.Mounts {
			for _, src := range existingSources(m, vols) {
				others = append(others, cf.ref("container "+c.label(), c.ID, src, m.RW))
			}
		}
	}
	return cf.conflict(news, others), nil
}

// volumeMounts returns the host paths an existing volume mounts, after
// its options pass the body model as if the volume were created now.
func (cf *confinement) volumeMounts(v dockerVolume) ([]string, string) {
	b, err := json.Marshal(struct {
		Name       string
		Driver     string
		DriverOpts map[string]string `json:",omitempty"`
	}{v.Name, v.Driver, v.Options})
	if err != nil {
		return nil, err.Error()
	}
	ms, _, deny := cf.g.checkBody(bodyVolume, b)
	if deny != "" {
		return nil, deny
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Source)
	}
	if dev, ok := bindDevice(v.Driver, v.Options); ok && !slices.Contains(out, dev) {
		out = append(out, dev)
	}
	return out, ""
}

// bindDevice returns the host directory a local volume with o=bind mounts.
func bindDevice(driver string, opts map[string]string) (string, bool) {
	if driver != "" && driver != "local" {
		return "", false
	}
	var o, device string
	for k, v := range opts {
		switch strings.ToLower(k) {
		case "o":
			o = v
		case "device":
			device = v
		}
	}
	for _, f := range strings.Split(o, ",") {
		if f = strings.TrimSpace(f); f == "bind" || f == "rbind" {
			return device, true
		}
	}
	return "", false
}

// existingSources returns the host paths of a mount dockerd reports.
func existingSources(m dockerMount, vols map[string]dockerVolume) []string {
	switch strings.ToLower(m.Type) {
	case "bind":
		if m.Source != "" {
			return []string{m.Source}
		}
	case "volume":
		if v, ok := vols[m.Name]; ok {
			if dev, ok := bindDevice(v.Driver, v.Options); ok && dev != "" {
				return []string{dev}
			}
		}
	}
	return nil
}

func (cf *confinement) ref(what, id, src string, rw bool) mountRef {
	clean := path.Clean(src)
	r := mountRef{what: what, id: id, paths: []string{clean}, rw: rw}
	if real, err := resolveExisting(clean, cf.resolve); err == nil && real != clean {
		r.paths = append(r.paths, real)
	}
	return r
}

// conflict refuses a new mount below a writable mount inside the roots
// (its owner could swap a component for a symlink), and a new writable
// mount above another mount (the new container could swap that one's).
func (cf *confinement) conflict(news, others []mountRef) string {
	roots := slices.Clone(cf.g.BindRoots)
	roots = append(roots, cf.g.resolvedRoots(cf.resolve)...)
	inRoots := func(r mountRef) bool {
		for _, p := range r.paths {
			if underRoots(p, roots) {
				return true
			}
		}
		return false
	}
	for i, s := range news {
		all := slices.Concat(news[:i], news[i+1:], others)
		for _, e := range all {
			if e.rw && strictAncestor(e, s) && inRoots(e) {
				return fmt.Sprintf("%s %q is below %s's writable mount of %q, which could replace a component of it with a symlink before dockerd mounts it",
					s.what, s.paths[0], e.what, e.paths[0])
			}
			if s.rw && strictAncestor(s, e) {
				return fmt.Sprintf("%s %q is writable and %s mounts %q below it: it could replace a component of that mount with a symlink",
					s.what, s.paths[0], e.what, e.paths[0])
			}
		}
	}
	return ""
}

// strictAncestor reports whether a path of a is a strict ancestor of a
// path of b.
func strictAncestor(a, b mountRef) bool {
	for _, x := range a.paths {
		for _, y := range b.paths {
			if x != y && (x == "/" || strings.HasPrefix(y, x+"/")) {
				return true
			}
		}
	}
	return false
}
