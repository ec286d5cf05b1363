package daemonjson

import (
	"reflect"
	"testing"
)

func TestFlagKey(t *testing.T) {
	tests := map[string]string{
		"-H":                                 "hosts",
		"-H=unix:///x":                       "hosts",
		"-Hfd://":                            "hosts",
		"--host":                             "hosts",
		"--host=tcp://0.0.0.0:2376":          "hosts",
		"--tls":                              "tls",
		"--tlsverify":                        "tlsverify",
		"--tlsverify=false":                  "tlsverify",
		"--tlscacert=/ca.pem":                "tlscacert",
		"--tlscert":                          "tlscert",
		"--tlskey":                           "tlskey",
		"--live-restore":                     "live-restore",
		"-D":                                 "debug",
		"--debug":                            "debug",
		"-l":                                 "log-level",
		"--log-level=debug":                  "log-level",
		"-G":                                 "group",
		"--group":                            "group",
		"-g":                                 "data-root",
		"--graph":                            "data-root",
		"--data-root":                        "data-root",
		"-p":                                 "pidfile",
		"-b":                                 "bridge",
		"-s":                                 "storage-driver",
		"--label":                            "labels",
		"--label=a=b":                        "labels",
		"--dns":                              "dns",
		"--dns-opt":                          "dns-opts",
		"--dns-search":                       "dns-search",
		"--insecure-registry":                "insecure-registries",
		"--registry-mirror":                  "registry-mirrors",
		"--add-runtime":                      "runtimes",
		"--exec-opt":                         "exec-opts",
		"--storage-opt":                      "storage-opts",
		"--log-opt":                          "log-opts",
		"--default-ulimit":                   "default-ulimits",
		"--authorization-plugin":             "authorization-plugins",
		"--allow-nondistributable-artifacts": "allow-nondistributable-artifacts",
		"--containerd=/run/containerd/containerd.sock": "containerd",
		"--userland-proxy=false":                       "userland-proxy",
		"--":                                           "",
		"-":                                            "",
		"-x":                                           "",
		"fd://":                                        "",
		"$DOCKER_OPTS":                                 "",
	}
	for flag, want := range tests {
		if got := FlagKey(flag); got != want {
			t.Errorf("FlagKey(%q) = %q, want %q", flag, got, want)
		}
	}
}

func TestConflicts(t *testing.T) {
	const full = `{"hosts":["tcp://0.0.0.0:2376"],"tls":true,"tlsverify":true,"tlscacert":"/ca","tlscert":"/c","tlskey":"/k",` +
		`"labels":["a=b"],"debug":true,"live-restore":true,"log-level":"info"}`
	tests := []struct {
		name string
		doc  string
		args []string
		want []string
	}{
		{"debian unit", full, []string{"-H", "fd://", "--containerd=/run/containerd/containerd.sock"}, []string{"hosts"}},
		{"equals form", full, []string{"-H=unix:///x"}, []string{"hosts"}},
		{"attached value", full, []string{"-Hfd://"}, []string{"hosts"}},
		{"long host", full, []string{"--host", "tcp://0.0.0.0:2375"}, []string{"hosts"}},
		{"long host equals", full, []string{"--host=tcp://0.0.0.0:2375"}, []string{"hosts"}},
		{"tlsverify and tls", full, []string{"--tlsverify", "--tls=true", "--tlscacert", "/x", "--tlscert=/y", "--tlskey", "/z"},
			[]string{"tls", "tlscacert", "tlscert", "tlskey", "tlsverify"}},
		{"shell variable ignored", full, []string{"$DOCKER_OPTS", "${EXTRA}"}, []string{}},
		{"shell variable as value", full, []string{"-H", "$HOSTS"}, []string{"hosts"}},
		{"containerd without key", full, []string{"--containerd=/run/containerd/containerd.sock"}, []string{}},
		{"containerd with key", `{"containerd":"/run/c.sock"}`, []string{"--containerd", "/run/containerd/containerd.sock"}, []string{"containerd"}},
		{"label plural", full, []string{"--label", "x=y", "--label=z=w"}, []string{"labels"}},
		{"label singular key is not a conflict", `{"label":["a"]}`, []string{"--label=x"}, []string{}},
		{"sorted unique", full, []string{"--live-restore", "-D", "-l", "debug", "-H", "fd://", "--host=tcp://:1", "--debug"},
			[]string{"debug", "hosts", "live-restore", "log-level"}},
		{"combined shorthands", full, []string{"-DH", "fd://"}, []string{"debug", "hosts"}},
		{"shorthand value consumes next arg", full, []string{"-l", "--tls"}, []string{"log-level"}},
		{"after double dash ignored", full, []string{"--", "-H", "fd://"}, []string{}},
		{"no file keys", "", []string{"-H", "fd://", "--tlsverify"}, []string{}},
		{"no args", full, nil, []string{}},
		{"graph alias", `{"graph":"/var/lib/docker"}`, []string{"-g", "/srv/docker"}, []string{"graph"}},
		{"data-root", `{"data-root":"/var/lib/docker"}`, []string{"--graph=/srv/docker"}, []string{"data-root"}},
		{"nested object flattened like dockerd", `{"proxies":{"http-proxy":"http://p:3128"}}`, []string{"--http-proxy=http://q:3128"}, []string{"http-proxy"}},
		{"log-opts kept whole", `{"log-opts":{"max-size":"10m"}}`, []string{"--log-opt", "max-size=1m"}, []string{"log-opts"}},
		{"add-runtime merges with runtimes", `{"runtimes":{"crun":{"path":"/usr/bin/crun"}}}`, []string{"--add-runtime", "x=/bin/x"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got := Conflicts(d, tc.args); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Conflicts(%q) = %q, want %q", tc.args, got, tc.want)
			}
		})
	}
	if got := Conflicts(nil, []string{"-H", "fd://"}); len(got) != 0 {
		t.Errorf("Conflicts(nil doc) = %q", got)
	}
}
