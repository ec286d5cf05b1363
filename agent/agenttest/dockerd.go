package agenttest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// The rules by which the fake dockerd starts, or refuses to. They follow
// dockerd 20.10 (Debian 12's docker.io, the version test/e2e runs) as its
// reference documentation ("dockerd", section "Daemon configuration
// file") and its configuration-loading code describe it; the code is
// cited by file and function at moby's v20.10.24 tag, and none of it is
// copied. Where later versions differ, the comment says so.
//
// TestDockerdRules' cases were also run against Debian 12's dockerd
// 20.10.24 binary (in a chroot of the test host's rootfs, in private
// mount, network and PID namespaces, with a daemon.json and flags per
// case), and it started or refused as these rules say: the hosts,
// labels and tlsverify conflicts (-Hvalue, "hosts": null, a flattened
// object), unknown keys, a value of the wrong type, an array, an empty
// file, trailing text, a missing --config-file, positional arguments,
// unknown flags, the same port twice, --tlsverify=false without
// certificates, "tls" implying verification, no CA read without it, an
// intermediate before the leaf, fd:// without socket activation, and
// ":2377" listening on localhost.

// Why a start is refused, for tests that look for one kind.
const (
	ReasonUnit      = "unit"       // systemd cannot run the unit's command
	ReasonFlags     = "flags"      // the command line does not parse
	ReasonJSON      = "json"       // daemon.json cannot be read or decoded
	ReasonUnknown   = "unknown"    // a daemon.json key matches no option
	ReasonConflict  = "conflict"   // a directive both as a flag and in daemon.json
	ReasonTLS       = "tls"        // TLS files missing or unusable
	ReasonListener  = "listener"   // a host that cannot be listened on
	ReasonInjected  = "injected"   // the test's FailRestart said so
	ReasonStartRate = "start-rate" // systemd's start limit
)

