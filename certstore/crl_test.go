package certstore

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestIssueCRL(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			ca, err := NewCA(kt, now, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 10, 30, 8, 0, 0, 0, time.FixedZone("CET", 3600))
			crlPEM, err := ca.IssueCRL(CRLRequest{
				Revoked: []RevokedCert{{Serial: big.NewInt(0x3f2a9c), Name: "alice", RevokedAt: at, Reason: 1}, {Serial: big.NewInt(0xabc)}},
				Number:  big.NewInt(7), Now: now, NextUpdate: now.Add(30 * 24 * time.Hour),
			}, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			blk, rest := pem.Decode(crlPEM)
			if blk == nil || blk.Type != "X509 CRL" || len(rest) != 0 {
				t.Fatalf("not one PEM CRL: %q", crlPEM)
			}
			rl, err := x509.ParseRevocationList(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if err := rl.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("signature: %v", err)
			}
			if rl.Issuer.String() != ca.Cert.Subject.String() || rl.Number.Int64() != 7 || !rl.ThisUpdate.Equal(now) || !rl.NextUpdate.Equal(now.Add(30*24*time.Hour)) {
				t.Errorf("CRL issuer %q number %v this %v next %v", rl.Issuer, rl.Number, rl.ThisUpdate, rl.NextUpdate)
			}
			if !reflect.DeepEqual(rl.AuthorityKeyId, ca.Cert.SubjectKeyId) {
				t.Errorf("authority key id %x, want the CA's %x", rl.AuthorityKeyId, ca.Cert.SubjectKeyId)
			}
			type entry struct {
				serial string
				at     time.Time
				reason int
			}
			var got []entry
			for _, e := range rl.RevokedCertificateEntries {
				got = append(got, entry{FormatSerial(e.SerialNumber), e.RevocationTime, e.ReasonCode})
			}
			// An entry without a time is revoked at this update.
			want := []entry{{"3f2a9c", at.UTC(), 1}, {"abc", now, 0}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("entries %+v, want %+v", got, want)
			}
		})
	}
}

func TestIssueCRLRefuses(t *testing.T) {
	ca, err := NewCA(ECDSAP256, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hour := now.Add(time.Hour)
	for _, tc := range []struct {
		name string
		ca   *CA
		req  CRLRequest
		want string
	}{
		{"next update = this update", ca, CRLRequest{Number: big.NewInt(1), Now: now, NextUpdate: now}, "must be after"},
		{"no this update", ca, CRLRequest{Number: big.NewInt(1), NextUpdate: hour}, "must be after"},
		{"serial 0", ca, CRLRequest{Revoked: []RevokedCert{{Serial: big.NewInt(0)}}, Number: big.NewInt(1), Now: now, NextUpdate: hour}, "not a positive integer"},
		{"no serial", ca, CRLRequest{Revoked: []RevokedCert{{}}, Number: big.NewInt(1), Now: now, NextUpdate: hour}, "not a positive integer"},
		{"negative number", ca, CRLRequest{Number: big.NewInt(-1), Now: now, NextUpdate: hour}, "non-negative"},
		{"no number", ca, CRLRequest{Now: now, NextUpdate: hour}, "non-negative"},
		{"nil CA", nil, CRLRequest{Number: big.NewInt(1), Now: now, NextUpdate: hour}, "no CA loaded"},
		{"CA without a key", &CA{Cert: ca.Cert}, CRLRequest{Number: big.NewInt(1), Now: now, NextUpdate: hour}, "no CA loaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if crl, err := tc.ca.IssueCRL(tc.req, rand.Reader); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("IssueCRL = %q, %v; want an error containing %q", crl, err, tc.want)
			}
		})
	}
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]int64{"3f2a9c": 0x3f2a9c, "0x3F2A9C": 0x3f2a9c, "3f:2a:9c": 0x3f2a9c, " ab ": 0xab} {
		n, err := ParseSerial(in)
		if err != nil || n.Int64() != want {
			t.Errorf("ParseSerial(%q) = %v, %v", in, n, err)
		}
	}
	for _, in := range []string{"", "xyz", "0", "-1", "0x"} {
		if _, err := ParseSerial(in); err == nil {
			t.Errorf("ParseSerial(%q) succeeded", in)
		}
	}
}

func TestFormatSerial(t *testing.T) {
	big128, _ := new(big.Int).SetString("8000000000000000000000000000000f", 16)
	for _, tc := range []struct {
		in   *big.Int
		want string
	}{
		{nil, ""},
		{big.NewInt(0xabc), "abc"},
		{big.NewInt(0x0f), "f"},
		{big128, "8000000000000000000000000000000f"},
	} {
		got := FormatSerial(tc.in)
		if got != tc.want {
			t.Errorf("FormatSerial(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if tc.in == nil {
			continue
		}
		if back, err := ParseSerial(got); err != nil || back.Cmp(tc.in) != 0 {
			t.Errorf("ParseSerial(FormatSerial(%v)) = %v, %v", tc.in, back, err)
		}
	}
}

// TestRevokedCertJSON pins the JSON form of revoked.json's entries and of
// `tlsdock certs revoke --json`.
func TestRevokedCertJSON(t *testing.T) {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		r    RevokedCert
		want string
	}{
		{"named", RevokedCert{Serial: big.NewInt(0x3f2a9c), Name: "alice", RevokedAt: at}, `{"serial":"3f2a9c","name":"alice","revoked_at":"2026-11-01T12:00:00Z"}`},
		{"by serial", RevokedCert{Serial: big.NewInt(0xabc), RevokedAt: at}, `{"serial":"abc","revoked_at":"2026-11-01T12:00:00Z"}`},
		{"with a reason", RevokedCert{Serial: big.NewInt(0xabc), RevokedAt: at, Reason: 1}, `{"serial":"abc","revoked_at":"2026-11-01T12:00:00Z","reason":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := json.Marshal(tc.r)
			if err != nil || string(data) != tc.want {
				t.Fatalf("Marshal = %s, %v; want %s", data, err, tc.want)
			}
			var back RevokedCert
			if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, tc.r) {
				t.Fatalf("Unmarshal = %+v, %v; want %+v", back, err, tc.r)
			}
		})
	}
	t.Run("openssl's serial form", func(t *testing.T) {
		var r RevokedCert
		if err := json.Unmarshal([]byte(`{"serial":"3F:2A:9C","revoked_at":"2026-11-01T12:00:00Z"}`), &r); err != nil || r.Serial.Int64() != 0x3f2a9c {
			t.Fatalf("Unmarshal = %+v, %v", r, err)
		}
	})
	for _, bad := range []string{`{"serial":"xyz"}`, `{"serial":"0"}`, `{"name":"alice"}`, `{"serial":3}`} {
		var r RevokedCert
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("Unmarshal(%s) = %+v, want an error", bad, r)
		}
	}
}
