package daemonjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"unicode/utf8"
)

// DefaultPath is where dockerd reads its configuration file on Linux.
// Callers join it under their filesystem root.
const DefaultPath = "/etc/docker/daemon.json"

// MaxFileSize is the largest daemon.json that [Load] accepts (1 MiB). Real
// files are a few hundred bytes; anything larger is not a daemon.json.
const MaxFileSize = 1 << 20

// fixHint ends every error about an existing file that tlsdock refuses to
// touch.
const fixHint = "fix the file or move it away; tlsdock changed nothing"

type member struct {
	Key   string
	Value json.RawMessage
}

// Doc is a daemon.json object with its top-level keys in file order. Values
// are kept as raw JSON so unknown keys round-trip unchanged. The zero value is
// an empty document ready to use.
type Doc struct {
	members []member
}

// Load reads and parses the daemon.json at path. A missing file gives an empty
// document and exists=false. The read is bounded by [MaxFileSize]. Every error
// names the path; errors about the file's content also tell the operator what
// to do.
func Load(path string) (doc *Doc, exists bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Doc{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, true, fmt.Errorf("reading %s: not a regular file (mode %s); %s", path, fi.Mode(), fixHint)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Doc{}, false, nil // removed between Stat and Open
	}
	if err != nil {
		return nil, true, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, true, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, true, fmt.Errorf("reading %s: file is larger than 1 MiB, which is not a plausible daemon.json; %s", path, fixHint)
	}
	doc, err = Parse(data)
	if err != nil {
		return nil, true, fmt.Errorf("reading %s: %w; %s", path, err, fixHint)
	}
	return doc, true, nil
}

// Parse parses the content of a daemon.json. Empty or whitespace-only input
// gives an empty document (dockerd accepts an empty file too). Parse rejects
// invalid JSON (the error gives line and column), a top level that is not an
// object, a top-level key given twice (dockerd would silently use the last
// one) and data after the object. Duplicate keys in nested objects are left
// alone.
func Parse(data []byte) (*Doc, error) {
	start := skipSpace(data, 0)
	if start == len(data) {
		return &Doc{}, nil
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return nil, errors.New("invalid JSON: the file starts with a UTF-8 byte order mark (BOM), which dockerd rejects; save it without the BOM")
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	var top json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return nil, syntaxError(data, err)
	}
	if k := kind(top); k != "object" {
		return nil, fmt.Errorf("top level must be a JSON object, found %s", k)
	}
	if end := skipSpace(data, int(dec.InputOffset())); end < len(data) {
		line, col := position(data, end)
		return nil, fmt.Errorf("unexpected data after the top-level object at line %d, column %d", line, col)
	}

	doc, err := parseMembers(top)
	if err != nil {
		var dup *duplicateError
		if errors.As(err, &dup) {
			first, _ := position(data, start+dup.first)
			second, _ := position(data, start+dup.second)
			if first == second {
				return nil, fmt.Errorf("key %q appears twice (on line %d); remove one of them", dup.key, first)
			}
			return nil, fmt.Errorf("key %q appears twice (lines %d and %d); remove one of them", dup.key, first, second)
		}
		return nil, err
	}
	return doc, nil
}

type duplicateError struct {
	key           string
	first, second int // offsets of the ends of the two keys in the object
}

func (e *duplicateError) Error() string { return fmt.Sprintf("key %q appears twice", e.key) }

// parseMembers walks a syntactically valid JSON object token by token, so the
// members keep their order and duplicates are seen.
func parseMembers(obj []byte) (*Doc, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	doc := &Doc{}
	seen := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("invalid JSON: object key is %T", tok)
		}
		end := int(dec.InputOffset()) - 1
		if prev, dup := seen[key]; dup {
			return nil, &duplicateError{key: key, first: prev, second: end}
		}
		seen[key] = end
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		doc.members = append(doc.members, member{Key: key, Value: bytes.Clone(trimSpace(v))})
	}
	return doc, nil
}

