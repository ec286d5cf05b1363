package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// Records of the local CA, next to it in /etc/tlsdock/ca.
const (
	// IssuedPath lists the client certificates the local CA issued, by
	// name, so that `tlsdock certs revoke NAME` finds their serials.
	IssuedPath = CADir + "/issued.json"
	// RevokedPath lists the revoked serials and the last CRL number.
	RevokedPath = CADir + "/revoked.json"
	// CRLValidity is how long a CRL of the local CA is current. A stale CRL
	// stays in force in the proxy; every revoke issues a new one.
	CRLValidity = 30 * 24 * time.Hour
)

// IssuedCert is one client certificate the local CA issued.
type IssuedCert struct {
	Serial   string    `json:"serial"`
	Groups   []string  `json:"groups,omitempty"`
	Issued   time.Time `json:"issued"`
	NotAfter time.Time `json:"not_after"`
}

// Issued is IssuedPath: client name → certificates.
type Issued struct {
	Clients map[string][]IssuedCert `json:"clients"`
}

// Revoked is RevokedPath.
type Revoked struct {
	// CRLNumber is the number of the last CRL published; the next is one
	// more.
	CRLNumber int64                   `json:"crl_number"`
	Serials   []certstore.RevokedCert `json:"serials"`
}

// RevokeResult is what `tlsdock certs revoke` did.
type RevokeResult struct {
	Revoked   []certstore.RevokedCert `json:"revoked"`
	Already   []string                `json:"already_revoked,omitempty"`
	CRL       string                  `json:"crl"`
	CRLNumber int64                   `json:"crl_number"`
	// Mode is the installed mode; only proxy mode enforces the CRL.
	Mode Mode `json:"mode,omitempty"`
}

func readJSON(path string, v any) error {
	data, err := certstore.ReadFileBounded(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s is damaged: %w", path, err)
	}
	return nil
}

func writeJSON(path string, v any, mode os.FileMode) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return certstore.WriteFileAtomic(path, append(data, '\n'), mode)
}

// recordIssued adds a client certificate to IssuedPath. The caller holds
// the host lock: this is a read-modify-write.
func (a *Agent) recordIssued(name, serial string, groups []string, notAfter, now time.Time) error {
	path := a.o.Paths.Abs(IssuedPath)
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return err
	}
	var is Issued
	if err := readJSON(path, &is); err != nil {
		return err
	}
	if is.Clients == nil {
		is.Clients = map[string][]IssuedCert{}
	}
	is.Clients[name] = append(is.Clients[name], IssuedCert{Serial: serial, Groups: groups, Issued: now.UTC(), NotAfter: notAfter.UTC()})
	return writeJSON(path, &is, 0o600)
}

// Revoke revokes the client certificates named NAME (every one the local
// CA issued under that name), or the certificate with that serial, and
// publishes a new CRL of the local CA in LocalCRLPath. The proxy enforces
// it within a second; dockerd (the native modes) cannot.
func (a *Agent) Revoke(nameOrSerial string) (*RevokeResult, error) {
	if nameOrSerial == "" {
		return nil, inputErr("NAME|SERIAL", "give the client's name or its certificate's serial, for example: tlsdock certs revoke alice")
	}
	unlock, err := a.lockRecords()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ca, err := certstore.LoadCA(a.o.Paths.CA())
	if err != nil {
		return nil, inputErr(CADir, "no local CA (%v): revoke works for certificates of the local CA (`tlsdock provision --generate`); for another CA, publish its CRL and pass it with --crl", err)
	}
	var is Issued
	if err := readJSON(a.o.Paths.Abs(IssuedPath), &is); err != nil {
		return nil, err
	}
	var rv Revoked
	if err := readJSON(a.o.Paths.Abs(RevokedPath), &rv); err != nil {
		return nil, err
	}
	type target struct {
		serial *big.Int
		name   string
	}
	var targets []target
	if certs, ok := is.Clients[nameOrSerial]; ok {
		for _, c := range certs {
			n, err := certstore.ParseSerial(c.Serial)
			if err != nil {
				return nil, fmt.Errorf("%s: client %q: %w", IssuedPath, nameOrSerial, err)
			}
			targets = append(targets, target{n, nameOrSerial})
		}
	} else {
		n, err := certstore.ParseSerial(nameOrSerial)
		if err != nil {
			var names []string
			for k := range is.Clients {
				names = append(names, k)
			}
			sort.Strings(names)
			return nil, inputErr("NAME|SERIAL", "%q is neither a client the local CA issued (%v) nor a serial (hex, as `openssl x509 -noout -serial` prints it)", nameOrSerial, names)
		}
		name := ""
		for k, certs := range is.Clients {
			for _, c := range certs {
				if m, err := certstore.ParseSerial(c.Serial); err == nil && m.Cmp(n) == 0 {
					name = k
				}
			}
		}
		targets = append(targets, target{n, name})
	}
	res := &RevokeResult{Mode: a.InstalledMode(), CRL: LocalCRLPath}
	now := a.o.Now()
	have := map[string]bool{}
	for _, r := range rv.Serials {
		have[certstore.FormatSerial(r.Serial)] = true
	}
	for _, t := range targets {
		key := certstore.FormatSerial(t.serial)
		if have[key] {
			res.Already = append(res.Already, key)
			continue
		}
		have[key] = true
		r := certstore.RevokedCert{Serial: t.serial, Name: t.name, RevokedAt: now.UTC()}
		rv.Serials = append(rv.Serials, r)
		res.Revoked = append(res.Revoked, r)
	}
	rv.CRLNumber++
	crl, err := ca.IssueCRL(certstore.CRLRequest{Revoked: rv.Serials, Number: big.NewInt(rv.CRLNumber), Now: now, NextUpdate: now.Add(CRLValidity)}, a.o.Rand)
	if err != nil {
		return nil, err
	}
	// The record first: a CRL is always derived from it, so a crash in
	// between leaves a record that the next revoke publishes.
	if err := writeJSON(a.o.Paths.Abs(RevokedPath), &rv, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", RevokedPath, err)
	}
	if err := certstore.WriteFileAtomic(a.o.Paths.Abs(LocalCRLPath), crl, 0o444); err != nil {
		return nil, fmt.Errorf("writing %s: %w", LocalCRLPath, err)
	}
	res.CRLNumber = rv.CRLNumber
	a.o.Logger.Info("revoked", "serials", len(res.Revoked), "crl", LocalCRLPath, "number", rv.CRLNumber)
	return res, nil
}
