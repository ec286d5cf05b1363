package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The body model. Each request body the guard inspects is decoded with
// encoding/json into structs that mirror dockerd's own types (field names,
// embedding and depth), so that keys match exactly as dockerd matches them:
// case-insensitively, the last duplicate winning, nested objects merged into
// what an earlier duplicate set. Unknown fields are refused
// (DisallowUnknownFields), so a field of a newer API fails closed.
//
// Every field carries a `guard` tag that classifies it:
//
//	allow       any value (dockerd validates it)
//	struct      an object (or list of objects) whose fields are classified
//	deny        refused whenever it is set
//	<rule>      allowed with limited values: bodyRules[<rule>] decides
//
// A field without a tag is refused, so a field added to a mirror struct
// without a decision fails closed too. A field is only checked when it is
// set (not the zero value of its Go type); zero values are dockerd's
// defaults.

// rawField is a field whose value the guard keeps as JSON text: one it
// allows with any value (the key is known, and dockerd checks the value),
// or refuses whenever it is set.
//
// JSON null leaves it unchanged, as it leaves dockerd's strings, numbers,
// bools and structs unchanged: {"CgroupParent": "/x", "CgroupParent":
// null} sets CgroupParent in dockerd, so the guard must still see "/x".
// (A null that unsets one of dockerd's lists, maps or pointers is kept
// too: the guard then refuses a value dockerd would drop.)
type rawField []byte

func (r *rawField) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	*r = append((*r)[:0], b...)
	return nil
}

// strSlice is dockerd's strslice.StrSlice: a JSON string or a list of
// strings (API 1.41 and older accept both).
type strSlice []string

func (s *strSlice) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || string(b) == "null" {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*s = list
	return nil
}

// createRequest mirrors dockerd's ContainerConfigWrapper (API 1.41, Linux):
// the Config fields at the top level, the inner HostConfig, the legacy
// Cpuset, NetworkingConfig and (legacy) every HostConfig field at the top
// level too. Newer dockerd ignores the top-level host fields; older applies
// them when HostConfig is absent or null. The guard checks both.
type createRequest struct {
	configFields
	InnerHostConfig  *hostConfigFields `json:"HostConfig" guard:"struct"`
	Cpuset           rawField          `guard:"allow"`
	NetworkingConfig *networkingConfig `guard:"struct"`
	hostConfigFields
}

// configFields mirrors container.Config.
type configFields struct {
	Hostname        rawField `guard:"allow"`
	Domainname      rawField `guard:"allow"`
	User            rawField `guard:"allow"`
	AttachStdin     rawField `guard:"allow"`
	AttachStdout    rawField `guard:"allow"`
	AttachStderr    rawField `guard:"allow"`
	ExposedPorts    rawField `guard:"allow"`
	Tty             rawField `guard:"allow"`
	OpenStdin       rawField `guard:"allow"`
	StdinOnce       rawField `guard:"allow"`
	Env             rawField `guard:"allow"`
	Cmd             rawField `guard:"allow"`
	Healthcheck     rawField `guard:"allow"`
	ArgsEscaped     rawField `guard:"allow"`
	Image           rawField `guard:"allow"`
	Volumes         rawField `guard:"allow"` // anonymous volumes (VolumeDriver is limited)
	WorkingDir      rawField `guard:"allow"`
	Entrypoint      rawField `guard:"allow"`
	NetworkDisabled rawField `guard:"allow"`
	MacAddress      rawField `guard:"allow"` // API < 1.52
	OnBuild         rawField `guard:"allow"`
	Labels          rawField `guard:"allow"`
	StopSignal      rawField `guard:"allow"`
	StopTimeout     rawField `guard:"allow"`
	Shell           rawField `guard:"allow"`
}

