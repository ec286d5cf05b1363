package systemd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A service's environment, as systemd builds it for the service's command
// lines, and the expansion of variables on them. The rules are systemd's
// (systemd.exec(5), "Environment"; systemd.service(5), "Command lines";
// checked against src/core/load-fragment.c, src/core/execute.c,
// src/basic/env-file.c and src/basic/env-util.c):
//
//   - Environment= is a list of "NAME=value" words, quoted and C-escaped
//     as a command line is; an empty assignment resets the list, a later
//     assignment of a name overrides an earlier one, and an invalid one
//     is ignored;
//   - EnvironmentFile= names files (or wildcard patterns) read when the
//     service starts, in order; "-" in front lets the file be missing or
//     unreadable; an empty assignment resets the list; and the files'
//     settings override Environment=;
//   - UnsetEnvironment= removes the names it lists (or a NAME=VALUE
//     assignment with exactly that value) from what the two above set,
//     before the command lines are expanded;
//   - on a command line, a word that is exactly "$NAME" is replaced by the
//     value split into words at white space (quotes respected), and
//     "${NAME}" by the value as one word.
//
// The service manager's own environment (DefaultEnvironment= in
// system.conf, systemctl set-environment) comes first, as Env's base.

// Assignment is one variable of a service's environment and where it was
// set.
type Assignment struct {
	Name, Value string
	// From is the file that set it: the unit file of an Environment=
	// line, or the environment file.
	From string
	// Err is why the value is unknown (an Environment= word with a unit
	// specifier tlsdock does not resolve).
	Err error
}

// EnvFile is one EnvironmentFile= setting.
type EnvFile struct {
	// Path is an absolute file name or wildcard pattern.
	Path string
	// Optional: written with "-" in front.
	Optional bool
	// From is the unit file that set it.
	From string
}

// ManagerEnvironment names the service manager's environment as the
// source of a variable.
const ManagerEnvironment = "the service manager's environment (systemctl show-environment)"

// maxEnvFileSize bounds how much of an environment file is read.
const maxEnvFileSize = 1 << 20

// addEnv applies one Environment= or EnvironmentFile= line of the unit
// file from.
func (s *Service) addEnv(name, value, from string) {
	if strings.TrimSpace(value) == "" {
		// An empty assignment resets the list.
		switch name {
		case "Environment":
			s.Environment = nil
		case "UnsetEnvironment":
			s.UnsetEnvironment = nil
		default:
			s.EnvironmentFiles = nil
		}
		return
	}
	if name == "UnsetEnvironment" {
		words, err := splitWords(value, true, false)
		if err != nil {
			return // systemd ignores the whole line
		}
		for _, w := range words {
			if w, err = resolveSpecifiers(w); err != nil {
				continue
			}
			if k, _, _ := strings.Cut(w, "="); validEnvName(k) {
				s.UnsetEnvironment = append(s.UnsetEnvironment, w)
			}
		}
		return
	}
	if name == "EnvironmentFile" {
		p, err := resolveSpecifiers(value)
		optional := strings.HasPrefix(p, "-")
		p = strings.TrimPrefix(p, "-")
		if err != nil || !filepath.IsAbs(p) {
			// systemd ignores the setting, with a warning.
			return
		}
		s.EnvironmentFiles = append(s.EnvironmentFiles, EnvFile{Path: filepath.Clean(p), Optional: optional, From: from})
		return
	}
	words, err := splitWords(value, true, false)
	if err != nil {
		return // systemd ignores the whole line ("Invalid syntax")
	}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || !validEnvName(k) {
			continue // systemd: "Invalid environment assignment, ignoring"
		}
		a := Assignment{Name: k, From: from}
		if a.Value, err = resolveSpecifiers(v); err != nil {
			a.Value, a.Err = v, err
		}
		s.Environment = append(s.Environment, a)
	}
}

