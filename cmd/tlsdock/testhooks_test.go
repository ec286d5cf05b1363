package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pauseEnvName is spelled here, not taken from PauseEnv, which only test
// builds have.
const pauseEnvName = "TLSDOCK_TEST_PAUSE_AT"

// TestShippedBuildHasNoTestHook builds tlsdock as `make build` and `make
// package` do (no tags) and as test/e2e does (-tags tlsdock_testhooks):
// only the test build holds the hook's variable, so the shipped binary
// cannot be made to stop by its environment.
func TestShippedBuildHasNoTestHook(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tlsdock twice")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	dir := t.TempDir()
	build := func(name string, tags ...string) []byte {
		t.Helper()
		out := filepath.Join(dir, name)
		args := append([]string{"build", "-trimpath"}, tags...)
		cmd := exec.Command(goBin, append(args, "-o", out, ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
		}
		bin, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return bin
	}
	shipped := build("shipped")
	if bytes.Contains(shipped, []byte(pauseEnvName)) {
		t.Errorf("the shipped build holds %s: the test hook is compiled in", pauseEnvName)
	}
	hooked := build("hooked", "-tags", "tlsdock_testhooks")
	if !bytes.Contains(hooked, []byte(pauseEnvName)) {
		t.Errorf("the test build does not hold %s: this test proves nothing", pauseEnvName)
	}
	mv, err := exec.Command(goBin, "version", "-m", filepath.Join(dir, "hooked")).CombinedOutput()
	if err != nil || !strings.Contains(string(mv), "-tags=tlsdock_testhooks") {
		t.Errorf("go version -m of the test build does not show the tag (%v):\n%s", err, mv)
	}
}

// TestMakefileShipsWithoutTestHooks: the Makefile's build and package
// recipes, what users and the packages get, never pass the test tag, and
// the e2e suite's build does.
func TestMakefileShipsWithoutTestHooks(t *testing.T) {
	f, err := os.Open("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	target, builds := "", map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "\t") && !strings.ContainsAny(name, " =$") {
			target = name
			continue
		}
		if strings.HasPrefix(line, "\t") && strings.Contains(line, "$(GO) build") {
			builds[target] = append(builds[target], line)
		}
	}
	// The binaries that ship: no tags at all. The package's second build,
	// which only runs gen-docs and is removed, may have tlsdock_gendocs.
	for tg, out := range map[string]string{"build": "-o bin/tlsdock ", "package": "-o $(PKG_STAGE)/tlsdock "} {
		shipped := false
		for _, b := range builds[tg] {
			if strings.Contains(b, "tlsdock_testhooks") {
				t.Errorf("Makefile target %s builds with the test hooks: %s", tg, b)
			}
			if strings.Contains(b, out) {
				shipped = true
				if strings.Contains(b, "-tags") {
					t.Errorf("Makefile target %s builds the shipped binary with tags: %s", tg, b)
				}
			}
		}
		if !shipped {
			t.Errorf("Makefile: no go build %s… in target %s", out, tg)
		}
	}
	e2e, err := os.ReadFile("../../test/e2e/helpers_test.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(e2e, []byte(`"-tags", "tlsdock_testhooks"`)) {
		t.Error("test/e2e builds tlsdock without -tags tlsdock_testhooks: the crash tests cannot pause it")
	}
}
