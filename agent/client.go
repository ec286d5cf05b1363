package agent

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// DefaultClientName is the client certificate's name with --client-out.
const DefaultClientName = "admin"

// ClientBundle is a client certificate written for DOCKER_CERT_PATH.
type ClientBundle struct {
	Dir      string    `json:"dir"`
	Name     string    `json:"name"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	Written  bool      `json:"written"`
}

func (a *Agent) writeClientBundle(cfg Config, plan *Plan, res *Result, now time.Time) error {
	if cfg.ClientOut == "" || plan.CA == nil {
		return nil
	}
	b, err := a.issueClient(plan.CA, DefaultClientName, nil, cfg.ClientOut, false, now)
	if err != nil {
		return err
	}
	res.ClientOut = b.Dir
	if b.Written {
		res.Changed = true
	}
	return nil
}

// IssueClient issues a client bundle from the local CA into dir: ca.pem,
// cert.pem and key.pem, ready for DOCKER_CERT_PATH.
func (a *Agent) IssueClient(name string, groups []string, dir string) (*ClientBundle, error) {
	if name == "" {
		return nil, inputErr("NAME", "a client needs a name, for example: tlsdock certs client alice --out ./alice")
	}
	if dir == "" {
		return nil, inputErr("--out", "give the directory to write the bundle to")
	}
	ca, err := certstore.LoadCA(a.o.Paths.CA())
	if err != nil {
		return nil, inputErr(CADir, "no local CA (%v): run `tlsdock provision --generate` first", err)
	}
	return a.issueClient(ca, name, groups, dir, true, a.o.Now())
}

func (a *Agent) issueClient(ca *certstore.CA, name string, groups []string, dir string, force bool, now time.Time) (*ClientBundle, error) {
	b := &ClientBundle{Dir: dir, Name: name}
	if !force {
		if c := loadClientCert(dir); c != nil && c.CheckSignatureFrom(ca.Cert) == nil && now.Before(RenewAt(c)) && c.Subject.CommonName == name {
			b.Serial, b.NotAfter = fmt.Sprintf("%x", c.SerialNumber), c.NotAfter
			return b, nil
		}
	}
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{
		CommonName: name, Groups: groups, KeyType: certstore.ECDSAP256, Now: now, Validity: ClientValidity,
	}, a.o.Rand)
	if err != nil {
		return nil, fmt.Errorf("issuing client certificate %q: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"ca.pem", ca.CertPEM, 0o444}, {"cert.pem", certPEM, 0o444}, {"key.pem", keyPEM, 0o400}} {
		if err := certstore.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, fmt.Errorf("writing the client bundle: %w", err)
		}
	}
	c := loadClientCert(dir)
	if c == nil {
		return nil, fmt.Errorf("the client bundle in %s does not read back", dir)
	}
	b.Serial, b.NotAfter, b.Written = fmt.Sprintf("%x", c.SerialNumber), c.NotAfter, true
	if err := a.recordIssued(name, b.Serial, groups, c.NotAfter, now); err != nil {
		// The bundle is good; only revocation by NAME needs the record.
		a.o.Logger.Warn("recording the issued client certificate failed: revoke it by serial", "name", name, "serial", b.Serial, "err", err)
	}
	a.o.Logger.Info("issued client certificate", "name", name, "dir", dir, "serial", b.Serial)
	return b, nil
}

func loadClientCert(dir string) *x509.Certificate {
	data, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return nil
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil
	}
	return c
}