// Env returns the service's environment as its unit files and environment
// files set it: the Environment= assignments, then each environment file
// read in order, each overriding what came before. root is the host's
// root directory. A file that cannot be read and is not optional is an
// error, as it is for systemd, which then does not start the service.
//
// base is the service manager's environment (DefaultEnvironment= in
// system.conf and `systemctl set-environment`, as NAME=VALUE), which
// every service starts with, under its own settings.
func (s *Service) Env(root string, base ...string) (map[string]Assignment, error) {
	env := map[string]Assignment{}
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok && validEnvName(k) {
			env[k] = Assignment{Name: k, Value: v, From: ManagerEnvironment}
		}
	}
	for _, a := range s.Environment {
		env[a.Name] = a
	}
	for _, f := range s.EnvironmentFiles {
		paths, err := globUnder(root, f.Path)
		if err != nil {
			if f.Optional {
				continue
			}
			return nil, fmt.Errorf("%s: EnvironmentFile=%s: %w, so systemd does not start the service: create the file, or write the setting as EnvironmentFile=-%s", f.From, f.Path, err, f.Path)
		}
		for _, p := range paths {
			as, err := readEnvFileAt(root, p)
			if err != nil {
				if f.Optional {
					continue
				}
				return nil, fmt.Errorf("%s: EnvironmentFile=%s: %w, so systemd does not start the service: fix the file", f.From, p, err)
			}
			for _, a := range as {
				env[a.Name] = a
			}
		}
	}
	// UnsetEnvironment= removes a NAME, or a NAME=VALUE with that value,
	// before the command lines are expanded.
	for _, w := range s.UnsetEnvironment {
		k, v, hasValue := strings.Cut(w, "=")
		if a, ok := env[k]; ok && (!hasValue || a.Value == v) {
			delete(env, k)
		}
	}
	return env, nil
}

// globUnder returns the files a path or wildcard pattern names under
// root, sorted, as host paths. A pattern that matches nothing is an error,
// as for glob(3).
func globUnder(root, pattern string) ([]string, error) {
	if !strings.ContainsAny(pattern, "*?[") {
		return []string{pattern}, nil
	}
	matches, err := filepath.Glob(filepath.Join(root, pattern))
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("no file matches: %w", os.ErrNotExist)
	}
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		rel, err := filepath.Rel(root, m)
		if err != nil {
			return nil, err
		}
		p := "/" + filepath.ToSlash(rel)
		if hiddenMatch(pattern, p) {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no file matches: %w", os.ErrNotExist)
	}
	return out, nil
}

// hiddenMatch reports whether the match p has a name starting with "."
// where the pattern's name does not: glob(3) without GLOB_PERIOD, which
// systemd uses, does not match a leading dot with a wildcard, while
// filepath.Glob does.
func hiddenMatch(pattern, p string) bool {
	pc, mc := strings.Split(filepath.Clean(pattern), "/"), strings.Split(p, "/")
	if len(pc) != len(mc) {
		return false
	}
	for i := range mc {
		if strings.HasPrefix(mc[i], ".") && !strings.HasPrefix(pc[i], ".") {
			return true
		}
	}
	return false
}

func readEnvFileAt(root, p string) ([]Assignment, error) {
	f, err := os.Open(filepath.Join(root, p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadEnvFile(f, p)
}

// ReadEnvFile parses an environment file as systemd does for
// EnvironmentFile=, naming name as the source of each assignment. Lines
// are "NAME=value"; empty lines, lines without "=" and lines that start
// with "#" or ";" are skipped. White space around the name and around an
// unquoted value is dropped, white space inside an unquoted value is kept,
// and a backslash keeps the next character (a backslash at the end of the
// line continues it). A value in single quotes is taken as it is, and one
// in double quotes keeps a backslash except before one of "\"\\`$" or a
// newline; either may span lines. A name that is not a valid variable
// name ("export NAME", for one) is ignored, and a later assignment of a
// name overrides an earlier one. Invalid UTF-8 makes the whole file
// invalid.
func ReadEnvFile(r io.Reader, name string) ([]Assignment, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxEnvFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxEnvFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxEnvFileSize)
	}
	pairs, err := parseEnvFile(string(data))
	if err != nil {
		return nil, err
	}
	var out []Assignment
	index := map[string]int{}
	for _, kv := range pairs {
		if !validEnvName(kv[0]) {
			continue // systemd: "Ignoring invalid environment assignment"
		}
		a := Assignment{Name: kv[0], Value: kv[1], From: name}
		if i, ok := index[a.Name]; ok {
			out[i] = a
			continue
		}
		index[a.Name] = len(out)
		out = append(out, a)
	}
	return out, nil
}