// syntaxError turns a decoding error into one that says where the problem is.
func syntaxError(data []byte, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		line, col := position(data, len(data))
		return fmt.Errorf("invalid JSON: unexpected end of input at line %d, column %d (an object, array or string is not closed)", line, col)
	}
	// json.Unmarshal reports offsets from the start of data; it fails at the
	// same byte as the decoder did.
	var se *json.SyntaxError
	if uerr := json.Unmarshal(data, new(json.RawMessage)); errors.As(uerr, &se) {
		line, col := position(data, int(se.Offset)-1)
		return fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, se.Error())
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// position returns the 1-based line and column (in characters) of offset off.
func position(data []byte, off int) (line, col int) {
	off = max(0, min(off, len(data)))
	before := data[:off]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return bytes.Count(before, []byte{'\n'}) + 1, utf8.RuneCount(before[lineStart:]) + 1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// kind names the JSON type of a valid raw value.
func kind(raw []byte) string {
	raw = trimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// describe names the type of a raw value and, for short scalars, shows it.
func describe(raw []byte) string {
	k := kind(raw)
	switch k {
	case "string", "number", "boolean":
		const limit = 60
		v := trimSpace(raw)
		if len(v) > limit {
			return fmt.Sprintf("%s %s…", k, v[:limit])
		}
		return fmt.Sprintf("%s %s", k, v)
	}
	return k
}

func (d *Doc) list() []member {
	if d == nil {
		return nil
	}
	return d.members
}

func (d *Doc) index(key string) int {
	for i, m := range d.list() {
		if m.Key == key {
			return i
		}
	}
	return -1
}

// Keys returns the top-level keys in document order.
func (d *Doc) Keys() []string {
	keys := make([]string, 0, len(d.list()))
	for _, m := range d.list() {
		keys = append(keys, m.Key)
	}
	return keys
}

// Get returns a copy of the raw JSON value of key.
func (d *Doc) Get(key string) (json.RawMessage, bool) {
	i := d.index(key)
	if i < 0 {
		return nil, false
	}
	return bytes.Clone(d.members[i].Value), true
}

// Set marshals value (HTML characters are not escaped) and stores it under
// key. An existing key keeps its position; a new key is appended.
func (d *Doc) Set(key string, value any) error {
	if !utf8.ValidString(key) {
		return fmt.Errorf("setting %q: key is not valid UTF-8", key)
	}
	raw, err := marshal(value)
	if err != nil {
		return fmt.Errorf("setting %q: %w", key, err)
	}
	if i := d.index(key); i >= 0 {
		d.members[i].Value = raw
		return nil
	}
	d.members = append(d.members, member{Key: key, Value: raw})
	return nil
}

// Delete removes key and reports whether it was present.
func (d *Doc) Delete(key string) bool {
	i := d.index(key)
	if i < 0 {
		return false
	}
	d.members = append(d.members[:i], d.members[i+1:]...)
	return true
}

// Clone returns a deep copy of d.
func (d *Doc) Clone() *Doc {
	c := &Doc{members: make([]member, 0, len(d.list()))}
	for _, m := range d.list() {
		c.members = append(c.members, member{Key: m.Key, Value: bytes.Clone(m.Value)})
	}
	return c
}

// Equal reports whether d and o have the same keys in the same order and
// JSON-equal values: whitespace, string escapes and the order of keys inside
// nested objects do not matter. Numbers are compared by their text, so 1e3 and
// 1000 differ (a rewrite then is harmless). A nil Doc equals an empty one.
func (d *Doc) Equal(o *Doc) bool {
	a, b := d.list(), o.list()
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !valuesEqual(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func valuesEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	va, err := decodeValue(a)
	if err != nil {
		return false
	}
	vb, err := decodeValue(b)
	if err != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func decodeValue(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// Render returns the document as pretty JSON with a 2-space indent and a
// trailing newline. Values keep their content (numbers and string escapes
// verbatim) and are re-indented consistently.
func (d *Doc) Render() []byte {
	members := d.list()
	if len(members) == 0 {
		return []byte("{}\n")
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, m := range members {
		b.WriteString("  ")
		key, err := marshal(m.Key)
		if err != nil { // unreachable: a string always marshals
			key = []byte(`""`)
		}
		b.Write(key)
		b.WriteString(": ")
		if err := json.Indent(&b, m.Value, "  ", "  "); err != nil {
			b.Write(m.Value) // unreachable: stored values are valid JSON
		}
		if i < len(members)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// marshal is json.Marshal without HTML escaping, so paths and URLs stay
// readable in the file.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// Hosts returns "hosts" as a list. Absent or null gives nil; any other type
// is an error naming the key and the type found.
func (d *Doc) Hosts() ([]string, error) {
	raw, ok := d.Get("hosts")
	if !ok || kind(raw) == "null" {
		return nil, nil
	}
	if kind(raw) != "array" {
		return nil, fmt.Errorf("daemon.json key \"hosts\" must be an array of strings, found %s", describe(raw))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("daemon.json key \"hosts\": %w", err)
	}
	hosts := make([]string, 0, len(elems))
	for i, e := range elems {
		if kind(e) != "string" {
			return nil, fmt.Errorf("daemon.json key \"hosts\" must be an array of strings, found %s at index %d", describe(e), i)
		}
		var s string
		if err := json.Unmarshal(e, &s); err != nil {
			return nil, fmt.Errorf("daemon.json key \"hosts\": %w", err)
		}
		hosts = append(hosts, s)
	}
	return hosts, nil
}

// Bool returns the boolean value of key. A null value counts as present and
// false, as dockerd reads it.
func (d *Doc) Bool(key string) (value bool, present bool, err error) {
	raw, ok := d.Get(key)
	if !ok {
		return false, false, nil
	}
	switch string(trimSpace(raw)) {
	case "true":
		return true, true, nil
	case "false", "null":
		return false, true, nil
	}
	return false, true, fmt.Errorf("daemon.json key %q must be true or false, found %s", key, describe(raw))
}

// String returns the string value of key. A null value counts as present and
// empty, as dockerd reads it.
func (d *Doc) String(key string) (string, bool, error) {
	raw, ok := d.Get(key)
	if !ok {
		return "", false, nil
	}
	switch kind(raw) {
	case "null":
		return "", true, nil
	case "string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", true, fmt.Errorf("daemon.json key %q: %w", key, err)
		}
		return s, true, nil
	}
	return "", true, fmt.Errorf("daemon.json key %q must be a string, found %s", key, describe(raw))
}
