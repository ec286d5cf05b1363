package daemonjson

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// TLS holds the settings tlsdock owns in daemon.json.
type TLS struct {
	Hosts             []string // full list written to "hosts"
	CACert, Cert, Key string   // absolute paths
}

// TLSKeys are the TLS keys tlsdock owns, in the order [SetTLS] appends them.
var TLSKeys = []string{"tls", "tlsverify", "tlscacert", "tlscert", "tlskey"}

// SetTLS validates t, then sets tls=true, tlsverify=true, tlscacert, tlscert,
// tlskey and hosts. Keys already in d keep their positions; missing ones are
// appended in that order. On a validation error d is unchanged.
func SetTLS(d *Doc, t TLS) error {
	if err := t.validate(); err != nil {
		return err
	}
	values := []struct {
		key   string
		value any
	}{
		{"tls", true},
		{"tlsverify", true},
		{"tlscacert", t.CACert},
		{"tlscert", t.Cert},
		{"tlskey", t.Key},
		{"hosts", append([]string{}, t.Hosts...)},
	}
	for _, kv := range values {
		if err := d.Set(kv.key, kv.value); err != nil {
			return err
		}
	}
	return nil
}

func (t TLS) validate() error {
	for _, p := range []struct{ key, path string }{
		{"tlscacert", t.CACert}, {"tlscert", t.Cert}, {"tlskey", t.Key},
	} {
		if p.path == "" {
			return fmt.Errorf("%s: path is empty", p.key)
		}
		if !filepath.IsAbs(p.path) {
			return fmt.Errorf("%s: path %q is not absolute; dockerd would resolve it against its working directory", p.key, p.path)
		}
	}
	if len(t.Hosts) == 0 {
		return errors.New("hosts: the list is empty; give at least one listener, for example tcp://0.0.0.0:2376")
	}
	seen := map[string]bool{}
	for i, h := range t.Hosts {
		if strings.TrimSpace(h) == "" {
			return fmt.Errorf("hosts: entry %d is empty", i)
		}
		if seen[h] {
			return fmt.Errorf("hosts: %q is listed twice; dockerd would fail to bind it a second time", h)
		}
		seen[h] = true
	}
	return nil
}

// RemoveTLS deletes [TLSKeys] and "hosts" from d and returns the keys it
// removed, in the order of TLSKeys followed by "hosts" (dropin mode moves
// these directives to the command line).
func RemoveTLS(d *Doc) []string {
	var removed []string
	for _, k := range append(append([]string{}, TLSKeys...), "hosts") {
		if d.Delete(k) {
			removed = append(removed, k)
		}
	}
	return removed
}

// SetLiveRestore sets "live-restore", keeping its position if present.
func SetLiveRestore(d *Doc, on bool) error {
	return d.Set("live-restore", on)
}

// InsecureTCPHosts returns the hosts that dockerd would serve over TCP without
// verifying client certificates: every TCP host when tlsverify is false
// (tls=true alone encrypts but lets any client in), none otherwise. As in
// dockerd, an address without a scheme (":2375", "0.0.0.0:2375") is TCP.
// The hosts are returned as given, for reports like "removed plaintext
// listener tcp://0.0.0.0:2375".
func InsecureTCPHosts(hosts []string, tlsverify bool) []string {
	if tlsverify {
		return nil
	}
	var insecure []string
	for _, h := range hosts {
		if isTCPHost(h) {
			insecure = append(insecure, h)
		}
	}
	return insecure
}

// isTCPHost follows dockerd's parsing of -H values: blank means the default
// unix socket, no scheme means tcp, and the scheme is case-sensitive.
func isTCPHost(h string) bool {
	h = strings.TrimSpace(h)
	if h == "" {
		return false
	}
	scheme, _, found := strings.Cut(h, "://")
	return !found || scheme == "tcp"
}
