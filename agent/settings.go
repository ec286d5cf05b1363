package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// settingKeys lists every key of the config file, in the order of the
// shipped tlsdock.conf, with whether it may repeat. Each is also a flag of
// the same name.
var settingKeys = []struct {
	name   string
	repeat bool
}{
	{"certs", false}, {"ca-file", false}, {"cert-file", false}, {"key-file", false}, {"allow-source-owner", false}, {"generate", false}, {"client-out", false}, {"client-owner", false},
	{"host", true}, {"san", true}, {"key-type", false}, {"mode", false}, {"live-restore", false},
	{"probe-client", false}, {"timeout", false},
	// tlsdock run
	{"debounce", false}, {"max-wait", false}, {"min-restart-interval", false},
	{"renew-before", false}, {"metrics-listen", false},
	// proxy mode
	{"policy", false}, {"crl", true}, {"crl-url", true}, {"crl-refresh", false}, {"audit-log", false}, {"audit-log-max-size", false},
}

// IsSetting reports whether name is a key of the config file (and so a
// flag the merge takes).
func IsSetting(name string) bool {
	_, ok := settingRepeat(name)
	return ok
}

func settingRepeat(name string) (repeat, known bool) {
	for _, k := range settingKeys {
		if k.name == name {
			return k.repeat, true
		}
	}
	return false, false
}

// FileValue is one value of the config file and where it was set.
type FileValue struct {
	Value string
	File  string
	Line  int
}

// At is where the value was set: FILE:LINE.
func (v FileValue) At() string { return fmt.Sprintf("%s:%d", v.File, v.Line) }

// FileSettings is what the config file set: key → values in file order.
type FileSettings map[string][]FileValue

