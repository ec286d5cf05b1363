package daemonjson

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var testTLS = TLS{
	Hosts:  []string{"fd://", "tcp://0.0.0.0:2376"},
	CACert: "/etc/docker/ssl/ca.pem",
	Cert:   "/etc/docker/ssl/server-cert.pem",
	Key:    "/etc/docker/ssl/server-key.pem",
}

// renderCases are also the seeds of FuzzParseRender.
var renderCases = []struct {
	name string
	in   string
	want string // Render after SetTLS(testTLS)
}{
	{
		name: "no file",
		in:   "",
		want: `{
  "tls": true,
  "tlsverify": true,
  "tlscacert": "/etc/docker/ssl/ca.pem",
  "tlscert": "/etc/docker/ssl/server-cert.pem",
  "tlskey": "/etc/docker/ssl/server-key.pem",
  "hosts": [
    "fd://",
    "tcp://0.0.0.0:2376"
  ]
}
`,
	},
	{
		name: "user keys keep order and values",
		in:   `{"log-driver":"journald","storage-driver":"overlay2","registry-mirrors":["https://mirror.example.com","https://m2.example.com"],"x-custom":{"nested":1,"z":[],"a":{}},"x-escaped":"<a&b> \u00e9 \/ \"q\""}`,
		want: `{
  "log-driver": "journald",
  "storage-driver": "overlay2",
  "registry-mirrors": [
    "https://mirror.example.com",
    "https://m2.example.com"
  ],
  "x-custom": {
    "nested": 1,
    "z": [],
    "a": {}
  },
  "x-escaped": "<a&b> \u00e9 \/ \"q\"",
  "tls": true,
  "tlsverify": true,
  "tlscacert": "/etc/docker/ssl/ca.pem",
  "tlscert": "/etc/docker/ssl/server-cert.pem",
  "tlskey": "/etc/docker/ssl/server-key.pem",
  "hosts": [
    "fd://",
    "tcp://0.0.0.0:2376"
  ]
}
`,
	},
	{
		name: "existing hosts and tlsverify keep their positions",
		in: "{\n    \"hosts\": [\"tcp://0.0.0.0:2375\"],\n\t\"debug\": true,\r\n    \"tlsverify\": false,\n" +
			"    \"tlskey\": \"/old/key.pem\"\n}\n",
		want: `{
  "hosts": [
    "fd://",
    "tcp://0.0.0.0:2376"
  ],
  "debug": true,
  "tlsverify": true,
  "tlskey": "/etc/docker/ssl/server-key.pem",
  "tls": true,
  "tlscacert": "/etc/docker/ssl/ca.pem",
  "tlscert": "/etc/docker/ssl/server-cert.pem"
}
`,
	},
	{
		name: "numbers verbatim",
		in:   `{"max-concurrent-downloads": 1e3, "x-big": 123456789012345678901234567890, "x-float": 1.50, "x-neg": -0.0E-0, "x-list": [1E+2, 9007199254740993]}`,
		want: `{
  "max-concurrent-downloads": 1e3,
  "x-big": 123456789012345678901234567890,
  "x-float": 1.50,
  "x-neg": -0.0E-0,
  "x-list": [
    1E+2,
    9007199254740993
  ],
  "tls": true,
  "tlsverify": true,
  "tlscacert": "/etc/docker/ssl/ca.pem",
  "tlscert": "/etc/docker/ssl/server-cert.pem",
  "tlskey": "/etc/docker/ssl/server-key.pem",
  "hosts": [
    "fd://",
    "tcp://0.0.0.0:2376"
  ]
}
`,
	},
	{
		name: "already provisioned is unchanged",
		in: `{
  "tls": true,
  "tlsverify": true,
  "tlscacert": "/etc/docker/ssl/ca.pem",
  "tlscert": "/etc/docker/ssl/server-cert.pem",
  "tlskey": "/etc/docker/ssl/server-key.pem",
  "hosts": [
    "fd://",
    "tcp://0.0.0.0:2376"
  ]
}
`,
		want: `{
  "tls": true,
  "tlsverify": true,
  "tlscacert": "/etc/docker/ssl/ca.pem",
  "tlscert": "/etc/docker/ssl/server-cert.pem",
  "tlskey": "/etc/docker/ssl/server-key.pem",
  "hosts": [
    "fd://",
    "tcp://0.0.0.0:2376"
  ]
}
`,
	},
}

