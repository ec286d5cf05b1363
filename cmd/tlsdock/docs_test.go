//go:build tlsdock_gendocs

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenDocs(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	code, _, stderr := run(t, t.TempDir(), "gen-docs", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := map[string]string{
		"completions/tlsdock.bash": "__start_tlsdock",
		"completions/_tlsdock":     "#compdef tlsdock",
		"completions/tlsdock.fish": "complete -c tlsdock",
		"man/tlsdock.1":            `.TH "TLSDOCK" "1" "Nov 2023"`,
		"man/tlsdock-provision.1":  "--generate",
		"man/tlsdock-config.1":     "not configured",
	}
	for name, s := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), s) {
			t.Errorf("%s does not contain %q", name, s)
		}
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "man", "*gen-docs*"))
	if len(pages) > 0 {
		t.Errorf("the hidden gen-docs command has man pages: %v", pages)
	}
	if _, out, _ := run(t, t.TempDir(), "--help"); strings.Contains(out, "gen-docs") {
		t.Error("--help lists the hidden gen-docs command")
	}
}

func TestGenDocsNeedsDir(t *testing.T) {
	if code, _, stderr := run(t, t.TempDir(), "gen-docs"); code == 0 || !strings.Contains(stderr, "dir") {
		t.Fatalf("exit %d, stderr %q: want a failure naming --dir", code, stderr)
	}
}
