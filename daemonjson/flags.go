package daemonjson

import (
	"encoding/json"
	"slices"
	"strings"
)

// longFlagKeys maps dockerd flags whose configuration key differs from the
// flag name (mostly repeatable flags with plural keys). Every other --name
// maps to key "name".
var longFlagKeys = map[string]string{
	"host":                             "hosts",
	"label":                            "labels",
	"dns":                              "dns",
	"dns-opt":                          "dns-opts",
	"dns-search":                       "dns-search",
	"insecure-registry":                "insecure-registries",
	"registry-mirror":                  "registry-mirrors",
	"add-runtime":                      "runtimes",
	"exec-opt":                         "exec-opts",
	"storage-opt":                      "storage-opts",
	"log-opt":                          "log-opts",
	"default-ulimit":                   "default-ulimits",
	"authorization-plugin":             "authorization-plugins",
	"allow-nondistributable-artifacts": "allow-nondistributable-artifacts",
	"cluster-store-opt":                "cluster-store-opts",
	"node-generic-resource":            "node-generic-resources",
	"default-address-pool":             "default-address-pools",
	"default-network-opt":              "default-network-opts",
	"cdi-spec-dir":                     "cdi-spec-dirs",
	"host-gateway-ip":                  "host-gateway-ips",
	"feature":                          "features",
	"graph":                            "data-root",
}

// extraKeys lists other keys a flag collides with, across dockerd versions:
// dockerd 20.10 checks -g/--graph against "graph" and --host-gateway-ip
// against "host-gateway-ip"; newer ones use "data-root" and
// "host-gateway-ips".
var extraKeys = map[string][]string{
	"data-root":        {"graph"},
	"host-gateway-ips": {"host-gateway-ip"},
}

type shorthand struct {
	key        string
	takesValue bool
}

// shorthands are dockerd's one-letter flags.
var shorthands = map[byte]shorthand{
	'H': {"hosts", true},
	'D': {"debug", false},
	'l': {"log-level", true},
	'G': {"group", true},
	'g': {"data-root", true},
	'p': {"pidfile", true},
	'b': {"bridge", true},
	's': {"storage-driver", true},
	'r': {"restart", false},
	'v': {"version", false},
	'h': {"help", false},
}

// flatOptions are object-valued keys that dockerd keeps whole; the members of
// any other object-valued key count as top-level directives in dockerd's
// conflict check (for example "proxies": {"http-proxy": ...}).
var flatOptions = map[string]bool{
	"cluster-store-opts":   true,
	"log-opts":             true,
	"runtimes":             true,
	"default-ulimits":      true,
	"features":             true,
	"builder":              true,
	"default-network-opts": true,
}

// skipDuplicates are keys dockerd merges with their flag instead of refusing.
var skipDuplicates = map[string]bool{"runtimes": true}

// FlagKey returns the daemon.json key that a dockerd flag sets: "-H",
// "--host" and "--host=tcp://..." give "hosts", "--tlsverify" gives
// "tlsverify", "--containerd=/x" gives "containerd". For a group of
// shorthand flags ("-DH") it returns the key of the first one. It returns ""
// for tokens that are not flags or are unknown shorthands.
func FlagKey(flag string) string {
	switch {
	case strings.HasPrefix(flag, "--"):
		name, _, _ := strings.Cut(flag[2:], "=")
		if name == "" {
			return ""
		}
		if key, ok := longFlagKeys[name]; ok {
			return key
		}
		return name
	case strings.HasPrefix(flag, "-") && len(flag) > 1:
		return shorthands[flag[1]].key
	}
	return ""
}

// Conflicts reports the directives given both as a dockerd flag in args
// (dockerd's argv without argv[0]) and in d. dockerd refuses to start then:
// "the following directives are specified both as a flag and in the
// configuration file: hosts". Tokens that look like shell variables
// ($DOCKER_OPTS, ${X}) are ignored, as is everything after "--". Like dockerd,
// it treats the members of object-valued keys other than log-opts and the like
// as directives of their own, and lets --add-runtime merge with "runtimes".
// The result is sorted and unique.
func Conflicts(d *Doc, args []string) []string {
	inFile := directives(d)
	found := map[string]bool{}
	for _, key := range argKeys(args) {
		for _, k := range append([]string{key}, extraKeys[key]...) {
			if inFile[k] && !skipDuplicates[k] {
				found[k] = true
			}
		}
	}
	out := make([]string, 0, len(found))
	for k := range found {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// directives returns the keys dockerd's conflict check sees in d.
func directives(d *Doc) map[string]bool {
	set := map[string]bool{}
	for _, m := range d.list() {
		if kind(m.Value) != "object" || flatOptions[m.Key] {
			set[m.Key] = true
			continue
		}
		var nested map[string]json.RawMessage
		if err := json.Unmarshal(m.Value, &nested); err != nil {
			set[m.Key] = true
			continue
		}
		for k := range nested {
			set[k] = true
		}
	}
	return set
}

// argKeys returns the keys of the flags in args, parsed the way pflag does.
func argKeys(args []string) []string {
	var keys []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return keys
		case strings.HasPrefix(a, "$"):
			// A shell variable: its expansion is unknown.
		case strings.HasPrefix(a, "--"):
			if k := FlagKey(a); k != "" {
				keys = append(keys, k)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// A group of shorthands: booleans may be combined ("-Dv"); the
			// first one that takes a value consumes the rest of the token
			// ("-Hfd://", "-H=fd://") or else the next argument.
			for j := 1; j < len(a); j++ {
				sh, ok := shorthands[a[j]]
				if !ok {
					break
				}
				keys = append(keys, sh.key)
				if sh.takesValue {
					if j == len(a)-1 {
						i++
					}
					break
				}
			}
		}
	}
	return keys
}