// hostConfigFields mirrors container.HostConfig (Linux and Windows fields,
// API 1.41 to today's).
type hostConfigFields struct {
	Binds           []string          `guard:"binds"`
	ContainerIDFile rawField          `guard:"deny"`
	LogConfig       logConfig         `guard:"struct"` // a struct in dockerd: null leaves it unchanged
	NetworkMode     string            `guard:"netmode"`
	PortBindings    rawField          `guard:"allow"`
	RestartPolicy   rawField          `guard:"allow"`
	AutoRemove      rawField          `guard:"allow"`
	VolumeDriver    string            `guard:"volumedriver"`
	VolumesFrom     []string          `guard:"volumesfrom"`
	ConsoleSize     rawField          `guard:"allow"`
	Annotations     rawField          `guard:"emptymap"`
	CapAdd          strSlice          `guard:"capadd"`
	CapDrop         rawField          `guard:"allow"`
	CgroupnsMode    string            `guard:"cgroupns"`
	Dns             rawField          `guard:"allow"`
	DnsOptions      rawField          `guard:"allow"`
	DnsSearch       rawField          `guard:"allow"`
	ExtraHosts      rawField          `guard:"allow"`
	GroupAdd        rawField          `guard:"allow"`
	IpcMode         string            `guard:"ipcmode"`
	Cgroup          rawField          `guard:"deny"`
	Links           rawField          `guard:"allow"`
	OomScoreAdj     int               `guard:"oomscore"`
	PidMode         string            `guard:"pidmode"`
	Privileged      bool              `guard:"privileged"`
	PublishAllPorts rawField          `guard:"allow"`
	ReadonlyRootfs  rawField          `guard:"allow"`
	SecurityOpt     []string          `guard:"securityopt"`
	StorageOpt      map[string]string `guard:"storageopt"`
	Tmpfs           rawField          `guard:"allow"`
	UTSMode         string            `guard:"utsmode"`
	UsernsMode      string            `guard:"usernsmode"`
	ShmSize         rawField          `guard:"allow"`
	Sysctls         map[string]string `guard:"sysctls"`
	Runtime         string            `guard:"runtime"`
	Umask           rawField          `guard:"allow"`
	Isolation       string            `guard:"isolation"`
	resourceFields
	Mounts        []mountFields `guard:"struct"`
	MaskedPaths   []rawField    `guard:"deny"` // any list, [] included, unmasks /proc paths
	ReadonlyPaths []rawField    `guard:"deny"`
	Init          rawField      `guard:"allow"`
}

// resourceFields mirrors container.Resources.
type resourceFields struct {
	CpuShares            rawField   `guard:"allow"`
	Memory               rawField   `guard:"allow"`
	NanoCpus             rawField   `guard:"allow"`
	CgroupParent         rawField   `guard:"deny"`
	BlkioWeight          rawField   `guard:"allow"`
	BlkioWeightDevice    rawField   `guard:"allow"`
	BlkioDeviceReadBps   rawField   `guard:"allow"`
	BlkioDeviceWriteBps  rawField   `guard:"allow"`
	BlkioDeviceReadIOps  rawField   `guard:"allow"`
	BlkioDeviceWriteIOps rawField   `guard:"allow"`
	CpuPeriod            rawField   `guard:"allow"`
	CpuQuota             rawField   `guard:"allow"`
	CpuRealtimePeriod    int64      `guard:"deny"`
	CpuRealtimeRuntime   int64      `guard:"deny"`
	CpusetCpus           rawField   `guard:"allow"`
	CpusetMems           rawField   `guard:"allow"`
	Devices              []rawField `guard:"devices"`
	DeviceCgroupRules    []rawField `guard:"devices"`
	DeviceRequests       []rawField `guard:"devices"`
	KernelMemory         rawField   `guard:"allow"` // API < 1.42
	KernelMemoryTCP      rawField   `guard:"allow"` // API < 1.42
	MemoryReservation    rawField   `guard:"allow"`
	MemorySwap           rawField   `guard:"allow"`
	MemorySwappiness     rawField   `guard:"allow"`
	OomKillDisable       *bool      `guard:"oomkill"`
	PidsLimit            rawField   `guard:"allow"`
	Ulimits              rawField   `guard:"allow"`
	CpuCount             rawField   `guard:"allow"`
	CpuPercent           rawField   `guard:"allow"`
	IOMaximumIOps        rawField   `guard:"allow"`
	IOMaximumBandwidth   rawField   `guard:"allow"`
}

type logConfig struct {
	Type   string            `guard:"logtype"`
	Config map[string]string `guard:"logopts"`
}

// mountFields mirrors mount.Mount.
type mountFields struct {
	Type           string         `guard:"mounttype"`
	Source         rawField       `guard:"allow"` // a bind source is confined; a volume name is reported
	Target         rawField       `guard:"allow"`
	ReadOnly       rawField       `guard:"allow"`
	Consistency    rawField       `guard:"allow"`
	BindOptions    *bindOptions   `guard:"struct"`
	VolumeOptions  *volumeOptions `guard:"struct"`
	ImageOptions   *imageOptions  `guard:"struct"`
	TmpfsOptions   rawField       `guard:"allow"`
	ClusterOptions rawField       `guard:"deny"`
}