func TestRenderAfterSetTLS(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			before := d.Clone()
			if err := SetTLS(d, testTLS); err != nil {
				t.Fatalf("SetTLS: %v", err)
			}
			got := string(d.Render())
			if got != tc.want {
				t.Errorf("Render mismatch\n--- got\n%s--- want\n%s", got, tc.want)
			}
			// Round trip: the rendered text parses back to the same document
			// and renders identically.
			back, err := Parse([]byte(got))
			if err != nil {
				t.Fatalf("Parse(Render): %v", err)
			}
			if !back.Equal(d) {
				t.Errorf("Parse(Render(d)) != d")
			}
			if again := string(back.Render()); again != got {
				t.Errorf("Render not stable\n--- first\n%s--- second\n%s", got, again)
			}
			// Clone taken before SetTLS was not affected.
			if tc.in != tc.want && before.Equal(d) {
				t.Errorf("Clone shares state with the original")
			}
			if tc.in == tc.want && !before.Equal(d) {
				t.Errorf("SetTLS changed an already provisioned document")
			}
		})
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name string
		doc  func() *Doc
		want string
	}{
		{"zero value", func() *Doc { return &Doc{} }, "{}\n"},
		{"nil", func() *Doc { return nil }, "{}\n"},
		{"set html and unicode unescaped", func() *Doc {
			d := &Doc{}
			mustSet(t, d, "x-html", "a<b>&c é")
			mustSet(t, d, "x-raw", json.RawMessage(` { "b" : [ 1 , 2 ] } `))
			mustSet(t, d, "x-null", nil)
			return d
		}, `{
  "x-html": "a<b>&c é",
  "x-raw": {
    "b": [
      1,
      2
    ]
  },
  "x-null": null
}
`},
		{"nested indentation normalised", func() *Doc {
			d, err := Parse([]byte("{\"a\":{\n\t\t\"b\":   [ {\"c\" :true} ,\n null ]   }}"))
			if err != nil {
				t.Fatal(err)
			}
			return d
		}, `{
  "a": {
    "b": [
      {
        "c": true
      },
      null
    ]
  }
}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.doc().Render()); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func mustSet(t *testing.T, d *Doc, key string, v any) {
	t.Helper()
	if err := d.Set(key, v); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

// parseErrorCases are also seeds of FuzzParseRender.
var parseErrorCases = []struct {
	name string
	in   string
	want []string // substrings of the error
}{
	{"invalid JSON", "{\n  \"debug\": true,\n  \"hosts\": [\"fd://\",]\n}", []string{"invalid JSON at line 3, column 21", "invalid character ']'"}},
	{"missing comma", "{\"a\": 1\n \"b\": 2}", []string{"invalid JSON at line 2, column 2", "after object key:value pair"}},
	{"unclosed object", "{\"a\": [1, 2]", []string{"invalid JSON: unexpected end of input at line 1, column 13"}},
	{"unclosed string", "{\"a\": \"é", []string{"unexpected end of input at line 1, column 9"}},
	{"column counts characters", "{\"é\": x}", []string{"line 1, column 7", "invalid character 'x'"}},
	{"array at top level", `["tcp://0.0.0.0:2376"]`, []string{"must be a JSON object, found array"}},
	{"string at top level", ` "x" `, []string{"must be a JSON object, found string"}},
	{"null at top level", `null`, []string{"must be a JSON object, found null"}},
	{"number at top level", `12`, []string{"must be a JSON object, found number"}},
	{"duplicate key", "{\n  \"hosts\": [],\n  \"debug\": true,\n  \"hosts\": [\"fd://\"]\n}", []string{`key "hosts" appears twice (lines 2 and 4); remove one of them`}},
	{"duplicate key escaped", `{"hosts": [], "\u0068osts": 1}`, []string{`key "hosts" appears twice (on line 1)`}},
	{"trailing garbage", "{\"a\": 1}\n x", []string{"unexpected data after the top-level object at line 2, column 2"}},
	{"second object", `{} {}`, []string{"unexpected data after the top-level object at line 1, column 4"}},
	{"extra brace", `{"a":1}}`, []string{"unexpected data after the top-level object at line 1, column 8"}},
	{"byte order mark", "\xef\xbb\xbf{}", []string{"byte order mark"}},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range parseErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tc.in, d.Render())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		keys []string
	}{
		{"empty", "", []string{}},
		{"whitespace only", " \n\t\r\n", []string{}},
		{"empty object", " {} \n", []string{}},
		{"order kept", `{"z":1,"a":2,"m":{"z":0,"a":1}}`, []string{"z", "a", "m"}},
		{"nested duplicates left alone", `{"log-opts":{"max-size":"1m","max-size":"2m"}}`, []string{"log-opts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Keys(); !reflect.DeepEqual(got, tc.keys) {
				t.Errorf("Keys() = %q, want %q", got, tc.keys)
			}
		})
	}
}

func TestGetSetDelete(t *testing.T) {
	d, err := Parse([]byte(`{"a": 1, "b": [ 2 ], "c": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := d.Get("b"); !ok || string(v) != "[ 2 ]" {
		t.Errorf(`Get("b") = %q, %v; want "[ 2 ]", true`, v, ok)
	}
	if v, ok := d.Get("nope"); ok || v != nil {
		t.Errorf(`Get("nope") = %q, %v; want nil, false`, v, ok)
	}
	v, _ := d.Get("a")
	v[0] = '9' // must not write through
	if v2, _ := d.Get("a"); string(v2) != "1" {
		t.Errorf("Get returned an alias: a = %s", v2)
	}
	mustSet(t, d, "b", "x")
	mustSet(t, d, "d", false)
	if !d.Delete("a") || d.Delete("a") {
		t.Errorf("Delete(a) should succeed once")
	}
	if got, want := d.Keys(), []string{"b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Keys() = %q, want %q", got, want)
	}
	if got, want := string(d.Render()), "{\n  \"b\": \"x\",\n  \"c\": 3,\n  \"d\": false\n}\n"; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	if err := d.Set("x", func() {}); err == nil || !strings.Contains(err.Error(), `setting "x"`) {
		t.Errorf("Set(func) error = %v", err)
	}
	if err := d.Set("bad\xff", 1); err == nil {
		t.Errorf("Set with invalid UTF-8 key: no error")
	}
	if got, want := d.Keys(), []string{"b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("failed Set changed keys: %q", got)
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`{"a":[1,2],"b":{"x":1,"y":2}}`, "{ \"a\" : [ 1, 2 ],\n \"b\": {\"y\":2, \"x\":1} }", true},
		{`{"a":"\u0041\/"}`, `{"a":"A/"}`, true},
		{`{"a":1,"b":2}`, `{"b":2,"a":1}`, false},
		{`{"a":1}`, `{"a":1,"b":2}`, false},
		{`{"a":1000}`, `{"a":1e3}`, false},
		{`{"a":123456789012345678901234567890}`, `{"a":123456789012345678901234567891}`, false},
		{`{"a":true}`, `{"a":"true"}`, false},
		{``, `{}`, true},
	}
	for _, tc := range tests {
		a, err := Parse([]byte(tc.a))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Parse([]byte(tc.b))
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Equal(b); got != tc.want {
			t.Errorf("Equal(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := b.Equal(a); got != tc.want {
			t.Errorf("Equal(%s, %s) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
	var nilDoc *Doc
	if !nilDoc.Equal(&Doc{}) || !(&Doc{}).Equal(nil) {
		t.Errorf("nil Doc should equal an empty one")
	}
}

func TestTypedGetters(t *testing.T) {
	d, err := Parse([]byte(`{
  "hosts": ["fd://", "tcp://0.0.0.0:2376"],
  "tlsverify": true, "tls": false, "debug": null, "live-restore": "yes",
  "tlscacert": "/ca.pem", "tlscert": 5, "tlskey": null,
  "h-string": "tcp://0.0.0.0:2375", "h-mixed": ["fd://", 2376], "h-null": null, "h-empty": []
}`))
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := d.Hosts()
	if err != nil || !reflect.DeepEqual(hosts, []string{"fd://", "tcp://0.0.0.0:2376"}) {
		t.Errorf("Hosts() = %q, %v", hosts, err)
	}
	for _, tc := range []struct {
		raw     string
		want    []string
		wantErr string
	}{
		{`"tcp://0.0.0.0:2375"`, nil, `daemon.json key "hosts" must be an array of strings, found string "tcp://0.0.0.0:2375"`},
		{`["fd://", 2376]`, nil, `daemon.json key "hosts" must be an array of strings, found number 2376 at index 1`},
		{`{"a":1}`, nil, `daemon.json key "hosts" must be an array of strings, found object`},
		{`null`, nil, ""},
		{`[]`, []string{}, ""},
	} {
		d := &Doc{}
		mustSet(t, d, "hosts", json.RawMessage(tc.raw))
		got, err := d.Hosts()
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("hosts=%s: error %v, want %q", tc.raw, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("hosts=%s: Hosts() = %#v, %v; want %#v", tc.raw, got, err, tc.want)
		}
	}
	if got, err := (&Doc{}).Hosts(); got != nil || err != nil {
		t.Errorf("absent hosts: %q, %v", got, err)
	}

	for _, tc := range []struct {
		key            string
		value, present bool
		wantErr        string
	}{
		{"tlsverify", true, true, ""},
		{"tls", false, true, ""},
		{"debug", false, true, ""},
		{"missing", false, false, ""},
		{"live-restore", false, true, `daemon.json key "live-restore" must be true or false, found string "yes"`},
		{"hosts", false, true, `daemon.json key "hosts" must be true or false, found array`},
	} {
		v, p, err := d.Bool(tc.key)
		if v != tc.value || p != tc.present || errString(err) != tc.wantErr {
			t.Errorf("Bool(%q) = %v, %v, %v; want %v, %v, %q", tc.key, v, p, err, tc.value, tc.present, tc.wantErr)
		}
	}
	for _, tc := range []struct {
		key, value string
		present    bool
		wantErr    string
	}{
		{"tlscacert", "/ca.pem", true, ""},
		{"tlskey", "", true, ""},
		{"missing", "", false, ""},
		{"tlscert", "", true, `daemon.json key "tlscert" must be a string, found number 5`},
	} {
		v, p, err := d.String(tc.key)
		if v != tc.value || p != tc.present || errString(err) != tc.wantErr {
			t.Errorf("String(%q) = %q, %v, %v; want %q, %v, %q", tc.key, v, p, err, tc.value, tc.present, tc.wantErr)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("missing", func(t *testing.T) {
		d, exists, err := Load(filepath.Join(dir, "nope.json"))
		if err != nil || exists || d == nil || len(d.Keys()) != 0 {
			t.Errorf("Load = %v, %v, %v; want empty doc, false, nil", d, exists, err)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		d, exists, err := Load(write("empty.json", "\n"))
		if err != nil || !exists || len(d.Keys()) != 0 {
			t.Errorf("Load = %v, %v, %v; want empty doc, true, nil", d, exists, err)
		}
	})
	t.Run("valid", func(t *testing.T) {
		d, exists, err := Load(write("ok.json", `{"b":1,"a":2}`))
		if err != nil || !exists || !reflect.DeepEqual(d.Keys(), []string{"b", "a"}) {
			t.Errorf("Load = %v, %v, %v", d, exists, err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		p := write("bad.json", "[1]")
		_, exists, err := Load(p)
		want := "reading " + p + ": top level must be a JSON object, found array; fix the file or move it away; tlsdock changed nothing"
		if !exists || errString(err) != want {
			t.Errorf("Load error = %v, exists %v; want %q", err, exists, want)
		}
	})
	t.Run("too large", func(t *testing.T) {
		p := write("big.json", `{"x":"`+strings.Repeat("a", MaxFileSize)+`"}`)
		_, _, err := Load(p)
		want := "reading " + p + ": file is larger than 1 MiB"
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "tlsdock changed nothing") {
			t.Errorf("Load error = %v, want prefix %q", err, want)
		}
	})
	t.Run("directory", func(t *testing.T) {
		p := filepath.Join(dir, "sub")
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		_, _, err := Load(p)
		if err == nil || !strings.HasPrefix(err.Error(), "reading "+p+": not a regular file") {
			t.Errorf("Load error = %v", err)
		}
	})
	t.Run("unreadable parent", func(t *testing.T) {
		p := filepath.Join(write("file", "x"), "daemon.json") // parent is a file
		_, _, err := Load(p)
		if err == nil || !strings.HasPrefix(err.Error(), "reading "+p+": ") {
			t.Errorf("Load error = %v", err)
		}
	})
}
