package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/agent"
)

// runWith runs the CLI in-process on the fake host with ctx, and mod
// applied to the agent's options.
func (h *fakeHostCLI) runWith(ctx context.Context, mod func(*agent.Options), args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	args = append(args, "--config", filepath.Join(h.root, agent.ConfigFile))
	var out, errb bytes.Buffer
	env := Env{
		Stdout: &out, Stderr: &errb, Root: h.root,
		Connect: func(context.Context) (agent.Systemd, func(), error) { return h.sd, func() {}, nil },
		Agent: func(o *agent.Options) {
			o.Docker = dockerAPI{h.sd}
			o.Verifier = okVerifier{}
			o.Listeners, o.Attacker = h.sd, fakeAttacker{h.sd}
			o.Hostname = func() (string, error) { return "", errors.New("no hostname in tests") }
			o.Addrs = func() ([]net.IP, error) { return nil, nil }
			o.LiveRestoreWait = 2 * time.Second
			if mod != nil {
				mod(o)
			}
		},
	}
	root := NewRootCmd(env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return ExitCode(err), out.String(), errb.String()
}

// TestRunRecoversAtStartUp: `tlsdock run` killed mid-rotation is started
// again (Restart=). Before anything else it undoes the interrupted
// rotation, and state.json and its log say so; its first step then has
// nothing to do, for the source holds the set that is served again.
func TestRunRecoversAtStartUp(t *testing.T) {
	h := newFakeHostCLI(t)
	putFile(t, filepath.Join(h.root, agent.DaemonJSONPath), `{"log-driver": "journald"}`)
	a, _ := goodSet(t, nil)
	src := a.dir(t)
	if code, out, errb := h.runWith(context.Background(), nil, "provision", "--certs", src); code != 0 {
		t.Fatalf("provision: exit %d\n%s\n%s", code, out, errb)
	}
	b, _ := goodSet(t, nil)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the rotation was not killed")
			}
		}()
		h.runWith(context.Background(), func(o *agent.Options) {
			o.Pause = func(step string) {
				if step == "restarted" {
					panic("killed")
				}
			}
		}, "provision", "--certs", b.dir(t))
	}()
	journal := filepath.Join(h.root, agent.StateDir, "journal.json")
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("no journal after the kill: %v", err)
	}

	// Only the start-up: the context is done before the loop waits.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, _, stderr := h.runWith(ctx, nil, "run", "--certs", src)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Fatalf("journal.json is still there after the start-up: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(h.root, agent.StateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st agent.State
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.LastApply.Result != "recovered" {
		t.Fatalf("state.json's last apply is %+v, want recovered", st.LastApply)
	}
	if !strings.Contains(stderr, "msg=recovered") || strings.Index(stderr, "msg=recovered") > strings.Index(stderr, "msg=ready") {
		t.Fatalf("the log does not say it recovered before it was ready:\n%s", stderr)
	}
}