type bindOptions struct {
	Propagation            string   `guard:"propagation"`
	NonRecursive           rawField `guard:"allow"`
	CreateMountpoint       rawField `guard:"allow"` // dockerd creates the host path; the confinement checks it
	ReadOnlyNonRecursive   rawField `guard:"allow"`
	ReadOnlyForceRecursive rawField `guard:"allow"`
}

type volumeOptions struct {
	NoCopy       rawField      `guard:"allow"`
	Labels       rawField      `guard:"allow"`
	Subpath      string        `guard:"subpath"`
	DriverConfig *driverConfig `guard:"struct"`
}

type driverConfig struct {
	Name    string            `guard:"volumedriver"`
	Options map[string]string `guard:"bymount"` // checked with the mount's ReadOnly, in walker.mount
}

type imageOptions struct {
	Subpath string `guard:"subpath"`
}

// networkingConfig mirrors network.NetworkingConfig.
type networkingConfig struct {
	EndpointsConfig map[string]*endpointSettings `guard:"endpoints"`
}

// endpointSettings mirrors network.EndpointSettings.
type endpointSettings struct {
	IPAMConfig          rawField `guard:"allow"`
	Links               rawField `guard:"allow"`
	Aliases             rawField `guard:"allow"`
	DriverOpts          rawField `guard:"emptymap"` // per-endpoint sysctls and driver settings
	GwPriority          rawField `guard:"allow"`
	NetworkID           rawField `guard:"deny"`
	EndpointID          rawField `guard:"deny"`
	Gateway             rawField `guard:"allow"`
	IPAddress           rawField `guard:"allow"`
	IPPrefixLen         rawField `guard:"allow"`
	IPv6Gateway         rawField `guard:"allow"`
	GlobalIPv6Address   rawField `guard:"allow"`
	GlobalIPv6PrefixLen rawField `guard:"allow"`
	MacAddress          rawField `guard:"allow"`
	DNSNames            rawField `guard:"allow"`
}

// updateRequest mirrors container.UpdateConfig.
type updateRequest struct {
	resourceFields
	RestartPolicy rawField `guard:"allow"`
}

// execRequest mirrors the exec create request (types.ExecConfig).
type execRequest struct {
	User         rawField `guard:"allow"`
	Privileged   bool     `guard:"privileged"`
	Tty          rawField `guard:"allow"`
	ConsoleSize  rawField `guard:"allow"`
	AttachStdin  rawField `guard:"allow"`
	AttachStderr rawField `guard:"allow"`
	AttachStdout rawField `guard:"allow"`
	Detach       rawField `guard:"allow"`
	DetachKeys   rawField `guard:"allow"`
	Env          rawField `guard:"allow"`
	WorkingDir   rawField `guard:"allow"`
	Cmd          rawField `guard:"allow"`
}

// volumeRequest mirrors the volume create request.
type volumeRequest struct {
	Name              rawField          `guard:"allow"`
	Driver            string            `guard:"volumedriver"`
	DriverOpts        map[string]string `guard:"localopts"`
	Labels            rawField          `guard:"allow"`
	ClusterVolumeSpec rawField          `guard:"deny"`
}

// networkCreateRequest mirrors the network create request.
type networkCreateRequest struct {
	Name           rawField          `guard:"allow"`
	CheckDuplicate rawField          `guard:"allow"`
	Driver         string            `guard:"netdriver"`
	Scope          rawField          `guard:"allow"`
	EnableIPv4     rawField          `guard:"allow"`
	EnableIPv6     rawField          `guard:"allow"`
	IPAM           *ipamFields       `guard:"struct"`
	Internal       rawField          `guard:"allow"`
	Attachable     rawField          `guard:"allow"`
	Ingress        bool              `guard:"deny"`
	ConfigOnly     bool              `guard:"deny"`
	ConfigFrom     rawField          `guard:"deny"`
	Options        map[string]string `guard:"netopts"`
	Labels         rawField          `guard:"allow"`
}

type ipamFields struct {
	Driver  string   `guard:"ipamdriver"`
	Options rawField `guard:"emptymap"`
	Config  rawField `guard:"allow"`
}

// networkConnectRequest mirrors the network connect request.
type networkConnectRequest struct {
	Container      rawField          `guard:"allow"`
	EndpointConfig *endpointSettings `guard:"struct"`
	Force          rawField          `guard:"allow"`
}

