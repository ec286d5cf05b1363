package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeState is dockerd's view of containers and volumes.
type fakeState struct {
	mu      sync.Mutex
	cs      []dockerContainer
	vols    []dockerVolume
	err     error
	onCheck func() // called in containers, with the guard's check running
	// onInspect is called, with mu held, after container has found the
	// container it returns: it may change cs (a rename on the host).
	onInspect func()
	asked     int
	execs     []dockerExec
}

func (f *fakeState) containers(context.Context) ([]dockerContainer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	if f.onCheck != nil {
		f.onCheck()
	}
	return f.cs, f.err
}

func (f *fakeState) container(_ context.Context, name string) (dockerContainer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return dockerContainer{}, f.err
	}
	for _, c := range f.cs {
		if c.ID == name || c.Name == "/"+name || (len(name) >= 12 && strings.HasPrefix(c.ID, name)) {
			if f.onInspect != nil {
				f.onInspect()
			}
			return c, nil
		}
	}
	return dockerContainer{}, errNoSuchContainer
}

func (f *fakeState) exec(_ context.Context, id string) (dockerExec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return dockerExec{}, f.err
	}
	for _, e := range f.execs {
		if e.ID == id {
			return e, nil
		}
	}
	return dockerExec{}, errNoSuchExec
}

func (f *fakeState) volumes(context.Context) ([]dockerVolume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vols, f.err
}

// hostTree is a temp dir with root/ (the bind root) holding data/, a
// symlink escape -> outside/, a dangling symlink, and outside/.
func hostTree(t *testing.T) (root, outside string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root, outside = filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	for _, d := range []string{filepath.Join(root, "data", "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "later"), filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func newConfinement(t *testing.T, st dockerState, roots ...string) *confinement {
	t.Helper()
	g := compiledGuard(t, Guard{BindRoots: roots})
	return &confinement{g: g, state: st, resolve: defaultResolver, lstat: os.Lstat}
}

func TestConfineSources(t *testing.T) {
	root, outside := hostTree(t)
	cf := newConfinement(t, &fakeState{}, root)
	for _, tc := range []struct {
		name, src, want string
	}{
		{"inside", root + "/data", ""},
		{"the root", root, ""},
		{"missing tail", root + "/data/new/dir", ""},
		{"trailing slash", root + "/data/", ""},
		{"outside", outside, "outside the allowed roots"},
		{"dotdot", root + "/../outside", "outside the allowed roots"},
		{"prefix trick", root + "x/data", "outside the allowed roots"},
		{"relative", "data", "not an absolute path"},
		{"symlink", root + "/escape", "is a symlink"},
		{"below a symlink", root + "/escape/file", "is a symlink"},
		{"dangling symlink", root + "/dangling", "is a symlink"},
		{"below a dangling symlink", root + "/dangling/x", "is a symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := cf.check(context.Background(), []hostMount{{Field: "HostConfig.Binds[0]", Source: tc.src}}, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if (tc.want == "") != (msg == "") || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %q, want %q", msg, tc.want)
			}
		})
	}
	t.Run("no roots", func(t *testing.T) {
		msg, _ := newConfinement(t, &fakeState{}).check(context.Background(), []hostMount{{Field: "f", Source: root}}, nil, false)
		if !strings.Contains(msg, "no bind_roots") {
			t.Fatalf("got %q", msg)
		}
	})
	t.Run("symlinked root", func(t *testing.T) {
		link := filepath.Join(filepath.Dir(root), "rootlink")
		if err := os.Symlink(root, link); err != nil {
			t.Fatal(err)
		}
		cf := newConfinement(t, &fakeState{}, link)
		for src, want := range map[string]string{link + "/data": "", link + "/escape": "is a symlink"} {
			msg, _ := cf.check(context.Background(), []hostMount{{Field: "f", Source: src}}, nil, false)
			if (want == "") != (msg == "") || !strings.Contains(msg, want) {
				t.Errorf("%s: got %q, want %q", src, msg, want)
			}
		}
	})
}

func bindMount(src string, rw bool) dockerMount {
	return dockerMount{Type: "bind", Source: src, Destination: "/m", RW: rw}
}

