package e2e

// Tests of the .deb and .rpm that `make package` builds (packaging/): lint
// and inspection of both packages, and the .deb's maintainer scripts on a
// real test host (install, rotation, upgrade, remove, purge) and in a plain
// chroot without systemd.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// pkgBuild is the output of one `make package`.
type pkgBuild struct {
	Version string // package version, as dpkg and rpm see it
	Deb     string
	RPM     string
	Stage   string // dist/stage: the packaged binary, man pages, completions
}

var pkgBuilds struct {
	sync.Mutex
	done map[string]*pkgBuild
	errs map[string]error
}

// pkgBuildRoot holds one directory per test process (PID); directories of
// processes that are gone are removed.
const pkgBuildRoot = "/var/tmp/tlsdock-e2e-packages"

// pkgRepoRoot is the repository root (the tests run in test/e2e).
func pkgRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "packaging", "nfpm.yaml")); err != nil {
		t.Fatalf("repository root %s has no packaging/nfpm.yaml: %v", root, err)
	}
	return root
}

// pkgPackages runs `make package` once per test process for each VERSION
// ("" is the Makefile's default, from git describe) and returns the result.
func pkgPackages(t *testing.T, version string) *pkgBuild {
	t.Helper()
	pkgBuilds.Lock()
	defer pkgBuilds.Unlock()
	if b := pkgBuilds.done[version]; b != nil {
		return b
	}
	if err := pkgBuilds.errs[version]; err != nil {
		t.Fatal(err)
	}
	if pkgBuilds.done == nil {
		pkgBuilds.done, pkgBuilds.errs = map[string]*pkgBuild{}, map[string]error{}
		pkgCleanStaleBuilds()
	}
	start := time.Now()
	b, err := pkgMake(pkgRepoRoot(t), version, len(pkgBuilds.done))
	if err != nil {
		pkgBuilds.errs[version] = err
		t.Fatal(err)
	}
	t.Logf("make package VERSION=%q: %s in %v", version, b.Version, time.Since(start).Round(time.Millisecond))
	pkgBuilds.done[version] = b
	return b
}

func pkgCleanStaleBuilds() {
	entries, _ := os.ReadDir(pkgBuildRoot)
	for _, e := range entries {
		pid, err := strconv.Atoi(strings.SplitN(e.Name(), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(pkgBuildRoot, e.Name()))
		}
	}
}

func pkgMake(repo, version string, n int) (*pkgBuild, error) {
	dist := filepath.Join(pkgBuildRoot, fmt.Sprintf("%d-%d", os.Getpid(), n))
	if err := os.RemoveAll(dist); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return nil, err
	}
	args := []string{"-s", "package", "DIST=" + dist}
	if version != "" {
		args = append(args, "VERSION="+version)
	}
	cmd := exec.Command("make", args...)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "tlsdock_*_amd64.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "tlsdock-*-1.x86_64.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		return nil, fmt.Errorf("make package in %s: want one .deb and one .rpm, got %v %v", dist, debs, rpms)
	}
	out, err := exec.Command("dpkg-deb", "-f", debs[0], "Version").Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-deb -f %s Version: %v", debs[0], err)
	}
	return &pkgBuild{Version: strings.TrimSpace(string(out)), Deb: debs[0], RPM: rpms[0], Stage: filepath.Join(dist, "stage")}, nil
}

// pkgCmd runs a command on this machine and returns its combined output.
func pkgCmd(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func pkgNeedTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run test/e2e/setup-host.sh (make e2e-setup) as root", tool)
		}
	}
}

// TestPackageDefaultConfig checks the shipped /etc/tlsdock/tlsdock.conf:
// nothing is active (so the postinstall does nothing until the operator
// configures it), and every documented key is one the parser accepts.
func TestPackageDefaultConfig(t *testing.T) {
	data, err := os.ReadFile("../../packaging/tlsdock.conf")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := agent.ParseConfigFile("tlsdock.conf", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Errorf("the default config sets %v; it must set nothing", fs)
	}
	keyLine := regexp.MustCompile(`(?m)^#([a-z-]+ = .*)$`)
	var lines []string
	for _, m := range keyLine.FindAllStringSubmatch(string(data), -1) {
		lines = append(lines, m[1])
	}
	if len(lines) < 15 {
		t.Fatalf("found only %d commented key lines: %q", len(lines), lines)
	}
	if _, err := agent.ParseConfigFile("uncommented tlsdock.conf", []byte(strings.Join(lines, "\n"))); err != nil {
		t.Errorf("a documented key is not accepted: %v", err)
	}
}

