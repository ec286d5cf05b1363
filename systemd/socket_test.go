package systemd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
)

func TestReadSocket(t *testing.T) {
	const debian = `[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
`
	tests := []struct {
		name    string
		dropIns map[string]string
		skip    []string
		want    []string
	}{
		{name: "fragment only", want: []string{"/run/docker.sock"}},
		{
			name:    "a drop-in adds",
			dropIns: map[string]string{"a.conf": "[Socket]\nListenStream=127.0.0.1:2376\n"},
			want:    []string{"/run/docker.sock", "127.0.0.1:2376"},
		},
		{
			name: "an empty ListenStream= resets, drop-ins in name order",
			dropIns: map[string]string{
				"b.conf": "[Socket]\nListenStream=\nListenStream=/run/other.sock\n",
				"a.conf": "[Socket]\nListenStream=127.0.0.1:2376\n",
			},
			want: []string{"/run/other.sock"},
		},
		{
			name:    "tlsdock's own drop-in skipped",
			dropIns: map[string]string{DropInName: "[Socket]\nListenStream=0.0.0.0:2376\n"},
			skip:    []string{SocketDropInDir + "/" + DropInName},
			want:    []string{"/run/docker.sock"},
		},
		{
			name:    "other sections ignored",
			dropIns: map[string]string{"a.conf": "[Unit]\nListenStream=1.2.3.4:1\n"},
			want:    []string{"/run/docker.sock"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			frag := "/usr/lib/systemd/system/docker.socket"
			write(t, filepath.Join(root, frag), debian)
			var dropIns []string
			for name, body := range tt.dropIns {
				p := SocketDropInDir + "/" + name
				write(t, filepath.Join(root, p), body)
				dropIns = append(dropIns, p)
			}
			s, err := ReadSocket(root, frag, dropIns, tt.skip...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.ListenStream, tt.want) {
				t.Errorf("ListenStream = %q, want %q", s.ListenStream, tt.want)
			}
		})
	}
	if _, err := ReadSocket(t.TempDir(), "/nope.socket", nil); err == nil {
		t.Error("a missing fragment read without error")
	}
}

func TestRenderSocketDropIn(t *testing.T) {
	got := string(RenderSocketDropIn([]string{"127.0.0.1:2376", "[::1]:2376"}))
	want := `# Written by tlsdock: dockerd serves these listeners with mutual TLS (daemon.json).
# ` + "`tlsdock revert`" + ` removes it; edits are overwritten.
[Socket]
ListenStream=127.0.0.1:2376
ListenStream=[::1]:2376
FreeBind=yes
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// Round trip: what systemd reads back is what was asked for.
	opts, err := unit.DeserializeOptions(strings.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	var listen []string
	for _, o := range opts {
		if o.Section == "Socket" && o.Name == "ListenStream" {
			listen = append(listen, o.Value)
		}
	}
	if !reflect.DeepEqual(listen, []string{"127.0.0.1:2376", "[::1]:2376"}) {
		t.Errorf("round trip: %q", listen)
	}
	if RenderSocketDropIn(nil) != nil {
		t.Error("no address rendered a drop-in")
	}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