// parseEnvFile is systemd's parse_env_file_internal: a state machine over
// the bytes of the file, which returns the (name, value) pairs in order.
func parseEnvFile(s string) ([][2]string, error) {
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		singleQuote
		doubleQuote
		doubleQuoteEscape
		comment
		commentEscape
	)
	var (
		out        [][2]string
		k, v       []byte
		lastKeyWS  = -1
		lastValWS  = -1
		state      = preKey
		isWS       = func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
		isNewline  = func(c byte) bool { return c == '\n' || c == '\r' }
		shellEsc   = "\"\\`$"
		push       func(trimValue bool) error
		checkUTF8  = func(b []byte) bool { return utf8.Valid(b) }
		errInvalid = errors.New("invalid UTF-8")
	)
	push = func(trimValue bool) error {
		if lastKeyWS >= 0 {
			k = k[:lastKeyWS]
		}
		if trimValue && lastValWS >= 0 {
			v = v[:lastValWS]
		}
		if !checkUTF8(k) || !checkUTF8(v) {
			return fmt.Errorf("%w in the assignment of %q", errInvalid, strings.ToValidUTF8(string(k), "?"))
		}
		out = append(out, [2]string{string(k), string(v)})
		k, v = nil, nil
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch state {
		case preKey:
			switch {
			case c == '#' || c == ';':
				state = comment
			case !isWS(c):
				state = key
				lastKeyWS = -1
				k = append(k, c)
			}
		case key:
			switch {
			case isNewline(c):
				state = preKey
				k = nil
			case c == '=':
				state = preValue
				lastValWS = -1
			default:
				if !isWS(c) {
					lastKeyWS = -1
				} else if lastKeyWS < 0 {
					lastKeyWS = len(k)
				}
				k = append(k, c)
			}
		case preValue:
			switch {
			case isNewline(c):
				state = preKey
				if err := push(false); err != nil {
					return nil, err
				}
			case c == '\'':
				state = singleQuote
			case c == '"':
				state = doubleQuote
			case c == '\\':
				state = valueEscape
			case !isWS(c):
				state = value
				v = append(v, c)
			}
		case value:
			switch {
			case isNewline(c):
				state = preKey
				if err := push(true); err != nil {
					return nil, err
				}
			case c == '\\':
				state = valueEscape
				lastValWS = -1
			default:
				if !isWS(c) {
					lastValWS = -1
				} else if lastValWS < 0 {
					lastValWS = len(v)
				}
				v = append(v, c)
			}
		case valueEscape:
			state = value
			if !isNewline(c) {
				v = append(v, c)
			}
		case singleQuote:
			if c == '\'' {
				state = preValue
			} else {
				v = append(v, c)
			}
		case doubleQuote:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleQuoteEscape
			default:
				v = append(v, c)
			}
		case doubleQuoteEscape:
			state = doubleQuote
			switch {
			case strings.IndexByte(shellEsc, c) >= 0:
				v = append(v, c)
			case c != '\n':
				v = append(v, '\\', c)
			}
		case comment:
			switch {
			case c == '\\':
				state = commentEscape
			case isNewline(c):
				state = preKey
			}
		case commentEscape:
			// systemd 254 and later: a comment ends at the newline even
			// after a backslash.
			if isNewline(c) {
				state = preKey
			} else {
				state = comment
			}
		}
	}
	switch state {
	case preValue, value, valueEscape, singleQuote, doubleQuote, doubleQuoteEscape:
		if err := push(state == value); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// validEnvName is systemd's env_name_is_valid: letters, digits and "_",
// not starting with a digit.
func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// resolveSpecifiers resolves the unit specifiers of an Environment= or
// EnvironmentFile= value: "%%" is a "%"; any other specifier is an error
// (tlsdock does not know what systemd would put there).
func resolveSpecifiers(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		spec := "%"
		if i+1 < len(s) {
			spec = s[i : i+2]
		}
		return "", fmt.Errorf("%q uses the unit specifier %s, which tlsdock does not resolve", s, spec)
	}
	return b.String(), nil
}

