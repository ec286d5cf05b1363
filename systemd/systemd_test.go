package systemd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		raw    []string
		values []string
		err    string
	}{
		{
			name:   "debian docker.io",
			in:     "/usr/sbin/dockerd -H fd:// $DOCKER_OPTS",
			raw:    []string{"/usr/sbin/dockerd", "-H", "fd://", "$DOCKER_OPTS"},
			values: []string{"/usr/sbin/dockerd", "-H", "fd://", "$DOCKER_OPTS"},
		},
		{
			name:   "quotes and escapes",
			in:     `-/usr/bin/dockerd --label "a b" 'c d' e\ f`,
			raw:    []string{"-/usr/bin/dockerd", "--label", `"a b"`, `'c d'`, `e\ f`},
			values: []string{"-/usr/bin/dockerd", "--label", "a b", "c d", "e f"},
		},
		{name: "unterminated", in: `/usr/bin/dockerd "x`, err: "unterminated"},
		{name: "empty", in: "   ", err: "empty command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := ParseCommand(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var raw, vals []string
			for _, tok := range cmd {
				raw = append(raw, tok.Raw)
				vals = append(vals, tok.Value)
			}
			if !reflect.DeepEqual(raw, tt.raw) || !reflect.DeepEqual(vals, tt.values) {
				t.Fatalf("raw %q values %q, want %q %q", raw, vals, tt.raw, tt.values)
			}
			if cmd.String() != strings.Join(tt.raw, " ") {
				t.Fatalf("String() = %q", cmd.String())
			}
		})
	}
}

func TestWithoutFlags(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		tls   bool
		rest  string
		hosts []string
		gone  []string
	}{
		{
			name:  "fd and opts",
			in:    "/usr/sbin/dockerd -H fd:// $DOCKER_OPTS",
			rest:  "/usr/sbin/dockerd $DOCKER_OPTS",
			hosts: []string{"fd://"},
		},
		{
			name:  "all host spellings",
			in:    "/usr/bin/dockerd -H fd:// --host=unix:///a.sock -Htcp://0.0.0.0:2375 --host tcp://x:1 --containerd=/run/containerd/containerd.sock",
			rest:  "/usr/bin/dockerd --containerd=/run/containerd/containerd.sock",
			hosts: []string{"fd://", "unix:///a.sock", "tcp://0.0.0.0:2375", "tcp://x:1"},
		},
		{
			name:  "tls flags kept without tls",
			in:    "/usr/bin/dockerd --tlsverify --tlscert /a",
			rest:  "/usr/bin/dockerd --tlsverify --tlscert /a",
			hosts: nil,
		},
		{
			name: "tls flags removed",
			in:   "/usr/bin/dockerd --tlsverify --tlscacert=/c --tlscert /a --tlskey /k --tls=true -D",
			tls:  true,
			rest: "/usr/bin/dockerd -D",
			gone: []string{"--tlsverify", "--tlscacert=/c", "--tlscert /a", "--tlskey /k", "--tls=true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := ParseCommand(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			rest, hosts, gone := cmd.WithoutFlags(tt.tls)
			if rest.String() != tt.rest {
				t.Errorf("rest = %q, want %q", rest.String(), tt.rest)
			}
			if !reflect.DeepEqual(hosts, tt.hosts) {
				t.Errorf("hosts = %q, want %q", hosts, tt.hosts)
			}
			if !reflect.DeepEqual(gone, tt.gone) {
				t.Errorf("removed = %q, want %q", gone, tt.gone)
			}
		})
	}
}