// ParseConfigFile reads the config file format: one "key = value" per line,
// '#' starts a comment, keys are the long flag names, and a repeatable key
// ("host", "san", "crl", "crl-url") may appear on several lines. name is the file's
// path, as errors and FileValue name it.
func ParseConfigFile(name string, data []byte) (FileSettings, error) {
	fs := FileSettings{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		at := fmt.Sprintf("%s:%d", name, n)
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			return nil, inputErr(at, "%q is not \"key = value\": write one setting a line, such as timeout = 90s, or start the line with # to comment it out", line)
		}
		repeat, known := settingRepeat(key)
		if !known {
			return nil, inputErr(at, "unknown key %q: the keys are the long flag names of `tlsdock provision` and `tlsdock run` (see `tlsdock config --help`)", key)
		}
		if prev := fs[key]; !repeat && len(prev) > 0 {
			return nil, inputErr(at, "%q is set twice (first on line %d): keep one line", key, prev[0].Line)
		}
		fs[key] = append(fs[key], FileValue{Value: unquote(val), File: name, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return fs, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
		return v[1 : len(v)-1]
	}
	return v
}

// LoadConfigFile reads the config file; a missing file is no settings.
func LoadConfigFile(path string) (FileSettings, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return FileSettings{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return ParseConfigFile(path, data)
}

// Flags are the settings flags given on the command line, by long name:
// the values of each use in order (one value for a single-valued flag).
type Flags map[string][]string

// Settings are the inputs of a merge. A flag given on the command line wins
// over the config file, and the file over the defaults; a repeatable key
// given as a flag replaces the file's lines.
type Settings struct {
	Root  string       // filesystem root; the daemon's default source is under it
	File  FileSettings // the config file; nil: none
	Flags Flags
	// Recorded is what the last provision by hand recorded
	// (RecordedSource): the daemon's source when neither a flag nor the
	// file sets certs or generate, and each setting of the served API
	// (mode, host, san, key-type, live-restore, probe-client) that
	// neither sets. A provision takes it only when no flag names a
	// source (provisionRecorded). nil: none.
	Recorded *SourceRecord
}

// Where a setting's value came from.
const (
	FromDefault = "default"
	FromFile    = "file"
	FromFlag    = "flag"
	// FromProvision: recorded by the last `tlsdock provision` run by hand
	// (State.Source), used by `tlsdock run` and by a provision that names
	// no source.
	FromProvision = "provision"
)

// Setting is one key's effective value and where it came from.
type Setting struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
	Source string   `json:"source"` // FromDefault, FromFile or FromFlag
	File   string   `json:"file,omitempty"`
	Lines  []int    `json:"lines,omitempty"` // with FromFile: the line of each value
}

// From says where the value came from: "default", "--KEY", or FILE:LINE
// (FILE:LINE,LINE for a repeated key).
func (s Setting) From() string {
	switch s.Source {
	case FromFlag:
		return "--" + s.Key
	case FromProvision:
		return "tlsdock provision (" + s.File + ")"
	case FromFile:
		lines := make([]string, len(s.Lines))
		for i, l := range s.Lines {
			lines[i] = strconv.Itoa(l)
		}
		return s.File + ":" + strings.Join(lines, ",")
	}
	return FromDefault
}

// MergeProvision merges the settings of `tlsdock provision`.
func MergeProvision(s Settings) (Config, []Setting, error) {
	rc, out, err := merge(s, false)
	return rc.Config, out, err
}

// MergeRun merges the settings of `tlsdock run`, at its start and on
// SIGHUP. It differs from provision where the daemon does:
//   - the source (certs) defaults to DefaultSource under Root unless the
//     local CA (generate) is used;
//   - in proxy mode min-restart-interval defaults to 0, as a set is swapped
//     in without restarting dockerd;
//   - client-out (and client-owner) is checked but dropped: the daemon writes no client bundle
//     (it often lives in a home directory, which the unit hides);
//   - renew-before applies only with generate.
func MergeRun(s Settings) (RunConfig, []Setting, error) {
	return merge(s, true)
}

// merger collects the first error of a merge and each key's origin.
type merger struct {
	s       Settings
	origins map[string]Setting
	err     error
}

// raw returns a key's given values: from a flag, else from the file; nil
// when neither sets it. at[i] is where value i was set ("" for a flag).
func (m *merger) raw(key string) (vals, at []string) {
	if v, ok := m.s.Flags[key]; ok {
		m.origins[key] = Setting{Key: key, Source: FromFlag}
		return v, make([]string, len(v))
	}
	fv := m.s.File[key]
	if len(fv) == 0 {
		return nil, nil
	}
	o := Setting{Key: key, Source: FromFile, File: fv[0].File}
	for _, v := range fv {
		vals, at = append(vals, v.Value), append(at, v.At())
		o.Lines = append(o.Lines, v.Line)
	}
	m.origins[key] = o
	return vals, at
}

// last hands the value of a single-valued key to set. A value of the file
// that a flag overrides is checked too: the file is refused as a whole, as
// it will be once the flag is gone.
func (m *merger) last(key string, set func(v string) error) {
	if _, flagged := m.s.Flags[key]; flagged {
		for _, fv := range m.s.File[key] {
			m.check(key, fv.At(), fv.Value, set)
		}
	}
	vals, at := m.raw(key)
	if n := len(vals); n > 0 {
		m.check(key, at[n-1], vals[n-1], set)
	}
}

// check hands v to set and records the first error, located at at.
func (m *merger) check(key, at, v string, set func(v string) error) {
	if err := set(v); err != nil && m.err == nil {
		m.err = locate(key, at, err)
	}
}

func (m *merger) str(key string, dst *string) {
	m.last(key, func(v string) error { *dst = v; return nil })
}

func (m *merger) boolean(key string, dst *bool) {
	m.last(key, func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false: write %s = true or %s = false", v, key, key)
		}
		*dst = b
		return nil
	})
}

func (m *merger) duration(key string, dst *time.Duration) {
	m.last(key, func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 90s or 5m: give a number with a unit (ms, s, m or h)", v)
		}
		*dst = d
		return nil
	})
}

// list replaces *dst with every value of a repeatable key, each checked
// (the file's too when flags override them).
func (m *merger) list(key string, dst *[]string, check func(string) error) {
	if check == nil {
		check = func(string) error { return nil }
	}
	if _, flagged := m.s.Flags[key]; flagged {
		for _, fv := range m.s.File[key] {
			m.check(key, fv.At(), fv.Value, check)
		}
	}
	vals, at := m.raw(key)
	if vals == nil {
		return
	}
	*dst = append([]string{}, vals...)
	for i, v := range vals {
		m.check(key, at[i], v, check)
	}
}

// locate makes err an input error on --key, and names FILE:LINE when the
// value came from the config file.
func locate(key, at string, err error) error {
	var ie *InputError
	if !errors.As(err, &ie) {
		ie = &InputError{Field: "--" + key, Err: err}
		err = ie
	}
	if at != "" && ie.At == "" {
		ie.At = at
	}
	return err
}

