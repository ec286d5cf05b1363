package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// bootHost boots a fresh test host with tlsdock in /usr/local/bin, from
// the default rootfs (Debian 12).
func (b *bench) bootHost(ctx context.Context, role string) (*testhost.Host, error) {
	return b.bootHostFrom(ctx, role, "")
}

// bootHostFrom is bootHost from rootfs (empty: the default).
func (b *bench) bootHostFrom(ctx context.Context, role, rootfs string) (*testhost.Host, error) {
	rnd := make([]byte, 3)
	_, _ = rand.Read(rnd)
	h, err := testhost.Boot(ctx, testhost.Options{RootFS: rootfs, Name: b.p.hostPrefix + role + "-" + hex.EncodeToString(rnd), Logf: b.logf})
	if err != nil {
		return nil, err
	}
	if err := h.CopyIn(b.tlsdock, "/usr/local/bin/tlsdock", 0o755); err != nil {
		h.Close()
		return nil, err
	}
	if b.env.dockerd == "" {
		if out, _, err := h.Exec(ctx, nil, "dockerd", "--version"); err == nil {
			b.env.dockerd = strings.TrimSpace(string(out))
		}
		if out, _, err := h.Exec(ctx, nil, "systemctl", "--version"); err == nil {
			b.env.systemd, _, _ = strings.Cut(string(out), "\n")
		}
	}
	return h, nil
}

func (b *bench) closeHost(h *testhost.Host) {
	if err := h.Close(); err != nil {
		b.progress("warning: %v", err)
	}
}

// timedRestart clears docker.service's start limit (untimed, as tlsdock
// also does before its restart) and times `systemctl restart docker`
// inside the host, as an operator runs it.
func timedRestart(ctx context.Context, h *testhost.Host) (time.Duration, error) {
	if _, _, err := h.Exec(ctx, nil, "systemctl", "reset-failed", "docker.service"); err != nil {
		return 0, err
	}
	start := time.Now()
	_, _, err := h.Exec(ctx, nil, "systemctl", "restart", "docker.service")
	return time.Since(start), err
}

