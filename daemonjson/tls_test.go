package daemonjson

import (
	"reflect"
	"testing"
)

func TestSetTLSValidation(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*TLS)
		want   string
	}{
		{"empty ca", func(c *TLS) { c.CACert = "" }, "tlscacert: path is empty"},
		{"relative cert", func(c *TLS) { c.Cert = "ssl/cert.pem" }, `tlscert: path "ssl/cert.pem" is not absolute; dockerd would resolve it against its working directory`},
		{"empty key", func(c *TLS) { c.Key = "" }, "tlskey: path is empty"},
		{"no hosts", func(c *TLS) { c.Hosts = nil }, "hosts: the list is empty; give at least one listener, for example tcp://0.0.0.0:2376"},
		{"blank host", func(c *TLS) { c.Hosts = []string{"fd://", " "} }, "hosts: entry 1 is empty"},
		{"duplicate host", func(c *TLS) { c.Hosts = []string{"tcp://0.0.0.0:2376", "fd://", "tcp://0.0.0.0:2376"} }, `hosts: "tcp://0.0.0.0:2376" is listed twice; dockerd would fail to bind it a second time`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(`{"debug":true}`))
			if err != nil {
				t.Fatal(err)
			}
			cfg := testTLS
			cfg.Hosts = append([]string(nil), testTLS.Hosts...)
			tc.modify(&cfg)
			err = SetTLS(d, cfg)
			if errString(err) != tc.want {
				t.Errorf("SetTLS error = %v, want %q", err, tc.want)
			}
			if got := string(d.Render()); got != "{\n  \"debug\": true\n}\n" {
				t.Errorf("document changed on error:\n%s", got)
			}
		})
	}
}

func TestSetTLSDoesNotAliasHosts(t *testing.T) {
	cfg := testTLS
	cfg.Hosts = []string{"tcp://0.0.0.0:2376"}
	d := &Doc{}
	if err := SetTLS(d, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Hosts[0] = "tcp://changed:1"
	if got, _ := d.Hosts(); !reflect.DeepEqual(got, []string{"tcp://0.0.0.0:2376"}) {
		t.Errorf("Hosts() = %q", got)
	}
}

func TestRemoveTLS(t *testing.T) {
	tests := []struct {
		name, in    string
		wantRemoved []string
		want        string
	}{
		{
			name:        "all present",
			in:          `{"hosts":["fd://"],"log-driver":"journald","tlskey":"/k","tls":true,"tlsverify":true,"tlscacert":"/ca","tlscert":"/c","debug":true}`,
			wantRemoved: []string{"tls", "tlsverify", "tlscacert", "tlscert", "tlskey", "hosts"},
			want:        "{\n  \"log-driver\": \"journald\",\n  \"debug\": true\n}\n",
		},
		{
			name:        "some present",
			in:          `{"tlsverify":false,"hosts":[],"x":1}`,
			wantRemoved: []string{"tlsverify", "hosts"},
			want:        "{\n  \"x\": 1\n}\n",
		},
		{
			name:        "none present",
			in:          `{"x":1}`,
			wantRemoved: nil,
			want:        "{\n  \"x\": 1\n}\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := RemoveTLS(d); !reflect.DeepEqual(got, tc.wantRemoved) {
				t.Errorf("RemoveTLS = %q, want %q", got, tc.wantRemoved)
			}
			if got := string(d.Render()); got != tc.want {
				t.Errorf("Render =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestSetLiveRestore(t *testing.T) {
	d, err := Parse([]byte(`{"live-restore": false, "x": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := SetLiveRestore(d, true); err != nil {
		t.Fatal(err)
	}
	if got, want := string(d.Render()), "{\n  \"live-restore\": true,\n  \"x\": 1\n}\n"; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	e := &Doc{}
	if err := SetLiveRestore(e, false); err != nil {
		t.Fatal(err)
	}
	if v, present, err := e.Bool("live-restore"); v || !present || err != nil {
		t.Errorf("Bool(live-restore) = %v, %v, %v", v, present, err)
	}
}

func TestInsecureTCPHosts(t *testing.T) {
	hosts := []string{
		"fd://",
		"unix:///var/run/docker.sock",
		"tcp://0.0.0.0:2375",
		"tcp://127.0.0.1:2376",
		":2375",
		"0.0.0.0:2375",
		"",
		"TCP://0.0.0.0:1", // dockerd rejects the upper-case scheme
		"npipe:////./pipe/docker_engine",
	}
	want := []string{"tcp://0.0.0.0:2375", "tcp://127.0.0.1:2376", ":2375", "0.0.0.0:2375"}
	if got := InsecureTCPHosts(hosts, false); !reflect.DeepEqual(got, want) {
		t.Errorf("InsecureTCPHosts(tlsverify=false) = %q, want %q", got, want)
	}
	if got := InsecureTCPHosts(hosts, true); got != nil {
		t.Errorf("InsecureTCPHosts(tlsverify=true) = %q, want nil", got)
	}
	if got := InsecureTCPHosts([]string{"fd://"}, false); got != nil {
		t.Errorf("InsecureTCPHosts(fd only) = %q, want nil", got)
	}
}
