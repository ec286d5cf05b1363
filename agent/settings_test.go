package agent

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

const confPath = "/etc/tlsdock/tlsdock.conf"

func parseConf(t *testing.T, body string) FileSettings {
	t.Helper()
	fs, err := ParseConfigFile(confPath, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestParseConfigFileKeepsLines(t *testing.T) {
	fs := parseConf(t, "# comment\n\nhost = tcp://0.0.0.0:2376\n  generate = 'true'\nhost = \"tcp://[::]:2377\"\n")
	want := FileSettings{
		"host": {
			{Value: "tcp://0.0.0.0:2376", File: confPath, Line: 3},
			{Value: "tcp://[::]:2377", File: confPath, Line: 5},
		},
		"generate": {{Value: "true", File: confPath, Line: 4}},
	}
	if !reflect.DeepEqual(fs, want) {
		t.Fatalf("parsed %+v\nwant %+v", fs, want)
	}
}

func TestParseConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown key", "generate = true\nhostname = x\n", confPath + `:2: unknown key "hostname": the keys are the long flag names`},
		{"no equals sign", "# c\ngenerate\n", confPath + `:2: "generate" is not "key = value"`},
		{"empty key", "= true\n", confPath + `:1: "= true" is not "key = value"`},
		{"single key twice", "timeout = 1s\n\ntimeout = 2s\n", confPath + `:3: "timeout" is set twice (first on line 1): keep one line`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfigFile(confPath, []byte(tc.body))
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an input error with %q", err, tc.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	def := RunDefaults()
	root := "/srv/root"
	source := root + DefaultSource
	with := func(f func(*RunConfig)) RunConfig {
		rc := def
		f(&rc)
		return rc
	}
	tests := []struct {
		name  string
		conf  string
		flags Flags
		run   bool
		want  RunConfig
	}{
		{
			name: "provision: the file over the defaults",
			conf: "generate = true\nmode = dropin\nkey-type = rsa-2048\nlive-restore = false\ntimeout = 30s\nsan = a.example.com\n",
			want: with(func(c *RunConfig) {
				c.Generate, c.Mode, c.KeyType, c.LiveRestore, c.Timeout, c.SANs = true, ModeDropIn, certstore.RSA2048, false, 30*time.Second, []string{"a.example.com"}
			}),
		},
		{
			name:  "provision: flags over the file",
			conf:  "generate = true\nmode = dropin\ntimeout = 30s\n",
			flags: Flags{"mode": {"proxy"}, "timeout": {"1m0s"}, "generate": {"true"}},
			want: with(func(c *RunConfig) {
				c.Generate, c.Mode, c.Timeout = true, ModeProxy, time.Minute
			}),
		},
		{
			name:  "a false flag wins over true in the file",
			conf:  "certs = /srv/certs\nlive-restore = true\n",
			flags: Flags{"live-restore": {"false"}},
			want:  with(func(c *RunConfig) { c.Certs, c.LiveRestore = "/srv/certs", false }),
		},
		{
			name: "repeatable keys keep the file's order",
			conf: "generate = true\nhost = tcp://0.0.0.0:2376\nhost = tcp://[::]:2377\ncrl = /b.crl\ncrl = /a.crl\nmode = proxy\n",
			want: with(func(c *RunConfig) {
				c.Generate, c.Mode = true, ModeProxy
				c.Hosts, c.CRLs = []string{"tcp://0.0.0.0:2376", "tcp://[::]:2377"}, []string{"/b.crl", "/a.crl"}
			}),
		},
		{
			name:  "a repeatable flag replaces the file's lines",
			conf:  "generate = true\nhost = tcp://0.0.0.0:2376\nhost = tcp://[::]:2377\nsan = a.example.com\n",
			flags: Flags{"host": {"tcp://10.0.0.5:2376"}},
			want: with(func(c *RunConfig) {
				c.Generate, c.Hosts, c.SANs = true, []string{"tcp://10.0.0.5:2376"}, []string{"a.example.com"}
			}),
		},
		{
			name: "provision: no source default, and renew-before is the daemon's",
			conf: "generate = true\nrenew-before = 720h\ndebounce = 5s\n",
			want: with(func(c *RunConfig) { c.Generate, c.Debounce = true, 5*time.Second }),
		},
		{
			name: "provision: client-out is kept",
			conf: "generate = true\nclient-out = /root/client\n",
			want: with(func(c *RunConfig) { c.Generate, c.ClientOut = true, "/root/client" }),
		},
		{
			name: "audit log settings, empty audit-log",
			conf: "generate = true\naudit-log =\naudit-log-max-size = 1G\n",
			want: with(func(c *RunConfig) { c.Generate, c.AuditLog, c.AuditLogMaxSize = true, "", 1<<30 }),
		},
		{
			name: "run: the source defaults to /etc/tlsdock/certs under the root",
			run:  true,
			want: with(func(c *RunConfig) { c.Certs = source }),
		},
		{
			name: "run: no source default with generate in the file",
			run:  true,
			conf: "generate = true\nrenew-before = 720h\n",
			want: with(func(c *RunConfig) { c.Generate, c.RenewBefore = true, 720*time.Hour }),
		},
		{
			name:  "run: no source default with --generate",
			run:   true,
			flags: Flags{"generate": {"true"}},
			want:  with(func(c *RunConfig) { c.Generate = true }),
		},
		{
			name:  "run: --generate=false over the file's generate: the default source",
			run:   true,
			conf:  "generate = true\n",
			flags: Flags{"generate": {"false"}},
			want:  with(func(c *RunConfig) { c.Certs = source }),
		},
		{
			name: "run: certs in the file",
			run:  true,
			conf: "certs = /srv/certs\ndebounce = 5s\nmax-wait = 30s\nmin-restart-interval = 1m\nmetrics-listen = 127.0.0.1:9323\n",
			want: with(func(c *RunConfig) {
				c.Certs, c.Debounce, c.MaxWait, c.MinRestartInterval, c.MetricsListen = "/srv/certs", 5*time.Second, 30*time.Second, time.Minute, "127.0.0.1:9323"
			}),
		},
		{
			name: "run: proxy mode needs no restart interval",
			run:  true,
			conf: "mode = proxy\ngenerate = true\n",
			want: with(func(c *RunConfig) { c.Mode, c.Generate, c.MinRestartInterval = ModeProxy, true, 0 }),
		},
		{
			name: "run: proxy mode keeps a restart interval from the file",
			run:  true,
			conf: "mode = proxy\ngenerate = true\nmin-restart-interval = 5s\n",
			want: with(func(c *RunConfig) { c.Mode, c.Generate, c.MinRestartInterval = ModeProxy, true, 5*time.Second }),
		},
		{
			name:  "run: proxy mode keeps a restart interval from a flag",
			run:   true,
			conf:  "mode = proxy\ngenerate = true\n",
			flags: Flags{"min-restart-interval": {"20s"}},
			want:  with(func(c *RunConfig) { c.Mode, c.Generate = ModeProxy, true }),
		},
		{
			name: "run: client-out is dropped",
			run:  true,
			conf: "generate = true\nclient-out = /root/client\n",
			want: with(func(c *RunConfig) { c.Generate = true }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Settings{Root: root, File: parseConf(t, tt.conf), Flags: tt.flags}
			var got RunConfig
			var err error
			if tt.run {
				got, _, err = MergeRun(s)
			} else {
				got.Config, _, err = MergeProvision(s)
				want := tt.want
				tt.want = RunConfig{Config: want.Config}
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("merged %+v\nwant   %+v", got, tt.want)
			}
		})
	}
}

func TestMergeErrors(t *testing.T) {
	tests := []struct {
		name  string
		conf  string
		flags Flags
		run   bool
		field string // InputError.Field
		want  string // in the message
	}{
		{name: "bad duration in the file", conf: "generate = true\n\ntimeout = 5x\n", field: "--timeout",
			want: confPath + `:3: timeout: "5x" is not a duration such as 90s or 5m: give a number with a unit`},
		{name: "bad boolean in the file", conf: "generate = yes please\n", field: "--generate",
			want: confPath + `:1: generate: "yes please" is not true or false: write generate = true or generate = false`},
		{name: "bad mode in the file", conf: "generate = true\nmode = socat\n", field: "--mode",
			want: confPath + `:2: mode: unknown mode "socat": use daemon-json`},
		{name: "bad mode flag", conf: "generate = true\nmode = proxy\n", flags: Flags{"mode": {"socat"}}, field: "--mode",
			want: `--mode: unknown mode "socat"`},
		{name: "bad key type in the file", conf: "generate = true\nkey-type = dsa-1024\n", field: "--key-type",
			want: confPath + `:2: key-type: `},
		{name: "bad size in the file", conf: "generate = true\naudit-log-max-size = lots\n", field: "--audit-log-max-size",
			want: confPath + `:2: audit-log-max-size: "lots" is not a size`},
		{name: "the second host of the file is bad", conf: "generate = true\nhost = tcp://0.0.0.0:2376\nhost = 0.0.0.0:2377\n", field: "--host",
			want: confPath + `:3: host: "0.0.0.0:2377" is not a listener URL`},
		{name: "bad host flag", flags: Flags{"generate": {"true"}, "host": {"tcp://0.0.0.0"}}, field: "--host",
			want: `--host: "tcp://0.0.0.0" has no port`},
		{name: "bad san in the file", conf: "generate = true\nsan = ok.example.com\nsan = bad name!\n", field: "--san",
			want: confPath + `:3: san: "bad name!" is neither`},
		{name: "validation names the file's line", conf: "certs = /srv/certs\n\ngenerate = true\n", field: "--generate",
			want: confPath + `:3: generate: --generate and --certs /srv/certs exclude each other`},
		{name: "validation names the flag", conf: "certs = /srv/certs\n", flags: Flags{"generate": {"true"}}, field: "--generate",
			want: `--generate: --generate and --certs /srv/certs exclude each other`},
		{name: "client-out without generate", conf: "certs = /srv/certs\nclient-out = /root/c\n", field: "--client-out",
			want: confPath + `:2: client-out: a client bundle can only be issued by the local CA`},
		{name: "run: client-out without generate", run: true, conf: "client-out = /root/c\n", field: "--client-out",
			want: confPath + `:1: client-out: a client bundle`},
		{name: "a policy outside proxy mode", conf: "generate = true\npolicy = /etc/tlsdock/policy.json\n", field: "--policy",
			want: confPath + `:2: policy: a policy applies only in proxy mode`},
		{name: "provision: no certificates", field: "--certs", want: "--certs: no certificates given"},
		{name: "run: bad duration of a run key", run: true, conf: "debounce = soon\n", field: "--debounce",
			want: confPath + `:1: debounce: "soon" is not a duration`},
		{name: "provision checks the run keys' values too", conf: "generate = true\nmax-wait = soon\n", field: "--max-wait",
			want: confPath + `:2: max-wait: "soon" is not a duration`},
		{name: "run: renew-before without generate", run: true, conf: "renew-before = 720h\n", field: "--renew-before",
			want: confPath + `:1: renew-before: applies only with --generate`},
		{name: "run: renew-before flag without generate", run: true, flags: Flags{"renew-before": {"720h0m0s"}}, field: "--renew-before",
			want: `--renew-before: applies only with --generate`},
		{name: "run: max-wait under debounce in the file", run: true, conf: "debounce = 5s\nmax-wait = 1s\n", field: "--max-wait",
			want: confPath + `:2: max-wait: --max-wait 1s must be at least --debounce 5s`},
		{name: "run: metrics address", run: true, conf: "metrics-listen = nowhere\n", field: "--metrics-listen",
			want: confPath + `:1: metrics-listen: "nowhere" is not HOST:PORT`},
		{name: "a bad file value under a flag", conf: "generate = true\ntimeout = 5x\n", flags: Flags{"timeout": {"30s"}}, field: "--timeout",
			want: confPath + `:2: timeout: "5x" is not a duration`},
		{name: "a bad file host under --host", conf: "generate = true\nhost = tcp://0.0.0.0\n", flags: Flags{"host": {"tcp://0.0.0.0:2376"}}, field: "--host",
			want: confPath + `:2: host: "tcp://0.0.0.0" has no port`},
		{name: "ca-file with generate", conf: "generate = true\nca-file = root_ca.crt\n", field: "--ca-file",
			want: confPath + `:2: ca-file: applies only with --certs`},
		{name: "cert-file in a subdirectory", conf: "certs = /srv/step\ncert-file = certs/server.crt\n", field: "--cert-file",
			want: confPath + `:2: cert-file: "certs/server.crt" is not a file name inside --certs`},
		{name: "key-file as an absolute path", flags: Flags{"certs": {"/srv/step"}, "key-file": {"/srv/step/server.key"}}, field: "--key-file",
			want: `--key-file: "/srv/step/server.key" is not a file name inside --certs`},
		{name: "ca-file relative with a slash", conf: "certs = /srv/step\nca-file = ../root_ca.crt\n", field: "--ca-file",
			want: confPath + `:2: ca-file: "../root_ca.crt" is neither a file name inside --certs nor an absolute path`},
		{name: "key-file is the certificate", conf: "certs = /srv/k8s\ncert-file = tls.pem\nkey-file = tls.pem\n", field: "--key-file",
			want: confPath + `:3: key-file: /srv/k8s/tls.pem is also the certificate`},
		{name: "a flag that is no setting", flags: Flags{"dry-run": {"true"}}, field: "--dry-run", want: "is not a setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Settings{Root: "/", File: parseConf(t, tt.conf), Flags: tt.flags}
			var err error
			if tt.run {
				_, _, err = MergeRun(s)
			} else {
				_, _, err = MergeProvision(s)
			}
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != tt.field || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant an input error on %s with %q", err, tt.field, tt.want)
			}
		})
	}
}