// locateOrigin names FILE:LINE in an error of Validate on a key the file
// set.
func (m *merger) locateOrigin(err error) error {
	var ie *InputError
	if !errors.As(err, &ie) || ie.At != "" {
		return err
	}
	if o, ok := m.origins[strings.TrimPrefix(ie.Field, "--")]; ok && o.Source == FromFile {
		ie.At = fmt.Sprintf("%s:%d", o.File, o.Lines[0])
	}
	return err
}

func merge(s Settings, run bool) (RunConfig, []Setting, error) {
	m := &merger{s: s, origins: map[string]Setting{}}
	if err := checkConfPaths(s.File); err != nil {
		return RunConfig{}, nil, err
	}
	for name := range s.Flags {
		if !IsSetting(name) {
			return RunConfig{}, nil, inputErr("--"+name, "is not a setting of the config file")
		}
	}
	rc := RunDefaults()
	m.last("mode", func(v string) error {
		mode, err := ParseMode(v)
		rc.Mode = mode
		return err
	})
	m.str("certs", &rc.Certs)
	m.str("ca-file", &rc.CAFile)
	m.str("cert-file", &rc.CertFile)
	m.str("key-file", &rc.KeyFile)
	m.boolean("generate", &rc.Generate)
	m.str("client-out", &rc.ClientOut)
	m.str("client-owner", &rc.ClientOwnerSpec)
	m.list("host", &rc.Hosts, func(v string) error { _, err := ParseHost(v); return err })
	m.list("san", &rc.SANs, checkSAN)
	m.last("key-type", func(v string) error {
		kt, err := certstore.ParseKeyType(v)
		rc.KeyType = kt
		return err
	})
	m.boolean("live-restore", &rc.LiveRestore)
	m.str("probe-client", &rc.ProbeClient)
	m.duration("timeout", &rc.Timeout)
	m.duration("debounce", &rc.Debounce)
	m.duration("max-wait", &rc.MaxWait)
	m.duration("min-restart-interval", &rc.MinRestartInterval)
	m.duration("renew-before", &rc.RenewBefore)
	m.str("metrics-listen", &rc.MetricsListen)
	m.str("policy", &rc.Policy)
	m.list("crl", &rc.CRLs, nil)
	m.list("crl-url", &rc.CRLURLs, checkCRLURL)
	m.duration("crl-refresh", &rc.CRLRefresh)
	if _, set := m.origins["crl-refresh"]; set && m.err == nil {
		m.err = m.locateOrigin(checkCRLRefresh(rc.CRLRefresh))
	}
	m.str("audit-log", &rc.AuditLog)
	m.last("audit-log-max-size", func(v string) error {
		n, err := ParseSize("--audit-log-max-size", v)
		rc.AuditLogMaxSize = n
		return err
	})
	m.str("allow-source-owner", &rc.AllowSourceOwner)
	if m.err != nil {
		return RunConfig{}, nil, m.err
	}

	if run {
		_, certsSet := m.origins["certs"]
		_, genSet := m.origins["generate"]
		switch {
		case !certsSet && !genSet && s.Recorded != nil:
			m.recorded(&rc, s.Recorded)
		case !certsSet && !rc.Generate:
			rc.Certs = Paths{Root: s.Root}.Abs(DefaultSource)
		}
		if s.Recorded != nil {
			m.recordedSettings(&rc, s.Recorded)
		}
		if _, set := m.origins["min-restart-interval"]; !set && rc.Mode == ModeProxy {
			rc.MinRestartInterval = 0
		}
	} else {
		m.provisionRecorded(&rc)
		// renew-before is the daemon's: provision reissues at two thirds
		// of the lifetime.
		rc.RenewBefore = 0
	}
	out := m.settings(rc)
	if err := rc.Config.Validate(); err != nil {
		return RunConfig{}, out, m.locateOrigin(err)
	}
	if !run {
		return rc, out, nil
	}
	rc.ClientOut, rc.ClientOwnerSpec = "", ""
	if rc.RenewBefore != 0 && !rc.Generate {
		return RunConfig{}, out, m.locateOrigin(inputErr("--renew-before", "applies only with --generate (the local CA): certificates in %s are renewed by their issuer, and tlsdock warns before they expire (30, 7 and 1 days, scaled down for a lifetime under 120 days); remove renew-before", rc.Certs))
	}
	if err := rc.Validate(); err != nil {
		return RunConfig{}, out, m.locateOrigin(err)
	}
	return rc, out, nil
}

