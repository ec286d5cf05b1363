package certstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		in      string
		want    KeyType
		wantErr string
	}{
		{"ecdsa-p256", ECDSAP256, ""},
		{"rsa-2048", RSA2048, ""},
		{"rsa-3072", RSA3072, ""},
		{" RSA-4096 ", RSA4096, ""},
		{"x", "", `unknown key type "x": use one of ecdsa-p256, rsa-2048, rsa-3072, rsa-4096`},
		{"rsa-1024", "", `unknown key type "rsa-1024": use one of ecdsa-p256, rsa-2048, rsa-3072, rsa-4096`},
		{"", "", `unknown key type "": use one of`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseKeyType(tc.in)
			if tc.wantErr != "" {
				wantErrContains(t, err, tc.wantErr)
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseKeyType(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		kt   KeyType
		bits int // 0 for ECDSA P-256
	}{
		{ECDSAP256, 0}, {RSA2048, 2048}, {RSA3072, 3072}, {RSA4096, 4096},
	}
	for _, tc := range tests {
		t.Run(string(tc.kt), func(t *testing.T) {
			if tc.bits > 2048 && testing.Short() {
				t.Skip("slow RSA key generation")
			}
			k, err := GenerateKey(tc.kt, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			switch k := k.(type) {
			case *ecdsa.PrivateKey:
				if tc.bits != 0 || k.Curve != elliptic.P256() {
					t.Errorf("got ECDSA %s, want %s", k.Curve.Params().Name, tc.kt)
				}
			case *rsa.PrivateKey:
				if k.N.BitLen() != tc.bits {
					t.Errorf("got RSA %d bits, want %d", k.N.BitLen(), tc.bits)
				}
			default:
				t.Errorf("got %T", k)
			}
		})
	}
	if _, err := GenerateKey("ed448", nil); err == nil {
		t.Error("unknown key type: no error")
	}
}
