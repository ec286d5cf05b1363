package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestProvisionRecordsItsSource: a provision by hand records its source
// with its file names, a repeated one (nothing changes) too, the daemon's
// own provisions keep the record, and --generate records the local CA.
func TestProvisionRecordsItsSource(t *testing.T) {
	h := newFakeHost(t)
	a := h.agent(&fakeVerifier{})
	dir := writeSet(t, h.root, "127.0.0.1")
	for from, to := range map[string]string{"ca.pem": "root_ca.crt", "server-cert.pem": "server.crt", "server-key.pem": "server.key"} {
		must(t, os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)))
	}
	cfg := Defaults()
	cfg.Certs, cfg.CAFile, cfg.CertFile, cfg.KeyFile = dir, "root_ca.crt", "server.crt", "server.key"
	cfg.Mode, cfg.Hosts = ModeDropIn, []string{"tcp://127.0.0.1:2376"}
	on := true
	want := SourceRecord{Certs: dir, CAFile: "root_ca.crt", CertFile: "server.crt", KeyFile: "server.key", Time: fixedNow,
		Mode: ModeDropIn, Hosts: []string{"tcp://127.0.0.1:2376"}, KeyType: cfg.KeyType, LiveRestore: &on}
	recorded := func(what string) *SourceRecord {
		t.Helper()
		r, err := RecordedSource(Paths{Root: h.root})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return r
	}

	mustProvision(t, a, cfg)
	if r := recorded("first provision"); r == nil || !reflect.DeepEqual(*r, want) {
		t.Fatalf("recorded %+v, want %+v", r, want)
	}
	// A host provisioned before the record existed gets it on a
	// provision that changes nothing.
	st, err := a.loadState()
	must(t, err)
	st.Source = nil
	must(t, a.saveState(st))
	if res := mustProvision(t, a, cfg); res.Changed {
		t.Fatal("the second provision changed the host")
	}
	if r := recorded("unchanged provision"); r == nil || !reflect.DeepEqual(*r, want) {
		t.Fatalf("after an unchanged provision: recorded %+v, want %+v", r, want)
	}
	// The daemon's provision (from another source, say a flag of its
	// command line) keeps what provision recorded.
	other := writeSet(t, h.root, "127.0.0.1")
	dcfg := Defaults()
	dcfg.Certs, dcfg.daemon = other, true
	mustProvision(t, a, dcfg)
	if r := recorded("daemon provision"); r == nil || !reflect.DeepEqual(*r, want) {
		t.Fatalf("after the daemon's provision: recorded %+v, want %+v", r, want)
	}
	// A dry run records nothing.
	gcfg := generateCfg()
	gcfg.DryRun = true
	if _, err := a.Provision(context.Background(), gcfg); err != nil {
		t.Fatal(err)
	}
	if r := recorded("dry run"); r == nil || !reflect.DeepEqual(*r, want) {
		t.Fatalf("after a dry run: recorded %+v", r)
	}
	mustProvision(t, a, generateCfg())
	if r := recorded("generate"); r == nil || !r.Generate || r.Certs != "" {
		t.Fatalf("after --generate: recorded %+v", r)
	}
}

