package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tlsdock/tlsdock/systemd"
)

// takeOverEnv makes the plan see the dockerd flags that reach dockerd
// through a variable of docker.service's ExecStart. Debian's unit runs
// `dockerd -H fd:// ... $DOCKER_OPTS` with EnvironmentFile=-/etc/default/docker,
// and old recipes set DOCKER_OPTS there, or in an Environment= line of a
// drop-in, to "-H tcp://0.0.0.0:2375" or to TLS flags of their own. Left as
// a reference, those flags would pass the plan unseen: the plain listener
// stays open next to tlsdock's, and the TLS flags clash with daemon.json's.
//
// A variable whose expansion carries -H, --host, --tls* or --live-restore
// flags (the ones whose daemon.json keys tlsdock writes: given both ways,
// dockerd refuses to start), or --config-file (refused unless it names
// /etc/docker/daemon.json), is replaced, in svc.ExecStart, by the words it expands to (as systemd
// would expand it, from the environment systemd builds), so the rest of
// the plan treats them as flags written on ExecStart: it drops the plain
// TCP listeners and the TLS flags, and tlsdock's drop-in repeats ExecStart
// with the remaining words written out in place of the variable. The
// user's files (the environment file, their drop-in) are never edited, so
// a revert, which removes tlsdock's drop-in, gives dockerd the variable
// back as it was. A variable without such flags stays a reference.
func (a *Agent) takeOverEnv(ctx context.Context, plan *Plan, svc *systemd.Service) error {
	var env map[string]systemd.Assignment
	out := systemd.Command{svc.ExecStart[0]}
	loadEnv := func() error {
		if env != nil {
			return nil
		}
		base, err := a.managerEnv(ctx)
		if err != nil {
			return err
		}
		if env, err = svc.Env(a.o.Paths.Root, base...); err != nil {
			return &InputError{Field: systemd.DockerUnit, Err: err}
		}
		return nil
	}
	for _, tok := range svc.ExecStart[1:] {
		// The value of a listener flag written just before ("-H $X").
		isValue := len(out) > 1 && takesListenerValue(out[len(out)-1].Value)
		name, braced, ok := tok.VarRef()
		if !ok {
			if !strings.Contains(tok.Value, "${") {
				out = append(out, tok)
				continue
			}
			// "${NAME}" inside a word ("-H${X}", "--host=${X}"): systemd
			// puts the value there.
			if err := loadEnv(); err != nil {
				return err
			}
			word, names, err := expandInWord(tok.Value, env)
			if err != nil && !isValue && !mayCarryFlags(tok.Value) {
				out = append(out, tok)
				continue
			}
			if err != nil {
				return inputErr(systemd.DockerUnit, "docker.service's ExecStart word %s: %v: write the value out, so that tlsdock can see the dockerd flags it passes", tok.Raw, err)
			}
			flags := listenerFlags([]string{word})
			if isValue {
				flags = []string{out[len(out)-1].Value, word}
			}
			if len(names) == 0 || len(flags) == 0 {
				out = append(out, tok)
				continue
			}
			out = out.Append(word)
			for _, n := range names {
				plan.note(takeoverNote, n, env[n].From, strings.Join(flags, " "), tok.Raw, tok.Raw, env[n].From, n)
			}
			continue
		}
		if err := loadEnv(); err != nil {
			return err
		}
		as, set := env[name]
		if !set {
			out = append(out, tok)
			continue
		}
		if as.Err != nil {
			if mayCarryFlags(as.Value) {
				return inputErr(as.From, "sets %s for docker.service's ExecStart (%s), and %v: write the value out, so that tlsdock can see the dockerd flags it passes", name, tok.Raw, as.Err)
			}
			out = append(out, tok)
			continue
		}
		words := systemd.ExpandVar(as.Value, braced)
		flags := listenerFlags(words)
		if isValue && len(words) > 0 {
			flags = append([]string{out[len(out)-1].Value}, words...)
		}
		if len(flags) == 0 {
			out = append(out, tok)
			continue
		}
		out = out.Append(words...)
		plan.note(takeoverNote, name, as.From, strings.Join(flags, " "), tok.Raw, tok.Raw, as.From, name)
	}
	svc.ExecStart = out
	return checkConfigFile(out)
}

// managerEnvironment is what *systemd.Manager (and the fake host) tell
// of the service manager's environment.
type managerEnvironment interface {
	ManagerEnvironment(ctx context.Context) ([]string, error)
}

// managerEnv is the service manager's environment, which docker.service
// starts with: `systemctl set-environment DOCKER_OPTS=...` reaches
// $DOCKER_OPTS too. A Systemd without it reads as an empty one.
func (a *Agent) managerEnv(ctx context.Context) ([]string, error) {
	me, ok := a.o.Systemd.(managerEnvironment)
	if !ok {
		return nil, nil
	}
	return me.ManagerEnvironment(ctx)
}

