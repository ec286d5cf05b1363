package proxy

import "testing"

func TestCleanPath(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		err       bool
	}{
		{raw: "/_ping", want: "/_ping"},
		{raw: "/v1.41/containers/json", want: "/v1.41/containers/json"},
		{raw: "//containers//json", want: "/containers/json"},
		{raw: "/containers/json/", want: "/containers/json"},
		{raw: "/./containers/./json", want: "/containers/json"},
		{raw: "/v1.41/containers/../../secrets", want: "/secrets"},
		{raw: "/v1.41/containers/%2e%2e/%2E%2E/secrets", want: "/secrets"},
		{raw: "/containers%2Fcreate", want: "/containers/create"},
		{raw: "/containers%2fcreate", want: "/containers/create"},
		{raw: "/v1.41/%2e/containers/create", want: "/v1.41/containers/create"},
		{raw: "/../../../containers/create", want: "/containers/create"},
		{raw: "/containers/%252e%252e/x", want: "/containers/%2e%2e/x"}, // decoded once, as dockerd does
		{raw: "/images/docker.io%2Flibrary%2Fbusybox/json", want: "/images/docker.io/library/busybox/json"},
		{raw: "/", want: "/"},
		{raw: "/..", want: "/"},
		{raw: "", err: true},
		{raw: "containers/json", err: true},
		{raw: "*", err: true},
		{raw: "/containers/%zz", err: true},
		{raw: "/containers/%", err: true},
		{raw: "/containers/%00/json", err: true},
		{raw: "/containers/%0a/json", err: true},
		{raw: "/containers/\x7f", err: true},
		{raw: "/containers/%85/json", err: true},
		{raw: "/containers/\x85", err: true},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := CleanPath(tc.raw)
			if tc.err {
				if err == nil {
					t.Fatalf("CleanPath(%q) = %q, want an error", tc.raw, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CleanPath(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
			if again, _ := CleanPath(EscapePath(got)); again != got {
				t.Errorf("CleanPath(EscapePath(%q)) = %q: dockerd would see another path", got, again)
			}
		})
	}
}

func TestSplitVersion(t *testing.T) {
	for _, tc := range []struct{ p, version, rest string }{
		{"/v1.41/containers/json", "1.41", "/containers/json"},
		{"/v1.24/_ping", "1.24", "/_ping"},
		{"/v1/x", "1", "/x"},
		{"/v1.41", "1.41", "/"},
		{"/v../x", "..", "/x"}, // dockerd's pattern is [0-9.]+
		{"/volumes/create", "", "/volumes/create"},
		{"/v/x", "", "/v/x"},
		{"/v1a/x", "", "/v1a/x"},
		{"/V1.41/x", "", "/V1.41/x"},
		{"/_ping", "", "/_ping"},
		{"/v1.41/v1.40/containers/create", "1.41", "/v1.40/containers/create"},
	} {
		v, rest := SplitVersion(tc.p)
		if v != tc.version || rest != tc.rest {
			t.Errorf("SplitVersion(%q) = %q, %q; want %q, %q", tc.p, v, rest, tc.version, tc.rest)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		path    string
		want    bool
	}{
		{"/containers/json", "/containers/json", true},
		{"/containers/json", "/containers/json/x", false},
		{"/containers/*/logs", "/containers/web/logs", true},
		{"/containers/*/logs", "/containers/a/b/logs", true}, // like dockerd's {name:.*}
		{"/containers/*/logs", "/containers/logs", false},
		{"/containers/**", "/containers", true},
		{"/containers/**", "/containers/web/json", true},
		{"/containers/**", "/containersx", false},
		{"/**", "/", true},
		{"/**", "/anything/at/all", true},
		{"/*", "/", false},
		{"/images/**/json", "/images/docker.io/library/busybox/json", true},
		{"/images/**/json", "/images/json", true},
		{"/*/*/exec", "/containers/web/exec", true},
		{"/*/*/exec", "/exec", false},
	} {
		p, err := compilePattern(tc.pattern)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", tc.pattern, err)
		}
		if got := p.match(tc.path); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestCompilePatternErrors(t *testing.T) {
	for _, p := range []string{
		"", "containers/json", "/v1.41/containers/json", "/containers/../secrets", "/containers//json",
		"/containers/json/", "/containers/web*", "/containers/%2e", "/x?y=1",
		"/*/*/*/*/*/*/*/*/*",
	} {
		if _, err := compilePattern(p); err == nil {
			t.Errorf("compilePattern(%q) succeeded, want an error", p)
		}
	}
}
