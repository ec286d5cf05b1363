package proxy

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func checkAuditJSON(t *testing.T, r *AuditRecord) {
	t.Helper()
	var buf bytes.Buffer
	werr := json.NewEncoder(&buf).Encode(r)
	want := buf.Bytes()
	got, err := appendAuditRecord([]byte("prefix"), r)
	if (err != nil) != (werr != nil) {
		t.Fatalf("appendAuditRecord error %v, encoding/json's %v", err, werr)
	}
	if err != nil {
		return
	}
	if !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("appendAuditRecord:\n%q\nencoding/json:\n%q", got[len("prefix"):], want)
	}
}

var oddStrings = []string{
	"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f",
	"line\u2028sep\u2029para", "caf\u00e9 \u65e5\u672c \U0001F433", "bad \xff\xfe utf8 \xc3", "\xed\xa0\x80 surrogate",
	"truncated \xe2\x80", "\ufffd replacement", "/v1.41/containers/x/json?a=<b>&c=d",
}

// TestAuditJSONMatchesEncoder: the hand-written record line is
// encoding/json's, for records with and without the optional fields and
// with odd strings in every string field.
func TestAuditJSONMatchesEncoder(t *testing.T) {
	base := AuditRecord{
		Time: time.Date(2026, 12, 3, 14, 0, 0, 123456789, time.UTC), User: "alice", Groups: []string{"dev", "ops"},
		Serial: "1f", Remote: "10.0.0.1:5000", Method: "GET", Path: "/v1.41/containers/json", Status: 200,
		Decision: "allow", Duration: 1234567,
	}
	checkAuditJSON(t, &base)
	full := base
	full.Rule, full.Guard, full.Hijacked, full.Error = "full-access", "containers", true, "dockerd did not answer"
	full.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(7*3600+30*60)))
	full.Duration = -5
	checkAuditJSON(t, &full)
	none := base
	none.Groups = nil
	checkAuditJSON(t, &none)
	empty := base
	empty.Groups = []string{}
	checkAuditJSON(t, &empty)
	checkAuditJSON(t, &AuditRecord{})
	for _, s := range oddStrings {
		r := full
		r.User, r.Groups, r.Serial, r.Remote, r.Method, r.Path, r.Decision, r.Rule, r.Guard, r.Error = s, []string{s, s}, s, s, s, s, s, s, s, s
		checkAuditJSON(t, &r)
	}
}

// FuzzAuditJSON: for any strings, the hand-written record line is
// encoding/json's.
func FuzzAuditJSON(f *testing.F) {
	for _, s := range oddStrings {
		f.Add(s, s, int64(0), 200, false)
	}
	f.Add("", "", int64(7*253402300800), -1, true) // year 10000: both fail
	f.Fuzz(func(t *testing.T, s1, s2 string, nanos int64, status int, hijacked bool) {
		r := &AuditRecord{
			Time: time.Unix(nanos/7, nanos).In(time.FixedZone("", status%(25*3600))), User: s1, Groups: []string{s2, s1}, Serial: s2, Remote: s1,
			Method: s2, Path: s1, Status: status, Decision: s2, Rule: s1, Guard: s2, Hijacked: hijacked,
			Duration: time.Duration(nanos), Error: s2,
		}
		checkAuditJSON(t, r)
	})
}