// checkConfigFile refuses an ExecStart that gives dockerd another
// configuration file than DaemonJSONPath: dockerd would read its
// listeners and TLS settings from there, ignoring the daemon.json
// tlsdock writes (in proxy mode, that file's plain listener stayed open).
func checkConfigFile(cmd systemd.Command) error {
	args := cmd.Args()
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		if name != "--config-file" {
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				continue // dockerd refuses it: a flag without its value
			}
			value = args[i+1]
			i++
		}
		if filepath.Clean(value) == DaemonJSONPath {
			continue
		}
		return inputErr(systemd.DockerUnit, "ExecStart passes --config-file %s, so dockerd reads its settings (its listeners among them) from there and not from %s, which tlsdock writes: move the settings of %s into %s, remove --config-file from ExecStart (or $DOCKER_OPTS), and run tlsdock again", value, DaemonJSONPath, value, DaemonJSONPath)
	}
	return nil
}

// takeoverNote: NAME, where it is set, the flags, the reference (twice),
// the file again and NAME.
const takeoverNote = "%s (set in %s) passes %s to dockerd through %s on docker.service's ExecStart: tlsdock's drop-in writes these words out in place of %s, so that tlsdock can replace the listener and TLS flags among them. %s is not edited, but dockerd no longer reads %s from it: after an edit there, run tlsdock provision again, and the next provision writes the new value in (a revert gives dockerd the variable back)"

// takesListenerValue reports whether the word is one of listenerFlags'
// flags whose value is the next word ("-H", "--host", "-DH", "--tlscert").
func takesListenerValue(w string) bool {
	switch w {
	case "--host", "--tlscacert", "--tlscert", "--tlskey":
		return true
	}
	_, _, next, ok := systemd.ShortHost(w)
	return ok && next
}

// expandInWord replaces each "${NAME}" of a word by its value, as systemd
// does on a command line, and returns the names it replaced. A name that
// is not set expands to nothing; one whose value tlsdock does not know is
// an error.
func expandInWord(w string, env map[string]systemd.Assignment) (string, []string, error) {
	var b strings.Builder
	var names []string
	for i := 0; i < len(w); i++ {
		switch {
		case strings.HasPrefix(w[i:], "$$"):
			// A literal "$" (Append quotes it again).
			b.WriteByte('$')
			i++
			continue
		case strings.HasPrefix(w[i:], "${"):
			j := strings.IndexByte(w[i:], '}')
			if j < 0 {
				break
			}
			name := w[i+2 : i+j]
			if as, ok := env[name]; ok {
				if as.Err != nil {
					return "", nil, fmt.Errorf("%s (set in %s): %w", name, as.From, as.Err)
				}
				b.WriteString(as.Value)
				names = append(names, name)
			}
			i += j
			continue
		}
		b.WriteByte(w[i])
	}
	return b.String(), names, nil
}

// listenerFlags returns the words that are dockerd's -H, --host, --tls*,
// --live-restore or --config-file flags (with the value when it is the
// next word).
func listenerFlags(words []string) []string {
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-H" || w == "--host" || w == "--tlscacert" || w == "--tlscert" || w == "--tlskey" || w == "--config-file":
			out = append(out, w)
			if i+1 < len(words) {
				out = append(out, words[i+1])
				i++
			}
		case isShortHostWord(w):
			out = append(out, w)
			if _, _, next, _ := systemd.ShortHost(w); next && i+1 < len(words) {
				out = append(out, words[i+1])
				i++
			}
		case strings.HasPrefix(w, "--host=") || strings.HasPrefix(w, "--tls") || strings.HasPrefix(w, "--config-file=") ||
			w == "--live-restore" || strings.HasPrefix(w, "--live-restore="):
			out = append(out, w)
		}
	}
	return out
}

// mayCarryFlags reports whether a value tlsdock cannot resolve might pass
// one of listenerFlags' flags.
func mayCarryFlags(v string) bool {
	if strings.Contains(v, "-H") || strings.Contains(v, "--host") || strings.Contains(v, "--config-file") || strings.Contains(v, "--tls") || strings.Contains(v, "--live-restore") {
		return true
	}
	// A group of short flags ending in -H ("-DH").
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '"' || r == '\'' }) {
		if isShortHostWord(w) {
			return true
		}
	}
	return false
}

// isShortHostWord reports whether w is -H, or a group of dockerd's short
// flags ending in it ("-DH", "-DHtcp://...", "-Htcp://...").
func isShortHostWord(w string) bool {
	_, _, _, ok := systemd.ShortHost(w)
	return ok
}
