package e2e

// Tests of the Ansible role in deploy/ansible (docs/ansible.md): Debian's
// ansible-playbook on this machine against three test hosts on one test
// network, through the test-only connection plugin in test/e2e/ansible
// (nsenter into each host, as testhost.Exec does; the hosts have no sshd).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// ansiblePythonDebs holds the .debs of python3 that the test-host rootfs
// lacks (Ansible's modules run on the host in python3); setup-host.sh
// downloads them.
const ansiblePythonDebs = "/var/cache/tlsdock-e2e/debs-python3-bookworm"

// ansiblePolicy is the proxy host's policy: everything but swarm.
const ansiblePolicy = `{
  "default": "allow",
  "rules": [
    {"name": "no-swarm", "paths": ["/swarm/**"], "action": "deny", "message": "swarm is off limits (e2e)"}
  ]
}
`

// ansibleFleet is the controller's side of one test: the hosts and their
// modes, the inventory and the PKI directory the playbook reads.
type ansibleFleet struct {
	hosts []*testhost.Host
	modes []string
	dir   string // inventory, pki-*, policy, ansible's local temp
	deb   string
	repo  string // the repository root
}

// ansibleStats is one host's line of the play recap (the json callback's
// "stats").
type ansibleStats struct {
	Changed     int `json:"changed"`
	Failures    int `json:"failures"`
	Unreachable int `json:"unreachable"`
	Ok          int `json:"ok"`
	Skipped     int `json:"skipped"`
}

