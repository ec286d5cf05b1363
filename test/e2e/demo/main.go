// Command demo shows tlsdock on a real Debian host: it boots a test host
// (systemd + docker.io in systemd-nspawn), runs `tlsdock provision
// --generate`, reaches dockerd from outside with this machine's docker CLI
// over mutual TLS, shows that a client without a certificate is refused,
// and cleans up. Run it with `make demo` (as root).
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

func main() {
	if err := demo(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

// show prints a command's output, indented, and passes its error on.
func show(out, errb []byte, err error) error {
	if len(out) > 0 {
		fmt.Print(indent(string(out)))
	}
	if err != nil && len(errb) > 0 {
		fmt.Print(indent(string(errb)))
	}
	return err
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "    " + strings.Join(lines, "\n    ") + "\n"
}

func demo() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the test host is a systemd-nspawn container")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "tlsdock-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	step("building tlsdock")
	bin := filepath.Join(tmp, "tlsdock")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tlsdock")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	step("booting a Debian 12 test host with systemd and docker.io")
	if err := testhost.CleanupStale(); err != nil {
		fmt.Fprintf(os.Stderr, "cleaning up earlier runs: %v\n", err)
	}
	h, err := testhost.Boot(ctx, testhost.Options{Name: "tlsdock-demo"})
	if err != nil {
		return err
	}
	defer func() {
		step("cleaning up the test host")
		if err := h.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	fmt.Printf("    booted in %v\n", h.BootTime.Round(time.Millisecond))
	if err := h.CopyIn(bin, "/usr/local/bin/tlsdock", 0o755); err != nil {
		return err
	}
	if err := h.ImportTinyImage(ctx, "tiny"); err != nil {
		return err
	}
	if _, _, err := h.Exec(ctx, nil, "docker", "run", "-d", "--name", "sleeper", "tiny", "sleep"); err != nil {
		return err
	}
	fmt.Println("    a container named sleeper is running on it")

	step("inside the host: tlsdock provision --generate --client-out /root/client")
	if err := show(h.Exec(ctx, nil, "tlsdock", "provision", "--generate", "--client-out", "/root/client")); err != nil {
		return err
	}

	client := filepath.Join(tmp, "client")
	if err := os.MkdirAll(client, 0o700); err != nil {
		return err
	}
	for _, n := range []string{"ca.pem", "cert.pem", "key.pem"} {
		data, err := h.ReadFile("/root/client/" + n)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(client, n), data, 0o600); err != nil {
			return err
		}
	}
	env := []string{"DOCKER_HOST=tcp://127.0.0.1:2376", "DOCKER_CONFIG=" + filepath.Join(tmp, "docker-config")}
	tlsEnv := append(env, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+client)

	step("from outside, with the client bundle: docker version")
	if err := show(h.ExecNet(ctx, tlsEnv, nil, "docker", "version")); err != nil {
		return err
	}
	step("from outside, with the client bundle: docker ps (the container survived the restart)")
	if err := show(h.ExecNet(ctx, tlsEnv, nil, "docker", "ps", "--format", "{{.Names}}  {{.Status}}")); err != nil {
		return err
	}

	step("from outside, without a certificate: docker version (must be refused)")
	out, errb, err := h.ExecNet(ctx, env, nil, "docker", "version", "--format", "{{.Server.Version}}")
	_ = show(append(out, errb...), nil, nil)
	if err == nil {
		return fmt.Errorf("a client without a certificate got in")
	}
	fmt.Println("    refused, as it must be")

	step("inside the host: tlsdock status")
	if err := show(h.Exec(ctx, nil, "tlsdock", "status")); err != nil {
		return err
	}
	step("inside the host: tlsdock provision --generate again (idempotent: no changes, no restart)")
	return show(h.Exec(ctx, nil, "tlsdock", "provision", "--generate", "--client-out", "/root/client"))
}
