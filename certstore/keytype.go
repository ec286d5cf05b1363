package certstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"strings"
)

// KeyType names a key algorithm and size that tlsdock can generate.
type KeyType string

// The supported key types. ECDSAP256 is the default: RSA-4096 server keys make
// every fresh TLS handshake much slower, and every docker CLI command opens a
// new connection.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
)

// KeyTypes lists every supported key type, the default first.
var KeyTypes = []KeyType{ECDSAP256, RSA2048, RSA3072, RSA4096}

func keyTypeList() string {
	s := make([]string, len(KeyTypes))
	for i, kt := range KeyTypes {
		s[i] = string(kt)
	}
	return strings.Join(s, ", ")
}

// ParseKeyType parses a key type name such as "ecdsa-p256". It is
// case-insensitive and ignores surrounding spaces.
func ParseKeyType(s string) (KeyType, error) {
	v := KeyType(strings.ToLower(strings.TrimSpace(s)))
	for _, kt := range KeyTypes {
		if v == kt {
			return kt, nil
		}
	}
	return "", fmt.Errorf("unknown key type %q: use one of %s", s, keyTypeList())
}

// GenerateKey generates a private key of type kt. A nil rand means
// crypto/rand.Reader. (Since Go 1.26 the standard library ignores rand for key
// generation unless GODEBUG=cryptocustomrand=1 is set.)
func GenerateKey(kt KeyType, rand io.Reader) (crypto.Signer, error) {
	if rand == nil {
		rand = defaultRand()
	}
	switch kt {
	case ECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand)
		if err != nil {
			return nil, fmt.Errorf("generating %s key: %w", kt, err)
		}
		return k, nil
	case RSA2048, RSA3072, RSA4096:
		bits := map[KeyType]int{RSA2048: 2048, RSA3072: 3072, RSA4096: 4096}[kt]
		k, err := rsa.GenerateKey(rand, bits)
		if err != nil {
			return nil, fmt.Errorf("generating %s key: %w", kt, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("unknown key type %q: use one of %s", string(kt), keyTypeList())
	}
}

func defaultRand() io.Reader { return rand.Reader }

// KeyTypeOf returns the key type of a key, or "" when it is none of
// KeyTypes (say, an ECDSA P-384 key from an outside CA).
func KeyTypeOf(key crypto.Signer) KeyType {
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return ECDSAP256
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	}
	return ""
}