func TestMergeOrigins(t *testing.T) {
	s := Settings{
		Root:  "/",
		File:  parseConf(t, "generate = true\n# c\nhost = tcp://0.0.0.0:2376\nhost = tcp://[::]:2377\ntimeout = 30s\n"),
		Flags: Flags{"timeout": {"1m0s"}},
	}
	_, got, err := MergeRun(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(settingKeys) {
		t.Fatalf("%d settings, want every key (%d)", len(got), len(settingKeys))
	}
	byKey := map[string]Setting{}
	for _, st := range got {
		byKey[st.Key] = st
	}
	for _, tc := range []struct {
		key, from string
		values    []string
	}{
		{"generate", confPath + ":1", []string{"true"}},
		{"host", confPath + ":3,4", []string{"tcp://0.0.0.0:2376", "tcp://[::]:2377"}},
		{"timeout", "--timeout", []string{"1m0s"}},
		{"mode", "default", []string{"daemon-json"}},
		{"certs", "default", []string{""}},
		{"san", "default", []string{}},
		{"audit-log-max-size", "default", []string{"100M"}},
		{"min-restart-interval", "default", []string{"20s"}},
	} {
		st := byKey[tc.key]
		if st.From() != tc.from || !reflect.DeepEqual(st.Values, tc.values) {
			t.Errorf("%s: %v from %s, want %v from %s", tc.key, st.Values, st.From(), tc.values, tc.from)
		}
	}
}

func TestMergeSourceNames(t *testing.T) {
	s := Settings{Root: "/", File: parseConf(t, "certs = /etc/letsencrypt/live/h\ncert-file = fullchain.pem\nkey-file = privkey.pem\n"),
		Flags: Flags{"ca-file": {"/etc/tlsdock/client-ca.pem"}}}
	rc, got, err := MergeRun(s)
	if err != nil {
		t.Fatal(err)
	}
	want := certstore.SetNames{CA: "/etc/tlsdock/client-ca.pem", Cert: "/etc/letsencrypt/live/h/fullchain.pem", Key: "/etc/letsencrypt/live/h/privkey.pem"}
	if p := rc.SourcePaths(); p != want {
		t.Fatalf("paths %+v, want %+v", p, want)
	}
	from := map[string]string{}
	for _, st := range got {
		from[st.Key] = strings.Join(st.Values, ",") + " from " + st.From()
	}
	for k, w := range map[string]string{"ca-file": "/etc/tlsdock/client-ca.pem from --ca-file", "cert-file": "fullchain.pem from " + confPath + ":2", "key-file": "privkey.pem from " + confPath + ":3"} {
		if from[k] != w {
			t.Errorf("%s: %s, want %s", k, from[k], w)
		}
	}
	// Unset, they show the defaults.
	_, got, err = MergeRun(Settings{Root: "/", File: parseConf(t, "certs = /srv/c\n")})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range got {
		if st.Key == "cert-file" && (st.Values[0] != certstore.CertFile || st.From() != FromDefault) {
			t.Errorf("cert-file unset: %v from %s", st.Values, st.From())
		}
	}
}

func TestSettingKeysMatchTheParser(t *testing.T) {
	for _, k := range settingKeys {
		body := k.name + " = x\n"
		if k.repeat {
			body += body
		}
		if _, err := ParseConfigFile(confPath, []byte(body)); err != nil {
			t.Errorf("%s: %v", k.name, err)
		}
		if len(RunDefaults().values(k.name)) == 0 && !k.repeat {
			t.Errorf("%s has no value to show", k.name)
		}
	}
}
