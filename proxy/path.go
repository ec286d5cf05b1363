package proxy

import (
	"fmt"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"
)

// CleanPath returns the path dockerd routes for rawPath, the path of a
// request target exactly as sent (percent-encoded, without the query).
//
// dockerd's router decodes the path once (%2F is a slash, %2e a dot) and
// cleans it, so CleanPath does the same: it decodes percent escapes once,
// then resolves empty, "." and ".." segments (path.Clean). The result starts
// with "/", has no trailing slash (except "/" itself) and no "//", "." or
// ".." segment. The proxy matches the policy against this path and forwards
// exactly this path (re-encoded with EscapePath), so what is authorized is
// what dockerd routes.
//
// A path that is not absolute, has a malformed escape, or holds a control
// character (NUL included) or is not valid UTF-8 is an error.
func CleanPath(rawPath string) (string, error) {
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		return "", fmt.Errorf("path %q: malformed percent-encoding", rawPath)
	}
	return cleanDecoded(p)
}

// cleanDecoded is CleanPath for a path that is already decoded, such as
// http.Request.URL.Path.
func cleanDecoded(p string) (string, error) {
	if p == "" || p[0] != '/' {
		return "", fmt.Errorf("path %q: not an absolute path", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("path %q: control character 0x%02x", p, c)
		}
	}
	// No name dockerd serves (containers, images, volumes, networks) is
	// outside UTF-8, and the audit record could not show such a path as
	// it was sent.
	if !utf8.ValidString(p) {
		return "", fmt.Errorf("path %q: not valid UTF-8", p)
	}
	if isClean(p) {
		return p, nil
	}
	return path.Clean(p), nil
}

// isClean reports whether path.Clean(p) == p for an absolute p, without
// allocating: the fast path for ordinary requests.
func isClean(p string) bool {
	if p == "/" {
		return true
	}
	if p[len(p)-1] == '/' {
		return false
	}
	for i := 0; i < len(p); {
		// p[i] == '/'; look at the segment after it.
		j := i + 1
		for j < len(p) && p[j] != '/' {
			j++
		}
		switch p[i+1 : j] {
		case "", ".", "..":
			return false
		}
		i = j
	}
	return true
}

// EscapePath percent-encodes a clean path for a request line; CleanPath
// turns it back into the same path.
func EscapePath(p string) string { return (&url.URL{Path: p}).EscapedPath() }

// SplitVersion splits the API version prefix off a clean path, as dockerd's
// router does (its prefix is "/v{version:[0-9.]+}"): "/v1.41/containers/json"
// gives "1.41" and "/containers/json". A path without a prefix is returned
// unchanged with version "". "/v1.41" alone gives "/".
func SplitVersion(p string) (version, rest string) {
	if !strings.HasPrefix(p, "/v") {
		return "", p
	}
	i := 2
	for i < len(p) && (p[i] == '.' || ('0' <= p[i] && p[i] <= '9')) {
		i++
	}
	if i == 2 || (i < len(p) && p[i] != '/') {
		return "", p
	}
	if i == len(p) {
		return p[2:i], "/"
	}
	return p[2:i], p[i:]
}

// pattern is a compiled path pattern: whole segments, where "*" matches one
// or more segments and "**" zero or more.
type pattern struct {
	src  string
	segs []string
	wild bool // has "*" or "**"
}

// maxWildcards bounds the wildcards of one pattern.
const maxWildcards = 8

func compilePattern(s string) (pattern, error) {
	if s == "" || s[0] != '/' {
		return pattern{}, fmt.Errorf("path pattern %q must start with \"/\"", s)
	}
	if v, _ := SplitVersion(s); v != "" {
		return pattern{}, fmt.Errorf("path pattern %q has an API version prefix: write it without (a pattern matches requests with and without the prefix)", s)
	}
	if strings.ContainsAny(s, "%?#") {
		return pattern{}, fmt.Errorf("path pattern %q: write the decoded path, without %%-escapes, query or fragment", s)
	}
	if c, err := cleanDecoded(s); err != nil || c != s {
		return pattern{}, fmt.Errorf("path pattern %q is not clean: remove \"//\", \".\", \"..\" and trailing slashes", s)
	}
	p := pattern{src: s, segs: splitSegs(s)}
	n := 0
	for _, seg := range p.segs {
		switch {
		case seg == "*" || seg == "**":
			n++
		case strings.Contains(seg, "*"):
			return pattern{}, fmt.Errorf("path pattern %q: \"*\" and \"**\" must be whole segments", s)
		}
	}
	if n > maxWildcards {
		return pattern{}, fmt.Errorf("path pattern %q has %d wildcards, at most %d are allowed", s, n, maxWildcards)
	}
	p.wild = n > 0
	return p, nil
}

// splitSegs splits a clean absolute path into its segments; "/" has none.
func splitSegs(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// match reports whether the clean, version-less path p matches.
func (pt pattern) match(p string) bool {
	if !pt.wild {
		return p == pt.src
	}
	return matchSegs(pt.segs, splitSegs(p))
}

// matchSegs matches segments against a pattern by dynamic programming
// (linear in the product of the lengths, whatever the wildcards).
func matchSegs(pat, segs []string) bool {
	n := len(segs)
	// next[j]: pat[i+1:] matches segs[j:]; cur[j]: pat[i:] matches segs[j:].
	next := make([]bool, n+1)
	cur := make([]bool, n+1)
	next[n] = true
	for i := len(pat) - 1; i >= 0; i-- {
		switch pat[i] {
		case "**":
			cur[n] = next[n]
			for j := n - 1; j >= 0; j-- {
				cur[j] = next[j] || cur[j+1]
			}
		case "*":
			cur[n] = false
			for j := n - 1; j >= 0; j-- {
				cur[j] = next[j+1] || cur[j+1]
			}
		default:
			cur[n] = false
			for j := n - 1; j >= 0; j-- {
				cur[j] = pat[i] == segs[j] && next[j+1]
			}
		}
		cur, next = next, cur
	}
	return next[0]
}
