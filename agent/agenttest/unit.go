package agenttest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
)

// The unit files are read here with go-systemd's parser and systemd's
// documented rules (systemd.unit(5), systemd.service(5),
// systemd.socket(5), systemd.exec(5)), not with tlsdock's own reader in
// package systemd: the fake judges what tlsdock wrote, so it must not
// share tlsdock's mistakes.

// unitDirs are the unit search path of the system manager, highest
// priority first (systemd.unit(5), "Unit File Load Path").
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system"}

// unitFiles is a unit as systemd loads it: the fragment, then the
// drop-ins ordered by file name.
type unitFiles struct {
	Fragment string
	DropIns  []string
	// Masked: the fragment is a link to /dev/null (systemctl mask). systemd
	// then loads nothing of the unit, its drop-ins neither, and refuses to
	// start it (systemd.unit(5), "masked").
	Masked bool
	// content is every file as it was read, to tell whether the files
	// on disk changed since (NeedDaemonReload).
	content map[string]string
}

// findUnit locates name's fragment and drop-ins under root. A fragment in
// a higher-priority directory hides the others; a drop-in of a given name
// in a higher-priority directory hides the same name in a lower one, and
// all drop-ins apply in the order of their file names (systemd.unit(5),
// "[Unit] Section Options" and the drop-in paragraph of "Description").
func findUnit(root, name string) (*unitFiles, error) {
	u := &unitFiles{content: map[string]string{}}
	for _, d := range unitDirs {
		p := path.Join(d, name)
		if target, err := os.Readlink(filepath.Join(root, p)); err == nil && target == os.DevNull {
			u.Fragment, u.Masked = p, true
			u.content[p] = ""
			return u, nil
		}
		if b, err := os.ReadFile(filepath.Join(root, p)); err == nil {
			u.Fragment = p
			u.content[p] = string(b)
			break
		}
	}
	byName := map[string]string{}
	for i := len(unitDirs) - 1; i >= 0; i-- {
		dir := path.Join(unitDirs[i], name+".d")
		entries, _ := os.ReadDir(filepath.Join(root, dir))
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			byName[e.Name()] = path.Join(dir, e.Name())
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := byName[n]
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return nil, err
		}
		u.DropIns = append(u.DropIns, p)
		u.content[p] = string(b)
	}
	return u, nil
}

// same reports whether two reads found the same files with the same
// content.
func (u *unitFiles) same(o *unitFiles) bool {
	if u == nil || o == nil || len(u.content) != len(o.content) || u.Fragment != o.Fragment {
		return false
	}
	for k, v := range u.content {
		if o.content[k] != v {
			return false
		}
	}
	return true
}

// settings is the parsed unit: each directive's values in the order the
// files give them, with an empty assignment resetting the list, which is
// how systemd treats the list-valued directives used here (ExecStart=,
// Environment=, EnvironmentFile=, ListenStream=, Requires=;
// systemd.service(5) and systemd.exec(5)).
type settings map[string][]string

