package proxy

import (
	"reflect"
	"strings"
	"testing"
)

// bodyCase is one request body and what the body model must make of it.
type bodyCase struct {
	name string
	kind bodyKind
	body string
	want string // "" = allowed; else a substring of the refusal
	// On an allowed body: the host mounts (Field=Source, "ro" suffix when
	// read-only) and volumes it must report.
	mounts  []string
	volumes []string
}

func runBodyCases(t *testing.T, g *Guard, cases []bodyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == bodyNone {
				kind = bodyCreate
			}
			mounts, volumes, deny := g.checkBody(kind, []byte(tc.body))
			if tc.want == "" {
				if deny != "" {
					t.Fatalf("refused: %s", deny)
				}
			} else {
				if deny == "" {
					t.Fatalf("allowed, want a refusal with %q", tc.want)
				}
				if !strings.Contains(deny, tc.want) {
					t.Fatalf("refusal %q does not contain %q", deny, tc.want)
				}
				return
			}
			var got []string
			for _, m := range mounts {
				s := m.Field + "=" + m.Source
				if m.ReadOnly {
					s += " ro"
				}
				got = append(got, s)
			}
			if !reflect.DeepEqual(got, tc.mounts) {
				t.Errorf("mounts %q, want %q", got, tc.mounts)
			}
			if !reflect.DeepEqual(volumes, tc.volumes) {
				t.Errorf("volumes %q, want %q", volumes, tc.volumes)
			}
		})
	}
}