// splitWords is systemd's extract_first_word over the whole string, with
// EXTRACT_UNQUOTE: words are separated by unquoted white space, single and
// double quotes group (anywhere in a word) and are removed, and a
// backslash escapes the next character. cunescape (EXTRACT_CUNESCAPE)
// reads the backslash as a C escape instead, and an unknown escape is an
// error; relax (EXTRACT_RELAX) accepts an unterminated quote and a
// trailing backslash.
func splitWords(s string, cunescape, relax bool) ([]string, error) {
	var (
		words []string
		cur   []byte
		in    bool
		quote byte
	)
	isSep := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			in = true
			if i+1 == len(s) {
				if relax {
					continue
				}
				return nil, errors.New("ends with a backslash")
			}
			if !cunescape {
				i++
				cur = append(cur, s[i])
				continue
			}
			b, n, err := cunescapeOne(s[i+1:])
			if err != nil {
				return nil, err
			}
			cur = append(cur, b...)
			i += n
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur = append(cur, c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case isSep(c):
			if in {
				words = append(words, string(cur))
			}
			cur, in = nil, false
		default:
			cur, in = append(cur, c), true
		}
	}
	if quote != 0 && !relax {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		words = append(words, string(cur))
	}
	return words, nil
}

// cunescapeOne reads the C escape at the start of s (after the
// backslash), as systemd's cunescape_one: it returns the bytes and how
// many bytes of s it used.
func cunescapeOne(s string) ([]byte, int, error) {
	simple := map[byte]byte{'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v', '\\': '\\', '"': '"', '\'': '\'', 's': ' '}
	c := s[0]
	if b, ok := simple[c]; ok {
		return []byte{b}, 1, nil
	}
	num := func(digits, base int, from int) (uint64, error) {
		if len(s) < from+digits {
			return 0, fmt.Errorf("incomplete escape \\%s", s)
		}
		return strconv.ParseUint(s[from:from+digits], base, 32)
	}
	switch {
	case c == 'x':
		n, err := num(2, 16, 1)
		if err != nil || n == 0 {
			return nil, 0, fmt.Errorf("invalid escape \\%.3s", s)
		}
		return []byte{byte(n)}, 3, nil
	case c == 'u' || c == 'U':
		digits := 4
		if c == 'U' {
			digits = 8
		}
		n, err := num(digits, 16, 1)
		if err != nil || n == 0 || !utf8.ValidRune(rune(n)) {
			return nil, 0, fmt.Errorf("invalid escape \\%.*s", digits+1, s)
		}
		return []byte(string(rune(n))), digits + 1, nil
	case c >= '0' && c <= '7':
		n, err := num(3, 8, 0)
		if err != nil || n == 0 || n > 255 {
			return nil, 0, fmt.Errorf("invalid escape \\%.3s", s)
		}
		return []byte{byte(n)}, 3, nil
	}
	return nil, 0, fmt.Errorf("unknown escape \\%c", c)
}

// VarRef reports whether the word is a whole-word variable reference as
// systemd expands it on a command line: "$NAME" (split into words) or
// "${NAME}" (one word). "$$" is a literal "$", not a reference.
func (t Token) VarRef() (name string, braced, ok bool) {
	v := t.Value
	if n, found := strings.CutPrefix(v, "${"); found && strings.HasSuffix(n, "}") {
		n = strings.TrimSuffix(n, "}")
		return n, true, validEnvName(n)
	}
	if n, found := strings.CutPrefix(v, "$"); found && validEnvName(n) {
		return n, false, true
	}
	return "", false, false
}

// ExpandVar returns the words a variable reference with this value
// stands for on a command line: the value itself for "${NAME}", and for
// "$NAME" the value split at white space, quotes respected and removed
// (systemd's replace_env_argv).
func ExpandVar(value string, braced bool) []string {
	if braced {
		return []string{value}
	}
	words, _ := splitWords(value, false, true) // relax: never fails
	return words
}
