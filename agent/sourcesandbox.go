package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// A provision's source is read afterwards by tlsdock.service, whose
// sandbox (the packaged unit's ProtectHome= and PrivateTmp=) hides some of
// the host: a source there resolves for `tlsdock provision` and dangles
// for the daemon, which then never serves a renewal. The provision
// refuses it, naming the setting.

// hiddenDir is a directory the daemon's sandbox hides, and why.
type hiddenDir struct {
	Dir     string // /root
	Setting string // ProtectHome=yes
	From    string // the unit file that sets it
}

// unitDirs are where systemd looks for tlsdock.service and its drop-ins,
// in its order of precedence (the first fragment found wins).
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// daemonSandbox reads the effective ProtectHome= and PrivateTmp= of
// tlsdock.service under the root: its fragment, then its drop-ins in name
// order, the last assignment winning. Without a unit nothing hides
// anything (no daemon runs; proxy mode writes its own unit, without a
// sandbox).
func (a *Agent) daemonSandbox() ([]hiddenDir, error) {
	var files []string
	for _, d := range unitDirs {
		p := filepath.Join(d, ProxyUnit)
		if fi, err := os.Stat(a.o.Paths.Abs(p)); err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
			break
		}
	}
	if len(files) == 0 {
		return nil, nil
	}
	dropIns := map[string]string{} // name → path; an earlier directory masks a later one
	for _, d := range unitDirs {
		ents, _ := os.ReadDir(a.o.Paths.Abs(filepath.Join(d, ProxyUnit+".d")))
		for _, e := range ents {
			if _, seen := dropIns[e.Name()]; !seen && strings.HasSuffix(e.Name(), ".conf") {
				dropIns[e.Name()] = filepath.Join(d, ProxyUnit+".d", e.Name())
			}
		}
	}
	names := make([]string, 0, len(dropIns))
	for n := range dropIns {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, dropIns[n])
	}
	var home, tmp, homeFrom, tmpFrom string
	for _, f := range files {
		data, err := os.ReadFile(a.o.Paths.Abs(f))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		opts, err := unit.DeserializeOptions(strings.NewReader(string(data)))
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", f, err)
		}
		for _, o := range opts {
			if o.Section != "Service" {
				continue
			}
			switch o.Name {
			case "ProtectHome":
				home, homeFrom = strings.TrimSpace(o.Value), f
			case "PrivateTmp":
				tmp, tmpFrom = strings.TrimSpace(o.Value), f
			}
		}
	}
	var out []hiddenDir
	if h := strings.ToLower(home); h == "tmpfs" || isTrue(h) {
		for _, d := range []string{"/root", "/home", "/run/user"} {
			out = append(out, hiddenDir{Dir: d, Setting: "ProtectHome=" + home, From: homeFrom})
		}
	}
	if t := strings.ToLower(tmp); t == "disconnected" || isTrue(t) {
		for _, d := range []string{"/tmp", "/var/tmp"} {
			out = append(out, hiddenDir{Dir: d, Setting: "PrivateTmp=" + tmp, From: tmpFrom})
		}
	}
	return out, nil
}

// isTrue is systemd's boolean true.
func isTrue(v string) bool {
	switch v {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

// visited is every path the kernel's resolution of p goes through: each
// prefix of it, and of every symlink target on the way, absolute and
// clean. Resolution stops at a component that does not exist; the rest of
// the path is listed as it is written.
func visited(p string) []string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return []string{p}
	}
	var out []string
	cur := "/"
	rest := splitComponents(abs)
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		out = append(out, next)
		fi, err := os.Lstat(next)
		if err != nil {
			for _, r := range rest {
				next = filepath.Join(next, r)
				out = append(out, next)
			}
			return out
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		target, err := os.Readlink(next)
		if hops++; err != nil || hops > maxSymlinkHops {
			return out
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(splitComponents(target), rest...)
	}
	return out
}

// maxSymlinkHops is the kernel's limit on symlinks in one resolution.
const maxSymlinkHops = 40

func splitComponents(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// under reports whether p is dir or inside it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// checkSandbox refuses, at a provision, a source (or probe client) that
// tlsdock.service's sandbox hides: the path itself, or any symlink or
// target its resolution passes through.
func (a *Agent) checkSandbox(cfg Config) error {
	hidden, err := a.daemonSandbox()
	if err != nil || len(hidden) == 0 {
		return err
	}
	type input struct{ field, path string }
	var ins []input
	if cfg.Certs != "" {
		p := cfg.SourcePaths()
		ins = append(ins, input{"--certs", cfg.Certs}, input{"--ca-file", p.CA}, input{"--cert-file", p.Cert}, input{"--key-file", p.Key})
	}
	if cfg.ProbeClient != "" {
		ins = append(ins, input{"--probe-client", cfg.ProbeClient})
		for _, f := range []string{"cert.pem", "key.pem"} {
			ins = append(ins, input{"--probe-client", filepath.Join(cfg.ProbeClient, f)})
		}
	}
	for _, in := range ins {
		abs, err := filepath.Abs(in.path)
		if err != nil {
			abs = in.path
		}
		vs := visited(abs)
		for _, h := range hidden {
			if under(abs, h.Dir) {
				return &InputError{Field: in.field, Err: sandboxError(in.path, in.path, h)}
			}
			// Through a symlink: name the deepest path reached in there.
			at := ""
			for _, v := range vs {
				if under(v, h.Dir) {
					at = v
				}
			}
			if at != "" {
				return &InputError{Field: in.field, Err: sandboxError(in.path, at, h)}
			}
		}
	}
	return nil
}

func sandboxError(path, at string, h hiddenDir) error {
	where := path + " is"
	if at != path {
		where = fmt.Sprintf("%s resolves through %s, which is", path, at)
	}
	fix := "keep the source, and every file it links to, outside /root, /home and /run/user, for example in /etc/tlsdock/certs (step: `step ca certificate NAME /etc/tlsdock/certs/server.crt /etc/tlsdock/certs/server.key`), or let tlsdock.service read it with a drop-in (`systemctl edit tlsdock.service`: [Service] ProtectHome=read-only), then run tlsdock provision again"
	what := fmt.Sprintf("under %s, which tlsdock.service does not see: its sandbox hides it (%s in %s)", h.Dir, h.Setting, h.From)
	if strings.HasPrefix(h.Setting, "PrivateTmp") {
		fix = "keep the source, and every file it links to, outside /tmp and /var/tmp, for example in /etc/tlsdock/certs, then run tlsdock provision again"
		what = fmt.Sprintf("under %s, which tlsdock.service does not see: its sandbox gives it a private %s (%s in %s)", h.Dir, h.Dir, h.Setting, h.From)
	}
	return errors.New(where + " " + what + ", so the daemon would find no source there and never serve a renewal: " + fix)
}