// recorded takes the daemon's source from the record of the last
// provision: certs or generate, and each of the file names and
// allow-source-owner that no flag or file line sets.
func (m *merger) recorded(rc *RunConfig, r *SourceRecord) {
	origin := func(key string) {
		m.origins[key] = Setting{Key: key, Source: FromProvision, File: StateDir + "/state.json"}
	}
	if r.Generate {
		rc.Generate = true
		origin("generate")
		return
	}
	rc.Certs = r.Certs // the path the provision read, as it read it
	origin("certs")
	for _, f := range []struct {
		key      string
		dst      *string
		recorded string
	}{{"ca-file", &rc.CAFile, r.CAFile}, {"cert-file", &rc.CertFile, r.CertFile}, {"key-file", &rc.KeyFile, r.KeyFile}, {"allow-source-owner", &rc.AllowSourceOwner, r.AllowSourceOwner}} {
		if _, set := m.origins[f.key]; set || f.recorded == "" {
			continue
		}
		*f.dst = f.recorded
		origin(f.key)
	}
}

// recordedSettings takes each setting of the served API that no flag or
// file line sets from the record of the last provision.
func (m *merger) recordedSettings(rc *RunConfig, r *SourceRecord) {
	take := func(key string, ok bool, set func()) {
		if _, given := m.origins[key]; given || !ok {
			return
		}
		set()
		m.origins[key] = Setting{Key: key, Source: FromProvision, File: StateDir + "/state.json"}
	}
	take("mode", r.Mode != "", func() { rc.Mode = r.Mode })
	take("host", len(r.Hosts) > 0, func() { rc.Hosts = append([]string{}, r.Hosts...) })
	take("san", len(r.SANs) > 0, func() { rc.SANs = append([]string{}, r.SANs...) })
	take("key-type", r.KeyType != "", func() { rc.KeyType = r.KeyType })
	take("live-restore", r.LiveRestore != nil, func() { rc.LiveRestore = *r.LiveRestore })
	take("probe-client", r.ProbeClient != "", func() { rc.ProbeClient = r.ProbeClient })
}

// settings lists every key with its effective value and origin.
func (m *merger) settings(rc RunConfig) []Setting {
	out := make([]Setting, 0, len(settingKeys))
	for _, k := range settingKeys {
		o, ok := m.origins[k.name]
		if !ok {
			o = Setting{Key: k.name, Source: FromDefault}
		}
		o.Values = append([]string{}, rc.values(k.name)...)
		out = append(out, o)
	}
	return out
}

// values formats one key's effective value the way the config file
// writes it.
func (rc RunConfig) values(key string) []string {
	switch key {
	case "host":
		return rc.Hosts
	case "san":
		return rc.SANs
	case "crl":
		return rc.CRLs
	case "crl-url":
		return rc.CRLURLs
	}
	var v string
	switch key {
	case "mode":
		v = string(rc.Mode)
	case "certs":
		v = rc.Certs
	case "ca-file", "cert-file", "key-file":
		if rc.Generate {
			break
		}
		n := rc.SourceNames()
		v = map[string]string{"ca-file": n.CA, "cert-file": n.Cert, "key-file": n.Key}[key]
	case "generate":
		v = strconv.FormatBool(rc.Generate)
	case "client-out":
		v = rc.ClientOut
	case "client-owner":
		v = rc.ClientOwnerSpec
	case "key-type":
		v = string(rc.KeyType)
	case "live-restore":
		v = strconv.FormatBool(rc.LiveRestore)
	case "probe-client":
		v = rc.ProbeClient
	case "timeout":
		v = rc.Timeout.String()
	case "debounce":
		v = rc.Debounce.String()
	case "max-wait":
		v = rc.MaxWait.String()
	case "min-restart-interval":
		v = rc.MinRestartInterval.String()
	case "renew-before":
		v = rc.RenewBefore.String()
	case "metrics-listen":
		v = rc.MetricsListen
	case "policy":
		v = rc.Policy
	case "crl-refresh":
		v = rc.CRLRefresh.String()
	case "audit-log":
		v = rc.AuditLog
	case "audit-log-max-size":
		v = FormatSize(rc.AuditLogMaxSize)
	case "allow-source-owner":
		v = rc.AllowSourceOwner
	}
	return []string{v}
}
