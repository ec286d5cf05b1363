package systemd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// commandSeeds are ExecStart lines seen on real hosts and the tricky ones.
var commandSeeds = []string{
	"/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS",
	"/usr/bin/dockerd -H fd:// --tlsverify --tlscacert=/etc/docker/ca.pem --tlscert /x/cert.pem --tlskey=/x/key.pem",
	`-/usr/bin/dockerd --label "a b" 'c d' e\ f -H=tcp://0.0.0.0:2375 -Hunix:///var/run/docker.sock --host tcp://[::1]:2376`,
	`/usr/bin/env "PATH=/x y" dockerd ${OPTS} "$$HOME" '%%h'`,
	`/usr/sbin/dockerd foo\\ --tls=false`,
	"@/usr/bin/dockerd dockerd \t -D",
	`/usr/sbin/dockerd "-H" 'tcp://0.0.0.0:2375' --tlsverify=true`,
}

// unescapeSystemd is what systemd does to a word after quote removal:
// "$$" is a literal "$" and "%%" a literal "%".
func unescapeSystemd(s string) string {
	return strings.NewReplacer("$$", "$", "%%", "%").Replace(s)
}

func values(c Command) []string {
	out := make([]string, len(c))
	for i, t := range c {
		out[i] = t.Value
	}
	return out
}

// FuzzParseCommand: a parsed command line renders (String) to text that
// parses back to the same words; removing -H and --tls flags is complete
// and idempotent; and a word tlsdock appends comes back as the same word.
func FuzzParseCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add(s, "tcp://0.0.0.0:2376")
	}
	f.Add(`/usr/sbin/dockerd "unterminated`, "--tlscacert=/etc/docker/ssl/ca.pem")
	f.Add("/usr/sbin/dockerd", `a "b" $c %d \e`)
	f.Fuzz(func(t *testing.T, line, word string) {
		cmd, err := ParseCommand(line)
		if err != nil {
			if cmd != nil {
				t.Fatal("error with a command")
			}
			return
		}
		for _, tok := range cmd {
			if !strings.Contains(line, tok.Raw) {
				t.Fatalf("word %q is not in the line %q: ParseCommand changed it", tok.Raw, line)
			}
		}
		back, err := ParseCommand(cmd.String())
		if err != nil {
			t.Fatalf("ParseCommand(String()) of %q: %v (rendered %q)", line, err, cmd.String())
		}
		if !slices.Equal(values(back), values(cmd)) {
			t.Fatalf("round trip of %q: %q -> %q", line, values(cmd), values(back))
		}
		_ = cmd.Program()

		rest, hosts, removed := cmd.WithoutFlags(true)
		if len(rest) == 0 || rest[0] != cmd[0] {
			t.Fatalf("WithoutFlags dropped the program: %q", values(rest))
		}
		// A group of short flags ("-DH tcp://...") leaves its booleans in
		// rest: one word can count twice.
		groups := 0
		for _, tok := range cmd[1:] {
			if bools, _, _, ok := ShortHost(tok.Value); ok && bools != "" {
				groups++
			}
		}
		if len(rest)+len(hosts)+len(removed) > len(cmd)+groups {
			t.Fatalf("WithoutFlags invented words: %d + %d + %d > %d + %d", len(rest), len(hosts), len(removed), len(cmd), groups)
		}
		again, h2, r2 := rest.WithoutFlags(true)
		if len(h2) > 0 || len(r2) > 0 || !slices.Equal(values(again), values(rest)) {
			t.Fatalf("WithoutFlags is not complete: %q still has %q %q", values(rest), h2, r2)
		}

		// tlsdock appends only printable words (validated URLs, paths).
		if word == "" || strings.IndexFunc(word, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return
		}
		out := rest.Append("-H", word)
		parsed, err := ParseCommand(out.String())
		if err != nil {
			t.Fatalf("appending %q: %v (rendered %q)", word, err, out.String())
		}
		if len(parsed) != len(rest)+2 || unescapeSystemd(parsed[len(parsed)-1].Value) != word {
			t.Fatalf("appending %q to %q: parsed back as %q", word, rest.String(), values(parsed))
		}
	})
}

// FuzzReadServiceDropIn: any fragment and drop-in parse without panicking;
// when the effective ExecStart parses, tlsdock's drop-in built from it
// (RenderDropIn) makes systemd's effective ExecStart exactly the command
// tlsdock meant, and no drop-in sorts after it to undo it.
func FuzzReadServiceDropIn(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add("[Unit]\nDescription=Docker\n\n[Service]\nType=notify\nExecStart="+s+"\nExecReload=/bin/kill -s HUP $MAINPID\n", "")
	}
	f.Add("[Service]\nExecStart=/usr/sbin/dockerd -H fd://\n", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --debug\n")
	f.Add("[Service]\nExecStart=/usr/sbin/dockerd \\\n  -H fd:// \\\n  --log-level=warn\n", "[Service]\nEnvironment=A=b\n")
	f.Add("[Service]\nExecStart=/usr/sbin/dockerd\nExecStart=/usr/sbin/dockerd -D\n", "")
	f.Add("[Service]\nExecStart=/usr/sbin/dockerd \"-H\" fd://\\\\\n", "[Service\n")
	// One root per fuzzing process; every input overwrites its files.
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, fragment, override string) {
		write := func(p, body string) {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		const frag = "/lib/systemd/system/docker.service"
		overridePath := DropInDir + "/override.conf"
		ours := DropInDir + "/" + DropInName
		write(frag, fragment)
		write(overridePath, override)
		if _, err := LaterExecStart(root, []string{overridePath}); err != nil {
			return
		}
		svc, err := ReadService(root, frag, []string{overridePath})
		if err != nil || svc.ExecStart == nil {
			return
		}
		rest, _, _ := svc.ExecStart.WithoutFlags(true)
		want := rest.Append("-H", "fd://", "-H", "tcp://0.0.0.0:2376", "--tlsverify", "--tlscacert=/etc/docker/ssl/ca.pem")
		write(ours, string(RenderDropIn(want)))
		got, err := ReadService(root, frag, []string{ours, overridePath})
		if err != nil {
			t.Fatalf("the unit with tlsdock's drop-in does not read back: %v\ndrop-in:\n%s", err, RenderDropIn(want))
		}
		if got.ExecStartFrom != ours || !slices.Equal(values(got.ExecStart), values(want)) {
			t.Fatalf("effective ExecStart from %s is %q, want %q from %s\ndrop-in:\n%s", got.ExecStartFrom, values(got.ExecStart), values(want), ours, RenderDropIn(want))
		}
		if later, err := LaterExecStart(root, []string{ours, overridePath}); err != nil || len(later) > 0 {
			t.Fatalf("LaterExecStart = %q, %v", later, err)
		}
	})
}
