package systemd

import (
	"fmt"
	"strings"
)

// Token is one word of a command line as it stands in a unit file. Raw is the
// text exactly as written (quotes, escapes and $VARIABLES included), so a
// command can be rebuilt without changing what systemd will expand. Value is
// the word after quote removal, used to recognise flags.
type Token struct {
	Raw   string
	Value string
}

// Command is an ExecStart command line split into words. The first word may
// carry systemd's prefixes ("-", "@", "+", "!", ":").
type Command []Token

// ParseCommand splits an ExecStart value into words the way systemd does:
// words are separated by unquoted white space, and single or double quotes
// group a word. Backslash escapes are kept in Raw and resolved in Value.
func ParseCommand(s string) (Command, error) {
	var (
		cmd   Command
		raw   strings.Builder
		val   strings.Builder
		quote byte
		in    bool
	)
	flush := func() {
		if in {
			cmd = append(cmd, Token{Raw: raw.String(), Value: val.String()})
		}
		raw.Reset()
		val.Reset()
		in = false
	}
	// Byte by byte: the syntax is ASCII, and every other byte (invalid
	// UTF-8 included) is kept exactly as written.
	for i := 0; i < len(s); i++ {
		r := s[i]
		switch {
		case r == '\\' && i+1 == len(s):
			// It would escape whatever tlsdock appends after it.
			return nil, fmt.Errorf("command line %q ends with a lone backslash: remove it", s)
		case r == '\\':
			raw.WriteByte(r)
			raw.WriteByte(s[i+1])
			val.WriteByte(s[i+1])
			i++
			in = true
		case quote != 0:
			raw.WriteByte(r)
			if r == quote {
				quote = 0
			} else {
				val.WriteByte(r)
			}
		case r == '"' || r == '\'':
			quote = r
			raw.WriteByte(r)
			in = true
		case r == ' ' || r == '\t' || r == '\n':
			flush()
		default:
			raw.WriteByte(r)
			val.WriteByte(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in command line %q", quote, s)
	}
	flush()
	if len(cmd) == 0 {
		return nil, fmt.Errorf("empty command line")
	}
	return cmd, nil
}

// String joins the raw words with single spaces.
func (c Command) String() string {
	parts := make([]string, len(c))
	for i, t := range c {
		parts[i] = t.Raw
	}
	return strings.Join(parts, " ")
}

// Args returns the unquoted words after the program.
func (c Command) Args() []string {
	if len(c) < 2 {
		return nil
	}
	out := make([]string, 0, len(c)-1)
	for _, t := range c[1:] {
		out = append(out, t.Value)
	}
	return out
}

// Program returns the executable path without systemd's prefixes.
func (c Command) Program() string {
	if len(c) == 0 {
		return ""
	}
	return strings.TrimLeft(c[0].Value, "-@+!:")
}

// dockerd flags that take a value in the next word when written without "=".
var hostFlags = map[string]bool{"-H": true, "--host": true}

var tlsValueFlags = map[string]bool{"--tlscacert": true, "--tlscert": true, "--tlskey": true}

var tlsBoolFlags = map[string]bool{"--tls": true, "--tlsverify": true}

// dockerdBoolShorts are the one-letter boolean flags of dockerd (-D,
// --debug, and the flags that print and exit). pflag reads a group of
// short flags as one word ("-DH tcp://..." is -D -H tcp://...): the boolean
// ones take no value, and the first flag that takes one takes the rest of
// the word, or the next word when the rest is empty.
const dockerdBoolShorts = "Dvhr"

func isShortHost(v string) bool {
	_, _, _, ok := ShortHost(v)
	return ok
}

// ShortHost splits a group of dockerd's short flags that ends in -H
// ("-H", "-Hvalue", "-H=value", "-DH", "-DHvalue"): the boolean flags
// before it, the value written in the word, and whether the value is the
// next word. It returns ok false for any other word.
func ShortHost(v string) (bools, value string, next, ok bool) {
	if len(v) < 2 || v[0] != '-' || v[1] == '-' {
		return "", "", false, false
	}
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case c == 'H':
			value = strings.TrimPrefix(v[i+1:], "=")
			return v[1:i], value, v[i+1:] == "", true
		case strings.IndexByte(dockerdBoolShorts, c) < 0:
			return "", "", false, false
		}
	}
	return "", "", false, false
}

// WithoutFlags returns the command with every -H/--host flag and, when tls is
// true, every --tls* flag removed, together with the host values it removed
// and the raw text of the removed TLS flags.
func (c Command) WithoutFlags(tls bool) (rest Command, hosts []string, removedTLS []string) {
	if len(c) == 0 {
		return nil, nil, nil
	}
	rest = Command{c[0]}
	for i := 1; i < len(c); i++ {
		v := c[i].Value
		name, value, hasValue := strings.Cut(v, "=")
		switch {
		case hostFlags[name] && hasValue:
			hosts = append(hosts, value)
		case hostFlags[v] && i+1 < len(c):
			hosts = append(hosts, c[i+1].Value)
			i++
		case isShortHost(v):
			bools, value, next, _ := ShortHost(v)
			if next {
				if i+1 == len(c) {
					rest = append(rest, c[i])
					continue
				}
				i++
				value = c[i].Value
			}
			hosts = append(hosts, value)
			if bools != "" {
				// "-DH tcp://..." is -D and -H: -D stays.
				rest = append(rest, Token{Raw: "-" + bools, Value: "-" + bools})
			}
		case tls && tlsValueFlags[name] && hasValue:
			removedTLS = append(removedTLS, c[i].Raw)
		case tls && tlsValueFlags[v] && i+1 < len(c):
			removedTLS = append(removedTLS, c[i].Raw+" "+c[i+1].Raw)
			i++
		case tls && tlsBoolFlags[name]:
			removedTLS = append(removedTLS, c[i].Raw)
		default:
			rest = append(rest, c[i])
		}
	}
	return rest, hosts, removedTLS
}

// Append returns a copy of the command with plain words (no quoting needed)
// added at the end.
func (c Command) Append(words ...string) Command {
	out := append(Command(nil), c...)
	for _, w := range words {
		out = append(out, Token{Raw: quoteWord(w), Value: w})
	}
	return out
}

// quoteWord quotes a word for an ExecStart line when it holds characters that
// systemd would split on or expand.
func quoteWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\n\"'\\$%;") {
		return w
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(w) + `"`
}
