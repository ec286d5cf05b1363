package daemonjson

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzParseRender checks that every document Parse accepts renders without
// panicking, parses back to an equal document with the same key order, and
// renders identically the second time.
func FuzzParseRender(f *testing.F) {
	for _, tc := range renderCases {
		f.Add([]byte(tc.in))
		f.Add([]byte(tc.want))
	}
	for _, tc := range parseErrorCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`{"a":{"b":[1,{"c":null}],"d":"\ud83d\ude00"},"e":-1.5e-300}`))
	f.Add([]byte("{\"\xff\":\"\xfe\"}"))

	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		out := d.Render()
		if !bytes.HasSuffix(out, []byte("\n")) {
			t.Fatalf("Render output lacks a trailing newline: %q", out)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Render(d)) failed: %v\ninput: %q\nrendered: %q", err, data, out)
		}
		if !back.Equal(d) {
			t.Fatalf("Parse(Render(d)) != d\ninput: %q\nrendered: %q", data, out)
		}
		if !slices.Equal(back.Keys(), d.Keys()) {
			t.Fatalf("key order changed: %q -> %q", d.Keys(), back.Keys())
		}
		if again := back.Render(); !bytes.Equal(again, out) {
			t.Fatalf("Render not stable:\n%q\n%q", out, again)
		}
		c := d.Clone()
		if err := SetTLS(c, testTLS); err != nil {
			t.Fatalf("SetTLS: %v", err)
		}
		if _, err := Parse(c.Render()); err != nil {
			t.Fatalf("Parse(Render(SetTLS(d))): %v", err)
		}
		if got := Conflicts(d, []string{"-H", "fd://", "$DOCKER_OPTS"}); len(got) > 1 || len(got) == 1 && got[0] != "hosts" {
			t.Fatalf("Conflicts(-H fd://) = %q, want at most [hosts]", got)
		}
	})
}
