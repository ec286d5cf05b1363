package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// These tests use real fsnotify on a real directory, and the fake clock
// for the debounce: they feed every event up to a marker file to the
// rotator (inotify keeps one queue, in order), then play the timers.

// startWatching starts the watcher and the startup reconcile.
func (g *rig) startWatching() {
	g.t.Helper()
	if err := g.r.startWatch(); err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(g.r.stopWatch)
	g.start()
}

// pump writes a marker beside the source and feeds the rotator every event
// up to it.
func (g *rig) pump() {
	g.t.Helper()
	marker := filepath.Join(filepath.Dir(g.src), fmt.Sprintf("marker-%d", time.Now().UnixNano()))
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		g.t.Fatal(err)
	}
	want := resolve(marker)
	timeout := time.After(30 * time.Second) // a failure bound only
	for {
		select {
		case ev := <-g.dir().watch.w.Events:
			g.r.onFSEvent(ev)
			if filepath.Clean(ev.Name) == want {
				return
			}
		case err := <-g.dir().watch.w.Errors:
			g.r.onFSError(err)
		case <-timeout:
			g.t.Fatalf("no event for %s: is %s watched? watching %v", marker, filepath.Dir(marker), g.dir().watch.w.WatchList())
		}
	}
}

// pumpUntilPending feeds the rotator events until one of them counts as a
// change. pump cannot be used while the directories being watched change
// under it: its marker may land in a directory that is not watched yet.
func (g *rig) pumpUntilPending() {
	g.t.Helper()
	timeout := time.After(30 * time.Second) // a failure bound only
	for !g.dir().deb.pending() {
		select {
		case ev := <-g.dir().watch.w.Events:
			g.r.onFSEvent(ev)
		case err := <-g.dir().watch.w.Errors:
			g.r.onFSError(err)
		case <-timeout:
			g.t.Fatalf("no relevant event; watching %v", g.dir().watch.w.WatchList())
		}
	}
}

// later runs the loop for d of fake time.
func (g *rig) later(d time.Duration) { g.runUntil(g.clock.Now().Add(d)) }

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (s set) files() map[string][]byte {
	return map[string][]byte{certstore.CAFile: s.ca, certstore.CertFile: s.cert, certstore.KeyFile: s.key}
}

func (g *rig) wantSerials(want ...string) {
	g.t.Helper()
	if got := g.serials(); !slices.Equal(got, want) {
		g.t.Fatalf("applied %v, want %v", got, want)
	}
}

func TestWatchRenameIntoPlace(t *testing.T) {
	g := newRig(t)
	s0, s1 := g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.startWatching()

	// Vault Agent, consul-template: a temporary file renamed over each.
	for name, data := range s1.files() {
		tmp := filepath.Join(g.src, "."+name+".tmp1234")
		mustWrite(t, tmp, data)
		must(t, os.Rename(tmp, filepath.Join(g.src, name)))
	}
	g.pump()
	if !g.dir().deb.pending() {
		t.Fatal("renames into place were not seen")
	}
	g.later(time.Minute)
	g.wantSerials(s1.serial)
}

func TestWatchEditorTempFiles(t *testing.T) {
	g := newRig(t)
	s0, s1 := g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.startWatching()

	// vim's swap file and write test, emacs' lock and autosave files.
	for _, name := range []string{".server-cert.pem.swp", "4913", ".#server-key.pem", "#server-key.pem#", "server-cert.pem.bak"} {
		mustWrite(t, filepath.Join(g.src, name), []byte("partial"))
	}
	g.pump()
	if g.dir().deb.pending() {
		t.Fatal("an editor's temporary file counted as a change of the set")
	}

	// vim saves with a backup: rename to name~, write name, remove name~.
	save := func(name string, data []byte) {
		p := filepath.Join(g.src, name)
		must(t, os.Rename(p, p+"~"))
		mustWrite(t, p, data)
		must(t, os.Remove(p+"~"))
	}
	save(certstore.CertFile, s1.cert)
	g.pump()
	g.later(time.Second) // the key is saved a second later
	save(certstore.KeyFile, s1.key)
	g.pump()
	g.later(time.Minute)
	g.wantSerials(s1.serial)
	if n := g.metric("tlsdock_rotations_total", "invalid"); n != 0 {
		t.Fatalf("the certificate without its key was reported invalid %v times", n)
	}
}

