package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	if !strings.Contains(report, benchHeader) {
		t.Fatalf("no table header %q", benchHeader)
	}
	rows := tableRows(report)
	results := []string{"met", "MISSED", "info"}
	for _, id := range []string{"1a", "1b", "2", "3a", "3b", "3c", "3d", "3e", "4", "5a", "5b", "5c", "6a", "6b", "6b'", "6c", "6d", "6e", "6f"} {
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
		if id == "6a" || id == "6b" || id == "6b'" {
			for _, other := range []string{"native ", "nginx ", "socat "} {
				if id == "6b'" && other == "socat " {
					continue // socat 1.7.4 may refuse the X25519-only client: checked below
				}
				if !strings.Contains(cells[3], other) || strings.Contains(cells[3], other+"—") {
					t.Errorf("row %s: no %sfigure in %q", id, other, cells[3])
				}
			}
		}
		if id == "6c" {
			checkRotationRow(t, cells)
		}
	}
	checkNegotiated(t, rows)
}

// checkRotationRow checks that row 6c has both native hosts, Debian 12's
// dockerd 20.10 and Debian 13's 26.1, each with its rotation and its bare
// restart under the same load, and what each rotation adds over its bare
// restart.
func checkRotationRow(t *testing.T, cells []string) {
	t.Helper()
	s := sides(cells[3])
	if len(s) != 2 {
		t.Errorf("row 6c: %d native sides in %q, want 2", len(s), cells[3])
		return
	}
	for i, want := range []string{"native (bookworm, dockerd 20.10.", "native (trixie, dockerd 26.1."} {
		if !strings.HasPrefix(s[i], want) {
			t.Errorf("row 6c: side %q, want it to start with %q", s[i], want)
		}
		for _, part := range []string{" rotation ", ", bare restart "} {
			if !strings.Contains(s[i], part) || strings.Contains(s[i], part+"—") {
				t.Errorf("row 6c: no%scount in %q", part, s[i])
			}
		}
	}
	for _, want := range []string{"rotation − bare restart (medians): bookworm ", ", trixie "} {
		if !strings.Contains(cells[4], want) || strings.Contains(cells[4], want+"—") {
			t.Errorf("row 6c: ratio %q lacks %q", cells[4], want)
		}
	}
}

// benchHeader is the header of the bench's table.
const benchHeader = "| # | What | tlsdock | Baseline (recipe) | Ratio | Target | Result |"

// tableRows are the cells of the report's table rows, by id.
func tableRows(report string) map[string][]string {
	rows := map[string][]string{}
	for _, line := range strings.Split(report, "\n") {
		if !strings.HasPrefix(line, "| ") || line == benchHeader {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) == 7 {
			rows[strings.TrimSpace(cells[0])] = cells
		}
	}
	return rows
}

// kxCipher is a key exchange and cipher suite as the bench names them,
// such as "X25519MLKEM768, TLS_AES_128_GCM_SHA256".
var kxCipher = regexp.MustCompile(`\b(X25519MLKEM768|SecP256r1MLKEM768|SecP384r1MLKEM1024|X25519|P-256|P-384|P-521), TLS_[A-Z0-9_]+\b`)

// sides splits a cell into its sides ("native …; nginx …") at the "; "
// outside parentheses.
func sides(cell string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(cell); i++ {
		switch {
		case cell[i] == '(':
			depth++
		case cell[i] == ')':
			depth--
		case depth == 0 && strings.HasPrefix(cell[i:], "; "):
			out = append(out, cell[start:i])
			start = i + 2
		}
	}
	return append(out, cell[start:])
}

// checkNegotiated checks that every TLS row names, for each side, the key
// exchange and cipher suite its connections negotiated; that the rows
// with CPU per operation give it for each side; and that 6b (the default
// client) and 6b' (the client restricted to X25519) show what their client
// offered: the proxy, a Go server, takes the X25519MLKEM768 hybrid in 6b
// and X25519 in 6b'.
func checkNegotiated(t *testing.T, rows map[string][]string) {
	t.Helper()
	cpuRows := map[string]string{"3a": "CPU per handshake: ", "3d": "CPU per request: ", "3e": "CPU per request: ", "6b": "CPU per handshake: ", "6b'": "CPU per handshake: "}
	for _, id := range []string{"3a", "3b", "3c", "3d", "3e", "6a", "6b", "6b'", "6c", "6f"} {
		cells, ok := rows[id]
		if !ok {
			continue // reported above
		}
		for _, side := range append([]string{cells[2]}, sides(cells[3])...) {
			if id == "6b'" && strings.Contains(side, "refused every connection") {
				if !strings.HasPrefix(side, "socat") {
					t.Errorf("row 6b': %q refused the X25519-only client", side)
				}
				continue
			}
			m := kxCipher.FindStringSubmatch(side)
			if m == nil {
				t.Errorf("row %s: %q names no key exchange and cipher suite", id, side)
				continue
			}
			if per, ok := cpuRows[id]; ok && (!strings.Contains(side, per) || strings.Contains(side, per+"—")) {
				t.Errorf("row %s: %q gives no %q", id, side, per)
			}
			if id == "6b'" && m[1] != "X25519" {
				t.Errorf("row 6b': %q negotiated %s with a client that offers X25519 only", side, m[1])
			}
		}
		if (id == "6b" || id == "6b'") && !strings.Contains(cells[4], "CPU per handshake") {
			t.Errorf("row %s: ratio %q has no CPU per handshake", id, cells[4])
		}
	}
	if cells, ok := rows["6b"]; ok {
		if m := kxCipher.FindStringSubmatch(cells[2]); m == nil || m[1] != "X25519MLKEM768" {
			t.Errorf("row 6b: the proxy negotiated %v with Go's default client, want X25519MLKEM768", m)
		}
	}
	if cells, ok := rows["6b'"]; ok && !strings.Contains(cells[3], "socat ") {
		t.Errorf("row 6b': nothing about socat in %q", cells[3])
	}
}
