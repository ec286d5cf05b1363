package agent

import (
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
// dockerd refuses to start) is replaced, in svc.ExecStart, by the words it expands to (as systemd
// would expand it, from the environment systemd builds), so the rest of
// the plan treats them as flags written on ExecStart: it drops the plain
// TCP listeners and the TLS flags, and tlsdock's drop-in repeats ExecStart
// with the remaining words written out in place of the variable. The
// user's files (the environment file, their drop-in) are never edited, so
// a revert, which removes tlsdock's drop-in, gives dockerd the variable
// back as it was. A variable without such flags stays a reference.
func (a *Agent) takeOverEnv(plan *Plan, svc *systemd.Service) error {
	var env map[string]systemd.Assignment
	out := systemd.Command{svc.ExecStart[0]}
	for _, tok := range svc.ExecStart[1:] {
		name, braced, ok := tok.VarRef()
		if !ok {
			out = append(out, tok)
			continue
		}
		if env == nil {
			var err error
			if env, err = svc.Env(a.o.Paths.Root); err != nil {
				return &InputError{Field: systemd.DockerUnit, Err: err}
			}
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
		if len(flags) == 0 {
			out = append(out, tok)
			continue
		}
		out = out.Append(words...)
		plan.note("%s (set in %s) passes %s to dockerd through %s on docker.service's ExecStart: tlsdock reads these flags as part of ExecStart, and where its drop-in repeats ExecStart, the words are written out in place of %s. %s is left as it is; a later edit of %s reaches dockerd only at the next provision",
			name, as.From, strings.Join(flags, " "), tok.Raw, tok.Raw, as.From, name)
	}
	svc.ExecStart = out
	return nil
}

// listenerFlags returns the words that are dockerd's -H, --host, --tls*
// or --live-restore flags (with the value when it is the next word).
func listenerFlags(words []string) []string {
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-H" || w == "--host" || w == "--tlscacert" || w == "--tlscert" || w == "--tlskey":
			out = append(out, w)
			if i+1 < len(words) {
				out = append(out, words[i+1])
				i++
			}
		case strings.HasPrefix(w, "-H") || strings.HasPrefix(w, "--host=") || strings.HasPrefix(w, "--tls") ||
			w == "--live-restore" || strings.HasPrefix(w, "--live-restore="):
			out = append(out, w)
		}
	}
	return out
}

// mayCarryFlags reports whether a value tlsdock cannot resolve might pass
// one of listenerFlags' flags.
func mayCarryFlags(v string) bool {
	return strings.Contains(v, "-H") || strings.Contains(v, "--host") || strings.Contains(v, "--tls") || strings.Contains(v, "--live-restore")
}