// checkBody decodes body (of a request of kind) the way dockerd decodes it
// and classifies every field as allowed, allowed with limited values, or
// refused; a field it does not know is refused. It returns a refusal
// reason naming the field, or the host paths the request would mount
// (bind sources, local volumes with o=bind) and the named volumes it uses,
// for the bind confinement.
func (g *Guard) checkBody(kind bodyKind, body []byte) (mounts []hostMount, volumes []string, deny string) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || kind == bodyNone {
		return nil, nil, ""
	}
	var (
		v    any
		what string
	)
	switch kind {
	case bodyCreate:
		v, what = &createRequest{}, "create"
	case bodyUpdate:
		v, what = &updateRequest{}, "update"
	case bodyExec:
		v, what = &execRequest{}, "exec"
	case bodyVolume:
		v, what = &volumeRequest{}, "volume create"
	case bodyNetworkCreate:
		v, what = &networkCreateRequest{}, "network create"
	case bodyNetworkConnect:
		v, what = &networkConnectRequest{}, "network connect"
	case bodyStart:
		var c bytes.Buffer
		if json.Compact(&c, trimmed) == nil && (c.String() == "{}" || c.String() == "null") {
			return nil, nil, ""
		}
		return nil, nil, "a start body is not allowed (dockerd below API 1.24 applies it as a HostConfig)"
	default:
		return nil, nil, fmt.Sprintf("request body kind %d is not known to the guard", kind)
	}
	if msg := decodeStrict(trimmed, v); msg != "" {
		return nil, nil, fmt.Sprintf("%s body: %s", what, msg)
	}
	w := walker{g: g}
	w.walk(reflect.ValueOf(v).Elem(), "")
	if w.deny != "" {
		return nil, nil, w.deny
	}
	return w.mounts, w.volumes, ""
}

// decodeStrict decodes the first JSON value of body as dockerd does, but
// refuses unknown fields.
func decodeStrict(body []byte, v any) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Sprintf("field %s is unknown to the guard and refused", name)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Sprintf("cannot read field %s: %v", te.Field, err)
		}
		return fmt.Sprintf("cannot read it: %v", err)
	}
	return ""
}

// walker classifies every set field of a decoded body and collects the
// host paths and volumes it would mount. It stops at the first refusal.
type walker struct {
	g       *Guard
	deny    string
	mounts  []hostMount
	volumes []string
}

func (w *walker) refuse(format string, a ...any) {
	if w.deny == "" {
		w.deny = fmt.Sprintf(format, a...)
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// walk classifies the fields of the struct v; prefix names v in the body.
func (w *walker) walk(v reflect.Value, prefix string) {
	t := v.Type()
	for i := 0; i < t.NumField() && w.deny == ""; i++ {
		f := t.Field(i)
		fv := v.Field(i)
		if f.Anonymous {
			w.walk(fv, prefix) // embedded: its fields are at this level in JSON
			continue
		}
		if !f.IsExported() {
			continue
		}
		name := jsonName(f)
		p := join(prefix, name)
		if fv.IsZero() {
			continue
		}
		if raw, ok := fv.Interface().(rawField); ok && zeroJSON(raw) {
			continue // null or a zero value leaves dockerd's field unset
		}
		rule, ok := f.Tag.Lookup("guard")
		if !ok {
			w.refuse("%s is not classified by the guard and refused", p)
			return
		}
		switch rule {
		case "allow":
		case "deny":
			w.refuse("%s %s is not allowed", p, render(fv))
		case "struct":
			w.walkStruct(fv, p)
		default:
			fn, ok := bodyRules[rule]
			if !ok {
				w.refuse("%s has no rule %q in the guard and is refused", p, rule)
				return
			}
			fn(w, p, fv)
		}
	}
}

// zeroJSON is true for a JSON value that decodes to a Go zero value. An
// empty object is not one: mount.ClusterOptions is an empty struct.
func zeroJSON(raw rawField) bool {
	var c bytes.Buffer
	if json.Compact(&c, raw) != nil {
		return false
	}
	switch c.String() {
	case "null", `""`, "0", "false":
		return true
	}
	return false
}

// walkStruct walks a struct, a pointer to one, or a list of them.
func (w *walker) walkStruct(v reflect.Value, p string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			w.walkStruct(v.Elem(), p)
		}
	case reflect.Struct:
		w.walk(v, p)
		switch s := v.Addr().Interface().(type) {
		case *mountFields:
			w.mount(s, p)
		}
	case reflect.Slice:
		for i := 0; i < v.Len() && w.deny == ""; i++ {
			w.walkStruct(v.Index(i), fmt.Sprintf("%s[%d]", p, i))
		}
	default:
		w.refuse("%s cannot be classified by the guard", p)
	}
}

