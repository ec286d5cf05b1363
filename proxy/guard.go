package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Guard is a named set of checks on the bodies of the requests that can give
// a container access to the host: POST /containers/create, POST
// /containers/{id}/exec and POST /volumes/create. Everything is denied unless
// the guard allows it.
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

	// --- knobs of the body model (guardbody.go) ---
	// AllowHostUTS allows UTSMode "host".
	AllowHostUTS bool `json:"allow_host_uts,omitempty"`
	// AllowContainerNamespaces allows joining another container's
	// namespaces: "container:<id>" as NetworkMode, PidMode or IpcMode.
	AllowContainerNamespaces bool `json:"allow_container_namespaces,omitempty"`
	// --- end of the body model's knobs ---

	name string
}

// Name is the guard's name in the policy file.
func (g *Guard) Name() string { return g.name }

func (g *Guard) compile() error {
	for i, r := range g.BindRoots {
		if !path.IsAbs(r) {
			return fmt.Errorf("bind root %q is not an absolute path", r)
		}
		g.BindRoots[i] = path.Clean(r)
	}
	return nil
}

// guardKind is a request whose body a guard inspects.
type guardKind int

const (
	notGuarded guardKind = iota
	guardCreate
	guardExec
	guardVolume
)

// guarded says which body check applies to a request; p is a clean path.
func guarded(method, p string) guardKind {
	if method != "POST" {
		return notGuarded
	}
	_, rest := SplitVersion(p)
	switch rest {
	case "/containers/create":
		return guardCreate
	case "/volumes/create":
		return guardVolume
	}
	if strings.HasPrefix(rest, "/containers/") && strings.HasSuffix(rest, "/exec") && len(rest) > len("/containers//exec") {
		return guardExec
	}
	return notGuarded
}

// createBody is the part of a container create body the guard reads. Field
// names match dockerd's types, and encoding/json matches them the way
// dockerd does (case-insensitively, last duplicate wins).
type createBody struct {
	HostConfig *hostConfig
}

type hostConfig struct {
	Privileged        bool
	NetworkMode       string
	PidMode           string
	IpcMode           string
	UsernsMode        string
	CapAdd            []string
	Devices           []json.RawMessage
	DeviceCgroupRules []string
	DeviceRequests    []json.RawMessage
	SecurityOpt       []string
	VolumesFrom       []string
	Binds             []string
	Mounts            []mount
}

type mount struct {
	Type          string
	Source        string
	VolumeOptions *struct {
		DriverConfig *struct {
			Name    string
			Options map[string]string
		}
	}
}

type execBody struct {
	Privileged bool
}

type volumeBody struct {
	Name       string
	Driver     string
	DriverOpts map[string]string
}

// pathResolver resolves symlinks of an existing host path.
type pathResolver func(string) (string, error)