// TestPackageLint builds both packages and inspects them the way CI does:
// shellcheck on the maintainer scripts, lintian on the .deb, rpm queries on
// the .rpm, and the contents of both.
func TestPackageLint(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	pkgNeedTools(t, "lintian", "rpm", "shellcheck", "dpkg-deb")
	b := pkgPackages(t, "")
	repo := pkgRepoRoot(t)
	scripts := map[string]string{} // name -> content
	for _, n := range []string{"postinstall", "preremove", "postremove"} {
		data, err := os.ReadFile(filepath.Join(repo, "packaging", "scripts", n+".sh"))
		if err != nil {
			t.Fatal(err)
		}
		scripts[n] = string(data)
	}

	t.Run("shellcheck", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(repo, "packaging", "scripts", "*.sh"))
		files = append(files, filepath.Join(repo, "packaging", "version.sh"), filepath.Join(repo, "packaging", "changelog.sh"))
		if out, err := pkgCmd(t, "shellcheck", append([]string{"-s", "sh"}, files...)...); err != nil {
			t.Errorf("shellcheck -s sh: %v\n%s", err, out)
		}
	})

	t.Run("lintian", func(t *testing.T) {
		out, err := pkgCmd(t, "lintian", "--fail-on", "error,warning", "--info", b.Deb)
		t.Logf("lintian:\n%s", out)
		if err != nil {
			t.Errorf("lintian --fail-on error,warning: %v", err)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
				t.Errorf("lintian: %s", line)
			}
		}
		// Every override carries a reason: a comment right above it.
		ov, err := os.ReadFile(filepath.Join(repo, "packaging", "lintian-overrides"))
		if err != nil {
			t.Fatal(err)
		}
		prev := ""
		for _, line := range strings.Split(string(ov), "\n") {
			if strings.HasPrefix(line, "tlsdock:") && !strings.HasPrefix(prev, "#") && !strings.HasPrefix(prev, "tlsdock:") {
				t.Errorf("lintian override without a reason: %s", line)
			}
			prev = line
		}
	})

	t.Run("deb", func(t *testing.T) {
		list, err := pkgCmd(t, "dpkg-deb", "-c", b.Deb)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{
			"./usr/bin/tlsdock", "./lib/systemd/system/tlsdock.service", "./etc/tlsdock/tlsdock.conf",
			"./usr/share/bash-completion/completions/tlsdock", "./usr/share/zsh/vendor-completions/_tlsdock",
			"./usr/share/fish/vendor_completions.d/tlsdock.fish", "./usr/share/man/man1/tlsdock.1.gz",
			"./usr/share/man/man1/tlsdock-provision.1.gz", "./usr/share/man/man1/tlsdock-run.1.gz",
			"./usr/share/doc/tlsdock/copyright", "./usr/share/doc/tlsdock/changelog.gz",
			"./usr/share/lintian/overrides/tlsdock",
		} {
			if !regexp.MustCompile(`(?m) ` + regexp.QuoteMeta(f) + `$`).MatchString(list) {
				t.Errorf(".deb lacks %s:\n%s", f, list)
			}
		}
		if strings.Contains(list, "/usr/share/man/man1/") && regexp.MustCompile(`(?m)man1/\S+\.1$`).MatchString(list) {
			t.Errorf("uncompressed man pages in the .deb:\n%s", list)
		}
		conffiles, err := pkgCmd(t, "dpkg-deb", "-I", b.Deb, "conffiles")
		if err != nil || strings.TrimSpace(conffiles) != "/etc/tlsdock/tlsdock.conf" {
			t.Errorf("conffiles = %q (%v), want /etc/tlsdock/tlsdock.conf", conffiles, err)
		}
		control, _ := pkgCmd(t, "dpkg-deb", "-f", b.Deb)
		if strings.Contains(control, "\nDepends:") || strings.Contains(control, "Pre-Depends:") {
			t.Errorf("the .deb must depend on nothing:\n%s", control)
		}
		if !strings.Contains(control, "Recommends: docker.io | docker-ce") {
			t.Errorf("the .deb does not recommend docker:\n%s", control)
		}
		if strings.ContainsAny(b.Version, "-_ ") || !regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`).MatchString(b.Version) {
			t.Errorf("version %q is not a clean deb/rpm version", b.Version)
		}
		tmp := t.TempDir()
		for _, s := range []struct{ deb, ours string }{{"postinst", "postinstall"}, {"prerm", "preremove"}, {"postrm", "postremove"}} {
			out, err := exec.Command("dpkg-deb", "--ctrl-tarfile", b.Deb).Output()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("tar", "-x", "-C", tmp, "./"+s.deb)
			cmd.Stdin = strings.NewReader(string(out))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("extracting %s: %v %s", s.deb, err, out)
			}
			got, _ := os.ReadFile(filepath.Join(tmp, s.deb))
			if string(got) != scripts[s.ours] {
				t.Errorf("the .deb's %s is not packaging/scripts/%s.sh", s.deb, s.ours)
			}
		}
	})

	t.Run("rpm", func(t *testing.T) {
		files, err := pkgCmd(t, "rpm", "-qpl", b.RPM)
		if err != nil {
			t.Fatal(err, files)
		}
		fileList := strings.Split(strings.TrimSpace(files), "\n")
		for _, f := range []string{
			"/usr/bin/tlsdock", "/usr/lib/systemd/system/tlsdock.service", "/etc/tlsdock/tlsdock.conf",
			"/usr/share/bash-completion/completions/tlsdock", "/usr/share/zsh/site-functions/_tlsdock",
			"/usr/share/fish/vendor_completions.d/tlsdock.fish", "/usr/share/man/man1/tlsdock.1.gz",
			"/usr/share/doc/tlsdock/copyright",
		} {
			if !slices.Contains(fileList, f) {
				t.Errorf("rpm -qpl lacks %s:\n%s", f, files)
			}
		}
		if cf, _ := pkgCmd(t, "rpm", "-qpc", b.RPM); strings.TrimSpace(cf) != "/etc/tlsdock/tlsdock.conf" {
			t.Errorf("rpm -qpc = %q, want /etc/tlsdock/tlsdock.conf", cf)
		}
		if v, _ := pkgCmd(t, "rpm", "-qp", "--queryformat", "%{VERSION}-%{RELEASE}", b.RPM); v != b.Version+"-1" {
			t.Errorf("rpm version %q, want %s-1 (as the .deb)", v, b.Version)
		}
		req, err := pkgCmd(t, "rpm", "-qpR", b.RPM)
		if err != nil {
			t.Fatal(err, req)
		}
		t.Logf("rpm -qpR:\n%s", req)
		for _, r := range strings.Split(strings.TrimSpace(req), "\n") {
			if r != "/bin/sh" && !strings.HasPrefix(r, "rpmlib(") {
				t.Errorf("unexpected rpm requirement %q (the package must install without docker)", r)
			}
		}
		out, err := pkgCmd(t, "rpm", "-qp", "--scripts", b.RPM)
		if err != nil {
			t.Fatal(err, out)
		}
		got := pkgRPMScriptlets(out)
		for rpmName, ours := range map[string]string{"postinstall": "postinstall", "preuninstall": "preremove", "postuninstall": "postremove"} {
			if strings.TrimRight(got[rpmName], "\n") != strings.TrimRight(scripts[ours], "\n") {
				t.Errorf("the rpm's %s scriptlet is not packaging/scripts/%s.sh:\n%s", rpmName, ours, got[rpmName])
			}
		}
		for name := range got {
			if _, ok := map[string]bool{"postinstall": true, "preuninstall": true, "postuninstall": true}[name]; !ok {
				t.Errorf("unexpected rpm scriptlet %s", name)
			}
		}
	})

	t.Run("binary", func(t *testing.T) {
		bin := filepath.Join(b.Stage, "tlsdock")
		out, err := pkgCmd(t, bin, "--version")
		if err != nil || strings.TrimSpace(out) != "tlsdock "+b.Version {
			t.Errorf("tlsdock --version = %q (%v), want %q", out, err, "tlsdock "+b.Version)
		}
		if out, _ := pkgCmd(t, "file", bin); !strings.Contains(out, "statically linked") {
			t.Logf("file %s: %s (want a static binary)", bin, out)
		}
		// The default config documents every flag that the file can set.
		conf, _ := os.ReadFile(filepath.Join(repo, "packaging", "tlsdock.conf"))
		notInFile := map[string]bool{"config": true, "dry-run": true, "json": true, "verbose": true, "help": true, "root": true}
		flagRE := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z-]+)`)
		for _, cmd := range []string{"provision", "run"} {
			help, err := pkgCmd(t, bin, cmd, "--help")
			if err != nil {
				t.Fatalf("tlsdock %s --help: %v\n%s", cmd, err, help)
			}
			for _, m := range flagRE.FindAllStringSubmatch(help, -1) {
				if !notInFile[m[1]] && !regexp.MustCompile(`(?m)^#`+regexp.QuoteMeta(m[1])+` = `).Match(conf) {
					t.Errorf("packaging/tlsdock.conf does not document %q (a flag of tlsdock %s)", m[1], cmd)
				}
			}
		}
		// The copyright file names every Go module linked into the binary.
		mods, err := pkgCmd(t, "go", "version", "-m", bin)
		if err != nil {
			t.Fatal(err, mods)
		}
		copyright, _ := os.ReadFile(filepath.Join(repo, "packaging", "copyright"))
		for _, line := range strings.Split(mods, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "dep" && !strings.Contains(string(copyright), f[1]+"/*") {
				t.Errorf("packaging/copyright has no Files stanza for %s, which is linked into tlsdock", f[1])
			}
		}
	})
}

