package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/test/e2e/testhost"
)

// TestBenchQuick runs the benchmark program (make bench) in quick mode, one
// iteration of everything, and checks that it measured every row and
// printed the table. It asserts no timing: the figures of one quick run on
// shared CPUs mean little, and a missed target is a result, not a failure.
func TestBenchQuick(t *testing.T) {
	testhost.SkipUnlessEnabled(t)
	ctx := ctxFor(t, 15*time.Minute)
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	cmd := exec.CommandContext(ctx, "go", "run", "./test/e2e/bench", "-quick", "-out", out)
	cmd.Dir = "../.."
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	t.Logf("bench progress:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("go run ./test/e2e/bench -quick: %v\nstdout:\n%s", err, stdout)
	}
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(written) != string(stdout) {
		t.Errorf("the file written to -out differs from the table printed:\nfile:\n%s\nstdout:\n%s", written, stdout)
	}
	report := string(stdout)
	t.Logf("report:\n%s", report)

	for _, want := range []string{"**6. Proxy mode against native TLS, socat and nginx.**", "**quick**", "| CPU |", "| kernel |", "| Go |", "| dockerd | Docker version 20.10", "| date |"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	header := "| # | What | tlsdock | Baseline (recipe) | Ratio | Target | Result |"
	if !strings.Contains(report, header) {
		t.Fatalf("no table header %q", header)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(report, "\n") {
		if !strings.HasPrefix(line, "| ") || line == header {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) == 7 {
			rows[strings.TrimSpace(cells[0])] = cells
		}
	}
	results := []string{"met", "MISSED", "info"}
	for _, id := range []string{"1a", "1b", "2", "3a", "3b", "3c", "3d", "3e", "4", "5a", "5b", "5c", "6a", "6b", "6c", "6d", "6e"} {
		cells, ok := rows[id]
		if !ok {
			t.Errorf("row %s missing from the table", id)
			continue
		}
		result := strings.TrimSpace(cells[6])
		if result == "not measured: tlsdock run missing" && (id == "4" || strings.HasPrefix(id, "5")) {
			continue
		}
		if !slices.Contains(results, result) {
			t.Errorf("row %s: result %q, want one of %v", id, result, results)
		}
		for i, c := range cells[2:6] {
			if strings.TrimSpace(c) == "" {
				t.Errorf("row %s: column %d is empty", id, i+3)
			}
		}
		if strings.TrimSpace(cells[2]) == "—" {
			t.Errorf("row %s: no tlsdock figure", id)
		}
		// The proxy's rows compare with the other terminators measured in the same run.
		if id == "6a" || id == "6b" {
			for _, other := range []string{"native ", "nginx ", "socat "} {
				if !strings.Contains(cells[3], other) || strings.Contains(cells[3], other+"—") {
					t.Errorf("row %s: no %sfigure in %q", id, other, cells[3])
				}
			}
		}
		if id == "6c" && !strings.Contains(cells[3], "native ") {
			t.Errorf("row 6c: no native count in %q", cells[3])
		}
	}
}