func jsonName(f reflect.StructField) string {
	if tag, ok := f.Tag.Lookup("json"); ok {
		if n, _, _ := strings.Cut(tag, ","); n != "" {
			return n
		}
	}
	return f.Name
}

// render shows a field's value in a refusal.
func render(v reflect.Value) string {
	if v.Kind() == reflect.String {
		return strconv.Quote(v.String())
	}
	var b []byte
	if raw, ok := v.Interface().(rawField); ok {
		var c bytes.Buffer
		if json.Compact(&c, raw) == nil {
			b = c.Bytes()
		} else {
			b = raw
		}
	} else {
		b, _ = json.Marshal(v.Interface())
	}
	s := string(b)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// bodyRules are the fields allowed with limited values. Each gets the
// field's name in the body and its (set) value, and refuses through w.
var bodyRules map[string]func(w *walker, p string, v reflect.Value)

func init() {
	bodyRules = map[string]func(w *walker, p string, v reflect.Value){
		// A map of dockerd's that configures nothing when empty: the
		// docker CLI sends {} for IPAM.Options and an endpoint's
		// DriverOpts. Any entry is refused.
		"emptymap": func(w *walker, p string, v reflect.Value) {
			var m map[string]json.RawMessage
			if raw, ok := v.Interface().(rawField); !ok || json.Unmarshal(raw, &m) != nil || len(m) > 0 {
				w.refuse("%s %s is not allowed", p, render(v))
			}
		},
		"privileged": func(w *walker, p string, v reflect.Value) {
			if !w.g.AllowPrivileged {
				w.refuse("%s true is not allowed (allow_privileged)", p)
			}
		},
		"netmode": func(w *walker, p string, v reflect.Value) { w.network(p, v.String()) },
		"pidmode": func(w *walker, p string, v reflect.Value) {
			w.namespace(p, v.String(), w.g.AllowHostPID, "allow_host_pid", true)
		},
		"ipcmode": func(w *walker, p string, v reflect.Value) {
			w.namespace(p, v.String(), w.g.AllowHostIPC, "allow_host_ipc", true, "none", "private", "shareable")
		},
		"utsmode": func(w *walker, p string, v reflect.Value) {
			w.namespace(p, v.String(), w.g.AllowHostUTS, "allow_host_uts", false)
		},
		"usernsmode": func(w *walker, p string, v reflect.Value) {
			w.namespace(p, v.String(), w.g.AllowHostUserns, "allow_host_userns", false)
		},
		"cgroupns": func(w *walker, p string, v reflect.Value) { w.namespace(p, v.String(), false, "", false, "private") },
		"capadd": func(w *walker, p string, v reflect.Value) {
			caps := v.Interface().(strSlice)
			if w.g.AllowCapAdd || len(caps) == 0 {
				return
			}
			for _, c := range caps {
				if n := strings.ToUpper(c); n != "NET_BIND_SERVICE" && n != "CAP_NET_BIND_SERVICE" {
					w.refuse("%s %q is not allowed (allow_cap_add; only NET_BIND_SERVICE is allowed without it)", p, c)
					return
				}
			}
		},
		"devices": func(w *walker, p string, v reflect.Value) {
			if v.Len() > 0 && !w.g.AllowDevices {
				w.refuse("%s %s is not allowed (allow_devices)", p, render(v))
			}
		},
		"volumesfrom": func(w *walker, p string, v reflect.Value) {
			if v.Len() > 0 && !w.g.AllowVolumesFrom {
				w.refuse("%s %s is not allowed (allow_volumes_from)", p, render(v))
			}
		},
		"securityopt": func(w *walker, p string, v reflect.Value) {
			if w.g.AllowSecurityOpt {
				return
			}
			for _, o := range v.Interface().([]string) {
				if !noNewPrivileges(o) {
					w.refuse("%s %q is not allowed (allow_security_opt; only no-new-privileges is allowed without it)", p, o)
					return
				}
			}
		},
		"oomscore": func(w *walker, p string, v reflect.Value) {
			if v.Int() < 0 {
				w.refuse("%s %d is not allowed (a negative score protects the container from the OOM killer)", p, v.Int())
			}
		},
		"oomkill": func(w *walker, p string, v reflect.Value) {
			if *v.Interface().(*bool) {
				w.refuse("%s true is not allowed", p)
			}
		},
		"sysctls": func(w *walker, p string, v reflect.Value) {
			for _, k := range sortedKeys(v.Interface().(map[string]string)) {
				if !safeSysctls[strings.ReplaceAll(k, "/", ".")] {
					w.refuse("%s %q is not allowed (only the Kubernetes safe sysctls are)", p, k)
					return
				}
			}
		},
		"storageopt": func(w *walker, p string, v reflect.Value) {
			for _, k := range sortedKeys(v.Interface().(map[string]string)) {
				if !strings.EqualFold(k, "size") {
					w.refuse("%s %q is not allowed (only size is)", p, k)
					return
				}
			}
		},
		"logopts": func(w *walker, p string, v reflect.Value) {
			for _, k := range sortedKeys(v.Interface().(map[string]string)) {
				if !logOptions[k] {
					w.refuse("%s %q is not allowed (allowed: %s)", p, k, strings.Join(sortedKeys(logOptions), ", "))
					return
				}
			}
		},
		"runtime":      oneOf("", "runc"),
		"isolation":    oneOf("", "default"),
		"volumedriver": oneOf("", "local"),
		"logtype":      oneOf("", "json-file", "local", "journald", "none"),
		"netdriver":    oneOf("", "bridge"),
		"ipamdriver":   oneOf("", "default"),
		"propagation":  oneOf("", "private", "rprivate"),
		"mounttype":    oneOf("bind", "volume", "tmpfs", "image"),
		"subpath": func(w *walker, p string, v reflect.Value) {
			s := v.String()
			if path.IsAbs(s) || slices.Contains(strings.Split(s, "/"), "..") {
				w.refuse("%s %q is not allowed (a relative path without \"..\")", p, s)
			}
		},
		"binds": func(w *walker, p string, v reflect.Value) {
			for i, b := range v.Interface().([]string) {
				w.bind(fmt.Sprintf("%s[%d]", p, i), b)
			}
		},
		// The local driver options of a mount: walker.mount checks them
		// once the mount's type and ReadOnly are known.
		"bymount": func(w *walker, p string, v reflect.Value) {},
		"localopts": func(w *walker, p string, v reflect.Value) {
			w.localOpts(p, v.Interface().(map[string]string), false)
		},
		"endpoints": func(w *walker, p string, v reflect.Value) {
			eps := v.Interface().(map[string]*endpointSettings)
			for _, k := range sortedKeys(eps) {
				ep := fmt.Sprintf("%s[%q]", p, k)
				w.network(ep, k)
				if eps[k] != nil {
					w.walk(reflect.ValueOf(eps[k]).Elem(), ep)
				}
				if w.deny != "" {
					return
				}
			}
		},
		"netopts": func(w *walker, p string, v reflect.Value) {
			for _, k := range sortedKeys(v.Interface().(map[string]string)) {
				if !bridgeOptions[k] {
					w.refuse("%s %q is not allowed (allowed: %s)", p, k, strings.Join(sortedKeys(bridgeOptions), ", "))
					return
				}
			}
		},
	}
}

func oneOf(allowed ...string) func(w *walker, p string, v reflect.Value) {
	return func(w *walker, p string, v reflect.Value) {
		if s := v.String(); !slices.Contains(allowed, s) {
			w.refuse("%s %q is not allowed (allowed: %s)", p, s, quoteAll(allowed))
		}
	}
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// namespace checks a namespace mode: "" and the extra private values are
// allowed, "host" only with the knob, "container:<id>" (where joinable)
// only with allow_container_namespaces.
func (w *walker) namespace(p, mode string, allowHost bool, knob string, joinable bool, extra ...string) {
	switch {
	case mode == "" || slices.Contains(extra, mode):
	case mode == "host":
		if !allowHost {
			if knob == "" {
				w.refuse("%s %q is not allowed", p, mode)
			} else {
				w.refuse("%s %q is not allowed (%s)", p, mode, knob)
			}
		}
	case joinable && strings.HasPrefix(mode, "container:"):
		if !w.g.AllowContainerNamespaces {
			w.refuse("%s %q is not allowed (allow_container_namespaces)", p, mode)
		}
	default:
		w.refuse("%s %q is not allowed", p, mode)
	}
}

// network checks a NetworkMode or an endpoint's network name: the default
// and bridge networks, none, and user-defined networks are allowed; host
// and container:<id> only with their knobs.
func (w *walker) network(p, mode string) {
	switch {
	case mode == "host":
		if !w.g.AllowHostNetwork {
			w.refuse("%s %q is not allowed (allow_host_network)", p, mode)
		}
	case strings.HasPrefix(mode, "container:"):
		if !w.g.AllowContainerNamespaces {
			w.refuse("%s %q is not allowed (allow_container_namespaces)", p, mode)
		}
	case strings.EqualFold(mode, "host") || strings.ContainsAny(mode, ":/\\"):
		w.refuse("%s %q is not allowed", p, mode)
	}
}

func noNewPrivileges(o string) bool {
	if o == "no-new-privileges" {
		return true
	}
	k, v, ok := strings.Cut(o, "=")
	if !ok {
		k, v, ok = strings.Cut(o, ":")
	}
	if !ok || k != "no-new-privileges" {
		return false
	}
	_, err := strconv.ParseBool(v)
	return err == nil
}

// bind parses a HostConfig.Binds entry as dockerd's Linux parser does
// ("dst", "src:dst" or "src:dst:mode"): an absolute source is a bind mount,
// another source a named volume.
func (w *walker) bind(p, spec string) {
	if strings.Count(spec, ":") > 2 {
		w.refuse("%s %q is not allowed (not a bind spec dockerd accepts)", p, spec)
		return
	}
	arr := strings.SplitN(spec, ":", 3)
	if arr[0] == "" {
		w.refuse("%s %q is not allowed (empty source)", p, spec)
		return
	}
	if len(arr) == 1 {
		return // an anonymous volume at arr[0]
	}
	mode := ""
	if len(arr) == 3 {
		mode = arr[2]
	}
	ro := false
	for _, m := range strings.Split(mode, ",") {
		switch m {
		case "", "rw", "z", "Z", "nocopy", "private", "rprivate", "consistent", "cached", "delegated":
		case "ro":
			ro = true
		default:
			w.refuse("%s %q: mode %q is not allowed", p, spec, m)
			return
		}
	}
	src := arr[0]
	if path.IsAbs(src) {
		w.mounts = append(w.mounts, hostMount{Field: p, Source: src, ReadOnly: ro})
	} else {
		w.volumes = append(w.volumes, src)
	}
}

// mount collects what a HostConfig.Mounts entry would mount; its fields
// are already classified.
func (w *walker) mount(m *mountFields, p string) {
	if w.deny != "" {
		return
	}
	var src string
	if len(m.Source) > 0 && json.Unmarshal([]byte(m.Source), &src) != nil {
		w.refuse("%s.Source %s is not a string", p, render(reflect.ValueOf(m.Source)))
		return
	}
	var ro bool
	if len(m.ReadOnly) > 0 && json.Unmarshal([]byte(m.ReadOnly), &ro) != nil {
		w.refuse("%s.ReadOnly %s is not a boolean", p, render(reflect.ValueOf(m.ReadOnly)))
		return
	}
	if m.Type != "bind" && m.BindOptions != nil {
		w.refuse("%s.BindOptions is not allowed on a mount of type %q", p, m.Type)
		return
	}
	if m.Type != "volume" && m.VolumeOptions != nil {
		w.refuse("%s.VolumeOptions is not allowed on a mount of type %q", p, m.Type)
		return
	}
	switch m.Type {
	default:
		w.refuse("%s.Type %q is not allowed (allowed: bind, volume, tmpfs, image)", p, m.Type)
	case "tmpfs", "image":
	case "bind":
		if !path.IsAbs(src) {
			w.refuse("%s.Source %q is not allowed (a bind needs an absolute host path)", p, src)
			return
		}
		w.mounts = append(w.mounts, hostMount{Field: p + ".Source", Source: src, ReadOnly: ro})
	case "volume":
		if src != "" {
			w.volumes = append(w.volumes, src)
		}
		if o := m.VolumeOptions; o != nil && o.DriverConfig != nil && len(o.DriverConfig.Options) > 0 {
			w.localOpts(p+".VolumeOptions.DriverConfig.Options", o.DriverConfig.Options, ro)
		}
	}
}

// localOpts checks the options of a local volume as the local driver
// reads them (keys are case-sensitive: type, o, device, size) and the
// mount(2) call it makes: a bind (o has bind or rbind) is a host mount of
// device; tmpfs is allowed; every other filesystem (block devices,
// overlay, nfs, cifs...) is refused.
func (w *walker) localOpts(p string, opts map[string]string, ro bool) {
	for _, k := range sortedKeys(opts) {
		switch k {
		case "type", "o", "device", "size":
		default:
			w.refuse("%s %q is not allowed (the local driver takes type, o, device and size)", p, k)
			return
		}
	}
	typ, hasType := opts["type"]
	device, hasDevice := opts["device"]
	o := opts["o"]
	if !hasType && !hasDevice {
		if _, ok := opts["o"]; ok {
			w.refuse("%s o %q without type and device is not allowed", p, o)
		}
		return // a plain volume, perhaps with a size quota
	}
	bind, flags, data := false, []string{}, []string{}
	for _, f := range strings.Split(o, ",") {
		switch f {
		case "bind", "rbind":
			bind = true
		case "":
		default:
			if mountFlags[f] {
				flags = append(flags, f)
			} else {
				data = append(data, f)
			}
		}
	}
	if bind {
		for _, f := range flags {
			switch f {
			case "ro":
				ro = true
			case "rw", "nosuid", "nodev", "noexec", "private", "rprivate", "noatime", "relatime", "nodiratime":
			default:
				w.refuse("%s o %q: mount flag %q is not allowed with a bind", p, o, f)
				return
			}
		}
		if len(data) > 0 {
			w.refuse("%s o %q: option %q is not allowed with a bind", p, o, data[0])
			return
		}
		if !path.IsAbs(device) {
			w.refuse("%s device %q is not allowed (a bind needs an absolute host path)", p, device)
			return
		}
		w.mounts = append(w.mounts, hostMount{Field: p + ".device", Source: device, ReadOnly: ro})
		return
	}
	if typ != "tmpfs" {
		w.refuse("%s type %q is not allowed (only tmpfs, or a bind with o=bind)", p, typ)
		return
	}
	for _, f := range flags {
		switch f {
		case "ro", "rw", "nosuid", "nodev", "noexec", "exec", "suid", "noatime", "relatime", "nodiratime", "sync", "async":
		default:
			w.refuse("%s o %q: mount flag %q is not allowed with tmpfs", p, o, f)
			return
		}
	}
	for _, d := range data {
		k, _, _ := strings.Cut(d, "=")
		switch k {
		case "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks":
		default:
			w.refuse("%s o %q: option %q is not allowed with tmpfs", p, o, d)
			return
		}
	}
}

// mountFlags are the o= words the local driver turns into mount(2) flags
// (moby/sys/mount); other words go to the filesystem as data.
var mountFlags = map[string]bool{
	"defaults": true, "ro": true, "rw": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
	"exec": true, "noexec": true, "sync": true, "async": true, "dirsync": true, "remount": true,
	"mand": true, "nomand": true, "atime": true, "noatime": true, "diratime": true, "nodiratime": true,
	"unbindable": true, "runbindable": true, "private": true, "rprivate": true, "shared": true,
	"rshared": true, "slave": true, "rslave": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true,
}

// safeSysctls are Kubernetes' "safe" sysctls (Pod Security Standards,
// baseline and restricted).
var safeSysctls = map[string]bool{
	"kernel.shm_rmid_forced":              true,
	"net.ipv4.ip_local_port_range":        true,
	"net.ipv4.ip_unprivileged_port_start": true,
	"net.ipv4.tcp_syncookies":             true,
	"net.ipv4.ping_group_range":           true,
	"net.ipv4.ip_local_reserved_ports":    true,
	"net.ipv4.tcp_keepalive_time":         true,
	"net.ipv4.tcp_fin_timeout":            true,
	"net.ipv4.tcp_keepalive_intvl":        true,
	"net.ipv4.tcp_keepalive_probes":       true,
	"net.ipv4.tcp_rmem":                   true,
	"net.ipv4.tcp_wmem":                   true,
}

// logOptions are the log options a guarded container may set: those of
// the json-file, local and journald drivers that only shape the log. With
// LogConfig.Type "" they go to the daemon's default driver, which may send
// logs elsewhere (syslog-address, fluentd-address...): those are refused.
var logOptions = map[string]bool{
	"max-size": true, "max-file": true, "compress": true, "labels": true, "labels-regex": true,
	"env": true, "env-regex": true, "tag": true, "mode": true, "max-buffer-size": true,
}

// bridgeOptions are the bridge driver options a guarded network create may
// set. Refused among others: com.docker.network.bridge.name (attach to an
// existing host bridge) and the gateway and trusted-interface settings.
var bridgeOptions = map[string]bool{
	"com.docker.network.bridge.enable_icc":           true,
	"com.docker.network.bridge.enable_ip_masquerade": true,
	"com.docker.network.bridge.host_binding_ipv4":    true,
	"com.docker.network.driver.mtu":                  true,
	"com.docker.network.container_iface_prefix":      true,
}
