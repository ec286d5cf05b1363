package testhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// guestEnv is the environment of commands run inside by Exec.
var guestEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C",
	"TERM=dumb",
	"SYSTEMD_PAGER=",
	"SYSTEMD_COLORS=0",
}

// Exec runs args inside the host, in all of its namespaces and with its own
// binaries (nsenter -t PID -a). A non-zero exit returns an error with the
// exit code and the end of stderr; stdout and stderr are returned either way.
func (h *Host) Exec(ctx context.Context, stdin io.Reader, args ...string) (stdout, stderr []byte, err error) {
	return h.nsenter(ctx, "-a", guestEnv, stdin, args)
}

// ExecNet runs one of this machine's binaries in the host's network
// namespace only (nsenter -t PID -n): a real remote client of the host, for
// example /usr/local/bin/docker against tcp://127.0.0.1:2376. It sees this
// machine's files. Its environment is PATH and HOME of this process plus env.
func (h *Host) ExecNet(ctx context.Context, env []string, stdin io.Reader, args ...string) (stdout, stderr []byte, err error) {
	e := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return h.nsenter(ctx, "-n", append(e, env...), stdin, args)
}

func (h *Host) nsenter(ctx context.Context, ns string, env []string, stdin io.Reader, args []string) ([]byte, []byte, error) {
	if len(args) == 0 {
		return nil, nil, errors.New("exec: no command")
	}
	pid := h.PID
	if pid == 0 {
		return nil, nil, fmt.Errorf("test host %s is not running", h.Name)
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), ns, "--"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, stdin, &out, &errb
	// A process left running inside may hold the pipes; do not wait forever.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		where := "in test host " + h.Name
		if ns == "-n" {
			where = "in the network namespace of test host " + h.Name
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() >= 0 {
			err = fmt.Errorf("%s %s: exit code %d: %s", where, quoteArgs(args), ee.ExitCode(), tail(errb.Bytes(), 2000))
		} else {
			err = fmt.Errorf("%s %s: %w: %s", where, quoteArgs(args), err, tail(errb.Bytes(), 2000))
		}
	}
	return out.Bytes(), errb.Bytes(), err
}

// guestPath maps an absolute path inside the host to one on this machine,
// below /proc/PID/root, so that the guest's own mounts (/run and /tmp are
// tmpfs inside) count. The kernel would resolve an absolute symlink below
// /proc/PID/root against this machine's root (/var/run -> /run would land in
// the machine's /run), so symlinks are resolved here, inside the guest's
// root: all of them when followLast, else all but the last component.
func (h *Host) guestPath(p string, followLast bool) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("guest path %q is not absolute", p)
	}
	if h.PID == 0 {
		return "", fmt.Errorf("test host %s is not running", h.Name)
	}
	root := filepath.Join("/proc", strconv.Itoa(h.PID), "root")
	resolved, err := resolveIn(root, p, followLast)
	if err != nil {
		return "", fmt.Errorf("resolving %s in test host %s: %w", p, h.Name, err)
	}
	return filepath.Join(root, resolved), nil
}

// resolveIn resolves the absolute path p as if root were /, following
// symlinks (absolute ones relative to root) and never leaving root. Missing
// components are kept as they are. It returns a clean absolute path.
func resolveIn(root, p string, followLast bool) (string, error) {
	todo := strings.Split(strings.Trim(filepath.Clean(p), "/"), "/")
	cur := "/"
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		if len(todo) == 0 && !followLast {
			return next, nil
		}
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			cur = next // missing components stay as they are
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("too many levels of symbolic links in %s", p)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
	}
	return cur, nil
}

// WriteFile writes data to guestPath inside the host atomically (a temporary
// file in the same directory, then rename), with mode and owner root. It
// creates missing parent directories with mode 0755. Symlinks in the parent
// directories resolve as inside the guest; a symlink at guestPath itself is
// replaced, not followed.
func (h *Host) WriteFile(guestPath string, data []byte, mode os.FileMode) error {
	p, err := h.guestPath(guestPath, false)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("writing %s in test host %s: %w", guestPath, h.Name, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".testhost-*")
	if err != nil {
		return fmt.Errorf("writing %s in test host %s: %w", guestPath, h.Name, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("writing %s in test host %s: %w", guestPath, h.Name, err)
	}
	return nil
}

// ReadFile reads guestPath inside the host.
func (h *Host) ReadFile(guestPath string) ([]byte, error) {
	p, err := h.guestPath(guestPath, true)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// CopyIn copies hostPath from this machine to guestPath inside the host.
func (h *Host) CopyIn(hostPath, guestPath string, mode os.FileMode) error {
	b, err := os.ReadFile(hostPath)
	if err != nil {
		return err
	}
	return h.WriteFile(guestPath, b, mode)
}

// WaitActive polls `systemctl is-active unit` inside until it says active.
// When the unit fails it returns an error with the unit's last 30 journal
// lines. Without a deadline on ctx it gives up after two minutes.
func (h *Host) WaitActive(ctx context.Context, unit string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		out, _, err := h.Exec(ctx, nil, "systemctl", "is-active", unit)
		st := strings.TrimSpace(string(out))
		if st != "" {
			last = st
		} else if err != nil {
			last = err.Error()
		}
		switch st {
		case "active":
			return nil
		case "failed":
			return fmt.Errorf("%s failed in test host %s; journal:\n%s", unit, h.Name, h.Journal(context.WithoutCancel(ctx), unit, 30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s in test host %s (last state %q): %w; journal:\n%s",
				unit, h.Name, last, ctx.Err(), h.Journal(context.WithoutCancel(ctx), unit, 30))
		case <-tick.C:
		}
	}
}

// Journal returns the last lines of unit's journal inside, or the error.
func (h *Host) Journal(ctx context.Context, unit string, lines int) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _, err := h.Exec(ctx, nil, "journalctl", "--no-pager", "-o", "short-precise",
		"-n", strconv.Itoa(lines), "-u", unit)
	if err != nil {
		return fmt.Sprintf("(journalctl -u %s: %v)\n%s", unit, err, out)
	}
	return string(out)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = append([]byte("..."), b[len(b)-n:]...)
	}
	return strings.TrimSpace(string(b))
}

func quoteArgs(args []string) string {
	s := shellJoin(args)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// shellJoin quotes args for sh.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
