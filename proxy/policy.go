package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
)

// PolicyFile is the JSON form of a policy file; see the package
// documentation for the format.
type PolicyFile struct {
	// Default is the action when no rule matches: "deny" (the default) or
	// "allow".
	Default string `json:"default,omitempty"`
	// Rules are tried in order; the first that matches decides.
	Rules []Rule `json:"rules"`
	// Guards are named sets of checks (routes, bodies, binds; see Guard)
	// that an allow rule can apply.
	Guards map[string]Guard `json:"guards,omitempty"`
}

// Rule is one policy rule.
type Rule struct {
	// Name identifies the rule in refusals, the audit log and status.
	Name string `json:"name"`
	// Users and Groups select clients: the rule applies to a client whose
	// user is in Users or who is in one of Groups. With both empty it
	// applies to every client.
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Methods are HTTP methods (upper case); empty is any method. An
	// allow rule whose methods are all read methods (GET, HEAD, OPTIONS)
	// is read-only: it never matches a request that writes (Writes).
	Methods []string `json:"methods,omitempty"`
	// Paths are patterns on the clean path without the API version
	// prefix; empty is any path. "*" matches one or more whole segments,
	// "**" zero or more.
	Paths []string `json:"paths,omitempty"`
	// Action is "allow" or "deny".
	Action string `json:"action"`
	// Guard names an entry of PolicyFile.Guards (allow rules only).
	Guard string `json:"guard,omitempty"`
	// Message is added to a refusal, to tell the client why or whom to ask.
	Message string `json:"message,omitempty"`
}

// Policy decides which client may do what. It is immutable once built and
// safe for concurrent use; only its hit counters change.
type Policy struct {
	source string
	deflt  bool // allow when no rule matches
	rules  []*rule
	dflt   atomic.Uint64 // decisions by the default
}

type rule struct {
	Rule
	allow   bool
	users   []string
	groups  []string
	methods []string
	paths   []pattern
	guard   *Guard
	// readOnly: an allow rule whose methods are all read methods. It does
	// not match a writing request.
	readOnly bool
	hits     atomic.Uint64
}

// Decision is the outcome of Policy.Decide.
type Decision struct {
	Allow bool
	// Rule is the name of the deciding rule, or "default".
	Rule string
	// Message explains a refusal; it goes into the 403 body.
	Message string
	// Guard, when not nil, must approve the request: its route, body and
	// bind mounts.
	Guard *Guard
	// ReadOnly: the deciding rule is a read-only allow rule, so the
	// request must not turn into a stream the client writes into.
	ReadOnly bool

	rule *rule
}

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

// DefaultPolicySource is the Source of the built-in policy.
const DefaultPolicySource = "built-in"

// GroupReadOnly is the group the built-in policy restricts to GET and HEAD.
const GroupReadOnly = "read-only"

// DefaultPolicyFile is the built-in policy: group read-only may use GET and
// HEAD only, and never a request that writes into a container (an upgrade,
// the websocket attach; see Writes), and any other valid client has full
// access.
func DefaultPolicyFile() PolicyFile {
	return PolicyFile{
		Default: "deny",
		Rules: []Rule{
			{Name: "read-only-attach-ws", Groups: []string{GroupReadOnly}, Paths: []string{"/containers/*/attach/ws"}, Action: "deny",
				Message: "group read-only may not attach to containers"},
			{Name: "read-only-get", Groups: []string{GroupReadOnly}, Methods: []string{"GET", "HEAD"}, Action: "allow"},
			{Name: "read-only", Groups: []string{GroupReadOnly}, Action: "deny",
				Message: "group read-only may only use GET and HEAD, without upgrading the connection"},
			{Name: "full-access", Action: "allow"},
		},
	}
}

// DefaultPolicy returns the built-in policy (see DefaultPolicyFile).
func DefaultPolicy() *Policy {
	p, err := NewPolicy(DefaultPolicyFile(), DefaultPolicySource)
	if err != nil {
		panic("proxy: built-in policy: " + err.Error())
	}
	return p
}

// LoadPolicy reads and compiles a policy file. Errors name the file.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy %s: %w", path, err)
	}
	if len(data) > MaxPolicySize {
		return nil, fmt.Errorf("policy %s: larger than %d bytes", path, MaxPolicySize)
	}
	return ParsePolicy(data, path)
}

// ParsePolicy parses and compiles a policy file's JSON. Unknown fields are
// errors, so a typo cannot silently widen access. source names the policy in
// errors and status.
func ParsePolicy(data []byte, source string) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var pf PolicyFile
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("policy %s: %w", source, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("policy %s: unexpected data after the JSON object", source)
	}
	return NewPolicy(pf, source)
}

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}

// readMethods are the methods of a read-only rule.
var readMethods = []string{"GET", "HEAD", "OPTIONS"}

// Writes reports whether a request writes into a container whatever its
// method: one that upgrades the connection (Connection: upgrade with an
// Upgrade header; dockerd then carries the client's bytes to a container's
// stdin or a session), and any route ending in /ws (the websocket attach,
// which dockerd upgrades whatever the headers say). cleanPath is with or
// without the version prefix. A read-only allow rule never matches such a
// request.
func Writes(h http.Header, cleanPath string) bool {
	_, rest := SplitVersion(cleanPath)
	return isUpgrade(h) || rest == "/ws" || strings.HasSuffix(rest, "/ws")
}

// isUpgrade reports whether a request asks to upgrade the connection; the
// proxy forwards the upgrade exactly then.
func isUpgrade(h http.Header) bool {
	return hasToken(h, "Connection", "upgrade") && h.Get("Upgrade") != ""
}

