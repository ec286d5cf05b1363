package daemonjson

import (
	"slices"
	"strings"
	"testing"
)

// owned are the keys tlsdock writes; every other key is the user's.
var owned = append(append([]string{}, TLSKeys...), "hosts", "live-restore")

// userKeys returns d's keys that tlsdock does not own, in order.
func userKeys(d *Doc) []string {
	var out []string
	for _, k := range d.Keys() {
		if !slices.Contains(owned, k) {
			out = append(out, k)
		}
	}
	return out
}

// FuzzMergeKeepsUnknownKeys: every merge tlsdock makes (SetTLS with the
// hosts the file had, RemoveTLS, SetLiveRestore) renders to a document
// that parses back with the user's keys unchanged and in their order, and
// with tlsdock's keys set as asked. Conflicts never panics and reports
// only directives the document has, sorted and unique.
func FuzzMergeKeepsUnknownKeys(f *testing.F) {
	for _, tc := range renderCases {
		f.Add([]byte(tc.in), "-H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS")
	}
	f.Add([]byte(`{"hosts": [":2375", "unix:///var/run/docker.sock"], "tlsverify": "yes", "x": {"tls": 1}, "proxies": {"http-proxy": "http://p:3128"}}`), "--tlsverify=false -Dl debug --http-proxy x")
	f.Add([]byte(`{"log-opts": {"max-size": "10m"}, "runtimes": {"r": {}}, "graph": "/x", "host-gateway-ip": "1.2.3.4"}`), "--log-opt max-size=1m --add-runtime r=x -g /y --host-gateway-ip=1.1.1.1")
	f.Add([]byte("{\"\\u0000\": null, \"live-restore\": false, \"a\": 1e999}"), "-- -H x")
	f.Fuzz(func(t *testing.T, data []byte, flags string) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		args := strings.Fields(flags)
		conflicts := Conflicts(d, args)
		if !slices.IsSorted(conflicts) || len(slices.Compact(slices.Clone(conflicts))) != len(conflicts) {
			t.Fatalf("Conflicts not sorted and unique: %q", conflicts)
		}
		dirs := directives(d)
		for _, c := range conflicts {
			if !dirs[c] {
				t.Fatalf("Conflicts reports %q, which the document does not set", c)
			}
		}
		_, _, _ = d.Bool("tlsverify")
		_, _, _ = d.String("tlscacert")

		hosts, err := d.Hosts()
		if err != nil || len(hosts) == 0 {
			hosts = []string{"fd://"}
		}
		hosts = slices.Compact(append(slices.Clone(hosts), "tcp://0.0.0.0:2376"))
		merges := map[string]func(*Doc) error{
			"SetTLS": func(c *Doc) error {
				return SetTLS(c, TLS{Hosts: hosts, CACert: "/etc/docker/ssl/ca.pem", Cert: "/etc/docker/ssl/server-cert.pem", Key: "/etc/docker/ssl/server-key.pem"})
			},
			"RemoveTLS":      func(c *Doc) error { RemoveTLS(c); return nil },
			"SetLiveRestore": func(c *Doc) error { return SetLiveRestore(c, true) },
		}
		for name, merge := range merges {
			c := d.Clone()
			if err := merge(c); err != nil {
				// Only SetTLS validates, and only the hosts it is given.
				if name != "SetTLS" || !strings.HasPrefix(err.Error(), "hosts:") {
					t.Fatalf("%s: %v", name, err)
				}
				continue
			}
			back, err := Parse(c.Render())
			if err != nil {
				t.Fatalf("%s: the merged document does not parse: %v\n%s", name, err, c.Render())
			}
			if !slices.Equal(userKeys(back), userKeys(d)) {
				t.Fatalf("%s: the user's keys changed: %q -> %q", name, userKeys(d), userKeys(back))
			}
			for _, k := range userKeys(d) {
				a, _ := d.Get(k)
				b, _ := back.Get(k)
				if !valuesEqual(a, b) {
					t.Fatalf("%s: %q changed: %s -> %s", name, k, a, b)
				}
			}
			switch name {
			case "SetTLS":
				if v, _, err := back.Bool("tlsverify"); !v || err != nil {
					t.Fatalf("SetTLS: tlsverify = %v, %v", v, err)
				}
				if got, err := back.Hosts(); err != nil || !slices.Equal(got, hosts) {
					t.Fatalf("SetTLS: hosts = %q (%v), want %q", got, err, hosts)
				}
				if len(InsecureTCPHosts(hosts, true)) != 0 {
					t.Fatal("SetTLS: insecure hosts with tlsverify")
				}
			case "RemoveTLS":
				for _, k := range append(slices.Clone(TLSKeys), "hosts") {
					if _, ok := back.Get(k); ok {
						t.Fatalf("RemoveTLS left %q", k)
					}
				}
			case "SetLiveRestore":
				if v, _, err := back.Bool("live-restore"); !v || err != nil {
					t.Fatalf("SetLiveRestore: live-restore = %v, %v", v, err)
				}
			}
		}
	})
}