// k8sSwap writes s as a new Kubernetes atomic-writer generation and swaps
// ..data to it, removing the old generation; it returns the new one.
func k8sSwap(t *testing.T, dir string, s set, gen int, old string) string {
	t.Helper()
	name := fmt.Sprintf("..2026_11_01_12_00_0%d.%d", gen, 1000+gen)
	for f, data := range s.files() {
		mustWrite(t, filepath.Join(dir, name, f), data)
	}
	must(t, os.Symlink(name, filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	for f := range s.files() {
		if _, err := os.Lstat(filepath.Join(dir, f)); os.IsNotExist(err) {
			must(t, os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)))
		}
	}
	if old != "" {
		must(t, os.RemoveAll(filepath.Join(dir, old)))
	}
	return name
}

func TestWatchKubernetesDataSwap(t *testing.T) {
	g := newRig(t)
	s0, s1, s2 := g.issue(ServerValidity), g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	gen := k8sSwap(t, g.src, s0, 1, "")
	g.startWatching()
	g.wantSerials()
	if !slices.Contains(g.dir().watch.w.WatchList(), resolve(filepath.Join(g.src, gen))) {
		t.Fatalf("the ..data target %s is not watched: %v", gen, g.dir().watch.w.WatchList())
	}

	for i, s := range []set{s1, s2} {
		old := gen
		gen = k8sSwap(t, g.src, s, i+2, old)
		g.pump()
		g.later(time.Minute)
		list := g.dir().watch.w.WatchList()
		if !slices.Contains(list, resolve(filepath.Join(g.src, gen))) || slices.Contains(list, filepath.Join(resolve(g.src), old)) {
			t.Fatalf("after the swap to %s: watching %v", gen, list)
		}
	}
	g.wantSerials(s1.serial, s2.serial)
}

func TestWatchSymlinksIntoAnotherDirectory(t *testing.T) {
	// certbot: live/NAME/*.pem are symlinks into archive/NAME/*N.pem and
	// are replaced one at a time.
	g := newRig(t)
	s0, s1, s2 := g.issue(ServerValidity), g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	archive := filepath.Join(filepath.Dir(g.src), "archive")
	link := func(s set, n int) {
		for f, data := range s.files() {
			target := filepath.Join(archive, fmt.Sprintf("%s.%d", f, n))
			mustWrite(t, target, data)
			tmp := filepath.Join(g.src, f+".new")
			must(t, os.Symlink(filepath.Join("..", "archive", filepath.Base(target)), tmp))
			must(t, os.Rename(tmp, filepath.Join(g.src, f)))
		}
	}
	link(s0, 1)
	g.startWatching()
	g.wantSerials()

	link(s1, 2)
	g.pump()
	g.later(time.Minute)
	g.wantSerials(s1.serial)

	// step-style: the target files rewritten in place.
	for f, data := range s2.files() {
		mustWrite(t, filepath.Join(archive, fmt.Sprintf("%s.%d", f, 2)), data)
	}
	g.pump()
	if !g.dir().deb.pending() {
		t.Fatalf("a rewrite of a symlink target was not seen; watching %v", g.dir().watch.w.WatchList())
	}
	g.later(time.Minute)
	g.wantSerials(s1.serial, s2.serial)
}

func TestWatchDirectoryRemovedAndRecreated(t *testing.T) {
	g := newRig(t)
	s0, s1, s2 := g.issue(ServerValidity), g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.startWatching()

	must(t, os.RemoveAll(g.src))
	g.pump()
	g.later(time.Minute)
	g.wantSerials()
	if g.metric("tlsdock_validation_error", "") != 1 {
		t.Fatalf("a removed source is not reported; recorded %q", g.app.lastError)
	}

	must(t, os.Mkdir(g.src, 0o755))
	for f, data := range s1.files() {
		mustWrite(t, filepath.Join(g.src, f), data)
	}
	g.pump()
	g.later(time.Minute)
	g.wantSerials(s1.serial)

	// The new directory is watched.
	for f, data := range s2.files() {
		mustWrite(t, filepath.Join(g.src, f), data)
	}
	g.pump()
	if !g.dir().deb.pending() {
		t.Fatalf("a write into the recreated directory was not seen; watching %v", g.dir().watch.w.WatchList())
	}
	g.later(time.Minute)
	g.wantSerials(s1.serial, s2.serial)
}

