package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/tlsdock/tlsdock/systemd"
)

// liveRestoreAtRestart records whether the running dockerd had
// live-restore on whenever docker.service (or docker.socket, which
// restarts it) is restarted: only then do its containers survive.
type liveRestoreAtRestart struct {
	*fakeHost
	at []bool
}

func (s *liveRestoreAtRestart) Restart(ctx context.Context, u string) error {
	if (u == systemd.DockerUnit || u == systemd.SocketUnit) && s.Running() != nil {
		s.at = append(s.at, s.LiveRestore())
	}
	return s.fakeHost.Restart(ctx, u)
}

// TestProxyRevertTurnsLiveRestoreOnFirst: proxy mode removed a plaintext
// TCP listener of dockerd's with --live-restore=false, so the running
// dockerd has no live-restore. The revert puts the listener back, which
// restarts dockerd: with --keep-live-restore it turns live-restore on
// first (SIGHUP) so that containers survive, and without it says plainly
// that they stop.
func TestProxyRevertTurnsLiveRestoreOnFirst(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(map[bool]string{true: "keep-live-restore", false: "without"}[keep], func(t *testing.T) {
			h := newFakeHost(t)
			writeFile(t, h.root, "/etc/systemd/system/docker.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2375 --tls=false\n")
			cfg := proxyCfg()
			cfg.LiveRestore = false
			mustProvision(t, h.agent(&fakeVerifier{}, withExe), cfg)
			if h.LiveRestore() {
				t.Fatal("provision with --live-restore=false turned live-restore on")
			}
			sd := &liveRestoreAtRestart{fakeHost: h}
			rcfg := Defaults()
			rcfg.LiveRestore = keep
			res, err := h.agent(nil, func(o *Options) { o.Systemd = sd }).Revert(context.Background(), rcfg)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Restarted || len(sd.at) == 0 {
				t.Fatalf("dockerd was not restarted (restarted %v, %d restarts): its listener is not back", res.Restarted, len(sd.at))
			}
			notes := strings.Join(res.Notes, "\n")
			if keep {
				if !sd.at[0] {
					t.Errorf("dockerd restarted without live-restore on: its containers stop; calls %v; notes:\n%s", h.Calls(), notes)
				}
				if !strings.Contains(notes, "turning it on and reloading dockerd first") {
					t.Errorf("notes do not say live-restore is turned on first:\n%s", notes)
				}
				return
			}
			if sd.at[0] {
				t.Error("live-restore was turned on without --keep-live-restore")
			}
			if !strings.Contains(notes, "stops every running container") {
				t.Errorf("notes do not say that containers stop:\n%s", notes)
			}
		})
	}
}
