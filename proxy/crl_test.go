package proxy

import (
	"bufio"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

var crlNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// issueCRL issues a CRL from ca listing revoked, valid from now until
// next, with CRL number number.
func issueCRL(ca *certstore.CA, revoked []certstore.RevokedCert, now, next time.Time, number *big.Int) ([]byte, error) {
	return ca.IssueCRL(certstore.CRLRequest{Revoked: revoked, Number: number, Now: now, NextUpdate: next}, rand.Reader)
}

func TestIssueAndParseCRL(t *testing.T) {
	p := newPKI(t)
	_, alice := p.client(t, "alice")
	crlPEM, err := issueCRL(p.ca, []certstore.RevokedCert{{Serial: alice.SerialNumber, RevokedAt: crlNow.Add(-time.Hour), Reason: 1}, {Serial: big.NewInt(0xabc)}},
		crlNow, crlNow.Add(7*24*time.Hour), big.NewInt(3))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(crlPEM)
	if blk == nil || blk.Type != "X509 CRL" {
		t.Fatalf("not a PEM CRL: %q", crlPEM)
	}
	for name, data := range map[string][]byte{"PEM": crlPEM, "DER": blk.Bytes} {
		t.Run(name, func(t *testing.T) {
			c, err := ParseCRL(data, "crl.pem", []*x509Cert{p.ca.Cert})
			if err != nil {
				t.Fatal(err)
			}
			if c.Number.Int64() != 3 || !c.ThisUpdate.Equal(crlNow) || len(c.Revoked) != 2 {
				t.Fatalf("CRL %+v", c)
			}
			if c.Revoked[0].Serial.Cmp(alice.SerialNumber) != 0 || c.Revoked[0].Reason != 1 || !c.Revoked[1].RevokedAt.Equal(crlNow) {
				t.Errorf("entries %+v", c.Revoked)
			}
			if c.Stale(crlNow) || !c.Stale(crlNow.Add(8*24*time.Hour)) {
				t.Error("Stale is wrong")
			}
			rev := newRevocation(Revocation{CRLs: []*CRL{c}})
			if !rev.revoked(certRevKey(alice)) {
				t.Error("alice is not revoked")
			}
			other := newPKI(t)
			_, foreignAlice := other.client(t, "alice")
			foreignAlice.SerialNumber = alice.SerialNumber // same serial, other issuer
			if rev.revoked(certRevKey(foreignAlice)) {
				t.Error("a serial from another issuer is revoked")
			}
		})
	}
}

func TestParseCRLRefuses(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	foreignCRL, err := issueCRL(other.ca, nil, crlNow, crlNow.Add(time.Hour), big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	// The same subject as p's CA but another key: the signature must fail.
	forged := *other.ca
	forgedCert := *other.ca.Cert
	forgedCert.RawSubject = p.ca.Cert.RawSubject
	forged.Cert = &forgedCert
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"foreign CA", foreignCRL, "neither a client CA"},
		{"garbage", []byte("not a crl"), "cannot be parsed"},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), `"CERTIFICATE"`},
		{"truncated PEM", []byte("-----BEGIN X509 CRL-----\nAAAA"), "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCRL(tc.data, "crl.pem", []*x509Cert{p.ca.Cert})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "crl.pem") {
				t.Fatalf("error %v, want one naming crl.pem and containing %q", err, tc.want)
			}
		})
	}
	t.Run("forged signature", func(t *testing.T) {
		// Signed with other's key, but naming p's CA as the issuer.
		crl, err := issueCRL(&forged, nil, crlNow, crlNow.Add(time.Hour), big.NewInt(1))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseCRL(crl, "crl.pem", []*x509Cert{p.ca.Cert})
		if err == nil || !strings.Contains(err.Error(), "signature does not verify") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestRevocation revokes a client while it has a connection open: the
// connection is closed, new handshakes are refused, other clients carry on.
func TestRevocation(t *testing.T) {
	e := newEnv(t, Options{})
	aliceCert, alice := e.pki.client(t, "alice")
	adminCert, _ := e.pki.client(t, "admin")
	if err := pingWith(e.addr, e.tlsConfig(aliceCert)); err != nil {
		t.Fatalf("alice before revocation: %v", err)
	}
	open := e.dial(t, aliceCert)
	openBR := bufio.NewReader(open)
	roundTrip(t, open, openBR, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")

	dir := t.TempDir()
	crlPath := filepath.Join(dir, "crl.pem")
	crl, err := issueCRL(e.pki.ca, []certstore.RevokedCert{{Serial: alice.SerialNumber}}, time.Now(), time.Now().Add(time.Hour), big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crlPath, crl, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.LoadCRLFiles(crlPath); err != nil {
		t.Fatal(err)
	}
	// The open connection was closed.
	if b, err := io.ReadAll(openBR); len(b) != 0 || (err != nil && !isReset(err)) {
		t.Errorf("alice's open connection: %q, %v; want it closed", b, err)
	}
	if err := pingWith(e.addr, e.tlsConfig(aliceCert)); err == nil {
		t.Fatal("alice still gets in")
	}
	if err := pingWith(e.addr, e.tlsConfig(adminCert)); err != nil {
		t.Fatalf("admin after revoking alice: %v", err)
	}
	st := e.srv.Status()
	if len(st.Revoked) != 1 || st.Revoked[0].Serial != alice.SerialNumber.Text(16) || len(st.CRLs) != 1 || st.CRLs[0].Source != crlPath {
		t.Errorf("status %+v %+v", st.Revoked, st.CRLs)
	}
	if recs := e.logs.records(t, "refused a revoked client certificate"); len(recs) == 0 || recs[0]["user"] != "alice" {
		t.Errorf("no warning about alice's refused handshake: %v", recs)
	}

	// A bad CRL file changes nothing.
	other := newPKI(t)
	foreign, _ := issueCRL(other.ca, nil, time.Now(), time.Now().Add(time.Hour), big.NewInt(1))
	bad := filepath.Join(dir, "foreign.pem")
	if err := os.WriteFile(bad, foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.LoadCRLFiles(crlPath, bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("foreign CRL: %v", err)
	}
	if err := e.srv.LoadCRLFiles(crlPath, filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing CRL: %v", err)
	}
	if err := pingWith(e.addr, e.tlsConfig(aliceCert)); err == nil {
		t.Fatal("alice got in after a refused CRL update")
	}
	// Clearing the CRLs lets alice back in.
	e.srv.SetCRLs()
	if err := pingWith(e.addr, e.tlsConfig(aliceCert)); err != nil {
		t.Fatalf("alice after clearing the CRLs: %v", err)
	}
}

func TestRevocationClosesHijackedStream(t *testing.T) {
	e := newEnv(t, Options{})
	aliceCert, alice := e.pki.client(t, "alice")
	c := e.dial(t, aliceCert)
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /containers/x/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	if _, err := readResponse(br); err != nil {
		t.Fatal(err)
	}
	crl, _ := issueCRL(e.pki.ca, []certstore.RevokedCert{{Serial: alice.SerialNumber}}, time.Now(), time.Now().Add(time.Hour), big.NewInt(1))
	parsed, err := ParseCRL(crl, "crl", e.srv.ClientCAs())
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetCRLs(parsed)
	if b, err := io.ReadAll(br); len(b) != 0 || (err != nil && !isReset(err)) {
		t.Errorf("hijacked stream after revocation: %q, %v", b, err)
	}
}
