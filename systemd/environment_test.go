package systemd

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReadEnvFile(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
		err  string
	}{
		{name: "debian's file, all comments", in: "# Here in Debian, this file is sourced by:\n#   - /etc/init.d/docker (sysvinit)\n#DOCKER_OPTS=\"--dns 8.8.8.8 --dns 8.8.4.4\"\n", want: map[string]string{}},
		{name: "double quotes", in: "DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"\n", want: map[string]string{"DOCKER_OPTS": "-H tcp://0.0.0.0:2375"}},
		{name: "single quotes are verbatim", in: `A='x \" $y'`, want: map[string]string{"A": `x \" $y`}},
		{name: "unquoted keeps inner spaces and drops outer", in: "  A =  -H  tcp://x  \t\nB=1", want: map[string]string{"A": "-H  tcp://x", "B": "1"}},
		{name: "quotes after the first character are kept", in: `A=a"b c"`, want: map[string]string{"A": `a"b c"`}},
		{name: "double-quote escapes", in: `A="\"\\\$\x"`, want: map[string]string{"A": `"\$\x`}},
		{name: "backslash-newline continues", in: "A=a\\\nb\nC=\"c\\\nd\"\n", want: map[string]string{"A": "ab", "C": "cd"}},
		{name: "quoted values span lines", in: "A='x\ny'\n", want: map[string]string{"A": "x\ny"}},
		{name: "comments with ; and #, lines without =", in: "; A=1\n# B=2\nC\nD=4\n", want: map[string]string{"D": "4"}},
		{name: "export is not shell: the name is invalid", in: "export A=1\nB=2\n", want: map[string]string{"B": "2"}},
		{name: "invalid names are ignored", in: "1A=1\nA-B=2\nA.B=3\n_ok=4\n", want: map[string]string{"_ok": "4"}},
		{name: "the later assignment wins", in: "A=1\nA=2\n", want: map[string]string{"A": "2"}},
		{name: "empty value", in: "A=\nB=\"\"", want: map[string]string{"A": "", "B": ""}},
		{name: "CRLF", in: "A=1\r\nB=2\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "a comment's trailing backslash does not continue it", in: "# x \\\nA=1\n", want: map[string]string{"A": "1"}},
		{name: "unterminated quote runs to the end", in: "A=\"x y", want: map[string]string{"A": "x y"}},
		{name: "invalid UTF-8", in: "A=\xff\n", err: "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := ReadEnvFile(strings.NewReader(tt.in), "/etc/default/docker")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, a := range as {
				if a.From != "/etc/default/docker" {
					t.Errorf("%s from %q", a.Name, a.From)
				}
				got[a.Name] = a.Value
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServiceEnv(t *testing.T) {
	const frag = "/lib/systemd/system/docker.service"
	const dir = "/etc/systemd/system/docker.service.d/"
	tests := []struct {
		name    string
		dropIns map[string]string
		files   map[string]string
		want    map[string]string
		from    map[string]string
		err     string
	}{
		{name: "no file, optional", want: map[string]string{}},
		{
			name:  "the file",
			files: map[string]string{"/etc/default/docker": "DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"\n"},
			want:  map[string]string{"DOCKER_OPTS": "-H tcp://0.0.0.0:2375"},
			from:  map[string]string{"DOCKER_OPTS": "/etc/default/docker"},
		},
		{
			name:    "an Environment= line of a drop-in",
			dropIns: map[string]string{dir + "override.conf": "[Service]\nEnvironment=\"DOCKER_OPTS=-H tcp://0.0.0.0:2375\" B=x\\ty\n"},
			want:    map[string]string{"DOCKER_OPTS": "-H tcp://0.0.0.0:2375", "B": "x\ty"},
			from:    map[string]string{"DOCKER_OPTS": dir + "override.conf"},
		},
		{
			name:    "the file overrides Environment=, whatever the order of the lines",
			dropIns: map[string]string{dir + "override.conf": "[Service]\nEnvironment=DOCKER_OPTS=-D A=1\n"},
			files:   map[string]string{"/etc/default/docker": "DOCKER_OPTS=--debug\n"},
			want:    map[string]string{"DOCKER_OPTS": "--debug", "A": "1"},
			from:    map[string]string{"DOCKER_OPTS": "/etc/default/docker", "A": dir + "override.conf"},
		},
		{
			name: "a later drop-in's Environment= overrides, an empty one resets",
			dropIns: map[string]string{
				dir + "10-a.conf": "[Service]\nEnvironment=A=1 B=1\n",
				dir + "20-b.conf": "[Service]\nEnvironment=\nEnvironment=A=2\n",
			},
			want: map[string]string{"A": "2"},
		},
		{
			name: "files are read in order, a later one overrides",
			dropIns: map[string]string{
				dir + "10-a.conf": "[Service]\nEnvironmentFile=/etc/docker-env\n",
			},
			files: map[string]string{"/etc/default/docker": "A=1\nB=1\n", "/etc/docker-env": "A=2\n"},
			want:  map[string]string{"A": "2", "B": "1"},
			from:  map[string]string{"A": "/etc/docker-env", "B": "/etc/default/docker"},
		},
		{
			name:    "an empty EnvironmentFile= resets the list",
			dropIns: map[string]string{dir + "10-a.conf": "[Service]\nEnvironmentFile=\n"},
			files:   map[string]string{"/etc/default/docker": "A=1\n"},
			want:    map[string]string{},
		},
		{
			name:    "a wildcard pattern, sorted",
			dropIns: map[string]string{dir + "10-a.conf": "[Service]\nEnvironmentFile=/etc/docker.env.d/*.env\n"},
			files:   map[string]string{"/etc/docker.env.d/b.env": "A=b\n", "/etc/docker.env.d/a.env": "A=a\nB=a\n"},
			want:    map[string]string{"A": "b", "B": "a"},
		},
		{
			name:    "invalid Environment= words are ignored, %% is a %",
			dropIns: map[string]string{dir + "10-a.conf": "[Service]\nEnvironment=noequals 1X=2 OK=50%%\nEnvironment=\"BAD=unterminated\n"},
			want:    map[string]string{"OK": "50%"},
		},
		{
			name:    "a missing file that is not optional",
			dropIns: map[string]string{dir + "10-a.conf": "[Service]\nEnvironmentFile=/etc/missing\n"},
			err:     dir + "10-a.conf: EnvironmentFile=/etc/missing",
		},
		{
			name:    "a relative path is ignored",
			dropIns: map[string]string{dir + "10-a.conf": "[Service]\nEnvironmentFile=etc/missing\n"},
			want:    map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeUnit(t, root, frag, debianUnit)
			var dropIns []string
			for p, body := range tt.dropIns {
				writeUnit(t, root, p, body)
				dropIns = append(dropIns, p)
			}
			for p, body := range tt.files {
				writeUnit(t, root, p, body)
			}
			svc, err := ReadService(root, frag, dropIns)
			if err != nil {
				t.Fatal(err)
			}
			env, err := svc.Env(root)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, a := range env {
				got[k] = a.Value
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("env %q, want %q", got, tt.want)
			}
			for k, from := range tt.from {
				if env[k].From != from {
					t.Errorf("%s from %q, want %q", k, env[k].From, from)
				}
			}
		})
	}
}

func TestEnvironmentSpecifier(t *testing.T) {
	root := t.TempDir()
	const frag = "/lib/systemd/system/docker.service"
	writeUnit(t, root, frag, debianUnit+"Environment=DOCKER_OPTS=-H%i\n")
	svc, err := ReadService(root, frag, nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := svc.Env(root)
	if err != nil {
		t.Fatal(err)
	}
	if a := env["DOCKER_OPTS"]; a.Err == nil || !strings.Contains(a.Err.Error(), "%i") {
		t.Fatalf("DOCKER_OPTS = %+v, want an error naming %%i", a)
	}
}

func TestExpandVar(t *testing.T) {
	tests := []struct {
		word   string
		name   string
		braced bool
		ref    bool
		value  string
		want   []string
	}{
		{word: "$DOCKER_OPTS", name: "DOCKER_OPTS", ref: true, value: "-H tcp://0.0.0.0:2375  --debug", want: []string{"-H", "tcp://0.0.0.0:2375", "--debug"}},
		{word: `"$DOCKER_OPTS"`, name: "DOCKER_OPTS", ref: true, value: `--label "a b" --x='c d'`, want: []string{"--label", "a b", "--x=c d"}},
		{word: "${DOCKER_OPTS}", name: "DOCKER_OPTS", braced: true, ref: true, value: "-H tcp://0.0.0.0:2375", want: []string{"-H tcp://0.0.0.0:2375"}},
		{word: "$EMPTY", name: "EMPTY", ref: true, value: "", want: nil},
		{word: "$$DOCKER_OPTS"},
		{word: "--x=${A}"},
		{word: "$1A"},
		{word: "${A-B}", name: "A-B", braced: true},
		{word: "-H"},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			cmd, err := ParseCommand("/usr/sbin/dockerd " + tt.word)
			if err != nil {
				t.Fatal(err)
			}
			name, braced, ok := cmd[1].VarRef()
			if ok != tt.ref || ok && (name != tt.name || braced != tt.braced) {
				t.Fatalf("VarRef = %q %v %v, want %q %v %v", name, braced, ok, tt.name, tt.braced, tt.ref)
			}
			if !ok {
				return
			}
			if got := ExpandVar(tt.value, braced); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ExpandVar = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzReadEnvFile: any file parses without panic into valid names, and a
// value written in single quotes (which systemd takes verbatim) comes
// back as it was.
func FuzzReadEnvFile(f *testing.F) {
	for _, s := range []string{"DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"\n", "A='x\ny'\n# c \\\nB=1\\\n2", "export A=1\n;x\n=\n", "A=\"\\", "A=b\"c\" d  \r\n"} {
		f.Add(s, "v a'l")
	}
	f.Fuzz(func(t *testing.T, file, value string) {
		as, err := ReadEnvFile(strings.NewReader(file), "f")
		if err == nil {
			for _, a := range as {
				if !validEnvName(a.Name) {
					t.Fatalf("invalid name %q from %q", a.Name, file)
				}
			}
		}
		if strings.Contains(value, "'") || !utf8.ValidString(value) {
			return
		}
		as, err = ReadEnvFile(strings.NewReader("X='"+value+"'\n"), "f")
		if err != nil || len(as) != 1 || as[0].Value != value {
			t.Fatalf("X='%s' read as %+v, %v", value, as, err)
		}
	})
}

// FuzzExpandVar: splitting never panics, and words without white space,
// quotes or backslashes, joined by spaces, split back into themselves.
func FuzzExpandVar(f *testing.F) {
	f.Add("-H tcp://0.0.0.0:2375 --debug", `--label "a b" x\ y '`)
	f.Fuzz(func(t *testing.T, plain, any string) {
		_ = ExpandVar(any, false)
		if got := ExpandVar(any, true); len(got) != 1 || got[0] != any {
			t.Fatalf("braced %q -> %q", any, got)
		}
		want := strings.FieldsFunc(plain, func(r rune) bool { return strings.ContainsRune(" \t\n\r\"'\\", r) })
		got := ExpandVar(strings.Join(want, " "), false)
		if len(want) == 0 && len(got) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q split into %q", want, got)
		}
	})
}