// TestMergeRunRecordedSource: the daemon takes the recorded source unless
// a flag or the config file sets certs or generate; a file's file names
// still win over the record's.
func TestMergeRunRecordedSource(t *testing.T) {
	rec := &SourceRecord{Certs: "/srv/step", CAFile: "root_ca.crt", CertFile: "server.crt", KeyFile: "server.key"}
	origin := "tlsdock provision (" + StateDir + "/state.json)"
	for _, tt := range []struct {
		name              string
		conf              string
		flags             Flags
		certs, cert, from string
		generate          bool
	}{
		{name: "the record", certs: "/srv/step", cert: "server.crt", from: origin},
		{name: "the file's certs wins", conf: "certs = /etc/tlsdock/certs\n", certs: "/etc/tlsdock/certs", cert: "server-cert.pem", from: confPath + ":1"},
		{name: "a flag wins", flags: Flags{"certs": {"/srv/other"}}, certs: "/srv/other", cert: "server-cert.pem", from: "--certs"},
		{name: "the file's generate wins", conf: "generate = true\n", generate: true, from: confPath + ":1"},
		{name: "the file's cert-file applies to the record", conf: "cert-file = chain.crt\n", certs: "/srv/step", cert: "chain.crt", from: origin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc, settings, err := MergeRun(Settings{Root: "/", File: parseConf(t, tt.conf), Flags: tt.flags, Recorded: rec})
			if err != nil {
				t.Fatal(err)
			}
			key := "certs"
			if tt.generate {
				key = "generate"
			}
			var from string
			for _, s := range settings {
				if s.Key == key {
					from = s.From()
				}
			}
			if rc.Certs != tt.certs || rc.Generate != tt.generate || from != tt.from || !tt.generate && rc.SourceNames().Cert != tt.cert {
				t.Fatalf("certs %q generate %v cert %q from %q; want %q %v %q from %q", rc.Certs, rc.Generate, rc.SourceNames().Cert, from, tt.certs, tt.generate, tt.cert, tt.from)
			}
		})
	}
	rc, _, err := MergeRun(Settings{Root: "/", Recorded: &SourceRecord{Generate: true}})
	if err != nil || !rc.Generate || rc.Certs != "" {
		t.Fatalf("a recorded local CA: %+v, %v", rc.Config, err)
	}
	// A provision naming no source takes it too (the package's
	// postinstall), one naming a source does not
	// (TestMergeProvisionTakesTheRecord).
	if cfg, _, err := MergeProvision(Settings{Root: "/", Recorded: rec}); err != nil || cfg.Certs != "/srv/step" {
		t.Fatalf("a bare provision: certs %q, %v; want the record's", cfg.Certs, err)
	}
}

// TestMergeRunRecordedSettings: the daemon keeps the mode and listeners
// of the provision (a dropin host is not turned into a daemon-json one on
// its first rotation), unless a flag or the config file says otherwise.
func TestMergeRunRecordedSettings(t *testing.T) {
	off := false
	rec := &SourceRecord{Certs: "/srv/step", Mode: ModeDropIn, Hosts: []string{"tcp://10.0.0.5:2376"}, SANs: []string{"docker.example.com"}, KeyType: "rsa-2048", LiveRestore: &off, ProbeClient: "/etc/tlsdock/probe"}
	rc, settings, err := MergeRun(Settings{Root: "/", File: parseConf(t, "host = tcp://0.0.0.0:2377\n"), Recorded: rec})
	if err != nil {
		t.Fatal(err)
	}
	from := map[string]string{}
	for _, st := range settings {
		from[st.Key] = st.From()
	}
	origin := "tlsdock provision (" + StateDir + "/state.json)"
	if rc.Mode != ModeDropIn || from["mode"] != origin || rc.KeyType != "rsa-2048" || rc.LiveRestore || rc.ProbeClient != "/etc/tlsdock/probe" ||
		!reflect.DeepEqual(rc.SANs, []string{"docker.example.com"}) {
		t.Fatalf("not the recorded settings: %+v (mode from %s)", rc.Config, from["mode"])
	}
	if !reflect.DeepEqual(rc.Hosts, []string{"tcp://0.0.0.0:2377"}) || from["host"] != confPath+":1" {
		t.Fatalf("the file's host did not win: %v from %s", rc.Hosts, from["host"])
	}
	rc, _, err = MergeRun(Settings{Root: "/", Flags: Flags{"mode": {"daemon-json"}}, Recorded: rec})
	if err != nil || rc.Mode != ModeDaemonJSON {
		t.Fatalf("the --mode flag did not win: %v, %v", rc.Mode, err)
	}
}