// TestAnsibleRole runs deploy/ansible/site.yml against three test hosts,
// two native (daemon-json, dropin) and one proxy with a policy, all from
// one CA. The first run installs the .deb and provisions every host: the
// docker CLI on the next host, with a client certificate from that CA,
// reaches each over mutual TLS and the proxy host enforces the policy. The
// second run changes nothing on any host (changed=0 in the recap, and
// docker.service was not restarted), nor would a --check run; a run with
// a mistyped mode fails on every host and changes nothing. Then the fleet's CA is rotated as
// docs/ansible.md says: a new CA and new sets, one playbook run, and a
// new-CA client reaches every host while an old-CA client is refused.
func TestAnsibleRole(t *testing.T) {
	start := time.Now()
	testhost.SkipUnlessEnabled(t)
	for _, tool := range []string{"ansible-playbook", "nsenter", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run test/e2e/setup-host.sh (make e2e-setup) as root", tool)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(ansiblePythonDebs, "*.deb"))
	if len(debs) == 0 {
		t.Fatalf("no python3 packages for the test hosts in %s: run test/e2e/setup-host.sh (make e2e-setup) as root", ansiblePythonDebs)
	}
	pkg := pkgPackages(t, "")
	nw := testhost.StartNetwork(t)
	f := &ansibleFleet{
		hosts: testhost.StartNOn(t, nw, 3),
		modes: []string{"daemon-json", "dropin", "proxy"},
		dir:   t.TempDir(),
		deb:   pkg.Deb,
		repo:  pkgRepoRoot(t),
	}
	ctx := ctxFor(t, 20*time.Minute)
	f.installPython(t, ctx, debs)
	t.Logf("3 hosts up with python3 after %v", time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(filepath.Join(f.dir, "policy.json"), []byte(ansiblePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	f.writeInventory(t)
	f.syntaxCheck(t, ctx)

	ca1 := pkgNewCA(t)
	pki1, client1 := f.writePKI(t, "pki-1", ca1)
	stats := f.playbook(t, ctx, pki1)
	t.Logf("run 1 after %v: %+v", time.Since(start).Round(time.Millisecond), stats)
	for _, h := range f.hosts {
		if s := stats[h.Name]; s.Changed == 0 || s.Failures+s.Unreachable > 0 {
			t.Fatalf("run 1 on %s: %+v, want changes and no failure", h.Name, s)
		}
	}
	f.assertFleet(t, ctx, client1, "CA 1")
	proxy := f.hosts[2]
	if got := mustRead(t, proxy, "/etc/tlsdock/policy.json"); string(got) != ansiblePolicy {
		t.Errorf("policy on the proxy host %s:\n%s\nwant:\n%s", proxy.Name, got, ansiblePolicy)
	}
	f.assertPolicy(t, ctx, client1)
	restarts := f.dockerRestarts(t, ctx)

	stats = f.playbook(t, ctx, pki1)
	t.Logf("run 2 after %v: %+v", time.Since(start).Round(time.Millisecond), stats)
	for _, h := range f.hosts {
		if s := stats[h.Name]; s.Changed != 0 || s.Failures+s.Unreachable > 0 || s.Ok == 0 {
			t.Errorf("run 2 on %s: %+v, want changed=0 and no failure", h.Name, s)
		}
	}
	// A check run (--check) agrees: nothing would change.
	stats = f.playbook(t, ctx, pki1, "--check")
	for _, h := range f.hosts {
		if s := stats[h.Name]; s.Changed != 0 || s.Failures+s.Unreachable > 0 {
			t.Errorf("run 2 with --check on %s: %+v, want changed=0 and no failure", h.Name, s)
		}
	}
	// A mode the role does not know fails every host before it touches it.
	stats = f.playbook(t, ctx, pki1, "-e", "tlsdock_mode=proxi")
	for _, h := range f.hosts {
		if s := stats[h.Name]; s.Changed != 0 || s.Failures != 1 {
			t.Errorf("run with tlsdock_mode=proxi on %s: %+v, want one failure and no change", h.Name, s)
		}
	}
	if after := f.dockerRestarts(t, ctx); after != restarts {
		t.Errorf("docker.service (MainPID, NRestarts) after run 1: %v, after the runs that change nothing: %v", restarts, after)
	}

	// The CA rotation of docs/ansible.md: new CA, new sets, one run.
	ca2 := pkgNewCA(t)
	pki2, client2 := f.writePKI(t, "pki-2", ca2)
	stats = f.playbook(t, ctx, pki2)
	t.Logf("CA rotation run after %v: %+v", time.Since(start).Round(time.Millisecond), stats)
	for _, h := range f.hosts {
		if s := stats[h.Name]; s.Changed == 0 || s.Failures+s.Unreachable > 0 {
			t.Fatalf("CA rotation run on %s: %+v, want changes and no failure", h.Name, s)
		}
	}
	f.assertFleet(t, ctx, client2, "CA 2")
	for i, h := range f.hosts {
		from := f.hosts[(i+1)%len(f.hosts)]
		if out, err := f.docker(ctx, from, client1, h, "version", "--format", "{{.Server.Version}}"); err == nil {
			t.Errorf("docker CLI with CA 1's client from %s reached %s after the CA rotation: %q", from.Name, h.Name, out)
		}
	}
	t.Logf("ansible role checked in %v", time.Since(start).Round(time.Millisecond))
}

// installPython installs python3 from debs in every host, in parallel: a
// Debian host that Ansible manages has it. python3 pre-depends on
// python3-minimal, which pre-depends on python3.11-minimal: dpkg -i
// configures a pre-dependency only after all archives of one call are
// unpacked, so those two go in calls of their own, after the rest.
func (f *ansibleFleet) installPython(t *testing.T, ctx context.Context, debs []string) {
	t.Helper()
	var steps [3][]string
	for _, d := range debs {
		i := 0
		switch {
		case strings.HasPrefix(filepath.Base(d), "python3-minimal_"):
			i = 1
		case strings.HasPrefix(filepath.Base(d), "python3_"):
			i = 2
		}
		steps[i] = append(steps[i], "/var/cache/e2e-python3/"+filepath.Base(d))
	}
	errs := make([]error, len(f.hosts))
	var wg sync.WaitGroup
	for i, h := range f.hosts {
		wg.Go(func() {
			for _, d := range debs {
				if errs[i] = h.CopyIn(d, "/var/cache/e2e-python3/"+filepath.Base(d), 0o644); errs[i] != nil {
					return
				}
			}
			for _, step := range steps {
				if len(step) > 0 {
					if _, _, errs[i] = h.Exec(ctx, nil, append([]string{"dpkg", "-i"}, step...)...); errs[i] != nil {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("installing python3: %v", err)
		}
	}
}

// writeInventory writes the inventory: each host by its name, reached
// through the connection plugin with its init's PID, in its mode; the
// proxy host gets the policy.
func (f *ansibleFleet) writeInventory(t *testing.T) {
	t.Helper()
	var b strings.Builder
	b.WriteString("[docker_hosts]\n")
	for i, h := range f.hosts {
		fmt.Fprintf(&b, "%s ansible_connection=tlsdock_nsenter ansible_nsenter_pid=%d ansible_python_interpreter=/usr/bin/python3 tlsdock_mode=%s",
			h.Name, h.PID, f.modes[i])
		if f.modes[i] == "proxy" {
			fmt.Fprintf(&b, " tlsdock_policy=%s", filepath.Join(f.dir, "policy.json"))
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(f.dir, "inventory.ini"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writePKI writes the controller's PKI directory for ca (ca.pem, and
// NAME/server-cert.pem and server-key.pem naming each host's address) and
// returns it with a client bundle from ca (ca.pem, cert.pem, key.pem),
// written into every host under /root/NAME-client.
func (f *ansibleFleet) writePKI(t *testing.T, name string, ca *certstore.CA) (dir, client string) {
	t.Helper()
	dir = filepath.Join(f.dir, name)
	files := map[string][]byte{"ca.pem": ca.CertPEM}
	now := time.Now()
	for _, h := range f.hosts {
		cert, key, err := ca.Issue(certstore.IssueRequest{
			CommonName: h.Name, DNSNames: []string{h.Name, "localhost"},
			IPs:     []net.IP{net.ParseIP(h.Addr), net.IPv4(127, 0, 0, 1)},
			KeyType: certstore.ECDSAP256, Now: now, Validity: 24 * time.Hour, Server: true,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name+"/server-cert.pem"], files[h.Name+"/server-key.pem"] = cert, key
	}
	cliCert, cliKey, err := ca.Issue(certstore.IssueRequest{
		CommonName: "e2e-ansible", KeyType: certstore.ECDSAP256, Now: now, Validity: 24 * time.Hour,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	client = "/root/" + name + "-client"
	for _, h := range f.hosts {
		for n, data := range map[string][]byte{"ca.pem": ca.CertPEM, "cert.pem": cliCert, "key.pem": cliKey} {
			if err := h.WriteFile(client+"/"+n, data, 0o400); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir, client
}

// ansibleEnv is ansible-playbook's environment: the test's connection
// plugin, the json callback (its "stats" are the recap), and nothing
// from this machine's ansible configuration.
func (f *ansibleFleet) ansibleEnv() []string {
	return append(os.Environ(),
		"ANSIBLE_CONFIG="+filepath.Join(f.dir, "ansible.cfg"), // does not exist: the defaults
		"ANSIBLE_CONNECTION_PLUGINS="+filepath.Join(f.repo, "test", "e2e", "ansible", "connection_plugins"),
		"ANSIBLE_STDOUT_CALLBACK=ansible.posix.json",
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(f.dir, "ansible-tmp"),
		"ANSIBLE_HOME="+filepath.Join(f.dir, "ansible-home"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORKS=3",
	)
}

func (f *ansibleFleet) playbookArgs(pki string) []string {
	return []string{"-i", filepath.Join(f.dir, "inventory.ini"), filepath.Join(f.repo, "deploy", "ansible", "site.yml"),
		"-e", "tlsdock_deb=" + f.deb, "-e", "tlsdock_pki_dir=" + pki}
}

// syntaxCheck runs ansible-playbook --syntax-check on the example playbook.
func (f *ansibleFleet) syntaxCheck(t *testing.T, ctx context.Context) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "ansible-playbook", append(f.playbookArgs(f.dir), "--syntax-check")...)
	cmd.Env = f.ansibleEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ansible-playbook --syntax-check: %v\n%s", err, out)
	}
}

// playbook runs site.yml with the PKI directory pki and returns each
// host's recap.
func (f *ansibleFleet) playbook(t *testing.T, ctx context.Context, pki string, extra ...string) map[string]ansibleStats {
	t.Helper()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "ansible-playbook", append(f.playbookArgs(pki), extra...)...)
	cmd.Env = f.ansibleEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res struct {
		Stats map[string]ansibleStats `json:"stats"`
		Plays []struct {
			Tasks []struct {
				Task  struct{ Name string } `json:"task"`
				Hosts map[string]struct {
					Changed bool   `json:"changed"`
					Failed  bool   `json:"failed"`
					Msg     any    `json:"msg"`
					Stdout  string `json:"stdout"`
					Stderr  string `json:"stderr"`
				} `json:"hosts"`
			} `json:"tasks"`
		} `json:"plays"`
	}
	// A failed host makes ansible-playbook exit 2; callers check the stats.
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		err = nil
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil || err != nil || len(res.Stats) == 0 {
		t.Fatalf("ansible-playbook: %v (output: %v)\nstdout:\n%s\nstderr:\n%s", err, jerr, ansibleTail(stdout.String()), stderr.String())
	}
	// What changed, for the log (and for a failing assertion's reader).
	for _, p := range res.Plays {
		for _, task := range p.Tasks {
			for host, r := range task.Hosts {
				if r.Changed || r.Failed {
					t.Logf("  %s: %s: changed=%v failed=%v %v %s", host, task.Task.Name, r.Changed, r.Failed, r.Msg, strings.TrimSpace(r.Stdout+" "+r.Stderr))
				}
			}
		}
	}
	t.Logf("ansible-playbook took %v", time.Since(start).Round(time.Millisecond))
	return res.Stats
}

// ansibleTail is the end of ansible-playbook's output.
func ansibleTail(s string) string {
	if len(s) > 20000 {
		return "..." + s[len(s)-20000:]
	}
	return s
}

// docker runs the docker CLI in from against to's address on the test
// network over mutual TLS with the client bundle client.
func (f *ansibleFleet) docker(ctx context.Context, from *testhost.Host, client string, to *testhost.Host, args ...string) (string, error) {
	out, errb, err := from.Exec(ctx, nil, append([]string{"docker", "--tlsverify",
		"--tlscacert", client + "/ca.pem", "--tlscert", client + "/cert.pem", "--tlskey", client + "/key.pem",
		"-H", "tcp://" + net.JoinHostPort(to.Addr, "2376")}, args...)...)
	return strings.TrimSpace(string(out) + string(errb)), err
}

// assertFleet checks that the docker CLI on the next host, with client,
// reaches every host's own dockerd over mutual TLS.
func (f *ansibleFleet) assertFleet(t *testing.T, ctx context.Context, client, what string) {
	t.Helper()
	for i, h := range f.hosts {
		from := f.hosts[(i+1)%len(f.hosts)]
		name := strings.TrimSpace(run(t, ctx, h, "hostname"))
		if out, err := f.docker(ctx, from, client, h, "info", "--format", "{{.Name}}"); err != nil || out != name {
			t.Errorf("docker info from %s against %s (%s mode) with %s's client: %q %v, want %q", from.Name, h.Name, f.modes[i], what, out, err, name)
		}
	}
}

// assertPolicy checks that the proxy host enforces the distributed
// policy: swarm is refused with its message, the rest is allowed.
func (f *ansibleFleet) assertPolicy(t *testing.T, ctx context.Context, client string) {
	t.Helper()
	proxy, from := f.hosts[2], f.hosts[0]
	if out, err := f.docker(ctx, from, client, proxy, "swarm", "unlock-key"); err == nil || !strings.Contains(out, "swarm is off limits (e2e)") {
		t.Errorf("docker swarm unlock-key against the proxy host %s: %q %v, want the policy's refusal", proxy.Name, out, err)
	}
	if out, err := f.docker(ctx, from, client, proxy, "ps", "-q"); err != nil {
		t.Errorf("docker ps against the proxy host %s: %q %v", proxy.Name, out, err)
	}
}

// dockerRestarts is docker.service's MainPID and NRestarts on every host.
func (f *ansibleFleet) dockerRestarts(t *testing.T, ctx context.Context) string {
	t.Helper()
	var r []string
	for _, h := range f.hosts {
		out := run(t, ctx, h, "systemctl", "show", "-p", "MainPID", "-p", "NRestarts", "--value", "docker.service")
		r = append(r, h.Name+":"+strings.Join(strings.Fields(out), "/"))
	}
	return strings.Join(r, " ")
}