// check returns why the guard refuses body, or "" when it allows it. The
// message names the guard and the offending field.
func (g *Guard) check(kind guardKind, body []byte, resolve pathResolver) string {
	deny := func(format string, a ...any) string {
		return fmt.Sprintf("guard %q: ", g.name) + fmt.Sprintf(format, a...)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return ""
	}
	switch kind {
	case guardExec:
		var b execBody
		if err := decodeFirst(body, &b); err != nil {
			return deny("cannot read the exec body: %v", err)
		}
		if b.Privileged && !g.AllowPrivileged {
			return deny("Privileged exec is not allowed")
		}
		return ""
	case guardVolume:
		var b volumeBody
		if err := decodeFirst(body, &b); err != nil {
			return deny("cannot read the volume body: %v", err)
		}
		if msg := g.checkVolumeOpts("DriverOpts", b.DriverOpts, resolve); msg != "" {
			return deny("%s", msg)
		}
		return ""
	case guardCreate:
	default:
		return ""
	}
	var b createBody
	if err := decodeFirst(body, &b); err != nil {
		return deny("cannot read the create body: %v", err)
	}
	h := b.HostConfig
	if h == nil {
		return ""
	}
	switch {
	case h.Privileged && !g.AllowPrivileged:
		return deny("HostConfig.Privileged is not allowed")
	case h.NetworkMode == "host" && !g.AllowHostNetwork:
		return deny("HostConfig.NetworkMode=host is not allowed")
	case h.PidMode == "host" && !g.AllowHostPID:
		return deny("HostConfig.PidMode=host is not allowed")
	case h.IpcMode == "host" && !g.AllowHostIPC:
		return deny("HostConfig.IpcMode=host is not allowed")
	case h.UsernsMode == "host" && !g.AllowHostUserns:
		return deny("HostConfig.UsernsMode=host is not allowed")
	case len(h.CapAdd) > 0 && !g.AllowCapAdd:
		return deny("HostConfig.CapAdd %v is not allowed", h.CapAdd)
	case len(h.Devices) > 0 && !g.AllowDevices:
		return deny("HostConfig.Devices is not allowed")
	case len(h.DeviceCgroupRules) > 0 && !g.AllowDevices:
		return deny("HostConfig.DeviceCgroupRules is not allowed")
	case len(h.DeviceRequests) > 0 && !g.AllowDevices:
		return deny("HostConfig.DeviceRequests is not allowed")
	case len(h.VolumesFrom) > 0 && !g.AllowVolumesFrom:
		return deny("HostConfig.VolumesFrom is not allowed")
	}
	if !g.AllowSecurityOpt {
		for _, o := range h.SecurityOpt {
			if weakSecurityOpt(o) {
				return deny("HostConfig.SecurityOpt %q is not allowed", o)
			}
		}
	}
	for _, bind := range h.Binds {
		src, _, ok := strings.Cut(bind, ":")
		if !ok || !strings.HasPrefix(src, "/") {
			continue // an anonymous or named volume, not a bind mount
		}
		if msg := g.checkBind(src, resolve); msg != "" {
			return deny("HostConfig.Binds %q: %s", bind, msg)
		}
	}
	for i, m := range h.Mounts {
		switch strings.ToLower(m.Type) {
		case "bind":
			if msg := g.checkBind(m.Source, resolve); msg != "" {
				return deny("HostConfig.Mounts[%d] bind %q: %s", i, m.Source, msg)
			}
		case "volume":
			if m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil {
				if msg := g.checkVolumeOpts(fmt.Sprintf("HostConfig.Mounts[%d].VolumeOptions.DriverConfig.Options", i), m.VolumeOptions.DriverConfig.Options, resolve); msg != "" {
					return deny("%s", msg)
				}
			}
		}
	}
	return ""
}

// checkVolumeOpts refuses a local volume that bind-mounts a host path
// (o=bind, device=PATH) outside the roots.
func (g *Guard) checkVolumeOpts(field string, opts map[string]string, resolve pathResolver) string {
	var o, device string
	for k, v := range opts {
		switch strings.ToLower(k) {
		case "o":
			o = v
		case "device":
			device = v
		}
	}
	isBind := false
	for _, f := range strings.Split(o, ",") {
		if f = strings.TrimSpace(f); f == "bind" || f == "rbind" {
			isBind = true
		}
	}
	if !isBind {
		return ""
	}
	if msg := g.checkBind(device, resolve); msg != "" {
		return fmt.Sprintf("%s device %q (o=%s): %s", field, device, o, msg)
	}
	return ""
}

// checkBind allows a host path under one of the roots, both as written and
// with symlinks resolved (dockerd follows them).
func (g *Guard) checkBind(src string, resolve pathResolver) string {
	if len(g.BindRoots) == 0 {
		return "bind mounts are not allowed"
	}
	if !path.IsAbs(src) {
		return "the source is not an absolute path"
	}
	clean := path.Clean(src)
	if !underRoots(clean, g.BindRoots) {
		return fmt.Sprintf("outside the allowed roots %v", g.BindRoots)
	}
	if resolve != nil && !slices.Contains(g.BindRoots, "/") {
		real, err := resolveExisting(clean, resolve)
		if err != nil {
			return fmt.Sprintf("cannot resolve symlinks: %v", err)
		}
		if !underRoots(real, g.resolvedRoots(resolve)) {
			return fmt.Sprintf("resolves to %q, outside the allowed roots %v", real, g.BindRoots)
		}
	}
	return ""
}

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

func weakSecurityOpt(o string) bool {
	k, v, ok := strings.Cut(o, "=")
	if !ok {
		k, v, _ = strings.Cut(o, ":") // the old "label:disable" form
	}
	k, v = strings.ToLower(strings.TrimSpace(k)), strings.ToLower(strings.TrimSpace(v))
	return k != "no-new-privileges" || (v != "" && v != "true")
}

// decodeFirst decodes the first JSON value of body, as dockerd does.
func decodeFirst(body []byte, v any) error {
	return json.NewDecoder(bytes.NewReader(body)).Decode(v)
}

// defaultResolver resolves symlinks on this host.
func defaultResolver(p string) (string, error) {
	return filepath.EvalSymlinks(p)
}
