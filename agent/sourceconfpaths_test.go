package agent

import (
	"errors"
	"strings"
	"testing"
)

// TestConfigFileRelativePaths: a relative path in the config file is
// refused by both merges, naming FILE:LINE, the key and an absolute
// example, also when a flag overrides the line; absolute paths, bare
// ca-file names and an empty audit-log are taken.
func TestConfigFileRelativePaths(t *testing.T) {
	tests := []struct {
		name, conf string
		flags      Flags
		want       string // "" : accepted
	}{
		{name: "certs", conf: "mode = dropin\ncerts = certs\n", want: `tlsdock.conf:2: certs: "certs" is a relative path, which tlsdock.service (running in /) and a ` + "`tlsdock provision`" + ` run in another directory would each take for a different file: give the absolute path, such as /etc/tlsdock/certs`},
		{name: "certs with dot", conf: "certs = ./pki\n", want: `tlsdock.conf:1: certs: "./pki" is a relative path`},
		{name: "certs under a home", conf: "certs = ~/pki\n", want: `tlsdock.conf:1: certs: "~/pki" is a relative path (the config file does not expand ~)`},
		{name: "ca-file not a bare name", conf: "certs = /srv/pki\nca-file = ../ca/root.pem\n", want: `tlsdock.conf:2: ca-file: "../ca/root.pem" is neither a file name inside --certs nor an absolute path: give a bare name such as root_ca.crt, or an absolute path such as /etc/tlsdock/client-ca.pem`},
		{name: "ca-file dotdot", conf: "certs = /srv/pki\nca-file = ..\n", want: `tlsdock.conf:2: ca-file: ".." is neither a file name inside --certs nor an absolute path`},
		{name: "probe-client", conf: "certs = /srv/pki\nprobe-client = probe\n", want: `tlsdock.conf:2: probe-client: "probe" is a relative path`},
		{name: "client-out", conf: "generate = true\nclient-out = client\n", want: `tlsdock.conf:2: client-out: "client" is a relative path`},
		{name: "policy", conf: "generate = true\nmode = proxy\npolicy = policy.json\n", want: `tlsdock.conf:3: policy: "policy.json" is a relative path`},
		{name: "the second crl", conf: "generate = true\nmode = proxy\ncrl = /etc/a.pem\ncrl = b.pem\n", want: `tlsdock.conf:4: crl: "b.pem" is a relative path`},
		{name: "audit-log", conf: "generate = true\naudit-log = audit.jsonl\n", want: `tlsdock.conf:2: audit-log: "audit.jsonl" is a relative path`},
		{name: "the first by line", conf: "probe-client = p\ncerts = c\n", want: `tlsdock.conf:1: probe-client`},
		{name: "a flag overrides the line", conf: "certs = certs\n", flags: Flags{"certs": {"/srv/pki"}}, want: `tlsdock.conf:1: certs: "certs" is a relative path`},
		{name: "absolute paths and a bare ca-file", conf: "certs = /srv/pki\nca-file = root_ca.crt\nprobe-client = /etc/tlsdock/probe\n"},
		{name: "an absolute ca-file", conf: "certs = /srv/pki\nca-file = /etc/tlsdock/client-ca.pem\n"},
		{name: "audit-log to the journal", conf: "generate = true\naudit-log = \"\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := ParseConfigFile("tlsdock.conf", []byte(tt.conf))
			must(t, err)
			for _, merge := range []struct {
				name string
				f    func(Settings) error
			}{
				{"provision", func(s Settings) error { _, _, err := MergeProvision(s); return err }},
				{"run", func(s Settings) error { _, _, err := MergeRun(s); return err }},
			} {
				err := merge.f(Settings{Root: "/", File: fs, Flags: tt.flags})
				if tt.want == "" {
					if err != nil {
						t.Errorf("%s: %v", merge.name, err)
					}
					continue
				}
				var ie *InputError
				if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.As(err, &ie) {
					t.Errorf("%s: error %v\nwant an input error starting %q", merge.name, err, tt.want)
				}
			}
		})
	}
}
