package agent

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/daemonjson"
	"github.com/tlsdock/tlsdock/systemd"
)

// Status is what `tlsdock status` shows.
type Status struct {
	Mode        Mode       `json:"mode,omitempty"`
	Hosts       []string   `json:"hosts,omitempty"`
	TCPHeldBy   string     `json:"tcp_held_by,omitempty"`
	Certificate *CertInfo  `json:"certificate,omitempty"`
	Files       []FileInfo `json:"files"`
	Docker      DockerUnit `json:"docker"`
	LastApply   Apply      `json:"last_apply"`
	LastError   string     `json:"last_error,omitempty"`
	// Pending is the source set `tlsdock run` installs once it is valid.
	Pending     *PendingInfo `json:"pending,omitempty"`
	Provisioned bool         `json:"provisioned"`
}

// PendingSet is a valid source set whose notBefore is ahead: the rotation
// daemon keeps serving the installed set and installs this one at
// InstallAt, notBeforeMargin after it became valid.
type PendingSet struct {
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	InstallAt time.Time `json:"install_at"`
	Source    string    `json:"source,omitempty"`
}

func (p *PendingSet) equal(q *PendingSet) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Serial == q.Serial && p.NotBefore.Equal(q.NotBefore) && p.InstallAt.Equal(q.InstallAt) && p.Source == q.Source
}

// PendingInfo is the pending set as status shows it, with Summary saying
// at the time of the status what happens next.
type PendingInfo struct {
	PendingSet
	Summary string `json:"summary"`
}

// statusTime is how status shows a time.
const statusTime = "2006-01-02 15:04:05 MST"

// summary says what becomes of the pending set, seen at now: "serial S,
// valid from T (in 3m)", never a validity start in the past.
func (p *PendingSet) summary(now time.Time) string {
	nb, at := p.NotBefore.UTC().Format(statusTime), p.InstallAt.UTC().Format(statusTime)
	switch {
	case now.Before(p.NotBefore):
		return fmt.Sprintf("serial %s, valid from %s (in %s)", p.Serial, nb, span(p.NotBefore.Sub(now)))
	case now.Before(p.InstallAt):
		return fmt.Sprintf("serial %s, valid since %s; installed at %s (in %s)", p.Serial, nb, at, span(p.InstallAt.Sub(now)))
	}
	return fmt.Sprintf("serial %s, valid since %s (%s ago) but not installed yet: `tlsdock run` was to install it at %s; check that it runs (systemctl status tlsdock)",
		p.Serial, nb, span(now.Sub(p.NotBefore)), at)
}

// span is a duration for a person: "20s", "3m", "5h", "3 days".
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Round(time.Hour)/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// CertInfo describes the installed server certificate.
type CertInfo struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    int       `json:"days_left"`
}

// FileInfo is an installed file's mode and owner.
type FileInfo struct {
	Path  string `json:"path"`
	Mode  string `json:"mode"`
	Owner string `json:"owner"`
	OK    bool   `json:"ok"`
}

// DockerUnit is docker.service's state.
type DockerUnit struct {
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	MainPID     uint32 `json:"main_pid"`
}

// statusWait bounds how long Status waits for systemd.
var statusWait = 10 * time.Second

// Status reads the installed state. It changes nothing.
func (a *Agent) Status(ctx context.Context) (*Status, error) {
	s := &Status{}
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	if st != nil {
		s.Provisioned = st.Fingerprint != ""
		s.Mode, s.Hosts, s.LastApply, s.LastError = st.Mode, st.Hosts, st.LastApply, st.LastError
		s.TCPHeldBy = st.TCPHeldBy
	}
	var pending *PendingSet
	if st != nil {
		pending = st.Pending
	}
	store := certstore.Store{Dir: a.o.Paths.SSL()}
	set, err := store.Load()
	if err != nil {
		s.LastError = fmt.Sprintf("the installed set in %s does not load: %v", SSLDir, err)
	}
	if set != nil {
		c := set.Cert
		ci := &CertInfo{Subject: c.Subject.String(), Issuer: c.Issuer.String(), DNSNames: c.DNSNames, Serial: set.Serial(),
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, DaysLeft: int(math.Floor(c.NotAfter.Sub(a.o.Now()).Hours() / 24))}
		for _, ip := range c.IPAddresses {
			ci.IPAddresses = append(ci.IPAddresses, ip.String())
		}
		s.Certificate = ci
	}
	if pending != nil && (set == nil || set.Serial() != pending.Serial) { // a provision may have installed it meanwhile
		s.Pending = &PendingInfo{PendingSet: *pending, Summary: pending.summary(a.o.Now())}
	}
	ca, cert, key := a.configuredTLSPaths()
	for _, f := range []struct {
		path string
		want os.FileMode
	}{{ca, 0o444}, {cert, 0o444}, {key, 0o400}} {
		// As the CIS Docker Benchmark reads them (checks 3.9 to 3.14):
		// stat without following a symlink, which reads 0777.
		fi, err := os.Lstat(a.o.Paths.Abs(f.path))
		if err != nil {
			continue
		}
		owner := "?"
		uid, gid := -1, -1
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
			owner = fmt.Sprintf("%d:%d", sys.Uid, sys.Gid)
		}
		s.Files = append(s.Files, FileInfo{Path: f.path, Mode: fmt.Sprintf("%04o", fi.Mode().Perm()), Owner: owner,
			OK: fi.Mode().IsRegular() && fi.Mode().Perm() == f.want && (uid == 0 && gid == 0 || os.Geteuid() != 0)})
	}
	if a.o.Systemd != nil {
		// Bounded: status must answer even when systemd does not.
		uctx, cancel := context.WithTimeout(ctx, statusWait)
		defer cancel()
		if info, err := a.o.Systemd.Unit(uctx, systemd.DockerUnit); err == nil {
			s.Docker = DockerUnit{ActiveState: info.ActiveState, SubState: info.SubState, MainPID: info.MainPID}
		} else {
			s.Docker.ActiveState = "unknown: " + err.Error()
		}
	}
	return s, nil
}

// configuredTLSPaths are the CA, certificate and key paths dockerd is
// configured with: daemon.json's tlscacert, tlscert and tlskey, else the
// --tlscacert, --tlscert and --tlskey flags of tlsdock's drop-in, else
// (proxy mode, or nothing provisioned) the installed set's Paths.
func (a *Agent) configuredTLSPaths() (ca, cert, key string) {
	ca, cert, key = certstore.Store{Dir: SSLDir}.Paths()
	found := map[string]*string{"tlscacert": &ca, "tlscert": &cert, "tlskey": &key}
	if doc, _, err := daemonjson.Load(a.o.Paths.Abs(DaemonJSONPath)); err == nil {
		n := 0
		for k, p := range found {
			if v, ok, err := doc.String(k); ok && err == nil && v != "" {
				*p = v
				n++
			}
		}
		if n > 0 {
			return ca, cert, key
		}
	}
	svc, err := systemd.ReadService(a.o.Paths.Root, DropInPath, nil)
	if err != nil || svc.ExecStart == nil {
		return ca, cert, key
	}
	args := svc.ExecStart.Args()
	for i, arg := range args {
		name, value, hasValue := strings.Cut(arg, "=")
		p, ok := found[strings.TrimPrefix(name, "--")]
		if !ok || !strings.HasPrefix(name, "--") {
			continue
		}
		switch {
		case hasValue:
			*p = value
		case i+1 < len(args):
			*p = args[i+1]
		}
	}
	return ca, cert, key
}