// pkgRPMScriptlets splits `rpm -qp --scripts` output by scriptlet.
func pkgRPMScriptlets(out string) map[string]string {
	head := regexp.MustCompile(`^(\w+) scriptlet \(using [^)]*\):$`)
	got := map[string]string{}
	cur := ""
	for _, line := range strings.SplitAfter(out, "\n") {
		if m := head.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
			cur = m[1]
			got[cur] = ""
			continue
		}
		if cur != "" {
			got[cur] += line
		}
	}
	return got
}

// pkgSet is a certificate set for /etc/tlsdock/certs plus a client
// certificate from the same CA.
type pkgSet struct {
	CA, Cert, Key []byte // ca.pem, server-cert.pem, server-key.pem
	Serial        *big.Int
	Pool          *x509.CertPool
	Client        tls.Certificate
}

func pkgNewCA(t *testing.T) *certstore.CA {
	t.Helper()
	ca, err := certstore.NewCA(certstore.ECDSAP256, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// pkgIssueSet issues a server certificate for 127.0.0.1 and localhost and a
// client certificate from ca.
func pkgIssueSet(t *testing.T, ca *certstore.CA) *pkgSet {
	t.Helper()
	now := time.Now()
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{
		CommonName: "tlsdock-e2e", DNSNames: []string{"localhost"},
		IPs:     []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyType: certstore.ECDSAP256, Now: now, Validity: 90 * 24 * time.Hour, Server: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := ca.Issue(certstore.IssueRequest{
		CommonName: "e2e-client", KeyType: certstore.ECDSAP256, Now: now, Validity: 24 * time.Hour,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &pkgSet{CA: ca.CertPEM, Cert: certPEM, Key: keyPEM, Serial: c.SerialNumber, Pool: pool, Client: client}
}

// pkgWriteSet writes s into dir inside h, key last (as an issuer would).
func pkgWriteSet(t *testing.T, h *testhost.Host, dir string, s *pkgSet) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"ca.pem", s.CA, 0o644}, {"server-cert.pem", s.Cert, 0o644}, {"server-key.pem", s.Key, 0o600}} {
		if err := h.WriteFile(dir+"/"+f.name, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
}

// pkgDial connects to addr from this process, inside h's network
// namespace: the socket is created on a locked OS thread that joined the
// namespace, and that thread ends with its goroutine, so the namespace
// never leaks to other goroutines.
func pkgDial(h *testhost.Host, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", h.PID))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns into the network namespace of %s: %w", h.Name, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// pkgPing does GET /_ping over mutual TLS at 127.0.0.1:2376 inside h, as a
// client of s's CA (without a client certificate when client is nil). It
// returns the serial of the certificate the server presented.
func pkgPing(h *testhost.Host, pool *x509.CertPool, client *tls.Certificate) (*big.Int, error) {
	return pingAt(h, "127.0.0.1:2376", pool, client)
}

// pkgAssertServes checks that 127.0.0.1:2376 inside h serves s's server
// certificate with mutual TLS: a client of s's CA gets /_ping = OK, a
// client without a certificate does not.
func pkgAssertServes(t *testing.T, h *testhost.Host, s *pkgSet) {
	t.Helper()
	serial, err := pkgPing(h, s.Pool, &s.Client)
	if err != nil {
		t.Fatalf("mutual TLS at 127.0.0.1:2376: %v", err)
	}
	if serial.Cmp(s.Serial) != 0 {
		t.Fatalf("127.0.0.1:2376 serves serial %x, want %x", serial, s.Serial)
	}
	if _, err := pkgPing(h, s.Pool, nil); err == nil {
		t.Fatal("127.0.0.1:2376 answered /_ping to a client without a certificate")
	}
}

var pkgExitRE = regexp.MustCompile(`exit code (\d+)`)

// pkgExec runs args inside h and returns stdout+stderr and the exit code.
func pkgExec(ctx context.Context, h *testhost.Host, args ...string) (string, int) {
	out, errb, err := h.Exec(ctx, nil, args...)
	code := 0
	if err != nil {
		code = -1
		if m := pkgExitRE.FindStringSubmatch(err.Error()); m != nil {
			code, _ = strconv.Atoi(m[1])
		}
	}
	return string(out) + string(errb), code
}

// pkgMustExec runs args inside h and fails t unless it exits 0.
func pkgMustExec(t *testing.T, ctx context.Context, h *testhost.Host, args ...string) string {
	t.Helper()
	out, code := pkgExec(ctx, h, args...)
	if code != 0 {
		t.Fatalf("%s: exit %d\n%s\ntlsdock.service journal:\n%s\ndocker.service journal:\n%s",
			strings.Join(args, " "), code, out, h.Journal(ctx, "tlsdock.service", 30), h.Journal(ctx, "docker.service", 15))
	}
	return out
}

func pkgShow(t *testing.T, ctx context.Context, h *testhost.Host, unit, prop string) string {
	t.Helper()
	return strings.TrimSpace(run(t, ctx, h, "systemctl", "show", "-p", prop, "--value", unit))
}

// pkgUnitState is `systemctl is-active` and `is-enabled` of unit.
func pkgUnitState(ctx context.Context, h *testhost.Host, unit string) (active, enabled string) {
	a, _ := pkgExec(ctx, h, "systemctl", "is-active", unit)
	e, _ := pkgExec(ctx, h, "systemctl", "is-enabled", unit)
	return strings.TrimSpace(a), strings.TrimSpace(e)
}

func pkgExists(h *testhost.Host, guestPath string) bool {
	_, err := os.Lstat(fmt.Sprintf("/proc/%d/root%s", h.PID, guestPath))
	return err == nil
}

// pkgAssertCleanJournal fails t when the daemon's journal shows that the
// sandbox of tlsdock.service got in its way.
func pkgAssertCleanJournal(t *testing.T, ctx context.Context, h *testhost.Host) {
	t.Helper()
	j := run(t, ctx, h, "journalctl", "-u", "tlsdock.service", "--no-pager", "-o", "cat")
	for _, bad := range []string{"read-only file system", "permission denied", "operation not permitted", "226/NAMESPACE", "level=ERROR"} {
		if strings.Contains(strings.ToLower(j), strings.ToLower(bad)) {
			t.Errorf("tlsdock.service's journal has %q:\n%s", bad, j)
			return
		}
	}
}

// TestPackageLifecycle installs the .deb on a real test host with a
// certificate set preseeded in /etc/tlsdock/certs, rotates to a new set,
// upgrades to a newer build, removes and purges the package.
func TestPackageLifecycle(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	v1 := pkgPackages(t, "")
	v2 := pkgPackages(t, v1.Version+"+e2e.upgrade")
	h := testhost.Start(t)
	ctx := ctxFor(t, 10*time.Minute)
	ca := pkgNewCA(t)
	setA := pkgIssueSet(t, ca)
	pkgWriteSet(t, h, "/etc/tlsdock/certs", setA)
	if err := h.CopyIn(v1.Deb, "/root/tlsdock-v1.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.CopyIn(v2.Deb, "/root/tlsdock-v2.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	if !t.Run("install", func(t *testing.T) {
		dockerBefore := pkgShow(t, ctx, h, "docker.service", "MainPID")
		start := time.Now()
		out := pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock-v1.deb")
		t.Logf("dpkg -i (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
		if !strings.Contains(out, "provisioning with the certificate set in /etc/tlsdock/certs") {
			t.Errorf("postinstall did not provision from /etc/tlsdock/certs")
		}
		if active, enabled := pkgUnitState(ctx, h, "tlsdock.service"); active != "active" || enabled != "enabled" {
			t.Fatalf("tlsdock.service is %s and %s, want active and enabled; journal:\n%s", active, enabled, h.Journal(ctx, "tlsdock.service", 30))
		}
		if active, _ := pkgUnitState(ctx, h, "docker.service"); active != "active" {
			t.Fatalf("docker.service is %s", active)
		}
		pkgAssertServes(t, h, setA)
		if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got == dockerBefore {
			t.Errorf("docker.service was not restarted by the first provision (MainPID %s)", dockerBefore)
		}
		if got := strings.TrimSpace(run(t, ctx, h, "tlsdock", "--version")); got != "tlsdock "+v1.Version {
			t.Errorf("tlsdock --version = %q, want %q", got, "tlsdock "+v1.Version)
		}
		if out, code := pkgExec(ctx, h, "systemd-analyze", "verify", "--man=no", "/lib/systemd/system/tlsdock.service"); code != 0 || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify tlsdock.service: exit %d\n%s", code, out)
		}
		// The hardening is in effect for the running daemon.
		for prop, want := range map[string]string{
			"Type": "notify", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
			"PrivateTmp": "yes", "Restart": "on-failure",
		} {
			if got := pkgShow(t, ctx, h, "tlsdock.service", prop); got != want {
				t.Errorf("tlsdock.service %s=%s, want %s", prop, got, want)
			}
		}
		pid := pkgShow(t, ctx, h, "tlsdock.service", "MainPID")
		mounts := run(t, ctx, h, "cat", "/proc/"+pid+"/mountinfo")
		if !regexp.MustCompile(`(?m)^\S+ \S+ \S+ \S+ / (\S+,)?ro(,\S+)? `).MatchString(mounts) {
			t.Errorf("the daemon's / or /usr is not read-only (ProtectSystem=strict):\n%s", mounts)
		}
	}) {
		return
	}

	setB := pkgIssueSet(t, ca)
	t.Run("rotation", func(t *testing.T) {
		start := time.Now()
		pkgWriteSet(t, h, "/etc/tlsdock/certs", setB)
		deadline := start.Add(45 * time.Second)
		for {
			serial, err := pkgPing(h, setB.Pool, &setB.Client)
			if err == nil && serial.Cmp(setB.Serial) == 0 {
				t.Logf("the new set was served %v after it was written", time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 45s 127.0.0.1:2376 still does not serve the new set (serial %x, last error %v); tlsdock.service journal:\n%s",
					setB.Serial, err, h.Journal(ctx, "tlsdock.service", 40))
			}
			time.Sleep(500 * time.Millisecond)
		}
		pkgAssertServes(t, h, setB)
		if active, _ := pkgUnitState(ctx, h, "tlsdock.service"); active != "active" {
			t.Errorf("tlsdock.service is %s after the rotation", active)
		}
	})
	// ReadWritePaths= fails the start when a path is missing; the unit must
	// create what may be missing (docker.service.d before the first
	// drop-in) itself.
	t.Run("unit creates missing directories", func(t *testing.T) {
		const d = "/etc/systemd/system/docker.service.d"
		run(t, ctx, h, "systemctl", "stop", "tlsdock.service")
		run(t, ctx, h, "mv", d, "/root/docker.service.d.saved")
		defer func() {
			run(t, ctx, h, "systemctl", "stop", "tlsdock.service")
			run(t, ctx, h, "rm", "-rf", d)
			run(t, ctx, h, "mv", "/root/docker.service.d.saved", d)
			run(t, ctx, h, "systemctl", "start", "tlsdock.service")
		}()
		if out, code := pkgExec(ctx, h, "systemctl", "start", "tlsdock.service"); code != 0 {
			t.Fatalf("tlsdock.service does not start without %s: %s\n%s", d, out, h.Journal(ctx, "tlsdock.service", 10))
		}
		if !pkgExists(h, d) {
			t.Errorf("starting tlsdock.service did not create %s", d)
		}
	})
	pkgAssertCleanJournal(t, ctx, h)

	// The rest runs whether or not the rotation worked, with the set that
	// is served now.
	served := setB
	if serial, err := pkgPing(h, setA.Pool, &setA.Client); err == nil && serial.Cmp(setA.Serial) == 0 {
		served = setA
	}

	if !t.Run("upgrade", func(t *testing.T) {
		tlsdockPID := pkgShow(t, ctx, h, "tlsdock.service", "MainPID")
		dockerPID := pkgShow(t, ctx, h, "docker.service", "MainPID")
		start := time.Now()
		out := pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock-v2.deb")
		t.Logf("dpkg -i (upgrade, %v):\n%s", time.Since(start).Round(time.Millisecond), out)
		if !strings.Contains(out, "No changes") {
			t.Errorf("provision on upgrade changed something (want \"No changes\")")
		}
		if err := h.WaitActive(ctx, "tlsdock.service"); err != nil {
			t.Fatal(err)
		}
		if got := pkgShow(t, ctx, h, "tlsdock.service", "MainPID"); got == tlsdockPID || got == "0" {
			t.Errorf("tlsdock.service MainPID %s -> %s: the upgrade did not restart the daemon", tlsdockPID, got)
		}
		if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got != dockerPID {
			t.Errorf("docker.service MainPID %s -> %s: the upgrade restarted docker", dockerPID, got)
		}
		if got := strings.TrimSpace(run(t, ctx, h, "tlsdock", "--version")); got != "tlsdock "+v2.Version {
			t.Errorf("tlsdock --version = %q, want %q", got, "tlsdock "+v2.Version)
		}
		pkgAssertServes(t, h, served)
	}) {
		return
	}

	if !t.Run("remove", func(t *testing.T) {
		dockerPID := pkgShow(t, ctx, h, "docker.service", "MainPID")
		out := pkgMustExec(t, ctx, h, "dpkg", "-r", "tlsdock")
		t.Logf("dpkg -r:\n%s", out)
		if !strings.Contains(out, "tlsdock revert") {
			t.Errorf("dpkg -r does not mention tlsdock revert")
		}
		if active, enabled := pkgUnitState(ctx, h, "tlsdock.service"); active == "active" || enabled == "enabled" {
			t.Errorf("after dpkg -r tlsdock.service is %s and %s", active, enabled)
		}
		if pkgExists(h, "/usr/bin/tlsdock") || pkgExists(h, "/etc/systemd/system/multi-user.target.wants/tlsdock.service") {
			t.Error("dpkg -r left /usr/bin/tlsdock or the enable symlink")
		}
		if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got != dockerPID {
			t.Errorf("dpkg -r restarted docker (MainPID %s -> %s)", dockerPID, got)
		}
		pkgAssertServes(t, h, served)
		for _, p := range []string{"/etc/tlsdock/certs/server-key.pem", "/var/lib/tlsdock/state.json", "/etc/tlsdock/tlsdock.conf"} {
			if !pkgExists(h, p) {
				t.Errorf("dpkg -r removed %s (only purge may)", p)
			}
		}
	}) {
		return
	}

	t.Run("purge", func(t *testing.T) {
		dockerPID := pkgShow(t, ctx, h, "docker.service", "MainPID")
		out := pkgMustExec(t, ctx, h, "dpkg", "-P", "tlsdock")
		t.Logf("dpkg -P:\n%s", out)
		for _, p := range []string{"/etc/tlsdock", "/var/lib/tlsdock"} {
			if pkgExists(h, p) {
				t.Errorf("dpkg -P left %s", p)
			}
		}
		if st, _ := pkgExec(ctx, h, "dpkg-query", "-W", "-f", "${Status}", "tlsdock"); strings.Contains(st, "installed") && !strings.Contains(st, "not-installed") {
			t.Errorf("dpkg-query after purge: %q", st)
		}
		if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got != dockerPID {
			t.Errorf("dpkg -P restarted docker (MainPID %s -> %s)", dockerPID, got)
		}
		pkgAssertServes(t, h, served)
	})
}

// TestPackageUnconfiguredThenGenerate installs the .deb on a host with no
// configuration (nothing may change), then sets generate = true and runs
// the postinstall again with dpkg-reconfigure.
func TestPackageUnconfiguredThenGenerate(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	b := pkgPackages(t, "")
	h := testhost.Start(t)
	ctx := ctxFor(t, 5*time.Minute)
	if err := h.CopyIn(b.Deb, "/root/tlsdock.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	dockerPID := pkgShow(t, ctx, h, "docker.service", "MainPID")
	daemonJSON, _ := h.ReadFile("/etc/docker/daemon.json")
	out := pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock.deb")
	t.Logf("dpkg -i:\n%s", out)
	if !strings.Contains(out, "not configured yet") {
		t.Errorf("dpkg -i on an unconfigured host does not say so")
	}
	if active, enabled := pkgUnitState(ctx, h, "tlsdock.service"); active == "active" || enabled != "enabled" {
		t.Errorf("tlsdock.service is %s and %s, want inactive and enabled", active, enabled)
	}
	if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got != dockerPID {
		t.Errorf("installing an unconfigured package restarted docker (MainPID %s -> %s)", dockerPID, got)
	}
	if after, _ := h.ReadFile("/etc/docker/daemon.json"); string(after) != string(daemonJSON) || pkgExists(h, "/etc/docker/ssl") {
		t.Errorf("installing an unconfigured package changed docker's configuration")
	}

	conf, err := h.ReadFile("/etc/tlsdock/tlsdock.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf = append(conf, "generate = true\nclient-out = /root/docker-client\n"...)
	if err := h.WriteFile("/etc/tlsdock/tlsdock.conf", conf, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out = pkgMustExec(t, ctx, h, "dpkg-reconfigure", "-fnoninteractive", "tlsdock")
	t.Logf("dpkg-reconfigure (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err := h.WaitActive(ctx, "tlsdock.service"); err != nil {
		t.Fatal(err)
	}
	caPEM, err := h.ReadFile("/etc/tlsdock/ca/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	certPEM, _ := h.ReadFile("/root/docker-client/cert.pem")
	keyPEM, _ := h.ReadFile("/root/docker-client/key.pem")
	client, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("client bundle in /root/docker-client: %v", err)
	}
	if _, err := pkgPing(h, pool, &client); err != nil {
		t.Fatalf("mutual TLS with the local CA's client bundle: %v", err)
	}
	// The daemon keeps running with the local CA (renewal mode).
	time.Sleep(2 * time.Second)
	if active, _ := pkgUnitState(ctx, h, "tlsdock.service"); active != "active" {
		t.Errorf("tlsdock.service is %s; journal:\n%s", active, h.Journal(ctx, "tlsdock.service", 30))
	}
	pkgAssertCleanJournal(t, ctx, h)
}

// TestPackageBadSet preseeds an invalid set (a key from another
// certificate): provision exits 2 and changes nothing, and dpkg -i still
// succeeds, with a message that says what to do; the daemon is not started.
func TestPackageBadSet(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	b := pkgPackages(t, "")
	h := testhost.Start(t)
	ctx := ctxFor(t, 5*time.Minute)
	ca := pkgNewCA(t)
	s1, s2 := pkgIssueSet(t, ca), pkgIssueSet(t, ca)
	s1.Key = s2.Key
	pkgWriteSet(t, h, "/etc/tlsdock/certs", s1)
	if err := h.CopyIn(b.Deb, "/root/tlsdock.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	dockerPID := pkgShow(t, ctx, h, "docker.service", "MainPID")
	out := pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock.deb")
	t.Logf("dpkg -i:\n%s", out)
	if !strings.Contains(out, "provision exited 2: bad input, nothing on the host changed") {
		t.Errorf("dpkg -i does not report provision's exit 2")
	}
	if st, _ := pkgExec(ctx, h, "dpkg-query", "-W", "-f", "${Status}", "tlsdock"); st != "install ok installed" {
		t.Errorf("package status %q, want install ok installed", st)
	}
	if active, enabled := pkgUnitState(ctx, h, "tlsdock.service"); active == "active" || enabled != "enabled" {
		t.Errorf("tlsdock.service is %s and %s, want inactive and enabled", active, enabled)
	}
	if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got != dockerPID {
		t.Errorf("docker.service was restarted (MainPID %s -> %s)", dockerPID, got)
	}
	if pkgExists(h, "/etc/docker/ssl") || pkgExists(h, "/etc/systemd/system/docker.service.d/zz-tlsdock.conf") {
		t.Error("a rejected set changed docker's configuration")
	}
}

// TestPackageBadConfig: the postinstall asks `tlsdock config`, on the
// installed host, whether the host is configured. Unconfigured it exits 6;
// a bad value in tlsdock.conf exits 2 naming the file and line, and
// dpkg-reconfigure then provisions nothing, says so and still succeeds.
func TestPackageBadConfig(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	b := pkgPackages(t, "")
	h := testhost.Start(t)
	ctx := ctxFor(t, 5*time.Minute)
	if err := h.CopyIn(b.Deb, "/root/tlsdock.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	out := pkgMustExec(t, ctx, h, "dpkg", "-i", "/root/tlsdock.deb")
	t.Logf("dpkg -i:\n%s", out)
	if out, code := pkgExec(ctx, h, "tlsdock", "config"); code != 6 || !strings.Contains(out, "Not configured") {
		t.Errorf("tlsdock config on an unconfigured host: exit %d, want 6\n%s", code, out)
	}
	dockerPID := pkgShow(t, ctx, h, "docker.service", "MainPID")
	conf, err := h.ReadFile("/etc/tlsdock/tlsdock.conf")
	if err != nil {
		t.Fatal(err)
	}
	badLine := bytes.Count(conf, []byte("\n")) + 2
	conf = append(conf, "generate = true\ntimeout = 5x\n"...)
	if err := h.WriteFile("/etc/tlsdock/tlsdock.conf", conf, 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr := fmt.Sprintf(`/etc/tlsdock/tlsdock.conf:%d: timeout: "5x" is not a duration`, badLine)
	if out, code := pkgExec(ctx, h, "tlsdock", "config"); code != 2 || !strings.Contains(out, wantErr) {
		t.Errorf("tlsdock config with a bad value: exit %d, want 2 and %q\n%s", code, wantErr, out)
	}
	out = pkgMustExec(t, ctx, h, "dpkg-reconfigure", "-fnoninteractive", "tlsdock")
	t.Logf("dpkg-reconfigure:\n%s", out)
	for _, want := range []string{wantErr, "has a bad setting (see the message above): not provisioning", "nothing on the host changed. Fix /etc/tlsdock/tlsdock.conf"} {
		if !strings.Contains(out, want) {
			t.Errorf("dpkg-reconfigure does not say %q", want)
		}
	}
	if active, enabled := pkgUnitState(ctx, h, "tlsdock.service"); active == "active" || enabled != "enabled" {
		t.Errorf("tlsdock.service is %s and %s, want inactive and enabled", active, enabled)
	}
	if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got != dockerPID {
		t.Errorf("docker.service was restarted (MainPID %s -> %s)", dockerPID, got)
	}
	if pkgExists(h, "/etc/docker/ssl") || pkgExists(h, "/var/lib/tlsdock/state.json") {
		t.Error("a bad tlsdock.conf provisioned the host")
	}
}

// pkgRPMFile is one file of an rpm's payload.
type pkgRPMFile struct {
	path string
	data []byte
	mode os.FileMode
}

// pkgRPMPayload reads the files of an rpm (rpm2archive).
func pkgRPMPayload(t *testing.T, rpmPath string) []pkgRPMFile {
	t.Helper()
	f, err := os.Open(rpmPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("rpm2archive", "-")
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rpm2archive %s: %v", rpmPath, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var files []pkgRPMFile
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, pkgRPMFile{strings.TrimPrefix(hdr.Name, "."), data, os.FileMode(hdr.Mode) & 0o7777})
	}
	return files
}

// TestPackageRPMScriptlets runs the .rpm's scriptlets on a real test host
// the way rpm does (the test host is Debian and has no rpm): the payload is
// unpacked, then each scriptlet runs as `/bin/sh SCRIPT $1` in rpm's order
// for an install ($1 = 1), an upgrade (new %post 2, old %preun 1, old
// %postun 1) and an erase (%preun 0, files removed, %postun 0).
func TestPackageRPMScriptlets(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	pkgNeedTools(t, "rpm", "rpm2archive")
	v1 := pkgPackages(t, "")
	v2 := pkgPackages(t, v1.Version+"+e2e.upgrade")
	h := testhost.Start(t)
	ctx := ctxFor(t, 5*time.Minute)
	set := pkgIssueSet(t, pkgNewCA(t))
	pkgWriteSet(t, h, "/etc/tlsdock/certs", set)
	scripts := func(b *pkgBuild) map[string]string {
		out, err := pkgCmd(t, "rpm", "-qp", "--scripts", b.RPM)
		if err != nil {
			t.Fatal(err, out)
		}
		return pkgRPMScriptlets(out)
	}
	s1, s2 := scripts(v1), scripts(v2)
	unpack := func(b *pkgBuild) []pkgRPMFile {
		files := pkgRPMPayload(t, b.RPM)
		for _, f := range files {
			if err := h.WriteFile(f.path, f.data, f.mode); err != nil {
				t.Fatal(err)
			}
		}
		return files
	}
	scriptlet := func(body, arg string) string {
		t.Helper()
		if err := h.WriteFile("/var/tmp/rpm-tmp.scriptlet", []byte(body), 0o700); err != nil {
			t.Fatal(err)
		}
		out := pkgMustExec(t, ctx, h, "/bin/sh", "/var/tmp/rpm-tmp.scriptlet", arg)
		t.Logf("scriptlet %s:\n%s", arg, out)
		return out
	}

	unpack(v1)
	if out := scriptlet(s1["postinstall"], "1"); !strings.Contains(out, "tlsdock.service is running") {
		t.Fatalf("%%post 1 did not start tlsdock.service")
	}
	pkgAssertServes(t, h, set)
	tlsdockPID := pkgShow(t, ctx, h, "tlsdock.service", "MainPID")
	dockerPID := pkgShow(t, ctx, h, "docker.service", "MainPID")

	files := unpack(v2)
	scriptlet(s2["postinstall"], "2")
	scriptlet(s1["preuninstall"], "1")
	scriptlet(s1["postuninstall"], "1")
	if active, enabled := pkgUnitState(ctx, h, "tlsdock.service"); active != "active" || enabled != "enabled" {
		t.Fatalf("after the upgrade tlsdock.service is %s and %s", active, enabled)
	}
	if got := pkgShow(t, ctx, h, "tlsdock.service", "MainPID"); got == tlsdockPID {
		t.Errorf("the upgrade did not restart tlsdock.service (MainPID %s)", got)
	}
	if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got != dockerPID {
		t.Errorf("the upgrade restarted docker (MainPID %s -> %s)", dockerPID, got)
	}

	scriptlet(s2["preuninstall"], "0")
	for _, f := range files {
		run(t, ctx, h, "rm", "-f", f.path)
	}
	if out := scriptlet(s2["postuninstall"], "0"); !strings.Contains(out, "rm -rf /etc/tlsdock /var/lib/tlsdock") {
		t.Errorf("%%postun 0 does not say how to remove what rpm keeps")
	}
	if active, enabled := pkgUnitState(ctx, h, "tlsdock.service"); active == "active" || enabled == "enabled" {
		t.Errorf("after the erase tlsdock.service is %s and %s", active, enabled)
	}
	if got := pkgShow(t, ctx, h, "docker.service", "MainPID"); got != dockerPID {
		t.Errorf("the erase restarted docker (MainPID %s -> %s)", dockerPID, got)
	}
	pkgAssertServes(t, h, set)
	for _, p := range []string{"/etc/tlsdock/certs/ca.pem", "/var/lib/tlsdock/state.json"} {
		if !pkgExists(h, p) {
			t.Errorf("the erase removed %s (rpm has no purge)", p)
		}
	}
}

// TestPackageChroot installs the .deb into a plain chroot of the test-host
// rootfs, where no systemd runs (as in an image build): dpkg must succeed,
// enable the unit for the next boot and provision nothing.
func TestPackageChroot(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	b := pkgPackages(t, "")
	lower := os.Getenv("TLSDOCK_E2E_ROOTFS")
	if lower == "" {
		lower = testhost.DefaultRootFS
	}
	if _, err := os.Stat(filepath.Join(lower, ".tlsdock-complete")); err != nil {
		t.Fatalf("rootfs %s is not ready: run test/e2e/setup-host.sh", lower)
	}
	work, err := os.MkdirTemp("/var/tmp", "tlsdock-e2e-chroot-")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(work, "merged")
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + filepath.Join(work, "upper") + ",workdir=" + filepath.Join(work, "work")
	if err := syscall.Mount("overlay", root, "overlay", 0, opts); err != nil {
		t.Fatalf("mount -t overlay -o %s: %v", opts, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(root, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", root, err)
			return
		}
		os.RemoveAll(work)
	})
	data, err := os.ReadFile(b.Deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "root", "tlsdock.deb"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// A preseeded set must not be provisioned either: there is no systemd.
	ca := pkgNewCA(t)
	s := pkgIssueSet(t, ca)
	if err := os.MkdirAll(filepath.Join(root, "etc/tlsdock/certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	for n, d := range map[string][]byte{"ca.pem": s.CA, "server-cert.pem": s.Cert, "server-key.pem": s.Key} {
		if err := os.WriteFile(filepath.Join(root, "etc/tlsdock/certs", n), d, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	chroot := func(args ...string) (string, error) {
		cmd := exec.Command("chroot", append([]string{root}, args...)...)
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "HOME=/root"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := chroot("dpkg", "-i", "/root/tlsdock.deb")
	t.Logf("chroot dpkg -i:\n%s", out)
	if err != nil {
		t.Fatalf("dpkg -i in a chroot: %v", err)
	}
	if n := strings.Count(out, "tlsdock: "); n != 1 || !strings.Contains(out, "systemd is not running") {
		t.Errorf("want exactly one line from the postinstall saying systemd is not running, got %d:\n%s", n, out)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/tlsdock.service")); err != nil {
		t.Errorf("tlsdock.service is not enabled for the next boot: %v", err)
	}
	for _, p := range []string{"etc/docker/ssl", "var/lib/tlsdock", "etc/systemd/system/docker.service.d/zz-tlsdock.conf"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("the chroot install provisioned: %s exists", p)
		}
	}
	out, err = chroot("dpkg", "-P", "tlsdock")
	t.Logf("chroot dpkg -P:\n%s", out)
	if err != nil {
		t.Fatalf("dpkg -P in a chroot: %v", err)
	}
	for _, p := range []string{"etc/tlsdock", "etc/systemd/system/multi-user.target.wants/tlsdock.service", "usr/bin/tlsdock"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("dpkg -P in a chroot left %s", p)
		}
	}

	// A tlsdock.conf preseeded by configuration management is kept with
	// --force-confold (without it dpkg asks, as for any conffile).
	conf := filepath.Join(root, "etc/tlsdock/tlsdock.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("generate = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = chroot("dpkg", "-i", "--force-confold", "/root/tlsdock.deb")
	t.Logf("chroot dpkg -i --force-confold:\n%s", out)
	if err != nil {
		t.Fatalf("dpkg -i --force-confold over a preseeded tlsdock.conf: %v", err)
	}
	if got, _ := os.ReadFile(conf); string(got) != "generate = true\n" {
		t.Errorf("the preseeded tlsdock.conf was replaced: %q", got)
	}
}
