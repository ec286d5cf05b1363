package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// guardCLIPolicy is the policy of TestGuardedDockerCLI: /_ping and /version
// for every valid client, and the README's guarded rule for user ci.
const guardCLIPolicy = `{
  "default": "deny",
  "rules": [
    {"name": "ping", "methods": ["GET", "HEAD"], "paths": ["/_ping", "/version"], "action": "allow"},
    {"name": "ci", "users": ["ci"], "action": "allow", "guard": "sandbox"}
  ],
  "guards": {
    "sandbox": {"bind_roots": ["/srv/ci"]}
  }
}
`

// guardCLI is this machine's docker CLI (/usr/local/bin/docker, Docker 28)
// run in a test host's network namespace as one client of the proxy at
// 127.0.0.1:2376, with an empty config directory of its own.
type guardCLI struct {
	ctx    context.Context
	h      *testhost.Host
	certs  string // the client bundle on this machine
	config string // --config: no machine state leaks in
}

// run runs docker with args and extra environment env, stdin from in
// (nil: none). err names the command, its exit code and its stderr.
func (c *guardCLI) run(env []string, in io.Reader, args ...string) (stdout, stderr string, err error) {
	e := append([]string{"DOCKER_HOST=tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + c.certs}, env...)
	out, errb, err := c.h.ExecNet(c.ctx, e, in, append([]string{"/usr/local/bin/docker", "--config", c.config}, args...)...)
	return string(out), string(errb), err
}

// must runs docker with args and fails t unless it exits 0; it returns
// stdout.
func (c *guardCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	return c.mustIn(t, nil, nil, args...)
}

func (c *guardCLI) mustIn(t *testing.T, env []string, in io.Reader, args ...string) string {
	t.Helper()
	out, errb, err := c.run(env, in, args...)
	if err != nil {
		t.Fatalf("docker %s: FAILED: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errb)
	}
	t.Logf("docker %s: ok", strings.Join(args, " "))
	return out
}

// wantOut checks that out, trimmed, is want.
func wantOut(t *testing.T, what, out, want string) {
	t.Helper()
	if got := strings.TrimSpace(out); got != want {
		t.Errorf("%s: printed %q, want %q", what, got, want)
	}
}

// wantIn checks that out holds each of wants.
func wantIn(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// hostHas reports whether the test host has a program called name (in
// PATH, or in dockerd's libexec directory).
func hostHas(ctx context.Context, h *testhost.Host, name string) bool {
	_, _, err := h.Exec(ctx, nil, "sh", "-c", "command -v "+name+" || test -x /usr/libexec/docker/"+name)
	return err == nil
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestGuardedDockerCLI: the real Docker 28 CLI, as a client under a guarded
// rule (user ci, bind_roots /srv/ci), does everyday work against dockerd
// 20.10 through the proxy (each command's real output checked), and the
// CLI prints the proxy's refusal, naming the rule, for what would reach
// the host.
func TestGuardedDockerCLI(t *testing.T) {
	start := time.Now()
	ctx := ctxFor(t, 4*time.Minute)
	h := startWithTlsdock(t)
	if err := h.ImportTinyImage(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tlsdock.service's journal:\n%s", h.Journal(context.Background(), "tlsdock.service", 60))
		}
		t.Logf("TestGuardedDockerCLI took %v (boot %v)", time.Since(start).Round(100*time.Millisecond), h.BootTime)
	})
	run(t, ctx, h, "mkdir", "-p", "/srv/ci/work")
	if err := h.WriteFile("/etc/tlsdock/policy.json", []byte(guardCLIPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	mustTlsdock(t, ctx, h, "provision", "--mode", "proxy", "--generate", "--policy", "/etc/tlsdock/policy.json", "--client-out", "/root/admin")
	mustTlsdock(t, ctx, h, "certs", "client", "ci", "--out", "/root/ci")
	c := &guardCLI{ctx: ctx, h: h, certs: fetchBundle(t, h, "/root/ci"), config: t.TempDir()}
	local := t.TempDir() // files on this machine for cp and build
	// removeAfter removes a subtest's running container when the subtest
	// ends, so that a failed step does not fail the prune check too.
	removeAfter := func(t *testing.T, name string) {
		t.Cleanup(func() { _, _ = hostDocker(context.Background(), h, "rm", "-f", name) })
	}

	t.Run("read", func(t *testing.T) {
		out := c.must(t, "version")
		wantIn(t, "docker version", out, "Client:", "Server:", "Version:           28.", "API version:       "+h.Suite.API)
		if v := c.must(t, "version", "--format", "{{.Server.Version}}"); !strings.HasPrefix(v, h.Suite.Docker) {
			t.Errorf("docker version --format {{.Server.Version}} printed %q, want %sx", v, h.Suite.Docker)
		}
		wantIn(t, "docker info", c.must(t, "info"), "Server Version: "+h.Suite.Docker, "Containers:", "Images:")
		wantOut(t, "docker ps -a", c.must(t, "ps", "-a", "--format", "{{.Names}}"), "")
		wantIn(t, "docker images", c.must(t, "images", "--format", "{{.Repository}}:{{.Tag}}"), "tiny:latest")
		wantOut(t, "docker image inspect tiny", c.must(t, "image", "inspect", "tiny", "--format", "{{json .Config.Entrypoint}}"), `["/tiny"]`)
	})

	t.Run("run", func(t *testing.T) {
		wantOut(t, "docker run --rm tiny echo hi", c.must(t, "run", "--rm", "tiny", "echo", "hi"), "hi")
		wantOut(t, "echo hi | docker run -i --rm tiny cat", c.mustIn(t, nil, strings.NewReader("hi\n"), "run", "-i", "--rm", "tiny", "cat"), "hi")
		// A bind source under the root that does not exist yet: dockerd
		// creates it.
		wantOut(t, "docker run -v /srv/ci/fresh:/x", c.must(t, "run", "--rm", "-v", "/srv/ci/fresh:/x", "tiny", "echo", "fresh"), "fresh")
		if out, _, err := h.Exec(ctx, nil, "stat", "-c", "%F", "/srv/ci/fresh"); err != nil || strings.TrimSpace(string(out)) != "directory" {
			t.Errorf("/srv/ci/fresh on the host after docker run -v: %q %v", out, err)
		}
		if out := c.must(t, "ps", "-a", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("docker run --rm left containers: %q", out)
		}
	})

	t.Run("container work", func(t *testing.T) {
		removeAfter(t, "work")
		removeAfter(t, "lg")
		id := strings.TrimSpace(c.must(t, "run", "-d", "--name", "work", "-v", "/srv/ci/work:/work", "tiny", "sleep"))
		if !hexID.MatchString(id) {
			t.Fatalf("docker run -d printed %q, want a container ID", id)
		}
		wantOut(t, "docker ps", c.must(t, "ps", "--format", "{{.Names}} {{.Command}}"), `work "/tiny sleep"`)
		wantOut(t, "docker exec work /tiny echo hi", c.must(t, "exec", "work", "/tiny", "echo", "hi"), "hi")
		wantOut(t, "echo hi | docker exec -i work /tiny cat", c.mustIn(t, nil, strings.NewReader("hi\n"), "exec", "-i", "work", "/tiny", "cat"), "hi")
		wantOut(t, "docker logs work", c.must(t, "logs", "work"), "")
		c.must(t, "run", "-d", "--name", "lg", "tiny", "echo", "logged")
		wantOut(t, "docker wait lg", c.must(t, "wait", "lg"), "0")
		wantOut(t, "docker logs lg", c.must(t, "logs", "lg"), "logged")
		wantOut(t, "docker rm lg", c.must(t, "rm", "lg"), "lg")
		if hostHas(ctx, h, "ps") { // dockerd runs the host's ps
			wantIn(t, "docker top work", c.must(t, "top", "work"), "PID", "/tiny sleep")
		} else {
			t.Log("docker top: skipped, the test host has no ps")
		}

		// docker cp in lands in the bind on the host; docker cp out brings
		// it back.
		in := filepath.Join(local, "in.txt")
		if err := os.WriteFile(in, []byte("copied in\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.must(t, "cp", in, "work:/work/in.txt")
		if got, err := h.ReadFile("/srv/ci/work/in.txt"); err != nil || string(got) != "copied in\n" {
			t.Errorf("/srv/ci/work/in.txt on the host after docker cp: %q %v", got, err)
		}
		wantOut(t, "docker exec work /tiny read /work/in.txt", c.must(t, "exec", "work", "/tiny", "read", "/work/in.txt"), "copied in")
		outDir := t.TempDir()
		c.must(t, "cp", "work:/work/in.txt", filepath.Join(outDir, "out.txt"))
		if got, err := os.ReadFile(filepath.Join(outDir, "out.txt")); err != nil || string(got) != "copied in\n" {
			t.Errorf("docker cp work:/work/in.txt out: %q %v", got, err)
		}
		wantOut(t, "docker stats --no-stream work", c.must(t, "stats", "--no-stream", "--format", "{{.Name}}", "work"), "work")

		// commit, tag, rmi
		img := strings.TrimSpace(c.must(t, "commit", "work", "committed:1"))
		if !strings.HasPrefix(img, "sha256:") {
			t.Errorf("docker commit printed %q, want an image ID", img)
		}
		c.must(t, "tag", "committed:1", "committed:2")
		wantOut(t, "docker image inspect committed:2", c.must(t, "image", "inspect", "--format", "{{.Id}}", "committed:2"), img)
		wantIn(t, "docker rmi", c.must(t, "rmi", "committed:1", "committed:2"), "Untagged: committed:1", "Untagged: committed:2", "Deleted: "+img)

		started := strings.TrimSpace(c.must(t, "inspect", "--format", "{{.State.StartedAt}}", "work"))
		wantOut(t, "docker restart work", c.must(t, "restart", "work"), "work")
		if again := strings.TrimSpace(c.must(t, "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", "work")); again == "true "+started || !strings.HasPrefix(again, "true ") {
			t.Errorf("after docker restart work: %q (started before: %q)", again, started)
		}
		wantOut(t, "docker stop work", c.must(t, "stop", "work"), "work")
		wantOut(t, "docker rm work", c.must(t, "rm", "work"), "work")
	})

	t.Run("run options", func(t *testing.T) {
		cases := []struct {
			name  string
			flags []string
			cmd   []string
			want  string // in stdout
			not   string // not in stdout
			fails string // the container itself fails with this
		}{
			{"env", []string{"-e", "FOO=bar"}, []string{"read", "/proc/self/environ"}, "FOO=bar\x00", "", ""},
			{"workdir", []string{"-w", "/etc"}, []string{"read", "hostname"}, "", "", ""}, // a relative path
			{"user", []string{"--user", "1000"}, []string{"read", "/proc/self/status"}, "Uid:\t1000\t1000", "", ""},
			{"read-only", []string{"--read-only"}, []string{"ln", "/x", "/y"}, "", "", "read-only file system"},
			{"tmpfs", []string{"--tmpfs", "/t"}, []string{"read", "/proc/self/mounts"}, " /t tmpfs ", "", ""},
			{"read-only-tmpfs", []string{"--read-only", "--tmpfs", "/t"}, []string{"ln", "/x", "/t/y"}, "", "", ""},
			{"publish", []string{"-p", "127.0.0.1:8080:80"}, []string{"echo", "ok"}, "ok", "", ""},
			{"memory", []string{"--memory", "64m"}, []string{"echo", "ok"}, "ok", "", ""},
			{"cpus", []string{"--cpus", "0.5"}, []string{"echo", "ok"}, "ok", "", ""},
			{"pids-limit", []string{"--pids-limit", "50"}, []string{"echo", "ok"}, "ok", "", ""},
			{"restart", []string{"--restart", "on-failure:1"}, []string{"echo", "ok"}, "ok", "", ""},
			{"cap-drop", []string{"--cap-drop", "ALL"}, []string{"read", "/proc/self/status"}, "CapEff:\t0000000000000000", "", ""},
			{"no-new-privileges", []string{"--security-opt", "no-new-privileges"}, []string{"read", "/proc/self/status"}, "NoNewPrivs:\t1", "", ""},
			{"network-none", []string{"--network", "none"}, []string{"read", "/proc/self/net/dev"}, "lo:", "eth0", ""},
			{"init", []string{"--init"}, []string{"read", "/proc/1/cmdline"}, "docker-init", "", ""},
			{"label", []string{"--label", "tlsdock.e2e=cli"}, []string{"echo", "ok"}, "ok", "", ""},
			{"mount-bind", []string{"--mount", "type=bind,src=/srv/ci/work,dst=/w,readonly"}, []string{"read", "/proc/self/mounts"}, " /w ", "", ""},
			{"mount-volume", []string{"--mount", "type=volume,src=mountvol,dst=/mv"}, []string{"read", "/proc/self/mounts"}, " /mv ", "", ""},
			{"mount-tmpfs", []string{"--mount", "type=tmpfs,dst=/mt,tmpfs-size=1m"}, []string{"read", "/proc/self/mounts"}, " /mt tmpfs ", "", ""},
			{"anonymous-volume", []string{"-v", "/anon"}, []string{"read", "/proc/self/mounts"}, " /anon ", "", ""},
			{"hostname", []string{"--hostname", "cibox"}, []string{"read", "/etc/hostname"}, "cibox", "", ""},
			{"add-host", []string{"--add-host", "db.test:10.1.2.3"}, []string{"read", "/etc/hosts"}, "10.1.2.3\tdb.test", "", ""},
			{"dns", []string{"--dns", "10.9.9.9", "--dns-search", "ci.test"}, []string{"read", "/etc/resolv.conf"}, "nameserver 10.9.9.9", "", ""},
			{"entrypoint", []string{"--entrypoint", "/tiny"}, []string{"echo", "via entrypoint"}, "via entrypoint", "", ""},
			{"ulimit", []string{"--ulimit", "nofile=512:777"}, []string{"read", "/proc/self/limits"}, "777", "", ""},
			{"shm-size", []string{"--shm-size", "8m"}, []string{"read", "/proc/self/mounts"}, "size=8192k", "", ""},
			{"cap-add-net-bind", []string{"--cap-add", "NET_BIND_SERVICE"}, []string{"echo", "ok"}, "ok", "", ""},
			{"publish-all", []string{"-P", "--expose", "80"}, []string{"echo", "ok"}, "ok", "", ""},
			{"log-opt", []string{"--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=2"}, []string{"echo", "ok"}, "ok", "", ""},
			{"stop-signal", []string{"--stop-signal", "SIGINT", "--stop-timeout", "5"}, []string{"echo", "ok"}, "ok", "", ""},
			{"health", []string{"--health-cmd", "/tiny echo ok", "--health-interval", "5s"}, []string{"echo", "ok"}, "ok", "", ""},
			{"ipc-private", []string{"--ipc", "private"}, []string{"echo", "ok"}, "ok", "", ""},
			{"oom-score", []string{"--oom-score-adj", "500"}, []string{"read", "/proc/self/oom_score_adj"}, "500", "", ""},
			{"group-add", []string{"--group-add", "123"}, []string{"read", "/proc/self/status"}, " 123 ", "", ""},
			{"platform", []string{"--platform", "linux/amd64"}, []string{"echo", "ok"}, "ok", "", ""},
			{"tty", []string{"-t"}, []string{"echo", "on a tty"}, "on a tty\r\n", "", ""},
			{"bind-ro", []string{"-v", "/srv/ci/work:/work:ro"}, []string{"ln", "/x", "/work/y"}, "", "", "read-only file system"},
		}
		hasInit := hostHas(ctx, h, "docker-init")
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if tc.name == "init" && !hasInit {
					t.Skip("the test host has no docker-init")
				}
				// Not --rm: docker container prune below finds them.
				args := append(append([]string{"run", "--name", "opt-" + tc.name}, tc.flags...), "tiny")
				args = append(args, tc.cmd...)
				out, errb, err := c.run(nil, nil, args...)
				if tc.fails != "" {
					if err == nil || !strings.Contains(errb, tc.fails) || strings.Contains(errb, "tlsdock:") {
						t.Fatalf("docker %s: %v %q; want the container to fail with %q", strings.Join(args, " "), err, errb, tc.fails)
					}
					t.Logf("docker %s: the container fails as it should: %s", strings.Join(args, " "), strings.TrimSpace(errb))
					return
				}
				if err != nil {
					t.Fatalf("docker %s: FAILED: %v\nstdout: %s", strings.Join(args, " "), err, out)
				}
				t.Logf("docker %s: ok", strings.Join(args, " "))
				if !strings.Contains(out, tc.want) || (tc.not != "" && strings.Contains(out, tc.not)) {
					t.Errorf("docker %s printed %q; want %q in it and not %q", strings.Join(args, " "), out, tc.want, tc.not)
				}
				if tc.name == "workdir" && !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(strings.TrimSpace(out)) {
					t.Errorf("docker run -w /etc tiny read hostname printed %q, want the container's hostname", out)
				}
			})
		}

		removeAfter(t, "opts")
		// All of them on one running container, whose settings dockerd
		// reports.
		c.must(t, "run", "-d", "--name", "opts", "-e", "FOO=bar", "-w", "/etc", "--user", "1000", "--read-only", "--tmpfs", "/t",
			"-p", "127.0.0.1:8080:80", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "--restart", "on-failure:1",
			"--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--label", "tlsdock.e2e=cli", "tiny", "sleep")
		wantOut(t, "docker inspect opts", c.must(t, "inspect", "--format",
			`{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{.Config.User}} {{.Config.WorkingDir}} {{index .Config.Labels "tlsdock.e2e"}}`, "opts"),
			"67108864 500000000 50 on-failure:1 true [ALL] [no-new-privileges] 1000 /etc cli")
		wantOut(t, "docker port opts", c.must(t, "port", "opts"), "80/tcp -> 127.0.0.1:8080")
		wantIn(t, "docker exec opts /tiny read /proc/self/status", c.must(t, "exec", "opts", "/tiny", "read", "/proc/self/status"),
			"Uid:\t1000\t1000", "NoNewPrivs:\t1", "CapEff:\t0000000000000000")
		wantOut(t, "docker rm -f opts", c.must(t, "rm", "-f", "opts"), "opts")
	})

	t.Run("lifecycle", func(t *testing.T) {
		removeAfter(t, "life")
		removeAfter(t, "life2")
		c.must(t, "create", "--name", "life", "tiny", "echo", "started")
		wantOut(t, "docker start -a life", c.must(t, "start", "-a", "life"), "started")
		wantOut(t, "docker rm life", c.must(t, "rm", "life"), "life")
		id := strings.TrimSpace(c.must(t, "run", "-d", "--name", "life", "tiny", "sleep"))
		wantOut(t, "docker pause life", c.must(t, "pause", "life"), "life")
		wantOut(t, "docker inspect paused", c.must(t, "inspect", "--format", "{{.State.Status}}", "life"), "paused")
		wantOut(t, "docker unpause life", c.must(t, "unpause", "life"), "life")
		wantOut(t, "docker update", c.must(t, "update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "1", "--restart", "unless-stopped", "life"), "life")
		wantOut(t, "docker inspect updated", c.must(t, "inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}", "life"), "134217728 unless-stopped")
		c.must(t, "rename", "life", "life2")
		wantOut(t, "docker exec -e -w -u", c.must(t, "exec", "-e", "X=1", "-w", "/etc", "-u", "1000", "life2", "/tiny", "read", "hostname"), strings.TrimSpace(c.must(t, "inspect", "--format", "{{.Config.Hostname}}", "life2")))
		wantOut(t, "docker diff", c.must(t, "diff", "life2"), "")
		wantOut(t, "docker exec -t", c.must(t, "exec", "-t", "life2", "/tiny", "echo", "tty"), "tty")
		c.must(t, "exec", "-d", "life2", "/tiny", "sleep")
		export := t.TempDir() + "/life.tar"
		c.must(t, "export", "-o", export, "life2")
		if st, err := os.Stat(export); err != nil || st.Size() < 1024 {
			t.Errorf("docker export -o: %v %v", st, err)
		}
		wantIn(t, "docker history tiny", c.must(t, "history", "tiny"), "IMAGE", "CREATED")
		wantOut(t, "docker kill life2", c.must(t, "kill", "life2"), "life2")
		// The events up to a second from now: dockerd ends the stream then.
		until := strconv.FormatInt(time.Now().Add(time.Second).Unix()+1, 10)
		wantIn(t, "docker events", c.must(t, "events", "--since", "10m", "--until", until, "--filter", "container="+id, "--format", "{{.Action}}"), "create", "pause", "rename", "kill")
		wantOut(t, "docker rm life2", c.must(t, "rm", "life2"), "life2")

		saved := t.TempDir() + "/tiny.tar"
		c.must(t, "tag", "tiny", "saved:1")
		c.must(t, "save", "-o", saved, "saved:1")
		c.must(t, "rmi", "saved:1")
		wantIn(t, "docker load -i", c.must(t, "load", "-i", saved), "Loaded image: saved:1")
		c.must(t, "rmi", "saved:1")
		c.must(t, "image", "prune", "-f")
		c.must(t, "volume", "prune", "-f")
		c.must(t, "network", "prune", "-f")
		wantIn(t, "docker inspect tiny after prunes", c.must(t, "image", "inspect", "--format", "{{.Id}}", "tiny"), "sha256:")
	})

	t.Run("volume", func(t *testing.T) {
		wantOut(t, "docker volume create civol", c.must(t, "volume", "create", "civol"), "civol")
		wantIn(t, "docker volume ls", c.must(t, "volume", "ls", "-q"), "civol")
		removeAfter(t, "vc")
		c.must(t, "create", "--name", "vc", "-v", "civol:/data", "tiny", "sleep")
		f := filepath.Join(local, "vol.txt")
		if err := os.WriteFile(f, []byte("in the volume\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.must(t, "cp", f, "vc:/data/vol.txt")
		wantOut(t, "docker rm vc", c.must(t, "rm", "vc"), "vc")
		wantOut(t, "docker run --rm -v civol:/data tiny read", c.must(t, "run", "--rm", "-v", "civol:/data", "tiny", "read", "/data/vol.txt"), "in the volume")
		wantOut(t, "docker volume rm civol", c.must(t, "volume", "rm", "civol"), "civol")
	})

	// Docker 28's `docker network create NAME` sends "IPAM":{"Options":{}},
	// and `docker network connect` "EndpointConfig":{"DriverOpts":{}}: empty
	// maps, which configure nothing.
	t.Run("network", func(t *testing.T) {
		if id := strings.TrimSpace(c.must(t, "network", "create", "cinet")); !hexID.MatchString(id) {
			t.Errorf("docker network create cinet printed %q, want a network ID", id)
		}
		if names := strings.Fields(c.must(t, "network", "ls", "--format", "{{.Name}}")); !slices.Contains(names, "cinet") {
			t.Errorf("docker network ls: %q lacks cinet", names)
		}
		wantIn(t, "docker run --rm --network cinet", c.must(t, "run", "--rm", "--network", "cinet", "tiny", "read", "/proc/self/net/dev"), "eth0")
		wantOut(t, "docker run --rm --network cinet tiny echo", c.must(t, "run", "--rm", "--network", "cinet", "tiny", "echo", "on n"), "on n")
		wantOut(t, "docker network rm cinet", c.must(t, "network", "rm", "cinet"), "cinet")
	})

	// connect and disconnect, on a network the administrator made (so
	// that a refused network create does not hide them).
	t.Run("network connect", func(t *testing.T) {
		run(t, ctx, h, "docker", "network", "create", "adminnet")
		wantOut(t, "docker run --rm --network adminnet", c.must(t, "run", "--rm", "--network", "adminnet", "tiny", "echo", "on adminnet"), "on adminnet")
		removeAfter(t, "nc")
		c.must(t, "run", "-d", "--name", "nc", "tiny", "sleep")
		c.must(t, "network", "connect", "--alias", "nc-alias", "adminnet", "nc")
		wantIn(t, "docker inspect nc", c.must(t, "inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.Aliases}} {{end}}", "nc"), "adminnet [", "nc-alias", "bridge")
		c.must(t, "network", "disconnect", "adminnet", "nc")
		wantOut(t, "docker rm -f nc", c.must(t, "rm", "-f", "nc"), "nc")
	})

	t.Run("build", func(t *testing.T) {
		legacy := []string{"DOCKER_BUILDKIT=0"} // BuildKit needs /session, which the guard refuses
		const dockerfile = "FROM tiny\nCOPY hello.txt /hello.txt\n"
		dir := filepath.Join(local, "ctx")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"Dockerfile": dockerfile, "hello.txt": "built from a directory\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		wantIn(t, "docker build DIR", c.mustIn(t, legacy, nil, "build", "-t", "built:dir", dir), "Successfully tagged built:dir")
		wantOut(t, "docker run built:dir", c.must(t, "run", "--rm", "built:dir", "read", "/hello.txt"), "built from a directory")

		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		for _, f := range []struct{ name, data string }{{"Dockerfile", dockerfile}, {"hello.txt", "built from stdin\n"}} {
			if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(f.data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		wantIn(t, "docker build - < tar", c.mustIn(t, legacy, &tb, "build", "-t", "built:tar", "-"), "Successfully tagged built:tar")
		wantOut(t, "docker run built:tar", c.must(t, "run", "--rm", "built:tar", "read", "/hello.txt"), "built from stdin")
		// The everyday options of the classic builder.
		if err := os.WriteFile(filepath.Join(dir, "Other.Dockerfile"), []byte("FROM tiny AS base\nARG GREETING\nLABEL greeting=$GREETING\nCOPY hello.txt /other.txt\nFROM base AS final\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		wantIn(t, "docker build with options", c.mustIn(t, legacy, nil, "build", "-f", filepath.Join(dir, "Other.Dockerfile"), "--build-arg", "GREETING=hi",
			"--label", "built.by=ci", "--target", "final", "--no-cache", "--pull=false", "--network", "none", "--memory", "256m", "-q", "-t", "built:opts", dir), "sha256:")
		wantOut(t, "docker image inspect built:opts", c.must(t, "image", "inspect", "--format", `{{index .Config.Labels "greeting"}} {{index .Config.Labels "built.by"}}`, "built:opts"), "hi ci")
		wantIn(t, "docker rmi built", c.must(t, "rmi", "built:dir", "built:tar", "built:opts"), "Untagged: built:dir", "Untagged: built:tar", "Untagged: built:opts")
	})

	t.Run("prune and df", func(t *testing.T) {
		before := c.must(t, "ps", "-a", "-q", "--no-trunc", "--filter", "status=exited")
		out := c.must(t, "container", "prune", "-f")
		wantIn(t, "docker container prune -f", out, "Total reclaimed space")
		for _, id := range strings.Fields(before) {
			wantIn(t, "docker container prune -f", out, id)
		}
		wantOut(t, "docker ps -a after prune", c.must(t, "ps", "-a", "-q"), "")
		wantIn(t, "docker system df", c.must(t, "system", "df"), "TYPE", "Images", "Containers", "Local Volumes")
	})

	// What would reach the host: the CLI prints the proxy's refusal, and
	// dockerd holds no such container.
	t.Run("refusals", func(t *testing.T) {
		cases := []struct {
			name  string
			flags []string
		}{
			{"privileged", []string{"--privileged"}},
			{"bind-root", []string{"-v", "/:/host"}},
			{"pid-host", []string{"--pid", "host"}},
			{"network-host", []string{"--network", "host"}},
			{"bind-dotdot", []string{"-v", "/srv/ci/../etc:/x"}},
		}
		for _, tc := range cases {
			args := append(append([]string{"run", "--rm", "--name", "ref-" + tc.name}, tc.flags...), "tiny", "echo", "escaped")
			out, errb, err := c.run(nil, nil, args...)
			if err == nil || strings.Contains(out, "escaped") || !strings.Contains(errb, "tlsdock:") || !strings.Contains(errb, `rule "ci"`) {
				t.Errorf("docker %s: NOT REFUSED BY THE PROXY: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errb)
				continue
			}
			t.Logf("docker %s: refused: %s", strings.Join(args, " "), strings.TrimSpace(errb))
			if ci := inspectCtr(t, ctx, h, "ref-"+tc.name); ci != nil {
				t.Errorf("dockerd holds %s", ci.summary())
			}
		}
	})
}
