package proxy

import (
	"os"
	"path"
	"strings"
	"testing"
)

func TestGuardCompile(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    Guard
		want string // "" compiles; else a substring of the error
	}{
		{"empty", Guard{}, ""},
		{"roots and endpoints", Guard{BindRoots: []string{"/srv/ci/"}, AllowEndpoints: []string{"/plugins/**", "/build"}, MinAPIVersion: "1.44"}, ""},
		{"relative root", Guard{BindRoots: []string{"srv"}}, "not an absolute path"},
		{"endpoint with version", Guard{AllowEndpoints: []string{"/v1.41/plugins/**"}}, "allow_endpoints"},
		{"endpoint not clean", Guard{AllowEndpoints: []string{"/plugins/"}}, "allow_endpoints"},
		{"endpoint relative", Guard{AllowEndpoints: []string{"plugins"}}, "allow_endpoints"},
		{"version below 1.24", Guard{MinAPIVersion: "1.23"}, "use 1.24 or newer"},
		{"version malformed", Guard{MinAPIVersion: "latest"}, "min_api_version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			err := g.compile()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if g.minVersion == "" || (g.MinAPIVersion == "" && g.minVersion != DefaultMinAPIVersion) {
					t.Fatalf("minVersion %q", g.minVersion)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestResolveExisting(t *testing.T) {
	// /srv/link -> /data; /data/a exists.
	resolve := func(p string) (string, error) {
		if p == "/srv/link" || strings.HasPrefix(p, "/srv/link/") {
			p = path.Join("/data", strings.TrimPrefix(p, "/srv/link"))
		}
		switch p {
		case "/", "/srv", "/data", "/data/a":
			return p, nil
		}
		return "", os.ErrNotExist
	}
	for in, want := range map[string]string{
		"/srv/link/a":       "/data/a",
		"/srv/link/a/new/x": "/data/a/new/x",
		"/srv/new":          "/srv/new",
		"/nope/x":           "/nope/x",
	} {
		if got, err := resolveExisting(in, resolve); err != nil || got != want {
			t.Errorf("resolveExisting(%s) = %q %v, want %q", in, got, err, want)
		}
	}
}
