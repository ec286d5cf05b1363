package proxy

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// fakeFS resolves symlinks from a map: /srv/data/escape → /etc.
func fakeFS(links map[string]string, existing ...string) pathResolver {
	return func(p string) (string, error) {
		for from, to := range links {
			if p == from || strings.HasPrefix(p, from+"/") {
				p = path.Join(to, strings.TrimPrefix(p, from))
			}
		}
		if p == "/" {
			return p, nil
		}
		for _, e := range existing {
			if p == e || strings.HasPrefix(e, p+"/") {
				return p, nil
			}
		}
		return "", os.ErrNotExist
	}
}

func TestGuardCreate(t *testing.T) {
	strict := &Guard{name: "strict", BindRoots: []string{"/srv/data"}}
	loose := &Guard{name: "loose", AllowPrivileged: true, AllowHostNetwork: true, AllowHostPID: true, AllowHostIPC: true,
		AllowHostUserns: true, AllowCapAdd: true, AllowDevices: true, AllowSecurityOpt: true, AllowVolumesFrom: true, BindRoots: []string{"/"}}
	resolve := fakeFS(map[string]string{"/srv/data/escape": "/etc"}, "/srv/data/app", "/etc/shadow", "/srv/data/escape")
	for _, tc := range []struct {
		name, body, want string // want "" = allowed; else a substring of the refusal
	}{
		{"empty body", ``, ""},
		{"no host config", `{"Image":"busybox"}`, ""},
		{"null host config", `{"Image":"busybox","HostConfig":null}`, ""},
		{"plain", `{"Image":"busybox","HostConfig":{"NetworkMode":"bridge","CapDrop":["ALL"]}}`, ""},
		{"privileged", `{"HostConfig":{"Privileged":true}}`, "Privileged"},
		{"privileged lower-case key", `{"hostconfig":{"privileged":true}}`, "Privileged"},
		{"privileged duplicate key", `{"HostConfig":{"Privileged":false,"Privileged":true}}`, "Privileged"},
		{"privileged wrong type", `{"HostConfig":{"Privileged":"true"}}`, "cannot read"},
		{"host network", `{"HostConfig":{"NetworkMode":"host"}}`, "NetworkMode=host"},
		{"host pid", `{"HostConfig":{"PidMode":"host"}}`, "PidMode=host"},
		{"host ipc", `{"HostConfig":{"IpcMode":"host"}}`, "IpcMode=host"},
		{"host userns", `{"HostConfig":{"UsernsMode":"host"}}`, "UsernsMode=host"},
		{"cap add", `{"HostConfig":{"CapAdd":["SYS_ADMIN"]}}`, "CapAdd"},
		{"empty cap add", `{"HostConfig":{"CapAdd":[]}}`, ""},
		{"devices", `{"HostConfig":{"Devices":[{"PathOnHost":"/dev/sda","PathInContainer":"/dev/sda","CgroupPermissions":"rwm"}]}}`, "Devices"},
		{"device cgroup rules", `{"HostConfig":{"DeviceCgroupRules":["b *:* rwm"]}}`, "DeviceCgroupRules"},
		{"device requests", `{"HostConfig":{"DeviceRequests":[{"Count":-1}]}}`, "DeviceRequests"},
		{"seccomp unconfined", `{"HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}`, "SecurityOpt"},
		{"apparmor unconfined", `{"HostConfig":{"SecurityOpt":["apparmor:unconfined"]}}`, "SecurityOpt"},
		{"no-new-privileges", `{"HostConfig":{"SecurityOpt":["no-new-privileges"]}}`, ""},
		{"no-new-privileges=true", `{"HostConfig":{"SecurityOpt":["no-new-privileges=true"]}}`, ""},
		{"volumes from", `{"HostConfig":{"VolumesFrom":["admin-box"]}}`, "VolumesFrom"},
		{"bind inside root", `{"HostConfig":{"Binds":["/srv/data/app:/app:ro"]}}`, ""},
		{"bind root itself", `{"HostConfig":{"Binds":["/srv/data:/data"]}}`, ""},
		{"bind missing dir inside root", `{"HostConfig":{"Binds":["/srv/data/new/dir:/x"]}}`, ""},
		{"bind outside", `{"HostConfig":{"Binds":["/etc:/host-etc"]}}`, "outside the allowed roots"},
		{"bind root", `{"HostConfig":{"Binds":["/:/host"]}}`, "outside the allowed roots"},
		{"bind prefix trick", `{"HostConfig":{"Binds":["/srv/database:/x"]}}`, "outside the allowed roots"},
		{"bind dotdot", `{"HostConfig":{"Binds":["/srv/data/../../etc:/x"]}}`, "outside the allowed roots"},
		{"bind symlink escape", `{"HostConfig":{"Binds":["/srv/data/escape/shadow:/x"]}}`, "resolves to \"/etc/shadow\""},
		{"bind symlink escape missing", `{"HostConfig":{"Binds":["/srv/data/escape/newdir:/x"]}}`, "resolves to \"/etc/newdir\""},
		{"named volume", `{"HostConfig":{"Binds":["data:/data"]}}`, ""},
		{"anonymous volume", `{"HostConfig":{"Binds":["/data"]}}`, ""},
		{"mount bind outside", `{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}]}}`, "Mounts[0] bind"},
		{"mount bind case", `{"HostConfig":{"Mounts":[{"Type":"BIND","Source":"/etc","Target":"/s"}]}}`, "Mounts[0] bind"},
		{"mount bind inside", `{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/srv/data/app","Target":"/s"}]}}`, ""},
		{"mount volume", `{"HostConfig":{"Mounts":[{"Type":"volume","Source":"data","Target":"/s"}]}}`, ""},
		{"mount volume local bind", `{"HostConfig":{"Mounts":[{"Type":"volume","Target":"/s","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/"}}}}]}}`, "device \"/\""},
		{"mount tmpfs", `{"HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t"}]}}`, ""},
		{"trailing garbage ignored like dockerd", `{"Image":"x"} {"HostConfig":{"Privileged":true}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strict.check(guardCreate, []byte(tc.body), resolve)
			if tc.want == "" && got != "" {
				t.Fatalf("refused: %s", got)
			}
			if tc.want != "" && (!strings.Contains(got, tc.want) || !strings.Contains(got, `guard "strict"`)) {
				t.Fatalf("got %q, want a refusal naming the guard and %q", got, tc.want)
			}
			if !strings.Contains(tc.want, "cannot read") {
				if msg := loose.check(guardCreate, []byte(tc.body), resolve); msg != "" {
					t.Errorf("the permissive guard refused: %s", msg)
				}
			}
		})
	}
}

func TestGuardExecAndVolume(t *testing.T) {
	g := &Guard{name: "g", BindRoots: []string{"/srv"}}
	id := func(p string) (string, error) { return p, nil }
	for _, tc := range []struct {
		name string
		kind guardKind
		body string
		want string
	}{
		{"exec", guardExec, `{"Cmd":["sh"],"AttachStdin":true}`, ""},
		{"privileged exec", guardExec, `{"Cmd":["sh"],"Privileged":true}`, "Privileged exec"},
		{"volume", guardVolume, `{"Name":"v","Driver":"local"}`, ""},
		{"volume nfs", guardVolume, `{"Name":"v","DriverOpts":{"type":"nfs","o":"addr=10.0.0.1","device":":/export"}}`, ""},
		{"volume bind outside", guardVolume, `{"Name":"v","DriverOpts":{"type":"none","o":"bind","device":"/etc"}}`, "DriverOpts device \"/etc\""},
		{"volume rbind outside", guardVolume, `{"Name":"v","DriverOpts":{"Type":"none","O":"ro,rbind","Device":"/root"}}`, "device \"/root\""},
		{"volume bind inside", guardVolume, `{"Name":"v","DriverOpts":{"type":"none","o":"bind","device":"/srv/v"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := g.check(tc.kind, []byte(tc.body), id)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGuardRealSymlinks(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "ok"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	g := &Guard{name: "g", BindRoots: []string{root}}
	if msg := g.check(guardCreate, []byte(`{"HostConfig":{"Binds":["`+root+`/ok:/x"]}}`), defaultResolver); msg != "" {
		t.Errorf("inside: %s", msg)
	}
	if msg := g.check(guardCreate, []byte(`{"HostConfig":{"Binds":["`+root+`/escape:/x"]}}`), defaultResolver); !strings.Contains(msg, "resolves to") {
		t.Errorf("symlink escape: %q", msg)
	}
}
