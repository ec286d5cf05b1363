package agent

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// confPathKeys are the config file's keys whose value is a path, with an
// absolute example of each for the message.
var confPathKeys = map[string]string{
	"certs":        DefaultSource,
	"client-out":   "/root/docker-client",
	"probe-client": "/etc/tlsdock/probe-client",
	"policy":       "/etc/tlsdock/policy.json",
	"crl":          "/etc/tlsdock/external-crl.pem",
	"audit-log":    DefaultAuditLog,
}

// checkConfPaths refuses a relative path in the config file, the first by
// line. The file is read by tlsdock.service, which runs in /, and by a
// provision run wherever its operator stands: a relative path would name
// a different file for each. A flag is another matter: it is relative to
// the directory it is typed in, and provision records it absolute. An
// empty value is left to the merge (audit-log = "" sends the records to
// the journal). ca-file, a bare name inside certs or an absolute path, is
// checked with the other file names (certstore.CheckSourceName), which
// names the line too.
func checkConfPaths(fs FileSettings) error {
	var bad []FileValue
	keyOf := map[FileValue]string{}
	for key := range confPathKeys {
		for _, v := range fs[key] {
			p := v.Value
			if p == "" || filepath.IsAbs(p) {
				continue
			}
			bad = append(bad, v)
			keyOf[v] = key
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Line < bad[j].Line })
	v, key := bad[0], keyOf[bad[0]]
	hint := ""
	if strings.HasPrefix(v.Value, "~") {
		hint = " (the config file does not expand ~)"
	}
	what := "give the absolute path, such as " + confPathKeys[key]
	return &InputError{Field: "--" + key, At: v.At(), Err: fmt.Errorf("%q is a relative path%s, which tlsdock.service (running in /) and a `tlsdock provision` run in another directory would each take for a different file: %s", v.Value, hint, what)}
}
