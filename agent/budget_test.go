package agent

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/systemd"
)

// hungStart is the fake host with a docker.service whose start never
// finishes (a hung ExecStartPre, a dockerd waiting for containerd): a
// restart job is queued, the unit stays "activating" and the job result
// never comes while hang is set, as with systemd's TimeoutStartSec=0.
// With once, only the first restart hangs. It records the deadline of
// every call.
type hungStart struct {
	*fakeHost
	once bool

	mu         sync.Mutex
	restarts   int
	activating bool
	calls      []deadlineCall
}

type deadlineCall struct {
	name     string
	at       time.Time
	deadline time.Time
	ok       bool
}

func (s *hungStart) note(ctx context.Context, name string) {
	d, ok := ctx.Deadline()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, deadlineCall{name: name, at: time.Now(), deadline: d, ok: ok})
}

func (s *hungStart) Restart(ctx context.Context, u string) error {
	s.note(ctx, "restart "+u)
	if u != systemd.DockerUnit {
		return s.fakeHost.Restart(ctx, u)
	}
	s.mu.Lock()
	s.restarts++
	hang := !s.once || s.restarts == 1
	s.activating = hang
	s.mu.Unlock()
	if !hang {
		return s.fakeHost.Restart(ctx, u)
	}
	// The old dockerd is stopped; the new one never becomes ready.
	_ = s.fakeHost.Stop(context.Background(), u)
	<-ctx.Done()
	return errors.New("systemd restart docker.service: no job result: " + ctx.Err().Error())
}

func (s *hungStart) DaemonReload(ctx context.Context) error {
	s.note(ctx, "daemon-reload")
	return s.fakeHost.DaemonReload(ctx)
}

func (s *hungStart) ResetFailed(ctx context.Context, u string) error {
	s.note(ctx, "reset-failed "+u)
	return s.fakeHost.ResetFailed(ctx, u)
}

func (s *hungStart) Reload(ctx context.Context, u string) error {
	s.note(ctx, "reload "+u)
	return s.fakeHost.Reload(ctx, u)
}

func (s *hungStart) Stop(ctx context.Context, u string) error {
	s.note(ctx, "stop "+u)
	return s.fakeHost.Stop(ctx, u)
}

func (s *hungStart) Unit(ctx context.Context, u string) (systemd.UnitInfo, error) {
	info, err := s.fakeHost.Unit(ctx, u)
	s.mu.Lock()
	defer s.mu.Unlock()
	if u == systemd.DockerUnit && s.activating {
		info.ActiveState, info.SubState, info.MainPID = "activating", "start-pre", 0
	}
	return info, err
}

// TestTimeoutBoundsTheRollback: with a docker.service whose restart hangs,
// every systemd call of provision and of its rollback has a deadline
// within --timeout of the first one, the rollback keeps its reserved
// share of the budget (the steps' deadline is rollbackReserve before the
// command's), and the error says what is still pending and where the
// backup is. Before, the rollback waited Options.RollbackWait (2m) past
// the step that hung.
func TestTimeoutBoundsTheRollback(t *testing.T) {
	for _, once := range []bool{false, true} {
		name := map[bool]string{false: "every restart hangs", true: "only the first restart hangs"}[once]
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, DaemonJSONPath, "{\n  \"log-level\": \"warn\"\n}\n")
			before := treeHash(t, h.root)
			sd := &hungStart{fakeHost: h, once: once}
			a := h.agent(&fakeVerifier{}, noDNS, func(o *Options) { o.Systemd = sd; o.Docker = sd })
			cfg := generateCfg()
			cfg.Timeout = 2 * time.Second
			cfg.LiveRestore = false
			res, err := a.Provision(context.Background(), cfg)
			t.Logf("err: %v", err)
			if len(sd.calls) == 0 {
				t.Fatal("no systemd call recorded")
			}
			first := sd.calls[0].at
			var stepRestart, rollbackRestart time.Time
			for _, c := range sd.calls {
				if !c.ok {
					t.Errorf("%s had no deadline", c.name)
					continue
				}
				if over := c.deadline.Sub(first); over > cfg.Timeout {
					t.Errorf("%s had a deadline %v after the first call, past --timeout %v", c.name, over, cfg.Timeout)
				}
				if c.name == "restart docker.service" {
					if stepRestart.IsZero() {
						stepRestart = c.deadline
					} else {
						rollbackRestart = c.deadline
					}
				}
			}
			if rollbackRestart.IsZero() {
				t.Fatalf("no restart back; calls: %v", sd.calls)
			}
			if got := rollbackRestart.Sub(stepRestart); got < rollbackReserve(cfg) {
				t.Errorf("the rollback's restart had %v after the step's deadline, want the reserve %v", got, rollbackReserve(cfg))
			}
			if once {
				if !errors.Is(err, ErrRolledBack) || !res.RolledBack {
					t.Fatalf("err = %v, want rolled back", err)
				}
				if h.Running() == nil {
					t.Error("docker is not running after the rollback")
				}
			} else {
				if !errors.Is(err, ErrRollbackFailed) {
					t.Fatalf("err = %v, want a rollback that could not finish", err)
				}
				for _, want := range []string{
					"docker.service is still activating: its restart job was queued",
					"systemctl status docker.service",
					"the files are restored",
					StateDir + "/journal.json",
				} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error lacks %q:\n%v", want, err)
					}
				}
			}
			after := treeHash(t, h.root)
			if !maps.Equal(before, after) {
				t.Errorf("the rollback did not restore the files:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}