// provisionResult is the part of `tlsdock provision --json` the bench
// checks.
type provisionResult struct {
	Changed   bool   `json:"changed"`
	Restarted bool   `json:"restarted"`
	Serial    string `json:"serial"`
	Error     string `json:"error"`
	Checks    []struct {
		Name   string `json:"check"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

// provision runs `tlsdock provision --json ARGS` inside h, checks that it
// changed the host, restarted docker and passed every check, and returns
// how long the command took.
func provision(ctx context.Context, h *testhost.Host, args ...string) (time.Duration, *provisionResult, error) {
	start := time.Now()
	out, errb, err := h.Exec(ctx, nil, append([]string{"tlsdock", "provision", "--json"}, args...)...)
	d := time.Since(start)
	if err != nil {
		return 0, nil, fmt.Errorf("tlsdock provision %s: %w\n%s\n%s", strings.Join(args, " "), err, out, errb)
	}
	var r provisionResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, nil, fmt.Errorf("tlsdock provision --json printed %q: %w", out, err)
	}
	if !r.Changed || !r.Restarted || len(r.Checks) == 0 {
		return 0, nil, fmt.Errorf("tlsdock provision %s: changed=%v restarted=%v checks=%d", strings.Join(args, " "), r.Changed, r.Restarted, len(r.Checks))
	}
	for _, c := range r.Checks {
		if !c.OK {
			return 0, nil, fmt.Errorf("tlsdock provision: check %q failed: %s", c.Name, c.Detail)
		}
	}
	return d, &r, nil
}

// phases of one provision, from docker.service's journal (systemd's own
// lines, microsecond timestamps on the clock this process shares).
type phases struct {
	before  time.Duration // command start → live-restore reload begins (plan, backup, write)
	reload  time.Duration // Reloading → Reloaded (SIGHUP, live-restore on)
	between time.Duration // Reloaded → Stopping (check /info, write TLS, daemon-reload, reset-failed)
	restart time.Duration // Stopping → Started
	after   time.Duration // Started → command exits (verify, commit)
}

// unitEvents returns the times of systemd's own journal lines about
// docker.service between start and end, by their first word (Reloading,
// Reloaded, Stopping, Started, ...), first occurrence of each after start.
// Started counts only after a Stopping.
func unitEvents(ctx context.Context, h *testhost.Host, start, end time.Time) map[string]time.Time {
	ev := map[string]time.Time{}
	out, _, err := h.Exec(ctx, nil, "journalctl", "--no-pager", "-o", "short-unix", "-u", "docker.service",
		"--since", "@"+strconv.FormatInt(start.Unix()-1, 10))
	if err != nil {
		return ev
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[2], "systemd[") {
			continue
		}
		sec, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		t := time.Unix(0, int64(sec*1e9))
		if t.Before(start) || t.After(end) {
			continue
		}
		if _, seen := ev[f[3]]; seen || (f[3] == "Started" && ev["Stopping"].IsZero()) {
			continue
		}
		ev[f[3]] = t
	}
	return ev
}

// provisionPhases splits the provision that ran from start to end into
// phases by docker.service's journal. ok is false when the journal does
// not show the expected sequence.
func provisionPhases(ctx context.Context, h *testhost.Host, start, end time.Time) (phases, bool) {
	ev := unitEvents(ctx, h, start, end)
	reloading, reloaded, stopping, started := ev["Reloading"], ev["Reloaded"], ev["Stopping"], ev["Started"]
	if reloading.IsZero() || reloaded.IsZero() || stopping.IsZero() || started.IsZero() {
		return phases{}, false
	}
	return phases{
		before:  reloading.Sub(start),
		reload:  reloaded.Sub(reloading),
		between: stopping.Sub(reloaded),
		restart: started.Sub(stopping),
		after:   end.Sub(started),
	}, true
}

// provisionResults are the samples of row 2, in milliseconds.
type provisionResults struct {
	restart, provision                    sample
	before, reload, between, inner, after sample
}

// benchProvision boots a fresh stock host per run, times one bare restart
// on it and then `tlsdock provision --generate` from the stock host to a
// verified mutual-TLS endpoint.
func benchProvision(ctx context.Context, b *bench) (*provisionResults, error) {
	r := &provisionResults{}
	for i := range b.p.provisionRuns {
		b.progress("provision %d/%d: booting a stock host", i+1, b.p.provisionRuns)
		h, err := b.bootHost(ctx, "prov")
		if err != nil {
			return nil, err
		}
		err = func() error {
			defer b.closeHost(h)
			d, err := timedRestart(ctx, h)
			if err != nil {
				return err
			}
			r.restart = append(r.restart, ms(d))
			b.progress("provision %d/%d: bare restart %s; provisioning", i+1, b.p.provisionRuns, fmtMS(ms(d)))
			start := time.Now()
			d, _, err = provision(ctx, h, "--generate", "--client-out", "/root/client")
			if err != nil {
				return err
			}
			end := start.Add(d)
			r.provision = append(r.provision, ms(d))
			if ph, ok := provisionPhases(ctx, h, start, end); ok {
				r.before = append(r.before, ms(ph.before))
				r.reload = append(r.reload, ms(ph.reload))
				r.between = append(r.between, ms(ph.between))
				r.inner = append(r.inner, ms(ph.restart))
				r.after = append(r.after, ms(ph.after))
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// guestFile is a path inside h as seen from this machine, through the
// guest's root (for paths without symlinks, such as /root and /etc/tlsdock).
func guestFile(h *testhost.Host, p string) string {
	return filepath.Join("/proc", strconv.Itoa(h.PID), "root", p)
}

// fetch copies guest files into a local directory.
func fetch(h *testhost.Host, guestDir, localDir string, names ...string) error {
	if err := os.MkdirAll(localDir, 0o700); err != nil {
		return err
	}
	for _, n := range names {
		data, err := h.ReadFile(guestDir + "/" + n)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(localDir, n), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