// StartError is why dockerd would not start.
type StartError struct {
	Reason string
	Err    error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

func refuse(reason, format string, a ...any) error {
	return &StartError{Reason: reason, Err: fmt.Errorf(format, a...)}
}

// IsReason reports whether err is a StartError for reason.
func IsReason(err error, reason string) bool {
	var se *StartError
	return errors.As(err, &se) && se.Reason == reason
}

// Listener is one socket dockerd serves its API on.
type Listener struct {
	// Network is "tcp" or "unix".
	Network string
	// Addr is host:port for tcp (as dockerd parsed it, for example
	// "localhost:2375" for ":2375"), a path for unix.
	Addr string
	// From says where it was configured: "flag -H", "daemon.json hosts"
	// or "docker.socket ListenStream=".
	From string
	// TLS: dockerd wraps the listener in TLS. VerifyClients: and
	// requires a client certificate signed by CACert.
	TLS, VerifyClients bool
}

// Daemon is dockerd's effective configuration: what it would run with.
type Daemon struct {
	// Args is the command line after systemd's expansion, program first.
	Args []string
	// ConfigFile is the daemon.json path dockerd reads.
	ConfigFile string
	// Hosts are the -H flags, or else daemon.json's hosts, as written.
	Hosts []string
	// HostsFrom is "flag -H", "daemon.json hosts" or "default".
	HostsFrom string
	// TLS settings in force.
	TLS, TLSVerify      bool
	CACert, Cert, Key   string
	LiveRestore         bool
	LiveRestoreInConfig bool
	Listeners           []Listener
}

// TCP returns the TCP listeners.
func (d *Daemon) TCP() []Listener {
	var out []Listener
	for _, l := range d.Listeners {
		if l.Network == "tcp" {
			out = append(out, l)
		}
	}
	return out
}

// dockerdFlags is dockerd 20.10's flag set, as cmd/dockerd/options.go
// (daemonOptions.InstallFlags), cmd/dockerd/config.go
// (installCommonConfigFlags, installRegistryServiceFlags),
// cmd/dockerd/config_unix.go (installConfigFlags) and
// config_common_unix.go (installUnixConfigFlags) declare it, parsed with
// the same library (pflag): aliases ("-H", "--host"), "--flag=value",
// "-Hvalue" and boolean flags without a value are then seen exactly as
// dockerd sees them. named maps a flag to the daemon.json key of its
// NamedOption value (opts.NewNamedListOptsRef and friends), which is the
// key findConfigurationConflicts compares.
type dockerdFlags struct {
	fs    *pflag.FlagSet
	named map[string]string
}

func newDockerdFlags(env map[string]string) *dockerdFlags {
	fs := pflag.NewFlagSet("dockerd", pflag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	f := &dockerdFlags{fs: fs, named: map[string]string{}}
	bools := []struct {
		name, short string
		def         bool
	}{
		{"debug", "D", false}, {"tls", "", false}, {"tlsverify", "", env["DOCKER_TLS_VERIFY"] != ""},
		{"cri-containerd", "", false}, {"restart", "r", true}, {"raw-logs", "", false},
		{"experimental", "", false}, {"selinux-enabled", "", false}, {"iptables", "", true},
		{"ip6tables", "", false}, {"ip-forward", "", true}, {"ip-masq", "", true}, {"ipv6", "", false},
		{"userland-proxy", "", true}, {"live-restore", "", false}, {"init", "", false},
		{"no-new-privileges", "", false}, {"rootless", "", false}, {"icc", "", true},
		{"version", "v", false}, {"help", "h", false},
	}
	for _, b := range bools {
		fs.BoolP(b.name, b.short, b.def, "")
	}
	strs := []struct{ name, short string }{
		{"log-level", "l"}, {"tlscacert", ""}, {"tlscert", ""}, {"tlskey", ""},
		{"pidfile", "p"}, {"graph", "g"}, {"data-root", ""}, {"exec-root", ""}, {"containerd", ""},
		{"storage-driver", "s"}, {"mtu", ""}, {"host-gateway-ip", ""}, {"log-driver", ""},
		{"cluster-advertise", ""}, {"cluster-store", ""}, {"api-cors-header", ""},
		{"max-concurrent-downloads", ""}, {"max-concurrent-uploads", ""}, {"max-download-attempts", ""},
		{"shutdown-timeout", ""}, {"network-diagnostic-port", ""}, {"swarm-default-advertise-addr", ""},
		{"metrics-addr", ""}, {"network-control-plane-mtu", ""}, {"containerd-namespace", ""},
		{"containerd-plugins-namespace", ""}, {"fixed-cidr-v6", ""}, {"userland-proxy-path", ""},
		{"cgroup-parent", ""}, {"userns-remap", ""}, {"oom-score-adjust", ""}, {"init-path", ""},
		{"cpu-rt-period", ""}, {"cpu-rt-runtime", ""}, {"seccomp-profile", ""}, {"default-shm-size", ""},
		{"default-ipc-mode", ""}, {"default-cgroupns-mode", ""}, {"config-file", ""},
		{"bridge", "b"}, {"bip", ""}, {"fixed-cidr", ""}, {"default-gateway", ""}, {"default-gateway-v6", ""},
		{"ip", ""}, {"group", "G"}, {"default-runtime", ""},
	}
	for _, s := range strs {
		fs.StringP(s.name, s.short, "", "")
	}
	// Repeatable flags; the ones with a NamedOption value have a
	// daemon.json key of their own.
	lists := []struct{ name, short, key string }{
		{"host", "H", "hosts"}, {"storage-opt", "", "storage-opts"},
		{"authorization-plugin", "", "authorization-plugins"}, {"exec-opt", "", "exec-opts"},
		{"dns", "", ""}, {"dns-opt", "", "dns-opts"}, {"dns-search", "", ""}, {"label", "", "labels"},
		{"log-opt", "", "log-opts"}, {"cluster-store-opt", "", "cluster-store-opts"},
		{"node-generic-resource", "", "node-generic-resources"},
		{"allow-nondistributable-artifacts", "", "allow-nondistributable-artifacts"},
		{"registry-mirror", "", "registry-mirrors"}, {"insecure-registry", "", "insecure-registries"},
		{"default-ulimit", "", "default-ulimits"}, {"default-address-pool", "", "default-address-pools"},
		{"add-runtime", "", "runtimes"},
	}
	for _, l := range lists {
		fs.StringArrayP(l.name, l.short, nil, "")
		if l.key != "" {
			f.named[l.name] = l.key
		}
	}
	return f
}

// knownKey reports whether key may appear in daemon.json: it names a flag,
// or the NamedOption of one, or is one of the keys
// findConfigurationConflicts skips (daemon/config/config.go,
// skipValidateOptions: "features", "builder", "deprecated-key-path").
func (f *dockerdFlags) knownKey(key string) bool {
	switch key {
	case "features", "builder", "deprecated-key-path":
		return true
	}
	if f.fs.Lookup(key) != nil {
		return true
	}
	for _, k := range f.named {
		if k == key {
			return true
		}
	}
	return false
}

// flatOptions are the daemon.json keys whose object values are kept
// whole; every other object is flattened into its keys before the checks
// (daemon/config/config.go, flatOptions and configValuesSet).
var flatOptions = map[string]bool{
	"cluster-store-opts": true, "log-opts": true, "runtimes": true,
	"default-ulimits": true, "features": true, "builder": true,
}

// fileConfig is the part of daemon.json the fake reads, decoded as
// dockerd decodes its Config struct (encoding/json, so a key's case does
// not matter once the key itself was accepted, and a value of the wrong
// type is an error).
type fileConfig struct {
	Hosts       []string          `json:"hosts"`
	TLS         *bool             `json:"tls"`
	TLSVerify   *bool             `json:"tlsverify"`
	CACert      string            `json:"tlscacert"`
	Cert        string            `json:"tlscert"`
	Key         string            `json:"tlskey"`
	LiveRestore bool              `json:"live-restore"`
	Debug       bool              `json:"debug"`
	LogLevel    string            `json:"log-level"`
	LogOpts     map[string]string `json:"log-opts"`
}

// startInput is what one start of dockerd reads.
type startInput struct {
	root string
	// exec is the effective ExecStart= values, env the environment.
	exec []string
	env  map[string]string
	// socket is docker.socket's ListenStream= values; socketUnit
	// whether that unit exists at all.
	socket     []string
	socketUnit bool
}

// judge decides whether dockerd starts, and with what.
func judge(in startInput) (*Daemon, error) {
	switch len(in.exec) {
	case 0:
		// systemd.service(5): a service needs ExecStart= (unless
		// Type=oneshot); the unit is refused as bad-setting.
		return nil, refuse(ReasonUnit, "docker.service has no ExecStart=")
	case 1:
	default:
		// systemd.service(5): only Type=oneshot may have several.
		return nil, refuse(ReasonUnit, "docker.service has %d ExecStart= lines", len(in.exec))
	}
	args, err := splitExec(in.exec[0], in.env)
	if err != nil {
		return nil, refuse(ReasonUnit, "ExecStart: %v", err)
	}
	if len(args) == 0 {
		return nil, refuse(ReasonUnit, "ExecStart= is empty after expansion")
	}
	if path.Base(args[0]) != "dockerd" {
		return nil, refuse(ReasonUnit, "ExecStart runs %s, not dockerd: the fake cannot tell what it does", args[0])
	}
	d := &Daemon{Args: args}
	flags := newDockerdFlags(in.env)
	fs := flags.fs
	if err := fs.Parse(args[1:]); err != nil {
		return nil, refuse(ReasonFlags, "dockerd: %v", err)
	}
	// cmd/dockerd/docker.go, newDaemonCommand: cli.NoArgs.
	if fs.NArg() > 0 {
		return nil, refuse(ReasonFlags, "dockerd: \"dockerd\" accepts no arguments (got %q)", fs.Args())
	}
	if fs.Changed("graph") && fs.Changed("data-root") {
		return nil, refuse(ReasonFlags, `cannot specify both "--graph" and "--data-root" option`)
	}

	// The config file: cmd/dockerd/daemon.go, loadDaemonCliConfig. A
	// missing default file is no error; a missing --config-file is.
	d.ConfigFile = "/etc/docker/daemon.json"
	if v, _ := fs.GetString("config-file"); fs.Changed("config-file") {
		d.ConfigFile = v
	}
	var fc fileConfig
	set := map[string]any{}
	data, err := os.ReadFile(filepath.Join(in.root, d.ConfigFile))
	switch {
	case err == nil:
		set, err = decodeConfig(data, &fc)
		if err != nil {
			return nil, refuse(ReasonJSON, "unable to configure the Docker daemon with file %s: %v", d.ConfigFile, err)
		}
	case os.IsNotExist(err) && !fs.Changed("config-file"):
	default:
		return nil, refuse(ReasonJSON, "unable to configure the Docker daemon with file %s: %v", d.ConfigFile, err)
	}
	if err := flags.conflicts(set); err != nil {
		return nil, err
	}
	// daemon/config/config.go, Validate: the log level must parse.
	if fc.LogLevel != "" {
		switch fc.LogLevel {
		case "debug", "info", "warn", "error", "fatal", "panic", "trace", "warning":
		default:
			return nil, refuse(ReasonJSON, "invalid logging level: %s", fc.LogLevel)
		}
	}

	d.tlsSettings(fs, fc, set, in)
	if err := d.loadTLS(in.root); err != nil {
		return nil, err
	}

	d.LiveRestore, _ = fs.GetBool("live-restore")
	if _, ok := set["live-restore"]; ok {
		d.LiveRestore, d.LiveRestoreInConfig = fc.LiveRestore, true
	}

	hostFlags, _ := fs.GetStringArray("host")
	switch {
	case len(hostFlags) > 0:
		d.Hosts, d.HostsFrom = hostFlags, "flag -H"
	case len(fc.Hosts) > 0:
		d.Hosts, d.HostsFrom = fc.Hosts, "daemon.json hosts"
	default:
		d.HostsFrom = "default"
	}
	if err := d.listen(in); err != nil {
		return nil, err
	}
	return d, nil
}

// decodeConfig reads daemon.json as daemon/config/config.go,
// getConflictFreeConfiguration does in 20.10: one JSON value is decoded
// from the start of the file into a map (so an empty file is an error,
// "EOF", an array or invalid JSON is refused, and whatever follows the
// first value is ignored), objects other than flatOptions are flattened
// into their keys, and the file is decoded again, the same way, into the
// typed configuration. It returns the flattened keys. (Version 24 and
// later trim white space, accept an empty file and a byte order mark, and
// check that the file is UTF-8.) Checked against Debian 12's dockerd
// 20.10.24 binary.
func decodeConfig(data []byte, fc *fileConfig) (map[string]any, error) {
	var raw map[string]any
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return nil, err
	}
	set := map[string]any{}
	for k, v := range raw {
		if m, ok := v.(map[string]any); ok && !flatOptions[k] {
			for mk, mv := range m {
				set[mk] = mv
			}
			continue
		}
		set[k] = v
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(fc); err != nil {
		return nil, err
	}
	return set, nil
}

// conflicts applies daemon/config/config.go, findConfigurationConflicts:
// every key must be known, and no directive may be set both on the
// command line (any flag the command line set, under any of its spellings)
// and in the file. A flag with a NamedOption value conflicts with its
// named key ("-H" with "hosts", "--label" with "labels"); any other flag
// with its long name or its shorthand as a key ("tlsverify", "D").
func (f *dockerdFlags) conflicts(set map[string]any) error {
	var unknown []string
	for k := range set {
		if !f.knownKey(k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return refuse(ReasonUnknown, "the following directives don't match any configuration option: %s", strings.Join(unknown, ", "))
	}
	var both []string
	f.fs.Visit(func(fl *pflag.Flag) {
		if key, ok := f.named[fl.Name]; ok {
			// daemon/config/config.go, skipDuplicates: "runtimes" merges.
			if v, in := set[key]; in && key != "runtimes" {
				both = append(both, fmt.Sprintf("%s: (from flag: %v, from file: %v)", key, fl.Value, v))
			}
			return
		}
		for _, name := range []string{fl.Name, fl.Shorthand} {
			if v, in := set[name]; in && name != "" {
				both = append(both, fmt.Sprintf("%s: (from flag: %v, from file: %v)", name, fl.Value, v))
				return
			}
		}
	})
	if len(both) > 0 {
		sort.Strings(both)
		return refuse(ReasonConflict, "unable to configure the Docker daemon with file: the following directives are specified both as a flag and in the configuration file: %s", strings.Join(both, ", "))
	}
	return nil
}

// tlsSettings merges the TLS options. cmd/dockerd/options.go,
// SetDefaultOptions: --tlsverify given at all (or DOCKER_TLS_VERIFY)
// turns TLS on, TLS from the flags verifies clients unless --tlsverify
// says otherwise, and the ~/.docker default paths count only if the files
// exist. cmd/dockerd/daemon.go, loadDaemonCliConfig: the file's values
// override unflagged ones, "tlsverify" in the file (true or false) turns
// TLS on, and a TLS without a tlsverify setting verifies.
func (d *Daemon) tlsSettings(fs *pflag.FlagSet, fc fileConfig, set map[string]any, in startInput) {
	flagTLS, _ := fs.GetBool("tls")
	flagVerify, _ := fs.GetBool("tlsverify")
	var tlsOn, verify *bool
	if fs.Changed("tlsverify") || flagVerify {
		flagTLS = true
	}
	if flagTLS && !fs.Changed("tlsverify") {
		flagVerify = true
	}
	if fs.Changed("tls") {
		v := flagTLS
		tlsOn = &v
	}
	if fs.Changed("tlsverify") {
		v, t := flagVerify, true
		verify, tlsOn = &v, &t
	}
	certDir := in.env["DOCKER_CERT_PATH"]
	if certDir == "" {
		certDir = "/root/.docker"
	}
	if flagTLS {
		d.CACert = path.Join(certDir, "ca.pem")
		d.Cert = path.Join(certDir, "cert.pem")
		d.Key = path.Join(certDir, "key.pem")
		for _, p := range []*string{&d.Cert, &d.Key} {
			if _, err := os.Stat(filepath.Join(in.root, *p)); os.IsNotExist(err) {
				*p = ""
			}
		}
	}
	for name, p := range map[string]*string{"tlscacert": &d.CACert, "tlscert": &d.Cert, "tlskey": &d.Key} {
		if fs.Changed(name) {
			*p, _ = fs.GetString(name)
		}
	}
	if _, ok := set["tlscacert"]; ok {
		d.CACert = fc.CACert
	}
	if _, ok := set["tlscert"]; ok {
		d.Cert = fc.Cert
	}
	if _, ok := set["tlskey"]; ok {
		d.Key = fc.Key
	}
	if fc.TLS != nil {
		tlsOn = fc.TLS
	}
	if fc.TLSVerify != nil {
		verify = fc.TLSVerify
	}
	if _, ok := set["tlsverify"]; ok {
		t := true
		tlsOn = &t
	}
	if verify == nil && tlsOn != nil {
		verify = tlsOn
	}
	d.TLS = tlsOn != nil && *tlsOn
	// cmd/dockerd/daemon.go, newAPIServerConfig: a TLSVerify not set
	// counts as true.
	d.TLSVerify = d.TLS && (verify == nil || *verify)
}

// loadTLS checks the files as docker/go-connections' tlsconfig.Server,
// called from newAPIServerConfig, loads them: the certificate and key
// must form a pair, and when clients are verified the CA file must hold
// at least one PEM certificate. Without verification the CA is not read.
func (d *Daemon) loadTLS(root string) error {
	if !d.TLS {
		return nil
	}
	read := func(p string) ([]byte, error) {
		if p == "" {
			return nil, errors.New("open : no such file or directory")
		}
		return os.ReadFile(filepath.Join(root, p))
	}
	certPEM, err := read(d.Cert)
	if err != nil {
		return refuse(ReasonTLS, "Could not load X509 key pair (cert: %q, key: %q): %v", d.Cert, d.Key, err)
	}
	keyPEM, err := read(d.Key)
	if err != nil {
		return refuse(ReasonTLS, "Could not load X509 key pair (cert: %q, key: %q): %v", d.Cert, d.Key, err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return refuse(ReasonTLS, "Could not load X509 key pair (cert: %q, key: %q): %v", d.Cert, d.Key, err)
	}
	if !d.TLSVerify {
		return nil
	}
	caPEM, err := read(d.CACert)
	if err != nil {
		return refuse(ReasonTLS, "Could not read CA certificate %q: %v", d.CACert, err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
		return refuse(ReasonTLS, "failed to append certificates from PEM file: %q", d.CACert)
	}
	return nil
}

// listen resolves the hosts as cmd/dockerd/daemon.go, loadListeners, and
// daemon/listeners/listeners_linux.go, Init, do. No host at all is
// unix:///var/run/docker.sock, or tcp://localhost:2376 with TLS
// (opts/hosts.go, ParseHost); identical hosts are listened on once; every
// TCP listener, socket-activated ones included, gets the TLS settings
// (go-systemd's activation.TLSListeners wraps only the TCP ones). A TCP
// listener without TLS is allowed (dockerd 20.10 only warns; version 27
// and later refuse to start unless --tls=false or --tlsverify=false says
// so). fd:// takes the sockets systemd passes from docker.socket and fails
// without any ("no sockets found via socket activation").
func (d *Daemon) listen(in startInput) error {
	hosts := d.Hosts
	if len(hosts) == 0 {
		hosts = []string{""}
	}
	seen := map[string]bool{}
	add := func(l Listener) error {
		for _, o := range d.Listeners {
			if o.Network == l.Network && overlaps(o.Addr, l.Addr, l.Network) {
				return refuse(ReasonListener, "listen %s %s: bind: address already in use (%s and %s)", l.Network, l.Addr, o.From, l.From)
			}
		}
		if l.Network == "tcp" {
			l.TLS, l.VerifyClients = d.TLS, d.TLSVerify
		}
		d.Listeners = append(d.Listeners, l)
		return nil
	}
	from := d.HostsFrom
	for _, h := range hosts {
		proto, addr, err := parseHost(h, d.TLS)
		if err != nil {
			return refuse(ReasonListener, "error parsing -H %s: %v", h, err)
		}
		if seen[proto+"://"+addr] {
			continue
		}
		seen[proto+"://"+addr] = true
		switch proto {
		case "tcp":
			if err := add(Listener{Network: "tcp", Addr: addr, From: from}); err != nil {
				return err
			}
		case "unix":
			if err := add(Listener{Network: "unix", Addr: addr, From: from}); err != nil {
				return err
			}
		case "fd":
			if !in.socketUnit || len(in.socket) == 0 {
				return refuse(ReasonListener, "no sockets found via socket activation: make sure the service was started by systemd")
			}
			socks := in.socket
			if addr != "" && addr != "*" {
				n, err := strconv.Atoi(addr)
				if err != nil {
					return refuse(ReasonListener, "failed to parse systemd fd address: should be a number: %v", addr)
				}
				if n-3 < 0 || n-3 >= len(socks) {
					return refuse(ReasonListener, "too few socket activated files passed in by systemd")
				}
				socks = socks[n-3 : n-2]
			}
			for _, s := range socks {
				l := listenStream(s)
				l.From = "docker.socket ListenStream="
				if err := add(l); err != nil {
					return err
				}
			}
		default:
			return refuse(ReasonListener, "invalid protocol %s", proto)
		}
	}
	return nil
}

// parseHost follows opts/hosts.go, ParseHost, parseDaemonHost and
// ParseTCPAddr: an empty host is the default, a host without a scheme is
// TCP, an empty TCP host part is "localhost", a missing port is 2375.
func parseHost(h string, useTLS bool) (proto, addr string, err error) {
	h = strings.TrimSpace(h)
	if h == "" {
		if useTLS {
			return "tcp", "localhost:2376", nil
		}
		return "unix", "/var/run/docker.sock", nil
	}
	proto, rest, ok := strings.Cut(h, "://")
	if !ok {
		proto, rest = "tcp", h
	}
	switch proto {
	case "fd":
		return "fd", rest, nil
	case "unix":
		if rest == "" {
			rest = "/var/run/docker.sock"
		}
		return "unix", rest, nil
	case "tcp":
	default:
		return "", "", fmt.Errorf("invalid bind address format: %s", h)
	}
	if rest == "" {
		return "tcp", "localhost:2375", nil
	}
	if strings.Contains(rest, "://") {
		return "", "", fmt.Errorf("invalid proto, expected tcp: %s", h)
	}
	if strings.HasSuffix(rest, "]:") {
		rest += "2375"
	}
	u, err := url.Parse("tcp://" + rest)
	if err != nil {
		return "", "", err
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port, err = net.SplitHostPort(net.JoinHostPort(u.Host, "2375"))
	}
	if err != nil {
		return "", "", fmt.Errorf("invalid bind address format: %s", h)
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "2375"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		// net.Listen refuses what ParseTCPAddr lets through.
		return "", "", fmt.Errorf("invalid bind address format: %s", h)
	}
	return "tcp", net.JoinHostPort(host, port), nil
}

// listenStream reads a ListenStream= value (systemd.socket(5)): a path is
// a unix socket, "@name" an abstract one, a bare port listens on every
// address, otherwise an address and a port.
func listenStream(v string) Listener {
	v = strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(v, "/") || strings.HasPrefix(v, "@"):
		return Listener{Network: "unix", Addr: v}
	}
	if _, err := strconv.Atoi(v); err == nil {
		return Listener{Network: "tcp", Addr: net.JoinHostPort("::", v)}
	}
	return Listener{Network: "tcp", Addr: v}
}

// overlaps reports whether two listeners cannot both bind: the same unix
// path, or the same TCP port where one address is a wildcard or both are
// the same (Linux refuses the second bind with EADDRINUSE; Go listens on
// a dual-stack socket for "[::]" and ""). "localhost" is what Go's
// net.Listen binds for it: 127.0.0.1.
func overlaps(a, b, network string) bool {
	if network != "tcp" {
		return a == b
	}
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp {
		return false
	}
	norm := func(h string) string {
		switch h {
		case "", "0.0.0.0", "::":
			return "*"
		case "localhost":
			return "127.0.0.1"
		}
		if ip := net.ParseIP(h); ip != nil {
			return ip.String()
		}
		return h
	}
	ah, bh = norm(ah), norm(bh)
	return ah == "*" || bh == "*" || ah == bh
}

// TCPAddr is the address dockerd listens on for the host h ("-H h" or in
// daemon.json's hosts), or "" when h is not a TCP host.
func TCPAddr(h string) (string, error) {
	proto, addr, err := parseHost(h, false)
	if err != nil || proto != "tcp" {
		return "", err
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port), nil
}
