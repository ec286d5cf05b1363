package agent

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// Mode is how dockerd is configured.
type Mode string

// The native modes, and proxy mode: dockerd keeps only its local socket and
// tlsdock.service terminates mutual TLS in front of it (package proxy).
const (
	ModeDaemonJSON Mode = "daemon-json"
	ModeDropIn     Mode = "dropin"
	ModeProxy      Mode = "proxy"
)

// ParseMode checks a --mode value.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeDaemonJSON, ModeDropIn, ModeProxy:
		return Mode(s), nil
	}
	return "", &InputError{Field: "--mode", Err: fmt.Errorf("unknown mode %q: use daemon-json (the default), dropin or proxy", s)}
}

// DefaultHost is the listener tlsdock configures when no --host is given.
const DefaultHost = "tcp://0.0.0.0:2376"

// Config is everything a provision or a rotation needs, from the config file
// and flags. The zero value is not valid: use Defaults.
type Config struct {
	Mode  Mode
	Certs string // source directory; "" with Generate
	// CAFile, CertFile and KeyFile are the file names of the source
	// (--ca-file, --cert-file, --key-file): bare names inside Certs, the
	// CA also an absolute path; "" is the default name (SourceNames).
	CAFile, CertFile, KeyFile string
	Generate                  bool
	ClientOut                 string
	Hosts                     []string
	SANs                      []string
	KeyType                   certstore.KeyType
	LiveRestore               bool
	ProbeClient               string        // directory with cert.pem and key.pem for the client probe
	Timeout                   time.Duration // bound on the whole command, its rollback included (withBudget)
	DryRun                    bool
	// RenewBefore, with Generate: reissue the server certificate this long
	// before it expires; 0 reissues at two thirds of its lifetime (RenewAt).
	RenewBefore time.Duration
	// Policy (proxy mode) is the policy file; "" is the built-in policy.
	Policy string
	// CRLs (proxy mode) are external CRL files; the local CA's CRL
	// (LocalCRLPath) is loaded whenever it exists.
	CRLs []string
	// CRLURLs (proxy mode) are URLs (http or https) the proxy fetches a
	// CRL from every CRLRefresh, keeping the last good one.
	CRLURLs    []string
	CRLRefresh time.Duration
	// AuditLog (proxy mode) is the file of per-request audit records
	// (DefaultAuditLog); "" keeps them in the journal. AuditLogMaxSize
	// rotates it past that many bytes; 0 never (logrotate's job then).
	AuditLog        string
	AuditLogMaxSize int64
	// AllowSourceOwner (with Certs) lets one non-root account, USER or
	// USER:GROUP, own and write the source: a PKI agent's service user.
	// Otherwise only root may be able to change it (SourceTrust).
	AllowSourceOwner string
	// SourceSet, when set, is the source set the caller already loaded
	// with the source trust checks (certstore.LoadSource) and validated:
	// the plan uses it instead of reading Certs again, so that what was
	// checked is what is installed. It still checks the requirements.
	SourceSet *certstore.Set `json:"-"`
	// ClientOwner owns the --client-out bundle (--client-owner; nil: the
	// account tlsdock runs as).
	ClientOwner *ClientOwner `json:"-"`
	// ClientOwnerSpec is the client-owner setting as given (USER or
	// USER:GROUP; "": SUDO_USER under sudo, else root), which the command
	// resolves into ClientOwner.
	ClientOwnerSpec string `json:"-"`
	// daemon marks the rotation daemon's provisions (daemonApplier): a
	// host that `tlsdock revert` put back refuses them.
	daemon bool
}

// DefaultAuditLog is proxy mode's audit log; tlsdock.service's
// LogsDirectory=tlsdock makes its directory writable.
const DefaultAuditLog = "/var/log/tlsdock/audit.jsonl"

// DefaultAuditLogMaxSize is the size past which the audit log rotates.
const DefaultAuditLogMaxSize = 100 << 20

