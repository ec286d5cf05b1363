package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/agent/agenttest"
)

// maskSocket masks docker.socket as `systemctl mask docker.socket` does
// (a link to /dev/null, then a daemon-reload).
func maskSocket(t *testing.T, h *fakeHost) {
	t.Helper()
	if err := os.Symlink(os.DevNull, filepath.Join(h.root, "/etc/systemd/system/docker.socket")); err != nil {
		t.Fatal(err)
	}
	if err := h.DaemonReload(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRevertRefusesADockerThatCannotStart: a revert that restarts dockerd
// onto a host whose docker.socket is now masked (docker.service requires
// it) is refused as bad input, and nothing changes: the restart would fail,
// and the restart back too. Once docker.socket is unmasked the same revert
// goes through. A proxy-mode revert that leaves dockerd running does not
// depend on it.
func TestRevertRefusesADockerThatCannotStart(t *testing.T) {
	t.Run("dockerd restarts", func(t *testing.T) {
		h := newFakeHost(t)
		writeFile(t, h.root, agenttest.SocketFragment, agenttest.DebianSocket)
		mustProvision(t, h.agent(&fakeVerifier{}), generateCfg())
		maskSocket(t, h)
		before := hashTree(t, h.root)
		n := len(h.Calls())
		_, err := h.agent(nil).Revert(context.Background(), Defaults())
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != "docker.socket" || !strings.Contains(err.Error(), "systemctl unmask docker.socket") {
			t.Fatalf("err = %v, want docker.socket refused as bad input", err)
		}
		if d := diffTrees(before, hashTree(t, h.root)); len(d) > 0 {
			t.Errorf("the refused revert changed files: %q", d)
		}
		if calls := h.Calls()[n:]; len(calls) > 0 {
			t.Errorf("the refused revert called systemd: %q", calls)
		}
		if err := os.Remove(filepath.Join(h.root, "/etc/systemd/system/docker.socket")); err != nil {
			t.Fatal(err)
		}
		if err := h.DaemonReload(context.Background()); err != nil { // systemctl unmask
			t.Fatal(err)
		}
		if _, err := h.agent(nil).Revert(context.Background(), Defaults()); err != nil {
			t.Fatalf("revert once docker.socket is unmasked: %v", err)
		}
	})
	t.Run("proxy mode, dockerd keeps running", func(t *testing.T) {
		h := newFakeHost(t)
		writeFile(t, h.root, agenttest.SocketFragment, agenttest.DebianSocket)
		mustProvision(t, h.agent(&fakeVerifier{}, withExe), proxyCfg())
		maskSocket(t, h)
		res, err := h.agent(nil).Revert(context.Background(), Defaults())
		if err != nil {
			t.Fatalf("proxy revert with dockerd running: %v", err)
		}
		if res.Restarted {
			t.Error("the proxy revert restarted dockerd")
		}
	})
}