func (u *unitFiles) parse() (settings, error) {
	s := settings{}
	files := append([]string{u.Fragment}, u.DropIns...)
	for _, f := range files {
		if f == "" {
			continue
		}
		opts, err := unit.DeserializeOptions(strings.NewReader(u.content[f]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, o := range opts {
			key := o.Section + "." + o.Name
			if strings.TrimSpace(o.Value) == "" {
				s[key] = nil
				continue
			}
			s[key] = append(s[key], o.Value)
		}
	}
	return s, nil
}

// last is a single-valued directive: the last assignment wins.
func (s settings) last(keys ...string) (string, bool) {
	var v string
	var ok bool
	for _, k := range keys {
		if vs := s[k]; len(vs) > 0 {
			v, ok = vs[len(vs)-1], true
		}
	}
	return v, ok
}

// startLimit is a unit's start rate limit: StartLimitIntervalSec= and
// StartLimitBurst= in [Unit], or their older spellings in [Service]
// (StartLimitInterval=), which systemd still reads; the defaults are
// systemd's DefaultStartLimitIntervalSec=10s and DefaultStartLimitBurst=5
// (systemd.unit(5), systemd-system.conf(5)).
func (s settings) startLimit() (time.Duration, int) {
	interval, burst := 10*time.Second, 5
	if v, ok := s.last("Service.StartLimitInterval", "Service.StartLimitIntervalSec", "Unit.StartLimitIntervalSec"); ok {
		if d, err := parseTimespan(v); err == nil {
			interval = d
		}
	}
	if v, ok := s.last("Service.StartLimitBurst", "Unit.StartLimitBurst"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			burst = n
		}
	}
	return interval, burst
}

// parseTimespan reads the time spans unit files use: a bare number is
// seconds, else Go-like units ("60s", "1min", "2m").
func parseTimespan(v string) (time.Duration, error) {
	v = strings.ReplaceAll(strings.TrimSpace(v), " ", "")
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	v = strings.ReplaceAll(v, "min", "m")
	v = strings.ReplaceAll(v, "sec", "s")
	return time.ParseDuration(v)
}

// splitExec splits an ExecStart= value into words and expands
// environment variables as systemd does (systemd.service(5), "Command
// lines"): words are separated by white space, quotes group a word and
// are removed, backslash escapes a character; "${FOO}" is replaced by the
// value as one word, and a word that is exactly "$FOO" (after quote
// removal, as systemd's replace_env_argv sees it) is replaced by the value
// split at white space into zero or more words. The
// leading special characters of the first word ("-", "@", "+", "!",
// ":") are removed.
func splitExec(line string, env map[string]string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool
		quote byte
	)
	flush := func() {
		if !in {
			return
		}
		w := cur.String()
		if name, ok := strings.CutPrefix(w, "$"); ok && isName(name) {
			words = append(words, strings.Fields(env[name])...)
		} else {
			words = append(words, expandBraces(w, env))
		}
		cur.Reset()
		in = false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			in = true
		case c == '\\':
			return nil, fmt.Errorf("command line %q ends with a backslash", line)
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			in = true
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("command line %q has an unterminated quote", line)
	}
	flush()
	if len(words) > 0 {
		words[0] = strings.TrimLeft(words[0], "-@+!:")
	}
	return words, nil
}

func isName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// expandBraces replaces ${NAME} by its value.
func expandBraces(w string, env map[string]string) string {
	var out strings.Builder
	for {
		i := strings.Index(w, "${")
		if i < 0 {
			out.WriteString(w)
			return out.String()
		}
		j := strings.IndexByte(w[i:], '}')
		if j < 0 {
			out.WriteString(w)
			return out.String()
		}
		out.WriteString(w[:i])
		out.WriteString(env[w[i+2:i+j]])
		w = w[i+j+1:]
	}
}

// environment is the service's environment: the manager's environment
// (NAME=VALUE words), then Environment= assignments
// (each value is a list of quoted "VAR=value" words), then each
// EnvironmentFile= read at start, where a leading "-" lets the file be
// missing; files override Environment= (systemd.exec(5), "Environment").
func (s settings) environment(root string, manager []string) (map[string]string, error) {
	env := map[string]string{}
	for _, kv := range manager {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for _, line := range s["Service.Environment"] {
		words, err := splitExec(line, nil)
		if err != nil {
			return nil, fmt.Errorf("parsing Environment=: %w", err)
		}
		for _, w := range words {
			if k, v, ok := strings.Cut(w, "="); ok {
				env[k] = v
			}
		}
	}
	for _, f := range s["Service.EnvironmentFile"] {
		optional := strings.HasPrefix(f, "-")
		f = strings.TrimPrefix(f, "-")
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			if optional && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("EnvironmentFile=%s: %w", f, err)
		}
		for k, v := range parseEnvFile(b) {
			env[k] = v
		}
	}
	// UnsetEnvironment= removes NAME, or NAME=VALUE when the value is
	// that, before the command line is expanded (systemd.exec(5)).
	for _, line := range s["Service.UnsetEnvironment"] {
		words, err := splitExec(line, nil)
		if err != nil {
			return nil, fmt.Errorf("parsing UnsetEnvironment=: %w", err)
		}
		for _, w := range words {
			if k, v, ok := strings.Cut(w, "="); !ok {
				delete(env, w)
			} else if env[k] == v {
				delete(env, k)
			}
		}
	}
	return env, nil
}

// parseEnvFile reads VAR=VALUE lines; "#" and ";" start comments, and a
// value may be quoted (systemd.exec(5), "EnvironmentFile=").
func parseEnvFile(b []byte) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(strings.TrimPrefix(k, "export ")), strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	return env
}
