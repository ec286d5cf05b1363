package proxy

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	oldtypes "github.com/docker/docker/api/types"
	oldcontainer "github.com/docker/docker/api/types/container"
	oldnetwork "github.com/docker/docker/api/types/network"
	oldvolume "github.com/docker/docker/api/types/volume"
	newcontainer "github.com/moby/moby/api/types/container"
	newnetwork "github.com/moby/moby/api/types/network"
	newvolume "github.com/moby/moby/api/types/volume"
)

// These tests are generated from dockerd's own API types: the old module
// path github.com/docker/docker at v20.10 (API 1.41, Debian 12's dockerd)
// and the newest github.com/moby/moby/api. For every field, recursively,
// a body that sets only that field to a non-zero value must be known to
// the body model: allowed, or refused with a message naming the field (or
// an enclosing one). A field the model does not know is refused as
// unknown, and fails the test, so a new API field cannot slip through as
// allowed: it fails closed, and the model has to decide it.

// apiRoot is one request body type of dockerd and where its fields sit.
type apiRoot struct {
	name   string
	kind   bodyKind
	typ    reflect.Type
	prefix []string // the wrapper keys around it ("HostConfig")
}

func apiRoots() []apiRoot {
	t := func(v any) reflect.Type { return reflect.TypeOf(v) }
	var roots []apiRoot
	for _, api := range []struct {
		name                                         string
		config, host, netcfg, update, exec, vol, net any
		connect                                      any
	}{
		{"v20.10", oldcontainer.Config{}, oldcontainer.HostConfig{}, oldnetwork.NetworkingConfig{}, oldcontainer.UpdateConfig{},
			oldtypes.ExecConfig{}, oldvolume.VolumeCreateBody{}, oldtypes.NetworkCreateRequest{}, oldtypes.NetworkConnect{}},
		{"newest", newcontainer.Config{}, newcontainer.HostConfig{}, newnetwork.NetworkingConfig{}, newcontainer.UpdateConfig{},
			newcontainer.ExecCreateRequest{}, newvolume.CreateRequest{}, newnetwork.CreateRequest{}, newnetwork.ConnectRequest{}},
	} {
		roots = append(roots,
			apiRoot{api.name + " Config", bodyCreate, t(api.config), nil},
			apiRoot{api.name + " HostConfig", bodyCreate, t(api.host), []string{"HostConfig"}},
			apiRoot{api.name + " top-level HostConfig", bodyCreate, t(api.host), nil},
			apiRoot{api.name + " NetworkingConfig", bodyCreate, t(api.netcfg), []string{"NetworkingConfig"}},
			apiRoot{api.name + " UpdateConfig", bodyUpdate, t(api.update), nil},
			apiRoot{api.name + " exec", bodyExec, t(api.exec), nil},
			apiRoot{api.name + " volume create", bodyVolume, t(api.vol), nil},
			apiRoot{api.name + " network create", bodyNetworkCreate, t(api.net), nil},
			apiRoot{api.name + " network connect", bodyNetworkConnect, t(api.connect), nil},
		)
	}
	return roots
}

// fieldStep is one step from a root to a field: a struct field, the
// first element of a list, or the "x" entry of a map.
type fieldStep struct {
	name  string // the JSON name, for a field
	list  bool
	mapOf bool
}

// apiLeaf is a field of a root whose value the test sets.
type apiLeaf struct {
	steps []fieldStep
	typ   reflect.Type
}

// leaves lists every field of t, recursively, with JSON names (embedded
// structs flattened, as encoding/json does).
func leaves(t reflect.Type, at []fieldStep, seen map[reflect.Type]bool) []apiLeaf {
	var out []apiLeaf
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, skip := apiJSONName(f)
		if skip {
			continue
		}
		if f.Anonymous && f.Tag.Get("json") == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, leaves(ft, at, seen)...)
				continue
			}
		}
		steps := append(append([]fieldStep(nil), at...), fieldStep{name: name})
		inner, extra := containerOf(f.Type)
		if inner == nil || seen[inner] {
			out = append(out, apiLeaf{steps, f.Type})
			continue
		}
		seen[inner] = true
		out = append(out, leaves(inner, append(steps, extra...), seen)...)
		delete(seen, inner)
	}
	return out
}

func apiJSONName(f reflect.StructField) (string, bool) {
	if !f.IsExported() && !f.Anonymous {
		return "", true
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", true
	}
	if n, _, _ := strings.Cut(tag, ","); n != "" {
		return n, false
	}
	return f.Name, false
}

// containerOf returns the struct that a field's type holds fields of (a
// struct, a pointer to one, a list of them, a map of them), and the steps
// to reach it; nil when the field is a value the test sets as a whole.
func containerOf(t reflect.Type) (reflect.Type, []fieldStep) {
	var steps []fieldStep
	for {
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
			continue
		case reflect.Slice:
			if t.Elem().Kind() == reflect.Uint8 {
				return nil, nil
			}
			steps = append(steps, fieldStep{list: true})
			t = t.Elem()
			continue
		case reflect.Map:
			steps = append(steps, fieldStep{mapOf: true})
			t = t.Elem()
			continue
		case reflect.Struct:
			if hasUnmarshaler(t) || !hasExportedFields(t) {
				return nil, nil
			}
			return t, steps
		}
		return nil, nil
	}
}