// NewPolicy compiles a PolicyFile. Every problem is reported, joined.
func NewPolicy(pf PolicyFile, source string) (*Policy, error) {
	p := &Policy{source: source}
	var errs []error
	add := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("policy %s: "+format, append([]any{source}, a...)...))
	}
	switch pf.Default {
	case "", "deny":
	case "allow":
		p.deflt = true
	default:
		add("default %q: use \"allow\" or \"deny\"", pf.Default)
	}
	guards := make(map[string]*Guard, len(pf.Guards))
	for name, g := range pf.Guards {
		g.name = name
		if err := g.compile(); err != nil {
			add("guard %q: %v", name, err)
			continue
		}
		guards[name] = &g
	}
	seen := map[string]bool{}
	used := map[string]bool{}
	for i, r := range pf.Rules {
		where := fmt.Sprintf("rule %d (%q)", i+1, r.Name)
		if r.Name == "" {
			add("rule %d has no name: every rule needs one, it is shown to refused clients", i+1)
		} else if seen[r.Name] || r.Name == "default" {
			add("%s: duplicate name: rule names must be unique and not \"default\"", where)
		}
		seen[r.Name] = true
		cr := &rule{Rule: r, users: r.Users, groups: r.Groups}
		switch r.Action {
		case "allow":
			cr.allow = true
		case "deny":
		default:
			add("%s: action %q: use \"allow\" or \"deny\"", where, r.Action)
		}
		for _, m := range r.Methods {
			if !slices.Contains(httpMethods, m) {
				add("%s: method %q: use one of %s (upper case)", where, m, strings.Join(httpMethods, ", "))
			}
			cr.methods = append(cr.methods, m)
		}
		cr.readOnly = cr.allow && len(cr.methods) > 0
		for _, m := range cr.methods {
			if !slices.Contains(readMethods, m) {
				cr.readOnly = false
			}
		}
		for _, s := range r.Paths {
			pt, err := compilePattern(s)
			if err != nil {
				add("%s: %v", where, err)
				continue
			}
			cr.paths = append(cr.paths, pt)
		}
		for _, u := range append(slices.Clone(r.Users), r.Groups...) {
			if u == "" {
				add("%s: empty user or group name", where)
			}
		}
		if r.Guard != "" {
			used[r.Guard] = true
			switch g, ok := guards[r.Guard]; {
			case !cr.allow:
				add("%s: a guard applies to allow rules only", where)
			case !ok:
				if _, declared := pf.Guards[r.Guard]; !declared {
					add("%s: guard %q is not defined in \"guards\"", where, r.Guard)
				}
			default:
				cr.guard = g
			}
		}
		p.rules = append(p.rules, cr)
	}
	for name := range pf.Guards {
		if !used[name] {
			add("guard %q is not used by any rule", name)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Source is where the policy came from: a file path or "built-in".
func (p *Policy) Source() string { return p.source }

// Decide decides a request by a client. cleanPath is the result of
// CleanPath (with or without the version prefix); writes is Writes of the
// request: a read-only allow rule does not match a writing request (a deny
// rule does).
func (p *Policy) Decide(id Identity, method, cleanPath string, writes bool) Decision {
	_, rest := SplitVersion(cleanPath)
	for _, r := range p.rules {
		if !r.matches(id, method, rest) || (writes && r.readOnly) {
			continue
		}
		d := Decision{Allow: r.allow, Rule: r.Name, rule: r}
		if r.allow {
			d.Guard = r.guard
			d.ReadOnly = r.readOnly
		} else {
			d.Message = fmt.Sprintf("tlsdock: %s %s denied for user %q by policy rule %q", method, cleanPath, id.User, r.Name)
			if r.Message != "" {
				d.Message += ": " + r.Message
			}
		}
		return d
	}
	d := Decision{Allow: p.deflt, Rule: "default"}
	if !d.Allow {
		d.Message = fmt.Sprintf("tlsdock: %s %s denied for user %q: no policy rule allows it (policy %s)", method, cleanPath, id.User, p.source)
		if writes {
			d.Message += "; it writes into a container (an upgrade or a websocket), which read-only rules (GET, HEAD, OPTIONS) never allow"
		}
	}
	return d
}

// count records a decision for status.
func (p *Policy) count(d Decision) {
	if d.rule != nil {
		d.rule.hits.Add(1)
	} else {
		p.dflt.Add(1)
	}
}

func (r *rule) matches(id Identity, method, p string) bool {
	if len(r.users)+len(r.groups) > 0 {
		ok := slices.Contains(r.users, id.User)
		for _, g := range r.groups {
			if ok {
				break
			}
			ok = id.InGroup(g)
		}
		if !ok {
			return false
		}
	}
	if len(r.methods) > 0 && !slices.Contains(r.methods, method) {
		return false
	}
	if len(r.paths) == 0 {
		return true
	}
	for _, pt := range r.paths {
		if pt.match(p) {
			return true
		}
	}
	return false
}

// RuleStatus is one rule's hit count.
type RuleStatus struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Hits   uint64 `json:"hits"`
}

// PolicyStatus summarizes the policy in force.
type PolicyStatus struct {
	Source  string       `json:"source"`
	Default string       `json:"default"`
	Rules   []RuleStatus `json:"rules"`
	// DefaultHits counts requests no rule matched.
	DefaultHits uint64 `json:"default_hits"`
}

// Status returns the rules with their hit counts since the policy was built.
func (p *Policy) Status() PolicyStatus {
	st := PolicyStatus{Source: p.source, Default: "deny", DefaultHits: p.dflt.Load()}
	if p.deflt {
		st.Default = "allow"
	}
	for _, r := range p.rules {
		st.Rules = append(st.Rules, RuleStatus{Name: r.Name, Action: r.Action, Hits: r.hits.Load()})
	}
	return st
}