func TestAppendQuotes(t *testing.T) {
	cmd, _ := ParseCommand("/usr/bin/dockerd")
	got := cmd.Append("--tlscert=/etc/docker/ssl/server-cert.pem", "a b", "$x", "50%").String()
	want := `/usr/bin/dockerd --tlscert=/etc/docker/ssl/server-cert.pem "a b" "$$x" "50%%"`
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func writeUnit(t *testing.T, root, path, body string) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

const debianUnit = `[Unit]
Description=Docker Application Container Engine
StartLimitBurst=3

[Service]
Type=notify
EnvironmentFile=-/etc/default/docker
ExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
`

func TestReadService(t *testing.T) {
	const frag = "/lib/systemd/system/docker.service"
	tests := []struct {
		name    string
		dropIns map[string]string
		skip    []string
		want    string
		from    string
		err     string
	}{
		{name: "fragment only", want: "/usr/sbin/dockerd -H fd:// $DOCKER_OPTS", from: frag},
		{
			name: "override resets",
			dropIns: map[string]string{
				"/etc/systemd/system/docker.service.d/override.conf": "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// --debug\n",
			},
			want: "/usr/bin/dockerd -H fd:// --debug",
			from: "/etc/systemd/system/docker.service.d/override.conf",
		},
		{
			name: "own drop-in skipped",
			dropIns: map[string]string{
				"/etc/systemd/system/docker.service.d/" + DropInName: "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd $DOCKER_OPTS\n",
			},
			skip: []string{"/etc/systemd/system/docker.service.d/" + DropInName},
			want: "/usr/sbin/dockerd -H fd:// $DOCKER_OPTS",
			from: frag,
		},
		{
			name: "two commands without reset",
			dropIns: map[string]string{
				"/etc/systemd/system/docker.service.d/10-x.conf": "[Service]\nExecStart=/usr/bin/dockerd\n",
			},
			err: "2 ExecStart= lines",
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
			svc, err := ReadService(root, frag, dropIns, tt.skip...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if svc.ExecStart.String() != tt.want || svc.ExecStartFrom != tt.from {
				t.Fatalf("ExecStart %q from %s, want %q from %s", svc.ExecStart.String(), svc.ExecStartFrom, tt.want, tt.from)
			}
			if svc.ExecReload != "/bin/kill -s HUP $MAINPID" {
				t.Fatalf("ExecReload = %q", svc.ExecReload)
			}
		})
	}
}

func TestLaterExecStart(t *testing.T) {
	root := t.TempDir()
	d := "/etc/systemd/system/docker.service.d/"
	writeUnit(t, root, d+"override.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd\n")
	writeUnit(t, root, d+"zzz-late.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -D\n")
	writeUnit(t, root, d+"zzzz-env.conf", "[Service]\nEnvironment=A=b\n")
	later, err := LaterExecStart(root, []string{d + "override.conf", d + "zzz-late.conf", d + "zzzz-env.conf"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(later, []string{d + "zzz-late.conf"}) {
		t.Fatalf("later = %q", later)
	}
}

func TestRenderDropIn(t *testing.T) {
	cmd, _ := ParseCommand("/usr/sbin/dockerd $DOCKER_OPTS")
	got := string(RenderDropIn(cmd))
	want := "# Written by tlsdock. `tlsdock revert` removes it; edits are overwritten.\n" +
		"[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd $DOCKER_OPTS\n"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// Round trip: reading the rendered drop-in over the fragment yields the command.
	root := t.TempDir()
	writeUnit(t, root, "/lib/systemd/system/docker.service", debianUnit)
	writeUnit(t, root, DropInDir+"/"+DropInName, got)
	svc, err := ReadService(root, "/lib/systemd/system/docker.service", []string{DropInDir + "/" + DropInName})
	if err != nil {
		t.Fatal(err)
	}
	if svc.ExecStart.String() != cmd.String() {
		t.Fatalf("round trip gave %q", svc.ExecStart.String())
	}
}

// TestReadServiceRequires: Requires= and BindsTo= of the fragment and the
// drop-ins, in order; an empty assignment resets the list.
func TestReadServiceRequires(t *testing.T) {
	const frag = "/lib/systemd/system/docker.service"
	root := t.TempDir()
	writeUnit(t, root, frag, "[Unit]\nRequires=docker.socket containerd.service\n\n[Service]\nExecStart=/usr/sbin/dockerd -H fd://\n")
	svc, err := ReadService(root, frag, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(svc.Requires, " "); got != "docker.socket containerd.service" {
		t.Fatalf("Requires = %q", got)
	}
	const reset = "/etc/systemd/system/docker.service.d/override.conf"
	writeUnit(t, root, reset, "[Unit]\nRequires=\nBindsTo=containerd.service\n")
	if svc, err = ReadService(root, frag, []string{reset}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(svc.Requires, " "); got != "containerd.service" {
		t.Fatalf("Requires after a reset = %q", got)
	}
}