func hasExportedFields(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() {
			return true
		}
	}
	return false
}

func hasUnmarshaler(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(reflect.TypeFor[json.Unmarshaler]()) || p.Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

// textCandidates are JSON values tried, in order, for a type with its own
// unmarshaler (ports, addresses, prefixes, MAC addresses, string lists).
var textCandidates = []string{`"x"`, `"80/tcp"`, `"127.0.0.1"`, `"10.0.0.0/8"`, `"02:42:ac:11:00:02"`, `["x"]`, `1`}

// nonZero returns a non-zero value of t.
func nonZero(t *testing.T, typ reflect.Type) reflect.Value {
	t.Helper()
	v := reflect.New(typ).Elem()
	if typ.Kind() != reflect.Pointer && hasUnmarshaler(typ) {
		for _, c := range textCandidates {
			p := reflect.New(typ)
			if json.Unmarshal([]byte(c), p.Interface()) == nil && !p.Elem().IsZero() {
				return p.Elem()
			}
		}
		t.Fatalf("no non-zero value for %v", typ)
	}
	switch typ.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Pointer:
		v.Set(nonZero(t, typ.Elem()).Addr())
	case reflect.Slice:
		v.Set(reflect.Append(v, nonZero(t, typ.Elem())))
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			v.Index(i).Set(nonZero(t, typ.Elem()))
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(typ))
		v.SetMapIndex(nonZero(t, typ.Key()), nonZero(t, typ.Elem()))
	case reflect.Struct:
		for i := 0; i < typ.NumField(); i++ {
			if typ.Field(i).IsExported() {
				v.Field(i).Set(nonZero(t, typ.Field(i).Type))
			}
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf("x"))
	default:
		t.Fatalf("cannot make a value of %v", typ)
	}
	if typ.Kind() == reflect.Pointer {
		return v
	}
	p := reflect.New(typ)
	p.Elem().Set(v)
	return p.Elem()
}

// mountContext gives a HostConfig.Mounts entry the type its options need,
// so that the options themselves are classified.
func mountContext(steps []fieldStep) map[string]any {
	ctx := map[string]any{"Type": "volume", "Target": "/t"}
	if len(steps) > 0 {
		switch steps[0].name {
		case "BindOptions":
			ctx["Type"], ctx["Source"] = "bind", "/srv/x"
		case "TmpfsOptions":
			ctx["Type"] = "tmpfs"
		case "ImageOptions":
			ctx["Type"], ctx["Source"] = "image", "busybox"
		case "Type", "Source":
			delete(ctx, steps[0].name)
		}
	}
	return ctx
}

// build returns the JSON value that sets the leaf (steps) to value, and
// the names the body model may use for it or an enclosing field.
func build(steps []fieldStep, value any, path string) (any, []string) {
	if len(steps) == 0 {
		return value, nil
	}
	s := steps[0]
	switch {
	case s.list:
		inner, names := build(steps[1:], value, path+"[0]")
		if m, ok := inner.(map[string]any); ok && strings.HasSuffix(path, "Mounts") {
			for k, v := range mountContext(steps[1:]) {
				if _, set := m[k]; !set {
					m[k] = v
				}
			}
		}
		return []any{inner}, names
	case s.mapOf:
		inner, names := build(steps[1:], value, path+`["x"]`)
		return map[string]any{"x": inner}, names
	default:
		p := join(path, s.name)
		inner, names := build(steps[1:], value, p)
		return map[string]any{s.name: inner}, append([]string{p}, names...)
	}
}

func TestBodyModelKnowsEveryDockerField(t *testing.T) {
	g := &Guard{name: "strict"}
	total := 0
	for _, root := range apiRoots() {
		t.Run(root.name, func(t *testing.T) {
			for _, leaf := range leaves(root.typ, nil, map[reflect.Type]bool{}) {
				value, err := json.Marshal(nonZero(t, leaf.typ).Interface())
				if err != nil {
					t.Fatalf("%v: %v", leaf.steps, err)
				}
				prefix := strings.Join(root.prefix, ".")
				obj, names := build(leaf.steps, json.RawMessage(value), prefix)
				for i := len(root.prefix) - 1; i >= 0; i-- {
					obj = map[string]any{root.prefix[i]: obj}
				}
				body, err := json.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				total++
				_, _, deny := g.checkBody(root.kind, body)
				switch {
				case deny == "":
					t.Logf("allowed: %s", body)
				case strings.Contains(deny, "unknown") || strings.Contains(deny, "cannot read") || strings.Contains(deny, "not classified"):
					t.Errorf("%s: %s", body, deny)
				default:
					named := false
					for _, n := range names {
						named = named || strings.Contains(deny, n+" ") || strings.Contains(deny, n+"[")
					}
					if !named {
						t.Errorf("%s: refusal %q names none of %q", body, deny, names)
					} else {
						t.Logf("refused: %s: %s", body, deny)
					}
				}
			}
		})
	}
	if total < 400 {
		t.Errorf("only %d fields tried; the walk over dockerd's types is broken", total)
	}
}

