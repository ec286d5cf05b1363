package agent

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"golang.org/x/sys/unix"
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
	// Owner is the account the bundle belongs to (ClientOwner.Spec).
	Owner string `json:"owner"`
}

func (a *Agent) writeClientBundle(cfg Config, plan *Plan, res *Result, now time.Time) error {
	if cfg.ClientOut == "" || plan.CA == nil {
		return nil
	}
	b, err := a.issueClient(plan.CA, DefaultClientName, nil, cfg.ClientOut, cfg.ClientOwner, false, now)
	if err != nil {
		return fmt.Errorf("the host is provisioned, but the client bundle for --client-out %s was not issued: %w", cfg.ClientOut, err)
	}
	res.ClientOut = b.Dir
	if b.Written {
		res.Changed = true
	}
	return nil
}

// IssueClient issues a client bundle from the local CA into dir for the
// account tlsdock runs as; see IssueClientFor.
func (a *Agent) IssueClient(name string, groups []string, dir string) (*ClientBundle, error) {
	return a.IssueClientFor(name, groups, dir, nil)
}

// IssueClientFor issues a client bundle from the local CA into dir: ca.pem,
// cert.pem and key.pem, ready for DOCKER_CERT_PATH, owned by owner (nil:
// the account tlsdock runs as). It holds the host lock (waiting up to
// RecordsLockWait for another tlsdock), so that concurrent issues all
// reach issued.json, and it fails, writing no bundle, when the record
// cannot be written.
func (a *Agent) IssueClientFor(name string, groups []string, dir string, owner *ClientOwner) (*ClientBundle, error) {
	if name == "" {
		return nil, inputErr("NAME", "a client needs a name, for example: tlsdock certs client alice --out ./alice")
	}
	if dir == "" {
		return nil, inputErr("--out", "give the directory to write the bundle to")
	}
	unlock, err := a.lockRecords()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ca, err := certstore.LoadCA(a.o.Paths.CA())
	if err != nil {
		return nil, inputErr(CADir, "no local CA (%v): run `tlsdock provision --generate` first", err)
	}
	return a.issueClient(ca, name, groups, dir, owner, true, a.o.Now())
}

// RecordsLockWait is how long `certs client` and `certs revoke` wait for
// the host lock: another issue takes milliseconds, a provision at most
// its restart.
const RecordsLockWait = 2 * time.Minute

// CommandLockWait is how long provision and revert wait for the host
// lock: tlsdock.service's rotation holds it for a restart and its checks,
// a provision by hand at most its --timeout.
const CommandLockWait = 2 * time.Minute

// lockRecords takes the host lock for a read-modify-write of the local
// CA's records, waiting up to RecordsLockWait.
func (a *Agent) lockRecords() (func(), error) {
	b := *a
	b.o.LockWait = max(b.o.LockWait, RecordsLockWait)
	return b.lock()
}

// issueClient issues and writes a bundle; the caller holds the host lock.
// The certificate is recorded in issued.json before any of it is written,
// so a crash never leaves a live certificate that `certs revoke NAME`
// does not know. Without force, a bundle in dir that is still good (same
// CA and name, before its renewal time, owner and modes right) is kept.
func (a *Agent) issueClient(ca *certstore.CA, name string, groups []string, dir string, owner *ClientOwner, force bool, now time.Time) (*ClientBundle, error) {
	if owner == nil {
		owner = currentOwner()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("client bundle directory %s: %w", dir, err)
	}
	dir = abs
	b := &ClientBundle{Dir: dir, Name: name, Owner: owner.Spec}
	if !force {
		if c := loadClientCert(dir); c != nil && c.CheckSignatureFrom(ca.Cert) == nil && now.Before(RenewAt(c)) && c.Subject.CommonName == name && bundleOwnedBy(dir, owner) {
			b.Serial, b.NotAfter = certstore.FormatSerial(c.SerialNumber), c.NotAfter
			return b, nil
		}
	}
	certPEM, keyPEM, err := ca.Issue(certstore.IssueRequest{
		CommonName: name, Groups: groups, KeyType: certstore.ECDSAP256, Now: now, Validity: ClientValidity,
	}, a.o.Rand)
	if err != nil {
		return nil, fmt.Errorf("issuing client certificate %q: %w", name, err)
	}
	c := parseCertPEM(certPEM)
	if c == nil {
		return nil, fmt.Errorf("issuing client certificate %q: the issued certificate does not parse", name)
	}
	b.Serial, b.NotAfter = certstore.FormatSerial(c.SerialNumber), c.NotAfter
	if err := a.recordIssued(name, b.Serial, groups, c.NotAfter, now); err != nil {
		return nil, fmt.Errorf("recording client certificate %q (serial %s) in %s: %w: no client bundle was written, because `tlsdock certs revoke %s` could not find it; fix %s and issue again", name, b.Serial, IssuedPath, err, name, IssuedPath)
	}
	d, err := openBundleDir(dir, owner)
	if err != nil {
		return nil, fmt.Errorf("%w (serial %s is recorded in %s but nobody holds its key)", err, b.Serial, IssuedPath)
	}
	defer d.Close()
	for _, f := range bundleFiles {
		data := map[string][]byte{"ca.pem": ca.CertPEM, "cert.pem": certPEM, "key.pem": keyPEM}[f.name]
		if err := certstore.WriteFileAtomicAt(d, f.name, data, f.mode, owner.UID, owner.GID); err != nil {
			return nil, fmt.Errorf("writing the client bundle: %w", err)
		}
	}
	if rc := loadClientCert(dir); rc == nil || !rc.Equal(c) {
		return nil, fmt.Errorf("the client bundle in %s does not read back", dir)
	}
	b.Written = true
	a.o.Logger.Info("issued client certificate", "name", name, "dir", dir, "serial", b.Serial)
	return b, nil
}

// loadClientCert reads the bundle's certificate, or nil. The directory
// belongs to the bundle's owner, who can put anything there: the file is
// read only when it is a regular file (no symlink followed, a FIFO is
// not waited on) and up to maxClientCertSize.
func loadClientCert(dir string) *x509.Certificate {
	fd, err := unix.Open(filepath.Join(dir, "cert.pem"), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, "cert.pem"))
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxClientCertSize+1))
	if err != nil || len(data) > maxClientCertSize {
		return nil
	}
	return parseCertPEM(data)
}

// maxClientCertSize bounds the read of a bundle's cert.pem.
const maxClientCertSize = 1 << 20

func parseCertPEM(data []byte) *x509.Certificate {
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