func TestWatchSourceCreatedLater(t *testing.T) {
	g := newRig(t)
	s1 := g.issue(ServerValidity)
	must(t, os.Remove(g.src))
	// The configured source is two levels below what exists.
	g.src = filepath.Join(g.src, "a", "b")
	g.r.cfg.Certs = g.src
	g.startWatching()
	g.wantSerials()

	for f, data := range s1.files() {
		mustWrite(t, filepath.Join(g.src, f), data)
	}
	g.pumpUntilPending()
	g.later(time.Minute)
	g.wantSerials(s1.serial)
	if !slices.Contains(g.dir().watch.w.WatchList(), resolve(g.src)) {
		t.Fatalf("the new source is not watched: %v", g.dir().watch.w.WatchList())
	}

	// From now on the source's own directory is watched.
	s2 := g.issue(ServerValidity)
	for f, data := range s2.files() {
		mustWrite(t, filepath.Join(g.src, f), data)
	}
	g.pump()
	g.later(time.Minute)
	g.wantSerials(s1.serial, s2.serial)
}

// now runs whatever is due at the fake clock's time, without moving it.
func (g *rig) now() { g.runUntil(g.clock.Now()) }

// TestWatchWholeSetAppliedAtOnce: a whole set arriving in one rename (a
// Kubernetes ..data swap) is applied at the time of the change, not a
// debounce later.
func TestWatchWholeSetAppliedAtOnce(t *testing.T) {
	g := newRig(t)
	s0, s1 := g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	gen := k8sSwap(t, g.src, s0, 1, "")
	g.startWatching()
	g.runUntil(g.at(time.Minute))
	g.wantSerials()

	k8sSwap(t, g.src, s1, 2, gen)
	g.pump()
	g.now()
	g.wantSerials(s1.serial)
	if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint([]time.Duration{time.Minute}) {
		t.Fatalf("applied at %v, want at the change (1m0s)", got)
	}
}

// TestWatchInPlaceFileByFile: a writer that rewrites the files in place,
// one after the other, is applied once the last one landed and never in
// between: the new certificate with the old key does not match.
func TestWatchInPlaceFileByFile(t *testing.T) {
	g := newRig(t)
	s0, s1 := g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.startWatching()

	g.runUntil(g.at(time.Second))
	mustWrite(t, filepath.Join(g.src, certstore.CertFile), s1.cert)
	g.pump()
	g.now()
	g.wantSerials()
	if !g.dir().deb.pending() {
		t.Fatal("the certificate without its key ended the debounce")
	}
	g.runUntil(g.at(1500 * time.Millisecond))
	mustWrite(t, filepath.Join(g.src, certstore.KeyFile), s1.key)
	g.pump()
	g.now()
	g.wantSerials(s1.serial)
	if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint([]time.Duration{1500 * time.Millisecond}) {
		t.Fatalf("applied at %v, want when the key landed (1.5s)", got)
	}
	if n := g.metric("tlsdock_rotations_total", "invalid"); n != 0 {
		t.Fatalf("the certificate without its key was reported invalid %v times", n)
	}
}

// TestWatchTruncatedChainWaits: a chain file seen while it is written,
// cut after its leaf, is not a valid shorter chain: the debounce waits
// for the rest, which is then applied at once.
func TestWatchTruncatedChainWaits(t *testing.T) {
	g := newRig(t)
	s0, s1 := g.issue(ServerValidity), g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.startWatching()

	// The key first (old certificate, new key: no match), then the
	// certificate file, leaf and CA, seen cut inside the CA's BEGIN line.
	g.runUntil(g.at(time.Second))
	mustWrite(t, filepath.Join(g.src, certstore.KeyFile), s1.key)
	chain := append(append([]byte{}, s1.cert...), s1.ca...)
	cut := len(s1.cert) + len("-----BEG")
	for _, n := range []int{len(s1.cert) / 2, cut} {
		mustWrite(t, filepath.Join(g.src, certstore.CertFile), chain[:n])
		g.pump()
		g.now()
		g.wantSerials()
		if !g.dir().deb.pending() {
			t.Fatalf("a chain file cut after %d bytes ended the debounce", n)
		}
	}
	g.runUntil(g.at(1500 * time.Millisecond))
	mustWrite(t, filepath.Join(g.src, certstore.CertFile), chain)
	g.pump()
	g.now()
	g.wantSerials(s1.serial)
	if got := g.callTimes(); fmt.Sprint(got) != fmt.Sprint([]time.Duration{1500 * time.Millisecond}) {
		t.Fatalf("applied at %v, want when the chain was whole (1.5s)", got)
	}
}

// BenchmarkSourceLoad is what looking at the source on every change costs:
// reading the three files with the trust checks and validating the set.
func BenchmarkSourceLoad(b *testing.B) {
	g := newRig(b)
	s0 := g.issue(ServerValidity)
	g.prepare(s0)
	d := g.dir()
	now := g.clock.Now()
	b.ResetTimer()
	for range b.N {
		if _, _, err := d.load(now); err != nil {
			b.Fatal(err)
		}
	}
}
