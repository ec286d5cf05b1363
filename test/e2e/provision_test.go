package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type provisionResult struct {
	Changed    bool     `json:"changed"`
	Restarted  bool     `json:"restarted"`
	RolledBack bool     `json:"rolled_back"`
	Serial     string   `json:"serial"`
	Hosts      []string `json:"hosts"`
	Notes      []string `json:"notes"`
	Error      string   `json:"error"`
	Journal    string   `json:"journal"`
	Checks     []struct {
		Endpoint string `json:"endpoint"`
		Name     string `json:"check"`
		OK       bool   `json:"ok"`
		Detail   string `json:"detail"`
	} `json:"checks"`
}

func parseResult(t *testing.T, out string) provisionResult {
	t.Helper()
	var r provisionResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("provision --json printed %q: %v", out, err)
	}
	return r
}

// TestProvisionGenerate is the first-run story: a stock host with a running
// container, one command, and dockerd answers the real docker CLI from
// outside over mutual TLS, with the container still running.
func TestProvisionGenerate(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	sleeper := startSleeper(t, ctx, h)
	startedBefore := containerStarted(t, ctx, h, sleeper)

	res := parseResult(t, mustTlsdock(t, ctx, h, "provision", "--generate", "--client-out", "/root/client", "--json"))
	if !res.Changed || !res.Restarted || res.Serial == "" {
		t.Fatalf("first provision: %+v", res)
	}
	for _, c := range res.Checks {
		if !c.OK {
			t.Errorf("check failed: %+v", c)
		}
	}
	if len(res.Checks) < 7 {
		t.Errorf("only %d checks ran: %+v", len(res.Checks), res.Checks)
	}

	// live-restore was on before the restart: the container survived it.
	if got := containerStarted(t, ctx, h, sleeper); got != startedBefore || !strings.HasPrefix(got, "true ") {
		t.Fatalf("container after provision: %q, before: %q", got, startedBefore)
	}

	// The real docker CLI from outside, with the client bundle.
	bundle := fetchBundle(t, h, "/root/client")
	out, err := remoteDocker(ctx, t, h, bundle, "", "version", "--format", "{{.Server.Version}}")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(out), h.Suite.Docker) {
		t.Fatalf("docker version over mTLS: %q %v", out, err)
	}
	// Attach/hijack over TLS.
	out, err = remoteDocker(ctx, t, h, bundle, "hi\n", "run", "-i", "--rm", "tiny", "cat")
	if err != nil || strings.TrimSpace(out) != "hi" {
		t.Fatalf("docker run -i over mTLS: %q %v", out, err)
	}
	// No client certificate: refused.
	if out, err := remoteDocker(ctx, t, h, "", "", "version"); err == nil || strings.Contains(out, h.Suite.Docker) {
		t.Fatalf("docker without TLS got in: %q", out)
	}
	if out, err := curlOutside(ctx, h, "-k", "https://127.0.0.1:2376/_ping"); err == nil || out == "OK" {
		t.Fatalf("curl without a client certificate got %q", out)
	}
	if out, _ := curlOutside(ctx, h, "http://127.0.0.1:2376/_ping"); out == "OK" {
		t.Fatal("plain HTTP got OK")
	}
	if out, err := curlOutside(ctx, h, "--cacert", bundle+"/ca.pem", "--cert", bundle+"/cert.pem", "--key", bundle+"/key.pem", "https://127.0.0.1:2376/_ping"); err != nil || out != "OK" {
		t.Fatalf("curl with the bundle: %q %v", out, err)
	}

	// Keys 0400 and certificates 0444, root:root.
	modes := run(t, ctx, h, "stat", "-L", "-c", "%n %a %U:%G", "/etc/docker/ssl/ca.pem", "/etc/docker/ssl/server-cert.pem", "/etc/docker/ssl/server-key.pem", "/etc/tlsdock/ca/ca-key.pem")
	want := "/etc/docker/ssl/ca.pem 444 root:root\n/etc/docker/ssl/server-cert.pem 444 root:root\n/etc/docker/ssl/server-key.pem 400 root:root\n/etc/tlsdock/ca/ca-key.pem 400 root:root\n"
	if modes != want {
		t.Errorf("modes:\n%s\nwant:\n%s", modes, want)
	}

	// Idempotent: same inputs, no change, no restart.
	pid := dockerPID(t, ctx, h)
	res2 := parseResult(t, mustTlsdock(t, ctx, h, "provision", "--generate", "--client-out", "/root/client", "--json"))
	if res2.Changed || res2.Restarted || res2.Serial != res.Serial {
		t.Fatalf("second provision: %+v", res2)
	}
	if got := dockerPID(t, ctx, h); got != pid {
		t.Fatalf("docker restarted on an idempotent run: MainPID %s -> %s", pid, got)
	}

	// status
	var st struct {
		Mode        string `json:"mode"`
		Provisioned bool   `json:"provisioned"`
		Certificate struct {
			Serial   string `json:"serial"`
			DaysLeft int    `json:"days_left"`
		} `json:"certificate"`
		Docker struct {
			ActiveState string `json:"active_state"`
		} `json:"docker"`
		LastApply struct {
			Result string `json:"result"`
		} `json:"last_apply"`
	}
	if err := json.Unmarshal([]byte(mustTlsdock(t, ctx, h, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Provisioned || st.Mode != "daemon-json" || st.Certificate.Serial != res.Serial || st.Certificate.DaysLeft < 88 || st.Docker.ActiveState != "active" || st.LastApply.Result != "unchanged" {
		t.Fatalf("status = %+v", st)
	}

	// Revert: the host as it was (but for live-restore, kept on request so
	// the container survives), docker answering on its socket.
	mustTlsdock(t, ctx, h, "revert", "--keep-live-restore")
	if got := string(mustRead(t, h, "/etc/docker/daemon.json")); got != "{\n  \"live-restore\": true\n}\n" {
		t.Errorf("daemon.json after revert --keep-live-restore:\n%s", got)
	}
	for _, p := range []string{"/etc/systemd/system/docker.service.d", "/etc/docker/ssl"} {
		if _, _, err := h.Exec(ctx, nil, "test", "!", "-e", p); err != nil {
			t.Errorf("%s still exists after revert", p)
		}
	}
	if got := strings.TrimSpace(run(t, ctx, h, "docker", "inspect", "-f", "{{.State.Running}}", sleeper)); got != "true" {
		t.Errorf("container after revert: running=%s", got)
	}
	// With the bundle: a client without a certificate is refused by a
	// listener that is still there too.
	if out, _ := curlOutside(ctx, h, "--cacert", bundle+"/ca.pem", "--cert", bundle+"/cert.pem", "--key", bundle+"/key.pem", "https://127.0.0.1:2376/_ping"); out == "OK" {
		t.Error("TLS listener still answers after revert")
	}
}

// opensslRecipe makes certificates the way Docker's documentation shows:
// RSA-4096 keys, a CSR, an extfile with the SAN and serverAuth, openssl x509
// -req to sign; and a client certificate with clientAuth.
func opensslRecipe(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sh := `set -e
openssl genrsa -out ca-key.pem 4096 2>/dev/null
openssl req -new -x509 -days 365 -key ca-key.pem -sha256 -out ca.pem -subj "/CN=docker-ca"
openssl genrsa -out server-key.pem 4096 2>/dev/null
openssl req -subj "/CN=dockerhost" -sha256 -new -key server-key.pem -out server.csr
echo "subjectAltName = DNS:dockerhost,IP:127.0.0.1" > extfile.cnf
echo "extendedKeyUsage = serverAuth" >> extfile.cnf
openssl x509 -req -days 365 -sha256 -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -extfile extfile.cnf 2>/dev/null
openssl genrsa -out key.pem 4096 2>/dev/null
openssl req -subj "/CN=client" -new -key key.pem -out client.csr
echo "extendedKeyUsage = clientAuth" > extfile-client.cnf
openssl x509 -req -days 365 -sha256 -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -extfile extfile-client.cnf 2>/dev/null
`
	cmd := exec.Command("bash", "-c", sh)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl recipe: %v\n%s", err, out)
	}
	return dir
}

// TestProvisionOpenSSLDropIn installs certificates made by the openssl
// recipe, in dropin mode, over a daemon.json holding the user's own keys.
func TestProvisionOpenSSLDropIn(t *testing.T) {
	certs := opensslRecipe(t)
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	userJSON := "{\n  \"log-level\": \"warn\",\n  \"default-ulimits\": {\"nofile\": {\"Name\": \"nofile\", \"Hard\": 65536, \"Soft\": 65536}},\n  \"log-opts\": {\"max-size\": \"10m\", \"max-file\": \"3\"},\n  \"max-concurrent-downloads\": 4\n}\n"
	if err := h.WriteFile("/etc/docker/daemon.json", []byte(userJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "systemctl", "restart", "docker.service")
	for _, f := range []struct{ from, to string }{
		{"ca.pem", "/root/certs/ca.pem"}, {"server-cert.pem", "/root/certs/server-cert.pem"}, {"server-key.pem", "/root/certs/server-key.pem"},
		{"cert.pem", "/root/client/cert.pem"}, {"key.pem", "/root/client/key.pem"},
	} {
		if err := h.CopyIn(filepath.Join(certs, f.from), f.to, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := mustTlsdock(t, ctx, h, "provision", "--certs", "/root/certs", "--mode", "dropin", "--probe-client", "/root/client")
	t.Logf("provision:\n%s", out)
	if !strings.Contains(out, "ok   127.0.0.1:2376: a valid client gets /_ping = OK") {
		t.Errorf("the client probe did not run:\n%s", out)
	}
	dropIn := string(mustRead(t, h, "/etc/systemd/system/docker.service.d/zz-tlsdock.conf"))
	if !strings.Contains(dropIn, "-H fd:// -H tcp://0.0.0.0:2376 --tlsverify --tlscacert=/etc/docker/ssl/..data/ca.pem") {
		t.Errorf("drop-in:\n%s", dropIn)
	}
	gotJSON := string(mustRead(t, h, "/etc/docker/daemon.json"))
	var doc map[string]any
	if err := json.Unmarshal([]byte(gotJSON), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"log-level", "default-ulimits", "log-opts", "max-concurrent-downloads"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("daemon.json lost %q:\n%s", k, gotJSON)
		}
	}
	if _, ok := doc["hosts"]; ok {
		t.Errorf("dropin mode left hosts in daemon.json:\n%s", gotJSON)
	}
	if idx := strings.Index(gotJSON, "log-level"); idx < 0 || idx > strings.Index(gotJSON, "log-opts") {
		t.Errorf("key order changed:\n%s", gotJSON)
	}
	// Docker's own client, with the recipe's client certificate.
	client := t.TempDir()
	for _, n := range []string{"ca.pem", "cert.pem", "key.pem"} {
		data, _ := os.ReadFile(filepath.Join(certs, n))
		if err := os.WriteFile(filepath.Join(client, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := remoteDocker(ctx, t, h, client, "", "info", "--format", "{{.LoggingDriver}}"); err != nil {
		t.Fatalf("docker info over mTLS: %q %v", out, err)
	}
	// Idempotent in dropin mode too.
	pid := dockerPID(t, ctx, h)
	out = mustTlsdock(t, ctx, h, "provision", "--certs", "/root/certs", "--mode", "dropin", "--probe-client", "/root/client")
	if !strings.Contains(out, "No changes") || dockerPID(t, ctx, h) != pid {
		t.Fatalf("second run changed something:\n%s", out)
	}
}

func mustRead(t *testing.T, h interface{ ReadFile(string) ([]byte, error) }, p string) []byte {
	t.Helper()
	data, err := h.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestProvisionHostsInDaemonJSON: a daemon.json that already sets hosts
// (including a plaintext 2375 listener) next to the unit's -H fd:// — a
// dockerd that refuses to start. tlsdock fixes it and drops 2375.
func TestProvisionHostsInDaemonJSON(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	if err := h.WriteFile("/etc/docker/daemon.json", []byte(`{"debug": false, "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Exec(ctx, nil, "systemctl", "restart", "docker.service"); err == nil {
		t.Fatal("dockerd started with hosts both in the unit and daemon.json: the trap did not reproduce")
	}
	if j := h.Journal(ctx, "docker.service", 30); !strings.Contains(j, "specified both as a flag and in the configuration file") {
		t.Fatalf("unexpected failure:\n%s", j)
	}
	res := parseResult(t, mustTlsdock(t, ctx, h, "provision", "--generate", "--client-out", "/root/client", "--json"))
	if !strings.Contains(strings.Join(res.Notes, "\n"), "removed plaintext listener tcp://0.0.0.0:2375") {
		t.Errorf("notes do not mention 2375: %q", res.Notes)
	}
	want := []string{"fd://", "unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"}
	if strings.Join(res.Hosts, " ") != strings.Join(want, " ") {
		t.Errorf("hosts = %q, want %q", res.Hosts, want)
	}
	if out, err := curlOutside(ctx, h, "http://127.0.0.1:2375/_ping"); err == nil {
		t.Errorf("plaintext 2375 still answers: %q", out)
	}
	run(t, ctx, h, "docker", "info") // the unix socket works
}

// TestProvisionPortInUseRollsBack: dockerd cannot bind 2376, so the restart
// fails; tlsdock rolls back and docker is active on its previous
// configuration, containers included.
func TestProvisionPortInUseRollsBack(t *testing.T) {
	h := startWithTlsdock(t)
	ctx := ctxFor(t, 5*time.Minute)
	sleeper := startSleeper(t, ctx, h)
	if err := h.WriteFile("/etc/docker/daemon.json", []byte("{\"log-level\": \"info\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, h, "sh", "-c", "cd /root && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=squatter -keyout sq.key -out sq.pem 2>/dev/null")
	run(t, ctx, h, "systemd-run", "--unit=squatter", "openssl", "s_server", "-quiet", "-accept", "0.0.0.0:2376", "-cert", "/root/sq.pem", "-key", "/root/sq.key")
	run(t, ctx, h, "bash", "-c", "for i in $(seq 50); do (echo > /dev/tcp/127.0.0.1/2376) 2>/dev/null && exit 0; sleep 0.1; done; exit 1")

	out, errb, code := tlsdock(ctx, h, "provision", "--generate")
	if code != 3 {
		t.Fatalf("exit %d, want 3 (rolled back)\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	if !strings.Contains(out, "address already in use") || !strings.Contains(out, "Rolled back") {
		t.Errorf("output does not show dockerd's reason and the rollback:\n%s\n%s", out, errb)
	}
	if got := strings.TrimSpace(run(t, ctx, h, "systemctl", "is-active", "docker.service")); got != "active" {
		t.Fatalf("docker.service is %s after rollback", got)
	}
	if got := string(mustRead(t, h, "/etc/docker/daemon.json")); got != "{\n  \"log-level\": \"info\",\n  \"live-restore\": true\n}\n" {
		t.Errorf("daemon.json after rollback:\n%s", got)
	}
	if _, _, err := h.Exec(ctx, nil, "test", "!", "-e", "/etc/systemd/system/docker.service.d/zz-tlsdock.conf"); err != nil {
		t.Error("drop-in left behind after rollback")
	}
	if got := strings.TrimSpace(run(t, ctx, h, "docker", "inspect", "-f", "{{.State.Running}}", sleeper)); got != "true" {
		t.Errorf("container after rollback: running=%s", got)
	}
	var st struct {
		LastApply struct{ Result, Error string } `json:"last_apply"`
	}
	if err := json.Unmarshal([]byte(mustTlsdock(t, ctx, h, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.LastApply.Result != "rolled-back" {
		t.Errorf("status last apply = %+v", st.LastApply)
	}
	// Once the port is free, the same command succeeds.
	run(t, ctx, h, "systemctl", "stop", "squatter")
	mustTlsdock(t, ctx, h, "provision", "--generate")
}
