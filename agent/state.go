package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// State is what tlsdock remembers between runs, in /var/lib/tlsdock/state.json.
type State struct {
	Mode     Mode     `json:"mode,omitempty"`
	Hosts    []string `json:"hosts,omitempty"`
	TCPHosts []string `json:"tcp_hosts,omitempty"`
	// TCPHeldBy is who holds the TCP listeners in daemon-json mode
	// (HeldBySocket or HeldByDockerd).
	TCPHeldBy   string    `json:"tcp_held_by,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Serial      string    `json:"serial,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	LastApply   Apply     `json:"last_apply"`
	// LastError is the current validation or apply error, shown by status
	// until a later apply succeeds.
	LastError string `json:"last_error,omitempty"`
	// Written records what tlsdock last wrote to each file it manages: the
	// SHA-256 (hex) of the content, "" when it removed the file. revert
	// puts back only files whose content is still tlsdock's. nil in the
	// state of an older tlsdock (never omitted, so that an empty record
	// is not taken for one).
	Written map[string]string `json:"written"`
	// RevertedAt is when `tlsdock revert` put the host back. The daemon
	// does not provision it again until `tlsdock provision` does.
	RevertedAt time.Time `json:"reverted_at,omitzero"`
	// Pending is the set the rotation daemon waits to install because its
	// notBefore is ahead; nil when none.
	Pending *PendingSet `json:"pending,omitempty"`
	// Source is the certificate source of the last provision run by hand,
	// which `tlsdock run` uses when neither its flags nor the config file
	// name one (MergeRun); nil when none is recorded.
	Source *SourceRecord `json:"source,omitempty"`
}

// SourceRecord is where a provision by hand took its certificates from:
// a directory with its file names (and the account allowed to own it), or
// the local CA; and the settings of the API it served.
type SourceRecord struct {
	Certs            string    `json:"certs,omitempty"` // absolute
	CAFile           string    `json:"ca_file,omitempty"`
	CertFile         string    `json:"cert_file,omitempty"`
	KeyFile          string    `json:"key_file,omitempty"`
	AllowSourceOwner string    `json:"allow_source_owner,omitempty"`
	Generate         bool      `json:"generate,omitempty"`
	Time             time.Time `json:"time,omitzero"` // of the provision that recorded it

	// The provision's other settings of the served API. The daemon takes
	// each that neither a flag nor the config file sets, so that its
	// rotations keep the host as the provision left it (a dropin host
	// stays dropin, a listener stays where it was put).
	Mode        Mode              `json:"mode,omitempty"`
	Hosts       []string          `json:"hosts,omitempty"`
	SANs        []string          `json:"sans,omitempty"`
	KeyType     certstore.KeyType `json:"key_type,omitempty"`
	LiveRestore *bool             `json:"live_restore,omitempty"`
	ProbeClient string            `json:"probe_client,omitempty"`
}

// sourceRecord is what a provision records of cfg's source. The daemon's
// own provisions keep the record they found (prev's): what it serves
// came from its settings, which may be the record itself.
func sourceRecord(cfg Config, prev *State, now time.Time) *SourceRecord {
	if cfg.daemon {
		if prev == nil {
			return nil
		}
		return prev.Source
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil && p != "" {
			return a
		}
		return p
	}
	lr := cfg.LiveRestore
	r := &SourceRecord{Time: now, Mode: cfg.Mode, Hosts: cfg.Hosts, SANs: cfg.SANs, KeyType: cfg.KeyType, LiveRestore: &lr, ProbeClient: abs(cfg.ProbeClient)}
	if cfg.Generate {
		r.Generate = true
		return r
	}
	r.Certs, r.CAFile, r.CertFile, r.KeyFile, r.AllowSourceOwner = abs(cfg.Certs), cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.AllowSourceOwner
	if r.CAFile != "" && filepath.IsAbs(r.CAFile) {
		r.CAFile = filepath.Clean(r.CAFile)
	}
	return r
}

// RecordedSource is the source the last provision by hand recorded in
// state.json under p; nil when there is none (or no state).
func RecordedSource(p Paths) (*SourceRecord, error) {
	st, err := (&Agent{o: Options{Paths: p}}).loadState()
	if err != nil || st == nil {
		return nil, err
	}
	return st.Source, nil
}

// Apply records one run of the sequence.
type Apply struct {
	Time time.Time `json:"time,omitzero"`
	// ok, unchanged, rolled-back, failed; recovered (`tlsdock run` undid
	// an interrupted apply at start-up), reverted.
	Result  string `json:"result,omitempty"`
	Changed bool   `json:"changed"`
	Error   string `json:"error,omitempty"`
	Serial  string `json:"serial,omitempty"`
	// Warnings of the run (allow-source-owner), shown by status.
	Warnings []string `json:"warnings,omitempty"`
	// Notes of a recovery or a revert: what was restored, and what was
	// left as someone else's.
	Notes []string `json:"notes,omitempty"`
}

func (a *Agent) statePath() string    { return filepath.Join(a.o.Paths.State(), "state.json") }
func (a *Agent) journalPath() string  { return filepath.Join(a.o.Paths.State(), "journal.json") }
func (a *Agent) originalPath() string { return filepath.Join(a.o.Paths.State(), "original.json") }

// loadState reads the state; nil when tlsdock never ran here.
func (a *Agent) loadState() (*State, error) {
	data, err := readPrivate(a.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", StateDir+"/state.json", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v): remove it; tlsdock rebuilds it on the next provision", StateDir+"/state.json", err)
	}
	return &st, nil
}

func (a *Agent) saveState(st *State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := mkdirPrivate(a.o.Paths.State()); err != nil {
		return fmt.Errorf("creating %s: %w", StateDir, err)
	}
	return certstore.WriteFileAtomic(a.statePath(), append(data, '\n'), 0o600)
}

// recordApply updates the last-apply record, keeping the rest of the state.
func (a *Agent) recordApply(ap Apply) { a.recordApplyAnd(ap, nil) }

// recordApplyAnd is recordApply, with change updating the state as well.
func (a *Agent) recordApplyAnd(ap Apply, change func(st *State)) {
	st, err := a.loadState()
	if err != nil || st == nil {
		st = &State{}
	}
	st.LastApply = ap
	st.LastError = ap.Error
	if change != nil {
		change(st)
	}
	if err := a.saveState(st); err != nil {
		a.o.Logger.Error("saving state", "err", err)
	}
}

// mkdirPrivate creates dir 0700 (its parents 0755, as on any host).
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}