func TestCheckBodyCreate(t *testing.T) {
	g := &Guard{name: "strict"}
	runBodyCases(t, g, []bodyCase{
		// Empty bodies.
		{name: "empty", body: ``},
		{name: "whitespace", body: " \n\t"},
		{name: "null", body: `null`},
		{name: "empty object", body: `{}`},

		// Decoding like dockerd: unknown, case-folded and duplicate keys.
		{name: "unknown field", body: `{"Image":"x","NotADockerField":1}`, want: `"NotADockerField" is unknown`},
		{name: "unknown host field", body: `{"HostConfig":{"NotADockerField":1}}`, want: `"NotADockerField" is unknown`},
		{name: "unknown mount field", body: `{"HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t","Propagation":"shared"}]}}`, want: `"Propagation" is unknown`},
		{name: "wrong type", body: `{"HostConfig":{"Privileged":"true"}}`, want: "cannot read"},
		{name: "not an object", body: `[1]`, want: "cannot read"},
		{name: "hostconfig lower case", body: `{"hostconfig":{"privileged":true}}`, want: "HostConfig.Privileged true is not allowed"},
		{name: "HOSTCONFIG upper case", body: `{"HOSTCONFIG":{"PRIVILEGED":true}}`, want: "HostConfig.Privileged"},
		{name: "long s folds to s", body: `{"HostConfig":{"ſecurityOpt":["seccomp=unconfined"]}}`, want: `HostConfig.SecurityOpt "seccomp=unconfined"`},
		{name: "kelvin sign folds to k", body: `{"HostConfig":{"Mas\u212AedPaths":[]}}`, want: "HostConfig.MaskedPaths"},
		{name: "last duplicate wins", body: `{"HostConfig":{"Privileged":false},"HostConfig":{"Privileged":true}}`, want: "Privileged"},
		{name: "duplicates merge", body: `{"HostConfig":{"Privileged":true},"HostConfig":{"CapDrop":["ALL"]}}`, want: "Privileged"},
		{name: "duplicate field", body: `{"HostConfig":{"Privileged":true,"Privileged":false}}`},
		// null leaves dockerd's strings and structs as they were.
		{name: "null keeps a string", body: `{"HostConfig":{"CgroupParent":"/host.slice","CgroupParent":null}}`, want: `HostConfig.CgroupParent "/host.slice"`},
		{name: "null keeps a struct", body: `{"HostConfig":{"LogConfig":{"Type":"syslog","Config":{"syslog-address":"tcp://10.0.0.1:514"}},"LogConfig":null}}`, want: "HostConfig.LogConfig"},
		{name: "null keeps a volume name", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Source":"data","Source":null,"Target":"/d"}]}}`, volumes: []string{"data"}},
		{name: "null keeps a bind source", body: `{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/srv/a","Source":null,"Target":"/d"}]}}`, mounts: []string{"HostConfig.Mounts[0].Source=/srv/a"}},
		{name: "trailing value ignored like dockerd 20.10", body: `{"Image":"x"} {"HostConfig":{"Privileged":true}}`},

		// Legacy top-level host settings (ContainerConfigWrapper).
		{name: "top-level privileged", body: `{"Image":"x","Privileged":true}`, want: "Privileged true is not allowed"},
		{name: "top-level privileged, null host config", body: `{"Image":"x","HostConfig":null,"Privileged":true}`, want: "Privileged"},
		{name: "top-level privileged beside a host config", body: `{"Image":"x","HostConfig":{},"Privileged":true}`, want: "Privileged"},
		{name: "top-level binds", body: `{"Image":"x","Binds":["/:/h"]}`, mounts: []string{"Binds[0]=/"}},
		{name: "top-level pid mode", body: `{"Image":"x","PidMode":"host"}`, want: `PidMode "host" is not allowed`},
		{name: "top-level lower case", body: `{"image":"x","pidmode":"host"}`, want: `PidMode "host"`},
		{name: "top-level network mode", body: `{"NetworkMode":"container:abc"}`, want: `NetworkMode "container:abc"`},
		{name: "top-level cap add", body: `{"CapAdd":["SYS_ADMIN"]}`, want: "CapAdd"},
		{name: "top-level devices", body: `{"Devices":[{"PathOnHost":"/dev/sda"}]}`, want: "Devices"},
		{name: "top-level security opt", body: `{"SecurityOpt":["apparmor=unconfined"]}`, want: "SecurityOpt"},
		{name: "top-level mounts", body: `{"Mounts":[{"Type":"bind","Source":"/etc","Target":"/e"}]}`, mounts: []string{"Mounts[0].Source=/etc"}},
		{name: "top-level cgroup parent", body: `{"CgroupParent":"/"}`, want: "CgroupParent"},
		{name: "top-level masked paths", body: `{"MaskedPaths":[]}`, want: "MaskedPaths [] is not allowed"},
		{name: "top-level cpuset", body: `{"Cpuset":"0"}`},
		{name: "inner privileged beside a top-level false", body: `{"Privileged":false,"HostConfig":{"Privileged":true}}`, want: "HostConfig.Privileged"},
		{name: "top-level privileged beside an inner false", body: `{"Privileged":true,"HostConfig":{"Privileged":false}}`, want: "Privileged true"},
		{name: "host config replaced by null", body: `{"HostConfig":{"Privileged":true},"HostConfig":null}`},
		{name: "top-level long s", body: `{"ſecurityopt":["seccomp=unconfined"]}`, want: `SecurityOpt "seccomp=unconfined"`},
		{name: "both binds", body: `{"Binds":["/a:/a"],"HostConfig":{"Binds":["/b:/b:ro"]}}`, mounts: []string{"HostConfig.Binds[0]=/b ro", "Binds[0]=/a"}},

		// Config fields.
		{name: "config fields", body: `{"Hostname":"h","Domainname":"d","User":"0","AttachStdin":true,"AttachStdout":true,"AttachStderr":true,
			"ExposedPorts":{"80/tcp":{}},"Tty":true,"OpenStdin":true,"StdinOnce":true,"Env":["A=1"],"Cmd":"sh","Healthcheck":{"Test":["NONE"]},
			"ArgsEscaped":true,"Image":"busybox","Volumes":{"/v":{}},"WorkingDir":"/","Entrypoint":["sh"],"NetworkDisabled":true,
			"MacAddress":"02:42:ac:11:00:02","OnBuild":["RUN x"],"Labels":{"a":"b"},"StopSignal":"SIGTERM","StopTimeout":3,"Shell":["sh","-c"]}`},

		// Plain host settings.
		{name: "plain host fields", body: `{"HostConfig":{"Links":["a:b"],"ExtraHosts":["h:1.2.3.4"],"Dns":["1.1.1.1"],"DnsOptions":["ndots:1"],"DnsSearch":["x"],
			"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]},"PublishAllPorts":true,"RestartPolicy":{"Name":"always"},"AutoRemove":true,
			"ShmSize":1024,"Tmpfs":{"/t":"size=1m"},"Init":true,"ConsoleSize":[24,80],"GroupAdd":["10"],"ReadonlyRootfs":true,"CapDrop":["ALL"],
			"Ulimits":[{"Name":"nofile","Soft":1,"Hard":2}],"PidsLimit":100,"Memory":1,"MemorySwap":2,"MemoryReservation":1,"MemorySwappiness":0,
			"CpuShares":2,"CpuPeriod":1,"CpuQuota":1,"NanoCpus":1,"CpusetCpus":"0","CpusetMems":"0","BlkioWeight":10,
			"BlkioWeightDevice":[{"Path":"/dev/sda","Weight":10}],"KernelMemory":1,"OomKillDisable":false,"OomScoreAdj":500,"Umask":18,
			"LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}},"VolumeDriver":"local","Runtime":"runc","Isolation":"default",
			"StorageOpt":{"size":"1G"},"Sysctls":{"net.ipv4.ip_unprivileged_port_start":"0","net/ipv4/tcp_syncookies":"1"},
			"SecurityOpt":["no-new-privileges","no-new-privileges=true","no-new-privileges:true"],"CapAdd":["net_bind_service","CAP_NET_BIND_SERVICE"]}}`},
		{name: "cap add as a string", body: `{"HostConfig":{"CapAdd":"SYS_ADMIN"}}`, want: `CapAdd "SYS_ADMIN" is not allowed`},
		{name: "cap add all", body: `{"HostConfig":{"CapAdd":["ALL"]}}`, want: `"ALL" is not allowed`},
		{name: "cap add beside net bind", body: `{"HostConfig":{"CapAdd":["NET_BIND_SERVICE","NET_ADMIN"]}}`, want: `"NET_ADMIN"`},
		{name: "empty cap add", body: `{"HostConfig":{"CapAdd":[]}}`},
		{name: "privileged", body: `{"HostConfig":{"Privileged":true}}`, want: "HostConfig.Privileged true is not allowed (allow_privileged)"},
		{name: "devices", body: `{"HostConfig":{"Devices":[{"PathOnHost":"/dev/sda","PathInContainer":"/dev/sda","CgroupPermissions":"rwm"}]}}`, want: "HostConfig.Devices"},
		{name: "empty devices", body: `{"HostConfig":{"Devices":[],"DeviceRequests":null}}`},
		{name: "device cgroup rules", body: `{"HostConfig":{"DeviceCgroupRules":["b *:* rwm"]}}`, want: "HostConfig.DeviceCgroupRules"},
		{name: "device requests", body: `{"HostConfig":{"DeviceRequests":[{"Count":-1}]}}`, want: "HostConfig.DeviceRequests"},
		{name: "seccomp unconfined", body: `{"HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}`, want: `SecurityOpt "seccomp=unconfined"`},
		{name: "apparmor old form", body: `{"HostConfig":{"SecurityOpt":["apparmor:unconfined"]}}`, want: "SecurityOpt"},
		{name: "label disable", body: `{"HostConfig":{"SecurityOpt":["label=disable"]}}`, want: "SecurityOpt"},
		{name: "systempaths unconfined", body: `{"HostConfig":{"SecurityOpt":["systempaths=unconfined"]}}`, want: "SecurityOpt"},
		{name: "no-new-privileges upper case", body: `{"HostConfig":{"SecurityOpt":["NO-NEW-PRIVILEGES"]}}`, want: "SecurityOpt"},
		{name: "no-new-privileges bad bool", body: `{"HostConfig":{"SecurityOpt":["no-new-privileges=yes"]}}`, want: "SecurityOpt"},
		{name: "cgroup parent", body: `{"HostConfig":{"CgroupParent":"system.slice"}}`, want: `HostConfig.CgroupParent "system.slice" is not allowed`},
		{name: "cgroup", body: `{"HostConfig":{"Cgroup":"container:abc"}}`, want: "HostConfig.Cgroup"},
		{name: "oom score negative", body: `{"HostConfig":{"OomScoreAdj":-1000}}`, want: "HostConfig.OomScoreAdj -1000"},
		{name: "oom kill disable", body: `{"HostConfig":{"OomKillDisable":true}}`, want: "HostConfig.OomKillDisable"},
		{name: "realtime period", body: `{"HostConfig":{"CpuRealtimePeriod":1000}}`, want: "HostConfig.CpuRealtimePeriod"},
		{name: "realtime runtime", body: `{"HostConfig":{"CpuRealtimeRuntime":1000}}`, want: "HostConfig.CpuRealtimeRuntime"},
		{name: "masked paths empty", body: `{"HostConfig":{"MaskedPaths":[]}}`, want: "HostConfig.MaskedPaths [] is not allowed"},
		{name: "masked paths null", body: `{"HostConfig":{"MaskedPaths":null,"ReadonlyPaths":null}}`},
		{name: "readonly paths", body: `{"HostConfig":{"ReadonlyPaths":["/proc"]}}`, want: "HostConfig.ReadonlyPaths"},
		{name: "unsafe sysctl", body: `{"HostConfig":{"Sysctls":{"kernel.core_pattern":"|/x"}}}`, want: `HostConfig.Sysctls "kernel.core_pattern"`},
		{name: "ip forward sysctl", body: `{"HostConfig":{"Sysctls":{"net.ipv4.ip_forward":"1"}}}`, want: "Sysctls"},
		{name: "runtime", body: `{"HostConfig":{"Runtime":"kata"}}`, want: `HostConfig.Runtime "kata" is not allowed`},
		{name: "isolation", body: `{"HostConfig":{"Isolation":"hyperv"}}`, want: "HostConfig.Isolation"},
		{name: "annotations", body: `{"HostConfig":{"Annotations":{"a":"b"}}}`, want: "HostConfig.Annotations"},
		{name: "container id file", body: `{"HostConfig":{"ContainerIDFile":"/etc/x"}}`, want: "HostConfig.ContainerIDFile"},
		{name: "volume driver", body: `{"HostConfig":{"VolumeDriver":"rexray"}}`, want: `HostConfig.VolumeDriver "rexray"`},
		{name: "volumes from", body: `{"HostConfig":{"VolumesFrom":["admin"]}}`, want: "HostConfig.VolumesFrom"},
		{name: "storage opt", body: `{"HostConfig":{"StorageOpt":{"dm.basesize":"1G"}}}`, want: `HostConfig.StorageOpt "dm.basesize"`},
		{name: "log option address", body: `{"HostConfig":{"LogConfig":{"Config":{"syslog-address":"udp://1.2.3.4"}}}}`, want: `HostConfig.LogConfig.Config "syslog-address"`},
		{name: "log driver", body: `{"HostConfig":{"LogConfig":{"Type":"syslog","Config":{"syslog-address":"udp://1.2.3.4"}}}}`, want: `HostConfig.LogConfig.Type "syslog"`},

		// Namespaces: host and container:<id> for every one.
		{name: "network host", body: `{"HostConfig":{"NetworkMode":"host"}}`, want: `HostConfig.NetworkMode "host" is not allowed`},
		{name: "network container", body: `{"HostConfig":{"NetworkMode":"container:abc"}}`, want: `HostConfig.NetworkMode "container:abc" is not allowed`},
		{name: "network HOST", body: `{"HostConfig":{"NetworkMode":"HOST"}}`, want: "NetworkMode"},
		{name: "network modes allowed", body: `{"HostConfig":{"NetworkMode":"my-net"}}`},
		{name: "network none", body: `{"HostConfig":{"NetworkMode":"none"}}`},
		{name: "network default", body: `{"HostConfig":{"NetworkMode":"default"}}`},
		{name: "network bridge", body: `{"HostConfig":{"NetworkMode":"bridge"}}`},
		{name: "pid host", body: `{"HostConfig":{"PidMode":"host"}}`, want: `HostConfig.PidMode "host" is not allowed (allow_host_pid)`},
		{name: "pid container", body: `{"HostConfig":{"PidMode":"container:abc"}}`, want: `HostConfig.PidMode "container:abc" is not allowed`},
		{name: "ipc host", body: `{"HostConfig":{"IpcMode":"host"}}`, want: `HostConfig.IpcMode "host"`},
		{name: "ipc container", body: `{"HostConfig":{"IpcMode":"container:abc"}}`, want: `HostConfig.IpcMode "container:abc"`},
		{name: "ipc private modes", body: `{"HostConfig":{"IpcMode":"shareable"}}`},
		{name: "uts host", body: `{"HostConfig":{"UTSMode":"host"}}`, want: `HostConfig.UTSMode "host"`},
		{name: "uts container", body: `{"HostConfig":{"UTSMode":"container:abc"}}`, want: `HostConfig.UTSMode "container:abc"`},
		{name: "userns host", body: `{"HostConfig":{"UsernsMode":"host"}}`, want: `HostConfig.UsernsMode "host"`},
		{name: "userns container", body: `{"HostConfig":{"UsernsMode":"container:abc"}}`, want: `HostConfig.UsernsMode "container:abc"`},
		{name: "cgroupns host", body: `{"HostConfig":{"CgroupnsMode":"host"}}`, want: `HostConfig.CgroupnsMode "host"`},
		{name: "cgroupns container", body: `{"HostConfig":{"CgroupnsMode":"container:abc"}}`, want: `HostConfig.CgroupnsMode "container:abc"`},
		{name: "cgroupns private", body: `{"HostConfig":{"CgroupnsMode":"private"}}`},
		{name: "endpoint host", body: `{"NetworkingConfig":{"EndpointsConfig":{"host":{}}}}`, want: `NetworkingConfig.EndpointsConfig["host"] "host" is not allowed`},
		{name: "endpoint container", body: `{"NetworkingConfig":{"EndpointsConfig":{"container:abc":{}}}}`, want: `"container:abc"`},
		{name: "endpoint null", body: `{"NetworkingConfig":{"EndpointsConfig":{"host":null}}}`, want: `"host"`},
		{name: "endpoint driver opts", body: `{"NetworkingConfig":{"EndpointsConfig":{"net":{"DriverOpts":{"com.docker.network.endpoint.sysctls":"net.ipv4.conf.IFNAME.forwarding=1"}}}}}`, want: `EndpointsConfig["net"].DriverOpts`},
		{name: "endpoint allowed", body: `{"NetworkingConfig":{"EndpointsConfig":{"net":{"Aliases":["a"],"IPAMConfig":{"IPv4Address":"10.0.0.2"},"MacAddress":"02:42:ac:11:00:02","GwPriority":1,"DNSNames":["a"]}}}}`},

		// Binds.
		{name: "bind", body: `{"HostConfig":{"Binds":["/srv/a:/a","/srv/b:/b:ro,Z","data:/d:nocopy","/anon"]}}`,
			mounts: []string{"HostConfig.Binds[0]=/srv/a", "HostConfig.Binds[1]=/srv/b ro"}, volumes: []string{"data"}},
		{name: "bind shared propagation", body: `{"HostConfig":{"Binds":["/srv/a:/a:rshared"]}}`, want: `mode "rshared" is not allowed`},
		{name: "bind too many colons", body: `{"HostConfig":{"Binds":["/a:/b:ro:x"]}}`, want: "Binds[0]"},
		{name: "bind empty source", body: `{"HostConfig":{"Binds":[":/b"]}}`, want: "empty source"},

		// Mounts.
		{name: "mount bind", body: `{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/srv/x","Target":"/x","ReadOnly":true,"BindOptions":{"Propagation":"rprivate","CreateMountpoint":true,"NonRecursive":true}}]}}`,
			mounts: []string{"HostConfig.Mounts[0].Source=/srv/x ro"}},
		{name: "mount bind shared", body: `{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/srv/x","Target":"/x","BindOptions":{"Propagation":"rshared"}}]}}`, want: `HostConfig.Mounts[0].BindOptions.Propagation "rshared"`},
		{name: "mount bind upper case", body: `{"HostConfig":{"Mounts":[{"Type":"BIND","Source":"/etc","Target":"/x"}]}}`, want: `HostConfig.Mounts[0].Type "BIND"`},
		{name: "mount without type", body: `{"HostConfig":{"Mounts":[{"Source":"/etc","Target":"/x"}]}}`, want: "Mounts[0]"},
		{name: "mount npipe", body: `{"HostConfig":{"Mounts":[{"Type":"npipe","Source":"\\\\.\\pipe\\docker_engine","Target":"/x"}]}}`, want: `Type "npipe"`},
		{name: "mount cluster", body: `{"HostConfig":{"Mounts":[{"Type":"cluster","Source":"v","Target":"/x"}]}}`, want: `Type "cluster"`},
		{name: "mount cluster options", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Target":"/x","ClusterOptions":{}}]}}`, want: "Mounts[0].ClusterOptions"},
		{name: "mount tmpfs", body: `{"HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1,"Mode":448,"Options":[["exec"]]}}]}}`},
		{name: "mount image", body: `{"HostConfig":{"Mounts":[{"Type":"image","Source":"busybox","Target":"/i","ImageOptions":{"Subpath":"bin"}}]}}`},
		{name: "mount image subpath escape", body: `{"HostConfig":{"Mounts":[{"Type":"image","Source":"busybox","Target":"/i","ImageOptions":{"Subpath":"../../etc"}}]}}`, want: "ImageOptions.Subpath"},
		{name: "mount volume", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Source":"data","Target":"/d","VolumeOptions":{"NoCopy":true,"Labels":{"a":"b"},"Subpath":"sub/dir","DriverConfig":{"Name":"local"}}}]}}`, volumes: []string{"data"}},
		{name: "mount volume subpath absolute", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Source":"data","Target":"/d","VolumeOptions":{"Subpath":"/etc"}}]}}`, want: `VolumeOptions.Subpath "/etc"`},
		{name: "mount volume subpath dotdot", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Source":"data","Target":"/d","VolumeOptions":{"Subpath":"a/../../b"}}]}}`, want: "Subpath"},
		{name: "mount volume driver", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Source":"data","Target":"/d","VolumeOptions":{"DriverConfig":{"Name":"sshfs"}}}]}}`, want: `DriverConfig.Name "sshfs"`},
		{name: "mount volume local bind", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Target":"/s","ReadOnly":true,"VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/"}}}}]}}`,
			mounts: []string{"HostConfig.Mounts[0].VolumeOptions.DriverConfig.Options.device=/ ro"}},
		{name: "mount volume local ext4", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Target":"/s","VolumeOptions":{"DriverConfig":{"Options":{"type":"ext4","device":"/dev/sda1"}}}}]}}`, want: `type "ext4" is not allowed`},
		{name: "bind options on a volume", body: `{"HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/s","BindOptions":{"Propagation":"private"}}]}}`, want: "BindOptions is not allowed"},
		{name: "volume options on a bind", body: `{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/srv","Target":"/s","VolumeOptions":{"DriverConfig":{"Options":{"type":"none","o":"bind","device":"/"}}}}]}}`, want: "VolumeOptions is not allowed"},
	})
}

func TestCheckBodyKnobs(t *testing.T) {
	g := &Guard{name: "loose", AllowPrivileged: true, AllowHostNetwork: true, AllowHostPID: true, AllowHostIPC: true,
		AllowHostUserns: true, AllowHostUTS: true, AllowContainerNamespaces: true, AllowCapAdd: true, AllowDevices: true,
		AllowSecurityOpt: true, AllowVolumesFrom: true}
	runBodyCases(t, g, []bodyCase{
		{name: "everything the knobs allow", body: `{"HostConfig":{"Privileged":true,"NetworkMode":"host","PidMode":"host","IpcMode":"host",
			"UsernsMode":"host","UTSMode":"host","CapAdd":["SYS_ADMIN"],"Devices":[{"PathOnHost":"/dev/fuse"}],"DeviceCgroupRules":["c 10:229 rwm"],
			"DeviceRequests":[{"Count":-1}],"SecurityOpt":["seccomp=unconfined"],"VolumesFrom":["a"]}}`},
		{name: "container namespaces", body: `{"HostConfig":{"NetworkMode":"container:a","PidMode":"container:a","IpcMode":"container:a"}}`},
		{name: "endpoint host", body: `{"NetworkingConfig":{"EndpointsConfig":{"host":{}}}}`},
		{name: "privileged exec", kind: bodyExec, body: `{"Privileged":true}`},
		// No knob widens these.
		{name: "cgroupns host", body: `{"HostConfig":{"CgroupnsMode":"host"}}`, want: "CgroupnsMode"},
		{name: "uts container", body: `{"HostConfig":{"UTSMode":"container:a"}}`, want: "UTSMode"},
		{name: "userns container", body: `{"HostConfig":{"UsernsMode":"container:a"}}`, want: "UsernsMode"},
		{name: "masked paths", body: `{"HostConfig":{"MaskedPaths":[]}}`, want: "MaskedPaths"},
		{name: "cgroup parent", body: `{"HostConfig":{"CgroupParent":"x"}}`, want: "CgroupParent"},
		{name: "sysctl", body: `{"HostConfig":{"Sysctls":{"kernel.msgmax":"1"}}}`, want: "Sysctls"},
	})
}

func TestCheckBodyOtherKinds(t *testing.T) {
	g := &Guard{name: "strict"}
	runBodyCases(t, g, []bodyCase{
		// Exec.
		{name: "exec", kind: bodyExec, body: `{"User":"root","Tty":true,"ConsoleSize":[1,2],"AttachStdin":true,"AttachStderr":true,"AttachStdout":true,
			"Detach":true,"DetachKeys":"ctrl-p","Env":["A=1"],"WorkingDir":"/","Cmd":["sh"]}`},
		{name: "exec privileged", kind: bodyExec, body: `{"Cmd":["sh"],"privileged":true}`, want: "Privileged true is not allowed"},
		{name: "exec unknown", kind: bodyExec, body: `{"Cmd":["sh"],"NotADockerField":1}`, want: "unknown"},
		{name: "exec empty", kind: bodyExec, body: ``},

		// Update.
		{name: "update", kind: bodyUpdate, body: `{"Memory":1,"CpuShares":2,"PidsLimit":5,"RestartPolicy":{"Name":"no"},"BlkioWeight":10}`},
		{name: "update cgroup parent", kind: bodyUpdate, body: `{"CgroupParent":"x"}`, want: `CgroupParent "x" is not allowed`},
		{name: "update devices", kind: bodyUpdate, body: `{"Devices":[{"PathOnHost":"/dev/sda"}]}`, want: "Devices"},
		{name: "update oom kill", kind: bodyUpdate, body: `{"OomKillDisable":true}`, want: "OomKillDisable"},
		{name: "update realtime", kind: bodyUpdate, body: `{"CpuRealtimeRuntime":1}`, want: "CpuRealtimeRuntime"},
		{name: "update privileged", kind: bodyUpdate, body: `{"Privileged":true}`, want: `"Privileged" is unknown`},

		// Start.
		{name: "start empty", kind: bodyStart, body: ``},
		{name: "start null", kind: bodyStart, body: `null`},
		{name: "start empty object", kind: bodyStart, body: ` { } `},
		{name: "start host config", kind: bodyStart, body: `{"Binds":["/:/h"]}`, want: "start body is not allowed"},
		{name: "start garbage", kind: bodyStart, body: `{`, want: "start body"},

		// Volume create.
		{name: "volume", kind: bodyVolume, body: `{"Name":"v","Labels":{"a":"b"},"Driver":"local"}`},
		{name: "volume driver", kind: bodyVolume, body: `{"Name":"v","Driver":"nfs-plugin"}`, want: `Driver "nfs-plugin"`},
		{name: "volume cluster", kind: bodyVolume, body: `{"Name":"v","ClusterVolumeSpec":{}}`, want: "ClusterVolumeSpec"},
		{name: "volume unknown", kind: bodyVolume, body: `{"Name":"v","Foo":1}`, want: "unknown"},
		{name: "volume size", kind: bodyVolume, body: `{"DriverOpts":{"size":"1G"}}`},
		{name: "volume bind", kind: bodyVolume, body: `{"DriverOpts":{"type":"none","o":"bind","device":"/etc"}}`, mounts: []string{"DriverOpts.device=/etc"}},
		{name: "volume rbind ro", kind: bodyVolume, body: `{"driveropts":{"type":"none","o":"rbind,ro,nosuid","device":"/srv/x"}}`, mounts: []string{"DriverOpts.device=/srv/x ro"}},
		{name: "volume bind any type", kind: bodyVolume, body: `{"DriverOpts":{"type":"tmpfs","o":"bind","device":"/etc"}}`, mounts: []string{"DriverOpts.device=/etc"}},
		{name: "volume bind empty type", kind: bodyVolume, body: `{"DriverOpts":{"type":"","o":"bind","device":"/etc"}}`, mounts: []string{"DriverOpts.device=/etc"}},
		{name: "volume bind relative", kind: bodyVolume, body: `{"DriverOpts":{"type":"none","o":"bind","device":"etc"}}`, want: `device "etc"`},
		{name: "volume bind shared", kind: bodyVolume, body: `{"DriverOpts":{"type":"none","o":"bind,rshared","device":"/srv"}}`, want: `flag "rshared"`},
		{name: "volume bind remount", kind: bodyVolume, body: `{"DriverOpts":{"type":"none","o":"bind,remount","device":"/srv"}}`, want: `flag "remount"`},
		{name: "volume type none without bind", kind: bodyVolume, body: `{"DriverOpts":{"type":"none","device":"/etc"}}`, want: `type "none"`},
		{name: "volume ext4", kind: bodyVolume, body: `{"DriverOpts":{"type":"ext4","device":"/dev/sda1"}}`, want: `type "ext4" is not allowed`},
		{name: "volume btrfs", kind: bodyVolume, body: `{"DriverOpts":{"type":"btrfs","device":"/dev/sda2","o":"subvol=/"}}`, want: `type "btrfs"`},
		{name: "volume overlay", kind: bodyVolume, body: `{"DriverOpts":{"type":"overlay","device":"overlay","o":"lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w"}}`, want: `type "overlay"`},
		{name: "volume nfs", kind: bodyVolume, body: `{"DriverOpts":{"type":"nfs","device":":/","o":"addr=127.0.0.1"}}`, want: `type "nfs"`},
		{name: "volume cifs", kind: bodyVolume, body: `{"DriverOpts":{"type":"cifs","device":"//h/s","o":"username=x"}}`, want: `type "cifs"`},
		{name: "volume tmpfs", kind: bodyVolume, body: `{"DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"size=100m,uid=1000,noexec"}}`},
		{name: "volume tmpfs odd option", kind: bodyVolume, body: `{"DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"size=1m,huge=always"}}`, want: `option "huge=always"`},
		{name: "volume tmpfs dev", kind: bodyVolume, body: `{"DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"dev"}}`, want: `flag "dev"`},
		{name: "volume upper-case key", kind: bodyVolume, body: `{"DriverOpts":{"TYPE":"none","O":"bind","DEVICE":"/"}}`, want: `"DEVICE" is not allowed`},
		{name: "volume other key", kind: bodyVolume, body: `{"DriverOpts":{"mountpoint":"/"}}`, want: `"mountpoint"`},
		{name: "volume o alone", kind: bodyVolume, body: `{"DriverOpts":{"o":"bind"}}`, want: "without type and device"},

		// Network create.
		{name: "network", kind: bodyNetworkCreate, body: `{"Name":"n","CheckDuplicate":true,"Driver":"bridge","Scope":"local","EnableIPv4":true,"EnableIPv6":false,
			"IPAM":{"Driver":"default","Config":[{"Subnet":"10.9.0.0/24"}]},"Internal":true,"Attachable":true,"Labels":{"a":"b"},
			"Options":{"com.docker.network.bridge.enable_icc":"false","com.docker.network.driver.mtu":"1400"}}`},
		{name: "network macvlan", kind: bodyNetworkCreate, body: `{"Name":"n","Driver":"macvlan","Options":{"parent":"eth0"}}`, want: `Driver "macvlan"`},
		{name: "network host driver", kind: bodyNetworkCreate, body: `{"Name":"n","Driver":"host"}`, want: `Driver "host"`},
		{name: "network bridge name", kind: bodyNetworkCreate, body: `{"Name":"n","Options":{"com.docker.network.bridge.name":"eth0"}}`, want: `Options "com.docker.network.bridge.name"`},
		{name: "network ipam driver", kind: bodyNetworkCreate, body: `{"Name":"n","IPAM":{"Driver":"dhcp"}}`, want: `IPAM.Driver "dhcp"`},
		// The exact body of `docker network create cinet` (docker 28 CLI, API 1.41).
		{name: "network as the docker CLI sends it", kind: bodyNetworkCreate, body: `{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"cinet","CheckDuplicate":true}`},
		{name: "network ipam options not a map", kind: bodyNetworkCreate, body: `{"Name":"n","IPAM":{"Options":[]}}`, want: "IPAM.Options"},
		{name: "network ipam options", kind: bodyNetworkCreate, body: `{"Name":"n","IPAM":{"Options":{"a":"b"}}}`, want: "IPAM.Options"},
		{name: "network config from", kind: bodyNetworkCreate, body: `{"Name":"n","ConfigFrom":{"Network":"x"}}`, want: "ConfigFrom"},
		{name: "network config only", kind: bodyNetworkCreate, body: `{"Name":"n","ConfigOnly":true}`, want: "ConfigOnly"},
		{name: "network ingress", kind: bodyNetworkCreate, body: `{"Name":"n","Ingress":true}`, want: "Ingress"},

		// Network connect.
		{name: "connect", kind: bodyNetworkConnect, body: `{"Container":"c","EndpointConfig":{"Aliases":["a"]},"Force":true}`},
		// The exact body of `docker network connect --alias nc-alias adminnet work`.
		{name: "connect as the docker CLI sends it", kind: bodyNetworkConnect, body: `{"Container":"work","EndpointConfig":{"IPAMConfig":{},"Links":null,"Aliases":[],"MacAddress":"","DriverOpts":{},"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}`},
		{name: "create annotations empty", kind: bodyCreate, body: `{"Image":"i","HostConfig":{"Annotations":{}}}`},
		{name: "create annotations", kind: bodyCreate, body: `{"Image":"i","HostConfig":{"Annotations":{"run.oci.x":"y"}}}`, want: "HostConfig.Annotations"},
		{name: "connect driver opts", kind: bodyNetworkConnect, body: `{"Container":"c","EndpointConfig":{"DriverOpts":{"a":"b"}}}`, want: "EndpointConfig.DriverOpts"},
		{name: "connect unknown", kind: bodyNetworkConnect, body: `{"Container":"c","Foo":1}`, want: "unknown"},
	})
}

// TestBodyModelClassifiesEveryField fails when a mirror struct gains a
// field without a `guard` tag, or with a rule that does not exist.
func TestBodyModelClassifiesEveryField(t *testing.T) {
	var check func(t *testing.T, typ reflect.Type, p string)
	check = func(t *testing.T, typ reflect.Type, p string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if f.Anonymous {
				check(t, f.Type, p)
				continue
			}
			if !f.IsExported() {
				continue
			}
			rule, ok := f.Tag.Lookup("guard")
			switch {
			case !ok:
				t.Errorf("%s.%s has no guard tag", p, f.Name)
			case rule == "allow" || rule == "deny":
			case rule == "struct" || rule == "endpoints":
				check(t, f.Type, p+"."+f.Name)
			case bodyRules[rule] == nil:
				t.Errorf("%s.%s: rule %q does not exist", p, f.Name, rule)
			}
		}
	}
	for _, v := range []any{createRequest{}, updateRequest{}, execRequest{}, volumeRequest{}, networkCreateRequest{}, networkConnectRequest{}} {
		check(t, reflect.TypeOf(v), reflect.TypeOf(v).Name())
	}
}
