package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// The watched source is a trust boundary: the daemon does not start on a
// source that others can change, and never installs one that became so.

func TestRunRefusesUnsafeSourceAtStart(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, src string)
		want  []string
	}{
		{"group-writable source directory", func(t *testing.T, src string) { chmodT(t, src, 0o775) },
			[]string{"directory is writable by its group", "chmod go-w "}},
		{"key readable by others", func(t *testing.T, src string) { chmodT(t, filepath.Join(src, certstore.KeyFile), 0o644) },
			[]string{"key is readable by group or others", "chmod 0600 ", certstore.KeyFile}},
		{"source owned by another account", func(t *testing.T, src string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root: chown")
			}
			if err := os.Chown(src, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, []string{"not owned by root", "nobody (uid 65534)", "--allow-source-owner USER"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newRig(t)
			s1 := g.issue(ServerValidity)
			g.prepare(s1)
			tt.setup(t, g.src)
			err := g.r.Run(context.Background())
			var ie *InputError
			if !errors.Is(err, certstore.ErrUnsafeSource) || !errors.As(err, &ie) || ie.Field != "--certs" {
				t.Fatalf("Run = %v, want an --certs input error wrapping ErrUnsafeSource", err)
			}
			for _, w := range append(tt.want, "tlsdock run does not start") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if n := len(g.app.Calls()); n != 0 || slices.Contains(g.notes, "READY=1") {
				t.Fatalf("an unsafe source at start: %d applies, notes %q", n, g.notes)
			}
		})
	}
}

func TestRotationRefusesUnsafeSource(t *testing.T) {
	g := newRig(t)
	s0 := g.issue(ServerValidity)
	g.app.installed = s0.parsed(t)
	g.prepare(s0)
	g.start()

	// A new set arrives in a directory that became group-writable.
	g.runUntil(g.at(time.Second))
	s1 := g.issue(ServerValidity)
	chmodT(t, g.src, 0o775)
	g.writeSet(s1)
	g.runUntil(g.at(time.Minute))
	if n := len(g.app.Calls()); n != 0 {
		t.Fatalf("an unsafe source started the sequence %d times", n)
	}
	for _, want := range []string{"unsafe source " + g.src, "writable by its group", "chmod go-w", "serial " + s0.serial, "on SIGHUP"} {
		if !strings.Contains(g.app.lastError, want) {
			t.Fatalf("recorded error %q does not contain %q", g.app.lastError, want)
		}
	}
	if !strings.HasPrefix(g.notes[len(g.notes)-1], "STATUS=unsafe source "+g.src+": ") {
		t.Fatalf("last STATUS %q", g.notes[len(g.notes)-1])
	}
	if g.metric("tlsdock_validation_error", "") != 1 || g.metric("tlsdock_rotations_total", "invalid") != 1 {
		t.Fatal("metrics do not show the refused source")
	}
	if !strings.Contains(g.logs.String(), "the certificate source can be changed by others than root; not installing it") {
		t.Fatal("the refusal is not logged")
	}

	// Fixed (the chmod is an event): the set is installed, the error gone.
	chmodT(t, g.src, 0o755)
	g.dir().changed()
	g.runUntil(g.at(2 * time.Minute))
	if got := g.serials(); !slices.Equal(got, []string{s1.serial}) {
		t.Fatalf("applied %v, want [%s]", got, s1.serial)
	}
	if g.app.lastError != "" {
		t.Fatalf("error still recorded: %q", g.app.lastError)
	}

	// A key that became readable by others is refused too.
	g.clock.Set(g.at(5 * time.Minute))
	s2 := g.issue(ServerValidity)
	g.writeSet(s2)
	chmodT(t, filepath.Join(g.src, certstore.KeyFile), 0o640)
	g.runUntil(g.at(10 * time.Minute))
	if n := len(g.app.Calls()); n != 1 {
		t.Fatalf("a group-readable key was installed (%d applies)", n)
	}
	if !strings.Contains(g.app.lastError, "key is readable by group or others") {
		t.Fatalf("recorded error %q", g.app.lastError)
	}
}

func TestAllowSourceOwnerWarns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown")
	}
	g := newRig(t, func(c *RunConfig, _ *RunOptions) { c.AllowSourceOwner = "nobody" })
	s1 := g.issue(ServerValidity)
	g.prepare(s1)
	for _, p := range []string{g.src, filepath.Join(g.src, certstore.CAFile), filepath.Join(g.src, certstore.CertFile), filepath.Join(g.src, certstore.KeyFile)} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	chmodT(t, g.src, 0o775)
	if err := g.r.checkSource(); err != nil {
		t.Fatalf("the allowed account's source: %v", err)
	}
	g.start()
	if got := g.serials(); !slices.Equal(got, []string{s1.serial}) {
		t.Fatalf("applied %v, want [%s]", got, s1.serial)
	}
	want := "warning: allow-source-owner nobody: account uid 65534 (group gid 65534) may write the certificate source " + g.src
	if !strings.Contains(g.logs.String(), want) {
		t.Errorf("no warning at start in the log:\n%s", g.logs)
	}
	if last := g.notes[len(g.notes)-1]; !strings.Contains(last, want) {
		t.Errorf("STATUS does not carry the warning: %q", last)
	}
	if !strings.Contains(g.app.lastError, want) {
		t.Errorf("status (recorded) does not carry the warning: %q", g.app.lastError)
	}

	// Another account's file is still refused.
	g.clock.Set(g.at(time.Minute))
	if err := os.Chown(filepath.Join(g.src, certstore.CAFile), 1, 1); err != nil {
		t.Fatal(err)
	}
	g.dir().changed()
	g.runUntil(g.at(2 * time.Minute))
	if !strings.Contains(g.app.lastError, "is owned neither by root nor by nobody") {
		t.Errorf("recorded error %q", g.app.lastError)
	}
}

func TestConfigSourceTrust(t *testing.T) {
	c := Defaults()
	c.Certs = "/etc/tlsdock/certs"
	if tr, err := c.SourceTrust(); err != nil || tr.Owner != nil || c.SourceWarning() != "" {
		t.Fatalf("no opt-in: %+v, %v, %q", tr, err, c.SourceWarning())
	}
	c.AllowSourceOwner = "nobody:daemon"
	tr, err := c.SourceTrust()
	if err != nil || tr.Owner == nil || tr.Owner.UID != 65534 || tr.Owner.GID != 1 {
		t.Fatalf("nobody:daemon: %+v, %v", tr.Owner, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := c.SourceWarning(); !strings.HasPrefix(w, "warning: allow-source-owner nobody:daemon: account uid 65534 (group gid 1)") {
		t.Errorf("warning %q", w)
	}
	c.Certs, c.Generate = "", true
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--allow-source-owner: applies only with --certs") {
		t.Errorf("with --generate: %v", err)
	}
}

func chmodT(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
