package proxy

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// fuzzPolicy denies /secrets and everything under it, and container
// creation, to everyone; everything else is allowed.
var fuzzPolicy = func() *Policy {
	p, err := ParsePolicy([]byte(`{"default":"allow","rules":[
		{"name":"secrets","paths":["/secrets/**"],"action":"deny"},
		{"name":"create","methods":["POST"],"paths":["/containers/create"],"action":"deny"},
		{"name":"exec","methods":["POST"],"paths":["/containers/*/exec"],"action":"deny"}
	]}`), "fuzz")
	if err != nil {
		panic(err)
	}
	return p
}()

// dockerdRoute is what dockerd's router sees for a request target,
// computed independently of the proxy: net/http decodes the path once,
// gorilla/mux cleans it (keeping a trailing slash), the version prefix is
// optional.
func dockerdRoute(target string) (string, bool) {
	u, err := url.ParseRequestURI(target)
	if err != nil || u.Path == "" || u.Path[0] != '/' {
		return "", false
	}
	p := path.Clean(u.Path)
	_, rest := SplitVersion(p)
	return rest, true
}

// FuzzMatch checks the path normalisation and matching: it never panics,
// the normalised path is clean, dockerd routes exactly the path the policy
// saw, and a request whose path dockerd would route to a denied endpoint is
// denied.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{
		"/_ping", "/v1.41/containers/json", "/v1.41/containers/../../secrets", "/v1.41/containers/%2e%2e/%2e%2e/secrets",
		"/containers%2Fcreate", "//containers//create/", "/v1.41/./containers/create", "/secrets%2F..%2Fsecrets",
		"/v1.41/secrets?x=1", "/v../secrets", "/v1.41/v1.41/secrets", "/containers/a%2Fb/exec", "/%2e%2e/secrets",
		"/containers/%00", "/a/b/../../../../secrets/x", "/v1.41%2Fcontainers/create", "/containers/create%3F",
	} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
	}
	methods := []string{"GET", "POST", "HEAD", "DELETE"}
	f.Fuzz(func(t *testing.T, target string, m uint8) {
		method := methods[int(m)%len(methods)]
		// What the proxy does with a request line: net/http parses the
		// target, the proxy cleans the decoded path.
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		clean, err := cleanDecoded(u.Path)
		if err != nil {
			if _, cerr := CleanPath(u.EscapedPath()); cerr == nil {
				t.Fatalf("cleanDecoded(%q) failed (%v) but CleanPath of its escaped form did not", u.Path, err)
			}
			return
		}
		if !strings.HasPrefix(clean, "/") || path.Clean(clean) != clean || strings.Contains(clean, "//") ||
			strings.Contains(clean+"/", "/./") || strings.Contains(clean+"/", "/../") {
			t.Fatalf("normalised path %q of %q is not clean", clean, target)
		}
		for i := 0; i < len(clean); i++ {
			if clean[i] < 0x20 || clean[i] == 0x7f {
				t.Fatalf("normalised path %q holds a control character", clean)
			}
		}
		if again, err := cleanDecoded(clean); err != nil || again != clean {
			t.Fatalf("normalisation is not idempotent on %q: %q, %v", clean, again, err)
		}
		if again, err := CleanPath(EscapePath(clean)); err != nil || again != clean {
			t.Fatalf("CleanPath(EscapePath(%q)) = %q, %v", clean, again, err)
		}
		// The proxy forwards EscapePath(clean): dockerd must route exactly
		// the path the policy saw.
		fwd := EscapePath(clean)
		routed, ok := dockerdRoute(fwd)
		if _, want := SplitVersion(clean); !ok || routed != want {
			t.Fatalf("target %q: policy saw %q but dockerd routes %q (forwarded %q)", target, want, routed, fwd)
		}
		// A target that dockerd would route to a denied endpoint is denied.
		d := fuzzPolicy.Decide(Identity{User: "u"}, method, clean, false)
		orig, ok := dockerdRoute(target)
		if !ok {
			return
		}
		denied := orig == "/secrets" || strings.HasPrefix(orig, "/secrets/") ||
			(method == "POST" && orig == "/containers/create") ||
			(method == "POST" && strings.HasPrefix(orig, "/containers/") && strings.HasSuffix(orig, "/exec") && len(orig) > len("/containers//exec"))
		if denied && d.Allow {
			t.Fatalf("%s %q reaches dockerd as %q but was allowed by %q", method, target, orig, d.Rule)
		}
	})
}