// Defaults returns the documented defaults.
func Defaults() Config {
	return Config{
		Mode:        ModeDaemonJSON,
		Hosts:       []string{DefaultHost},
		KeyType:     certstore.ECDSAP256,
		LiveRestore: true,
		Timeout:     3 * time.Minute,

		AuditLog:        DefaultAuditLog,
		AuditLogMaxSize: DefaultAuditLogMaxSize,
		CRLRefresh:      DefaultCRLRefresh,
	}
}

// InputError is bad input: a flag, a config key or a file. Nothing on the
// host was changed when one is returned.
type InputError struct {
	Field string // flag, config key or file
	// At, when the value came from the config file, is where it was set
	// (FILE:LINE); the message then names the key as the file spells it.
	At  string
	Err error
}

func (e *InputError) Error() string {
	if e.At != "" {
		return e.At + ": " + strings.TrimPrefix(e.Field, "--") + ": " + e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks the settings before anything on the host is touched.
func (c Config) Validate() error {
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if _, err := certstore.ParseKeyType(string(c.KeyType)); err != nil {
		return &InputError{Field: "--key-type", Err: err}
	}
	switch {
	case c.Certs == "" && !c.Generate:
		return inputErr("--certs", "no certificates given: pass --certs DIR (with ca.pem, server-cert.pem and server-key.pem, or the names given by --ca-file, --cert-file and --key-file) or --generate to use a local CA")
	case c.Certs != "" && c.Generate:
		return inputErr("--generate", "--generate and --certs %s exclude each other: the local CA issues the server certificate itself", c.Certs)
	case c.ClientOut != "" && !c.Generate:
		return inputErr("--client-out", "a client bundle can only be issued by the local CA: add --generate, or issue client certificates with the CA that signed %s", c.Certs)
	}
	if err := c.checkSourceNames(); err != nil {
		return err
	}
	if len(c.Hosts) == 0 {
		return inputErr("--host", "no listener: give at least one --host such as %s", DefaultHost)
	}
	for _, h := range c.Hosts {
		if _, err := ParseHost(h); err != nil {
			return err
		}
	}
	for _, s := range c.SANs {
		if err := checkSAN(s); err != nil {
			return err
		}
	}
	if c.Timeout <= 0 {
		return inputErr("--timeout", "must be positive, got %v", c.Timeout)
	}
	if _, err := c.SourceTrust(); err != nil {
		return err
	}
	return c.validateProxy()
}

// Listener is a parsed --host.
type Listener struct {
	URL  string // normalised tcp://HOST:PORT
	Host string // address or name as given ("0.0.0.0", "::", "10.0.0.5")
	Port int
}

// Wildcard reports whether the listener binds every address.
func (l Listener) Wildcard() bool {
	ip := net.ParseIP(l.Host)
	return l.Host == "" || (ip != nil && ip.IsUnspecified())
}

// ProbeAddr is where tlsdock connects to check the listener.
func (l Listener) ProbeAddr() string {
	host := l.Host
	if l.Wildcard() {
		host = "127.0.0.1"
		if ip := net.ParseIP(l.Host); ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(l.Port))
}

// ParseSize reads a size in bytes with an optional K, M or G suffix
// (powers of 1024), for --audit-log-max-size.
func ParseSize(field, s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1<<10, t[:n-1]
		case 'm', 'M':
			mult, t = 1<<20, t[:n-1]
		case 'g', 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, inputErr(field, "%q is not a size: give bytes with an optional K, M or G suffix, such as 100M (0: never rotate)", s)
	}
	return v * mult, nil
}

// FormatSize writes a size the way ParseSize reads it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		v      int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// ParseHost checks one --host value.
func ParseHost(s string) (Listener, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return Listener{}, inputErr("--host", "%q is not a listener URL: use tcp://ADDRESS:PORT, for example %s", s, DefaultHost)
	}
	if u.Scheme != "tcp" {
		return Listener{}, inputErr("--host", "%q: tlsdock puts TCP listeners behind TLS; use tcp://ADDRESS:PORT (the local unix socket is kept as it is)", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return Listener{}, inputErr("--host", "%q: a listener URL has no path, query or user: use tcp://ADDRESS:PORT", s)
	}
	host, portStr := u.Hostname(), u.Port()
	if portStr == "" {
		return Listener{}, inputErr("--host", "%q has no port: use tcp://%s:2376", s, u.Host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return Listener{}, inputErr("--host", "%q: port %s is out of range: use 1-65535, usually 2376", s, portStr)
	}
	l := Listener{Host: host, Port: port}
	l.URL = "tcp://" + net.JoinHostPort(host, portStr)
	return l, nil
}

// Listeners parses every --host.
func (c Config) Listeners() ([]Listener, error) {
	out := make([]Listener, 0, len(c.Hosts))
	for _, h := range c.Hosts {
		l, err := ParseHost(h)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func checkSAN(s string) error {
	if s == "" {
		return inputErr("--san", "empty name: give a DNS name or an IP address")
	}
	if net.ParseIP(s) != nil {
		return nil
	}
	name := strings.TrimPrefix(s, "*.")
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return inputErr("--san", "%q is neither an IP address nor a DNS name: give a name such as docker.example.com or an address such as 10.0.0.5", s)
		}
	}
	return nil
}

// SourceNames are the file names of the --certs source, defaults filled
// in.
func (c Config) SourceNames() certstore.SourceNames {
	return certstore.SourceNames{CA: c.CAFile, Cert: c.CertFile, Key: c.KeyFile}.WithDefaults()
}

// SourcePaths are the files of the --certs source.
func (c Config) SourcePaths() certstore.SetNames {
	return c.SourceNames().Paths(c.Certs)
}

// checkSourceNames checks --ca-file, --cert-file and --key-file.
func (c Config) checkSourceNames() error {
	for _, f := range []struct {
		flag, name string
		absOK      bool
	}{{"--ca-file", c.CAFile, true}, {"--cert-file", c.CertFile, false}, {"--key-file", c.KeyFile, false}} {
		if f.name == "" {
			continue
		}
		if c.Generate {
			return inputErr(f.flag, "applies only with --certs: the local CA (--generate) writes its own files; remove %s", strings.TrimPrefix(f.flag, "--"))
		}
		if err := certstore.CheckSourceName(f.name, f.absOK); err != nil {
			return &InputError{Field: f.flag, Err: err}
		}
	}
	p := c.SourcePaths()
	switch {
	case p.Cert == p.Key:
		return inputErr("--key-file", "%s is also the certificate (--cert-file): give the server key's own file", p.Key)
	case p.CA == p.Key:
		return inputErr("--ca-file", "%s is also the server key (--key-file): give the CA bundle's own file", p.CA)
	}
	return nil
}

// SourceTrust is who may control the --certs source: root, and the
// account of AllowSourceOwner.
func (c Config) SourceTrust() (certstore.SourceTrust, error) {
	if c.AllowSourceOwner == "" {
		return certstore.SourceTrust{}, nil
	}
	if c.Certs == "" {
		return certstore.SourceTrust{}, inputErr("--allow-source-owner", "applies only with --certs: the local CA (--generate) is root's own; remove allow-source-owner")
	}
	acc, err := certstore.ParseAccount(c.AllowSourceOwner)
	if err != nil {
		return certstore.SourceTrust{}, &InputError{Field: "--allow-source-owner", Err: err}
	}
	return certstore.SourceTrust{Owner: acc}, nil
}

// SourceWarning is the warning every provision, the daemon's start and
// its status give while AllowSourceOwner is set; "" otherwise.
func (c Config) SourceWarning() string {
	t, err := c.SourceTrust()
	if err != nil || t.Owner == nil {
		return ""
	}
	return fmt.Sprintf("warning: allow-source-owner %s: account uid %d (group gid %d) may write the certificate source %s, so whoever controls that account can install their own CA and take over dockerd. Keep that account to the PKI agent, or make the source root's (chown -R root:root %s && chmod -R go-w %s) and remove allow-source-owner",
		c.AllowSourceOwner, t.Owner.UID, t.Owner.GID, c.Certs, c.Certs, c.Certs)
}