// TestMergeProvisionTakesTheRecord: a provision that names no source on
// its command line takes the record where neither a flag nor the file
// says otherwise (the postinstall's bare `tlsdock provision`), and one
// that names a source starts from the file and the defaults.
func TestMergeProvisionTakesTheRecord(t *testing.T) {
	on := false
	rec := &SourceRecord{Certs: "/srv/pki", CAFile: "root_ca.crt", CertFile: "server.crt", KeyFile: "server.key",
		Mode: ModeDropIn, Hosts: []string{"tcp://127.0.0.1:2376"}, LiveRestore: &on}
	file, err := ParseConfigFile("tlsdock.conf", []byte("certs = /etc/pki\n"))
	must(t, err)
	tests := []struct {
		name  string
		file  FileSettings
		flags Flags
		certs string
		names string
		mode  Mode
		hosts string
	}{
		{name: "bare", certs: "/srv/pki", names: "root_ca.crt server.crt server.key", mode: ModeDropIn, hosts: "tcp://127.0.0.1:2376"},
		{name: "a flag other than the source", flags: Flags{"mode": {"proxy"}}, certs: "/srv/pki", names: "root_ca.crt server.crt server.key", mode: ModeProxy, hosts: "tcp://127.0.0.1:2376"},
		{name: "the file names the source", file: file, certs: "/etc/pki", names: "ca.pem server-cert.pem server-key.pem", mode: ModeDropIn, hosts: "tcp://127.0.0.1:2376"},
		{name: "a flag names the source", flags: Flags{"certs": {"/etc/other"}}, certs: "/etc/other", names: "ca.pem server-cert.pem server-key.pem", mode: ModeDaemonJSON, hosts: DefaultHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := MergeProvision(Settings{File: tt.file, Flags: tt.flags, Recorded: rec})
			must(t, err)
			n := cfg.SourceNames()
			if got := n.CA + " " + n.Cert + " " + n.Key; cfg.Certs != tt.certs || got != tt.names || cfg.Mode != tt.mode || strings.Join(cfg.Hosts, " ") != tt.hosts {
				t.Fatalf("certs %s names %s mode %s hosts %v; want %s, %s, %s, %s", cfg.Certs, got, cfg.Mode, cfg.Hosts, tt.certs, tt.names, tt.mode, tt.hosts)
			}
			if wantLR := tt.flags["certs"] != nil; cfg.LiveRestore != wantLR {
				t.Errorf("live-restore %v, want %v", cfg.LiveRestore, wantLR)
			}
		})
	}
}

// TestProvisionByHandReloadsTheDaemon: a provision by hand in a native
// mode reloads a running tlsdock.service (SIGHUP), so that it takes the
// source and settings just recorded instead of rotating from the source
// it started with; nothing is reloaded when the unit is not running, for
// the daemon's own provisions, dry runs and failed provisions.
func TestProvisionByHandReloadsTheDaemon(t *testing.T) {
	reloads := func(h *fakeHost) int {
		n := 0
		for _, c := range h.Calls() {
			if c == "reload "+ProxyUnit {
				n++
			}
		}
		return n
	}
	h := newFakeHost(t)
	a := h.agent(&fakeVerifier{})
	cfg := Defaults()
	cfg.Certs = writeSet(t, h.root, "127.0.0.1")
	mustProvision(t, a, cfg)
	if n := reloads(h); n != 0 {
		t.Fatalf("%d reloads of %s, which is not running", n, ProxyUnit)
	}
	must(t, h.Restart(context.Background(), ProxyUnit))
	cfg.Mode = ModeDropIn
	res := mustProvision(t, a, cfg)
	if n := reloads(h); n != 1 {
		t.Fatalf("%d reloads of the running %s after a provision by hand, want 1; calls %v", n, ProxyUnit, h.Calls())
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), ProxyUnit+" re-reads its settings") {
		t.Errorf("the result does not say the daemon re-reads its settings: %v", res.Notes)
	}
	dry := cfg
	dry.DryRun = true
	if _, err := a.Provision(context.Background(), dry); err != nil {
		t.Fatal(err)
	}
	daemon := cfg
	daemon.daemon = true
	mustProvision(t, a, daemon)
	bad := cfg
	bad.Certs = filepath.Join(h.root, "nowhere")
	if _, err := a.Provision(context.Background(), bad); err == nil {
		t.Fatal("a provision from a missing source succeeded")
	}
	if n := reloads(h); n != 1 {
		t.Errorf("%d reloads after a dry run, the daemon's provision and a failed one, want still 1", n)
	}
}