func TestConfineConflicts(t *testing.T) {
	root, outside := hostTree(t)
	data := root + "/data"
	for _, tc := range []struct {
		name   string
		others []dockerMount
		vols   []dockerVolume
		news   []hostMount
		uses   []volumeUse
		want   string
	}{
		{"no other mounts", nil, nil, []hostMount{{Field: "b", Source: data + "/sub"}}, nil, ""},
		{"writable ancestor", []dockerMount{bindMount(data, true)}, nil,
			[]hostMount{{Field: "b", Source: data + "/sub", ReadOnly: true}}, nil, "could replace a component"},
		{"read-only ancestor", []dockerMount{bindMount(data, false)}, nil,
			[]hostMount{{Field: "b", Source: data + "/sub"}}, nil, ""},
		{"writable root itself", []dockerMount{bindMount(root, true)}, nil,
			[]hostMount{{Field: "b", Source: data}}, nil, "could replace a component"},
		{"writable ancestor outside the roots", []dockerMount{bindMount(filepath.Dir(root), true)}, nil,
			[]hostMount{{Field: "b", Source: data}}, nil, ""},
		{"same path", []dockerMount{bindMount(data, true)}, nil,
			[]hostMount{{Field: "b", Source: data}}, nil, ""},
		{"sibling", []dockerMount{bindMount(root+"/other", true)}, nil,
			[]hostMount{{Field: "b", Source: data}}, nil, ""},
		{"new writable above another", []dockerMount{bindMount(data+"/sub", false)}, nil,
			[]hostMount{{Field: "b", Source: data}}, nil, "mounts"},
		{"new read-only above another", []dockerMount{bindMount(data+"/sub", true)}, nil,
			[]hostMount{{Field: "b", Source: data, ReadOnly: true}}, nil, ""},
		{"within one request", nil, nil,
			[]hostMount{{Field: "b0", Source: data}, {Field: "b1", Source: data + "/sub", ReadOnly: true}}, nil, "b1"},
		{"volume device is a writable ancestor", []dockerMount{{Type: "volume", Name: "v", RW: true}},
			[]dockerVolume{{Name: "v", Driver: "local", Options: map[string]string{"type": "none", "o": "bind", "device": data}}},
			[]hostMount{{Field: "b", Source: data + "/sub"}}, nil, "could replace a component"},
		{"used volume binds outside", nil,
			[]dockerVolume{{Name: "v", Driver: "local", Options: map[string]string{"type": "none", "o": "bind", "device": outside}}},
			nil, []volumeUse{{name: "v", rw: true}}, `volume "v"`},
		{"used volume binds a symlink", nil,
			[]dockerVolume{{Name: "v", Driver: "local", Options: map[string]string{"type": "none", "o": "bind", "device": root + "/escape"}}},
			nil, []volumeUse{{name: "v", rw: true}}, `volume "v"`},
		{"used volume binds inside", nil,
			[]dockerVolume{{Name: "v", Driver: "local", Options: map[string]string{"type": "none", "o": "bind", "device": data}}},
			nil, []volumeUse{{name: "v", rw: true}}, ""},
		{"used volume below a writable mount", []dockerMount{bindMount(root, true)},
			[]dockerVolume{{Name: "v", Driver: "local", Options: map[string]string{"type": "none", "o": "bind", "device": data}}},
			nil, []volumeUse{{name: "v"}}, "could replace a component"},
		{"used volume does not exist yet", nil, nil, nil, []volumeUse{{name: "new"}}, ""},
		{"plain local volume", []dockerMount{{Type: "volume", Name: "p", RW: true}}, []dockerVolume{{Name: "p", Driver: "local"}},
			[]hostMount{{Field: "b", Source: data}}, []volumeUse{{name: "p"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeState{cs: []dockerContainer{{ID: "other0123456789", Names: []string{"/other"}, Mounts: tc.others}}, vols: tc.vols}
			msg, err := newConfinement(t, st, root).check(context.Background(), tc.news, tc.uses, true)
			if err != nil {
				t.Fatal(err)
			}
			if (tc.want == "") != (msg == "") || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %q, want %q", msg, tc.want)
			}
		})
	}
}

func TestConfineFailsClosed(t *testing.T) {
	root, _ := hostTree(t)
	cf := newConfinement(t, &fakeState{err: errors.New("connection refused")}, root)
	_, err := cf.check(context.Background(), []hostMount{{Field: "b", Source: root + "/data"}}, nil, true)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v, want the state error", err)
	}
	// Nothing to mount: dockerd need not be asked.
	if msg, err := cf.check(context.Background(), nil, nil, true); msg != "" || err != nil {
		t.Fatalf("no mounts: %q %v", msg, err)
	}
}

// TestSocketState asks a fake dockerd on a unix socket.
func TestSocketState(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.RequestURI() {
		case "/containers/json?all=1":
			w.Write([]byte(`[{"Id":"abc","Names":["/web"],"Mounts":[{"Type":"bind","Source":"/srv/a","Destination":"/a","RW":true}]}]`))
		case "/containers/web/json":
			w.Write([]byte(`{"Id":"abc","Name":"/web","Mounts":[{"Type":"volume","Name":"v","RW":false}],"HostConfig":{"Privileged":true,"NetworkMode":"host","ShmSize":67108864}}`))
		case "/volumes":
			w.Write([]byte(`{"Volumes":[{"Name":"v","Driver":"local","Options":{"o":"bind","device":"/srv/v"}}],"Warnings":null}`))
		default:
			w.WriteHeader(404)
			w.Write([]byte(`{"message":"No such container: x"}`))
		}
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	st := newSocketState(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
	ctx := context.Background()
	cs, err := st.containers(ctx)
	if err != nil || len(cs) != 1 || cs[0].label() != "/web (abc)" || cs[0].Mounts[0].Source != "/srv/a" || !cs[0].Mounts[0].RW {
		t.Fatalf("containers: %+v %v", cs, err)
	}
	c, err := st.container(ctx, "web")
	if err != nil || c.ID != "abc" || c.Mounts[0].Name != "v" || c.HostConfig == nil || !c.HostConfig.Privileged || c.HostConfig.NetworkMode != "host" {
		t.Fatalf("container: %+v %v", c, err)
	}
	if _, err := st.container(ctx, "x"); !errors.Is(err, errNoSuchContainer) {
		t.Fatalf("missing container: %v", err)
	}
	vs, err := st.volumes(ctx)
	if err != nil || len(vs) != 1 || vs[0].Options["device"] != "/srv/v" {
		t.Fatalf("volumes: %+v %v", vs, err)
	}
	srv.Close()
	if _, err := st.containers(ctx); err == nil {
		t.Fatal("no error from a closed dockerd")
	}
}
