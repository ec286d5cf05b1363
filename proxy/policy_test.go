package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	admin    = Identity{User: "admin", Serial: "1"}
	readOnly = Identity{User: "bob", Groups: []string{"read-only"}, Serial: "2"}
)

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	for _, tc := range []struct {
		id     Identity
		method string
		path   string
		allow  bool
		rule   string
	}{
		{admin, "POST", "/v1.41/containers/create", true, "full-access"},
		{admin, "DELETE", "/containers/web", true, "full-access"},
		{readOnly, "GET", "/v1.41/containers/json", true, "read-only-get"},
		{readOnly, "HEAD", "/_ping", true, "read-only-get"},
		{readOnly, "GET", "/_ping", true, "read-only-get"},
		{readOnly, "POST", "/v1.41/containers/create", false, "read-only"},
		{readOnly, "POST", "/containers/web/start", false, "read-only"},
		{readOnly, "DELETE", "/containers/web", false, "read-only"},
		{readOnly, "PUT", "/containers/web/archive", false, "read-only"},
		{readOnly, "GET", "/v1.41/containers/web/attach/ws", false, "read-only-attach-ws"},
		{Identity{User: "x", Groups: []string{"dev", "read-only"}}, "POST", "/build", false, "read-only"},
	} {
		t.Run(tc.id.User+" "+tc.method+" "+tc.path, func(t *testing.T) {
			d := p.Decide(tc.id, tc.method, tc.path, false)
			if d.Allow != tc.allow || d.Rule != tc.rule {
				t.Fatalf("Decide = allow %v by %q (%s), want allow %v by %q", d.Allow, d.Rule, d.Message, tc.allow, tc.rule)
			}
			if !d.Allow && !strings.Contains(d.Message, `"`+tc.rule+`"`) {
				t.Errorf("message %q does not name the rule", d.Message)
			}
		})
	}
}

const testPolicy = `{
  "default": "deny",
  "rules": [
    {"name": "no-secrets", "paths": ["/secrets/**", "/swarm/**"], "action": "deny", "message": "ask ops"},
    {"name": "ci-no-exec", "users": ["ci"], "methods": ["POST"], "paths": ["/containers/*/exec", "/exec/**"], "action": "deny"},
    {"name": "ci-create", "users": ["ci"], "methods": ["POST"], "paths": ["/containers/create"], "action": "allow", "guard": "strict"},
    {"name": "ci", "users": ["ci"], "action": "allow"},
    {"name": "ping", "methods": ["GET", "HEAD"], "paths": ["/_ping", "/version"], "action": "allow"},
    {"name": "ops", "groups": ["ops"], "action": "allow"}
  ],
  "guards": {"strict": {"bind_roots": ["/srv/ci"]}}
}`

func TestPolicyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(path, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	ci := Identity{User: "ci"}
	ops := Identity{User: "olga", Groups: []string{"ops"}}
	anon := Identity{User: "someone"}
	for _, tc := range []struct {
		id     Identity
		method string
		raw    string
		allow  bool
		rule   string
		guard  bool
	}{
		{ops, "GET", "/v1.41/secrets", false, "no-secrets", false},
		{ops, "GET", "/v1.41/containers/../../secrets", false, "no-secrets", false},
		{ops, "GET", "/v1.41/containers/%2e%2e/%2e%2e/secrets/x", false, "no-secrets", false},
		{ops, "GET", "//secrets//abc/", false, "no-secrets", false},
		{ops, "GET", "/v1.41/secrets%2Fabc", false, "no-secrets", false},
		{ops, "POST", "/v1.41/swarm/init", false, "no-secrets", false},
		{ops, "POST", "/v1.41/containers/create", true, "ops", false},
		{ci, "POST", "/v1.41/containers/web/exec", false, "ci-no-exec", false},
		{ci, "POST", "/v1.41/containers/web%2Fx/exec", false, "ci-no-exec", false},
		{ci, "POST", "/exec/abc/start", false, "ci-no-exec", false},
		{ci, "POST", "/v1.41/containers%2Fcreate", true, "ci-create", true},
		{ci, "POST", "/v1.41/containers/x/../create", true, "ci-create", true},
		{ci, "POST", "/v1.41//containers/create/", true, "ci-create", true},
		{ci, "GET", "/containers/json", true, "ci", false},
		{anon, "GET", "/_ping", true, "ping", false},
		{anon, "HEAD", "/v1.41/version", true, "ping", false},
		{anon, "GET", "/containers/json", false, "default", false},
		{anon, "POST", "/_ping", false, "default", false},
	} {
		t.Run(tc.id.User+" "+tc.method+" "+tc.raw, func(t *testing.T) {
			clean, err := CleanPath(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			d := p.Decide(tc.id, tc.method, clean, false)
			if d.Allow != tc.allow || d.Rule != tc.rule || (d.Guard != nil) != tc.guard {
				t.Fatalf("Decide(%q) = allow %v by %q guard %v, want allow %v by %q guard %v", clean, d.Allow, d.Rule, d.Guard != nil, tc.allow, tc.rule, tc.guard)
			}
			p.count(d)
		})
	}
	if !strings.Contains(p.Decide(ops, "GET", "/secrets", false).Message, "ask ops") {
		t.Error("the rule's message is not in the refusal")
	}
	st := p.Status()
	if st.Source != path || st.Default != "deny" || len(st.Rules) != 6 || st.Rules[0].Name != "no-secrets" || st.Rules[0].Hits != 6 || st.DefaultHits != 2 {
		t.Errorf("status %+v", st)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"not JSON", `{`, "unexpected EOF"},
		{"unknown field", `{"rules":[{"name":"a","action":"allow","method":["GET"]}]}`, "unknown field"},
		{"trailing data", `{"rules":[]} {}`, "after the JSON object"},
		{"bad default", `{"default":"maybe","rules":[]}`, `default "maybe"`},
		{"no name", `{"rules":[{"action":"allow"}]}`, "has no name"},
		{"duplicate name", `{"rules":[{"name":"a","action":"allow"},{"name":"a","action":"deny"}]}`, "duplicate name"},
		{"bad action", `{"rules":[{"name":"a","action":"permit"}]}`, `action "permit"`},
		{"bad method", `{"rules":[{"name":"a","action":"allow","methods":["get"]}]}`, `method "get"`},
		{"versioned path", `{"rules":[{"name":"a","action":"allow","paths":["/v1.41/containers/json"]}]}`, "version prefix"},
		{"unclean path", `{"rules":[{"name":"a","action":"allow","paths":["/containers/../x"]}]}`, "not clean"},
		{"unknown guard", `{"rules":[{"name":"a","action":"allow","guard":"g"}]}`, `guard "g" is not defined`},
		{"guard on deny", `{"rules":[{"name":"a","action":"deny","guard":"g"}],"guards":{"g":{}}}`, "allow rules only"},
		{"unused guard", `{"rules":[],"guards":{"g":{}}}`, "not used"},
		{"relative root", `{"rules":[{"name":"a","action":"allow","guard":"g"}],"guards":{"g":{"bind_roots":["srv"]}}}`, "not an absolute path"},
		{"empty group", `{"rules":[{"name":"a","action":"allow","groups":[""]}]}`, "empty user or group"},
		{"guard endpoint pattern", `{"rules":[{"name":"a","action":"allow","guard":"g"}],"guards":{"g":{"allow_endpoints":["/v1.41/plugins/**"]}}}`, `guard "g": allow_endpoints`},
		{"guard version floor", `{"rules":[{"name":"a","action":"allow","guard":"g"}],"guards":{"g":{"min_api_version":"1.23"}}}`, `guard "g": min_api_version "1.23"`},
		{"guard unknown field", `{"rules":[{"name":"a","action":"allow","guard":"g"}],"guards":{"g":{"allow_plugins":true}}}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tc.json), "p.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "p.json") {
				t.Fatalf("error %v, want one naming p.json and containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaultAllowPolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"default":"allow","rules":[{"name":"ro","groups":["read-only"],"methods":["POST","PUT","DELETE"],"action":"deny"}]}`), "x")
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(admin, "POST", "/containers/create", false); !d.Allow || d.Rule != "default" {
		t.Errorf("admin: %+v", d)
	}
	if d := p.Decide(readOnly, "POST", "/containers/create", false); d.Allow {
		t.Errorf("read-only: %+v", d)
	}
}