// TestBodyModelAllowsZeroBodies: a body as the docker CLI sends it, with
// every field at its zero value, is allowed.
func TestBodyModelAllowsZeroBodies(t *testing.T) {
	g := &Guard{name: "strict"}
	for _, root := range apiRoots() {
		t.Run(root.name, func(t *testing.T) {
			obj := reflect.New(root.typ).Interface()
			for i := len(root.prefix) - 1; i >= 0; i-- {
				obj = map[string]any{root.prefix[i]: obj}
			}
			body, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, deny := g.checkBody(root.kind, body); deny != "" {
				t.Errorf("%s: %s", body, deny)
			}
		})
	}
}

func TestBodyModelRefusesUnknownFields(t *testing.T) {
	g := &Guard{name: "strict"}
	for _, kind := range []bodyKind{bodyCreate, bodyUpdate, bodyExec, bodyVolume, bodyNetworkCreate, bodyNetworkConnect} {
		for _, body := range []string{`{"NotADockerField":1}`, `{"HostConfig":{"NotADockerField":1}}`} {
			t.Run(fmt.Sprintf("%d %s", kind, body), func(t *testing.T) {
				_, _, deny := g.checkBody(kind, []byte(body))
				if !strings.Contains(deny, `"NotADockerField" is unknown`) && !(kind != bodyCreate && strings.Contains(deny, `"HostConfig" is unknown`)) {
					t.Errorf("got %q, want the unknown field refused", deny)
				}
			})
		}
	}
}

// TestBodyModelNullKeepsTheValue: JSON null leaves a string, number,
// bool or struct of dockerd's unchanged, so {"CgroupParent": "/x",
// "CgroupParent": null} sets CgroupParent in dockerd. For every field the
// model refuses, the same body with a duplicate null after the value, of
// the field or of any field enclosing it, must be refused too wherever
// dockerd's own types keep the value.
func TestBodyModelNullKeepsTheValue(t *testing.T) {
	g := &Guard{name: "strict"}
	tried := 0
	for _, root := range apiRoots() {
		t.Run(root.name, func(t *testing.T) {
			for _, leaf := range leaves(root.typ, nil, map[reflect.Type]bool{}) {
				value, err := json.Marshal(nonZero(t, leaf.typ).Interface())
				if err != nil {
					t.Fatalf("%v: %v", leaf.steps, err)
				}
				single := buildDup(leaf.steps, string(value), -1, "")
				for k, st := range leaf.steps {
					if st.name == "" {
						continue
					}
					double := buildDup(leaf.steps, string(value), k, "")
					// What dockerd's types make of both.
					a, b := reflect.New(root.typ), reflect.New(root.typ)
					if json.Unmarshal([]byte(single), a.Interface()) != nil || json.Unmarshal([]byte(double), b.Interface()) != nil {
						continue
					}
					if !reflect.DeepEqual(a.Interface(), b.Interface()) {
						continue // null unsets it in dockerd too
					}
					wrap := func(body string) []byte {
						for i := len(root.prefix) - 1; i >= 0; i-- {
							body = fmt.Sprintf("{%q:%s}", root.prefix[i], body)
						}
						return []byte(body)
					}
					if _, _, deny := g.checkBody(root.kind, wrap(single)); deny == "" {
						continue
					}
					tried++
					if _, _, deny := g.checkBody(root.kind, wrap(double)); deny == "" {
						t.Errorf("%s is allowed; dockerd reads it as %s, which is refused", wrap(double), wrap(single))
					}
				}
			}
		})
	}
	if tried < 50 {
		t.Errorf("only %d refused fields tried", tried)
	}
}

// buildDup is build as JSON text, with a duplicate null after the field
// at steps[dup] (none when dup < 0).
func buildDup(steps []fieldStep, value string, dup int, path string) string {
	if len(steps) == 0 {
		return value
	}
	s := steps[0]
	switch {
	case s.list:
		inner := buildDup(steps[1:], value, dup-1, path+"[0]")
		if strings.HasPrefix(inner, "{") && strings.HasSuffix(path, "Mounts") {
			for k, v := range mountContext(steps[1:]) {
				if !strings.Contains(inner, fmt.Sprintf("{%q:", k)) {
					b, _ := json.Marshal(v)
					inner = fmt.Sprintf("{%q:%s,", k, b) + inner[1:]
				}
			}
		}
		return "[" + inner + "]"
	case s.mapOf:
		return `{"x":` + buildDup(steps[1:], value, dup-1, path+`["x"]`) + "}"
	default:
		inner := buildDup(steps[1:], value, dup-1, join(path, s.name))
		if dup == 0 {
			return fmt.Sprintf("{%q:%s,%q:null}", s.name, inner, s.name)
		}
		return fmt.Sprintf("{%q:%s}", s.name, inner)
	}
}
