package agent

import (
	"context"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestProcListeners reads dockerd's TCP listeners from a /proc tree: its
// MainPID's socket inodes matched against the LISTEN entries of net/tcp
// and net/tcp6; a listener of another process and a connection are not
// dockerd's listeners.
func TestProcListeners(t *testing.T) {
	h := newFakeHost(t)
	proc := filepath.Join(t.TempDir(), "proc")
	pid := fmt.Sprint(h.MainPID())
	fd := filepath.Join(proc, pid, "fd")
	if err := os.MkdirAll(fd, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"0": "/dev/null", "3": "socket:[1001]", "4": "socket:[1002]", "5": "socket:[1003]", "6": "pipe:[77]"} {
		if err := os.Symlink(target, filepath.Join(fd, name)); err != nil {
			t.Fatal(err)
		}
	}
	head := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	writeFile(t, proc, pid+"/net/tcp", head+
		"   0: 00000000:0948 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0\n"+
		"   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0\n"+
		"   2: 0100007F:0948 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 100 0 0 10 0\n")
	writeFile(t, proc, pid+"/net/tcp6", head+
		"   0: 00000000000000000000000000000000:0947 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0\n")
	got, err := procListeners{systemd: h, proc: proc}.Listeners(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:2376"), netip.MustParseAddrPort("[::]:2375")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("listeners %v, want %v", got, want)
	}
	if _, err := (procListeners{systemd: h, proc: filepath.Join(t.TempDir(), "none")}).Listeners(context.Background()); err == nil {
		t.Error("no /proc: no error")
	}
}

type deniedListeners struct{}

func (deniedListeners) Listeners(context.Context) ([]netip.AddrPort, error) {
	return nil, fmt.Errorf("reading dockerd's open files: %w", &fs.PathError{Op: "open", Path: "/proc/100/fd", Err: fs.ErrPermission})
}

type failingListeners struct{}

func (failingListeners) Listeners(context.Context) ([]netip.AddrPort, error) {
	return nil, fmt.Errorf("docker.service has no main PID")
}

// TestListenersUnreadable: dockerd's open files unreadable for lack of
// privilege (tlsdock.service's bounded capabilities) skip the probe of its
// other listeners with a check saying so; any other failure to find them
// fails verification.
func TestListenersUnreadable(t *testing.T) {
	h := newFakeHost(t)
	res := mustProvision(t, h.agent(&fakeVerifier{}, func(o *Options) { o.Listeners = deniedListeners{} }), generateCfg())
	found := false
	for _, c := range res.Checks {
		found = found || c.OK && strings.HasPrefix(c.Detail, "skipped: cannot read dockerd's open files")
	}
	if !found {
		t.Errorf("checks %+v: no skipped check", res.Checks)
	}
	h2 := newFakeHost(t)
	_, err := h2.agent(&fakeVerifier{}, func(o *Options) { o.Listeners = failingListeners{} }).Provision(context.Background(), generateCfg())
	if err == nil || !strings.Contains(err.Error(), "finding dockerd's TCP listeners") {
		t.Errorf("provision: %v, want a failure finding the listeners", err)
	}
}
