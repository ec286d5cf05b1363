package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/systemd"
)

// FileState is one file as it was: absent, or a regular file with its
// content, mode and owner.
type FileState struct {
	Path    string      `json:"path"` // host path
	Exists  bool        `json:"exists"`
	Mode    fs.FileMode `json:"mode,omitempty"`
	UID     int         `json:"uid,omitempty"`
	GID     int         `json:"gid,omitempty"`
	Content []byte      `json:"content,omitempty"`
}

// Snapshot is everything tlsdock may change on a host, captured before it
// changes it. It is both the rollback journal of one apply and the record of
// the host before the first provision, which revert restores.
type Snapshot struct {
	Taken time.Time   `json:"taken"`
	Files []FileState `json:"files"`
	// ManagedSSL is true when /etc/docker/ssl already held a set installed
	// by tlsdock; the set's files are then restored with an atomic swap.
	ManagedSSL bool `json:"managed_ssl"`
	// Dirs records which directories tlsdock may create existed.
	Dirs map[string]bool `json:"dirs"`
	// Targets, in a rollback journal, are what the apply it belongs to
	// may write: per host path, the SHA-256 (hex) of each content it may
	// put there, or "" when it may remove the file. Recovery puts back
	// only a file that is in one of these states (Snapshot.onto). A
	// journal of an older tlsdock has none.
	Targets map[string][]string `json:"targets,omitempty"`
	// keepSSL: Restore leaves /etc/docker/ssl as it is (the set there is
	// the operator's, or one tlsdock never installed).
	keepSSL bool
}

// createdDirs are directories a provision may create; revert removes them
// again when they did not exist before and are empty.
var createdDirs = []string{SSLDir, "/etc/systemd/system/docker.service.d", "/etc/docker", ProxyDropInDir, systemd.SocketDropInDir}

// snapshotPaths are the host paths a provision may change.
var snapshotPaths = []string{
	DaemonJSONPath,
	DropInPath,
	SocketDropInPath,
	SSLDir + "/" + certstore.CAFile,
	SSLDir + "/" + certstore.CertFile,
	SSLDir + "/" + certstore.KeyFile,
}

// TakeSnapshot records the current state of every file tlsdock may change.
func TakeSnapshot(p Paths, now time.Time) (*Snapshot, error) {
	s := &Snapshot{Taken: now.UTC(), Dirs: map[string]bool{}}
	for _, d := range createdDirs {
		if fi, err := os.Lstat(p.Abs(d)); err == nil && fi.IsDir() {
			s.Dirs[d] = true
		}
	}
	if fi, err := os.Lstat(filepath.Join(p.SSL(), "..data")); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		s.ManagedSSL = true
	}
	for _, hp := range append(append([]string{}, snapshotPaths...), proxyUnitPaths...) {
		st, err := readFileState(p, hp)
		if err != nil {
			return nil, err
		}
		s.Files = append(s.Files, st)
	}
	return s, nil
}

func readFileState(p Paths, hostPath string) (FileState, error) {
	st := FileState{Path: hostPath}
	abs := p.Abs(hostPath)
	fi, err := os.Stat(abs) // through tlsdock's own ..data symlinks
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("backing up %s: %w", hostPath, err)
	}
	if !fi.Mode().IsRegular() {
		return st, &InputError{Field: hostPath, Err: fmt.Errorf("is a %s, not a regular file: move it away", fi.Mode().Type())}
	}
	data, err := certstore.ReadFileBounded(abs)
	if err != nil {
		return st, fmt.Errorf("backing up %s: %w", hostPath, err)
	}
	st.Exists, st.Mode, st.Content = true, fi.Mode().Perm(), data
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.UID, st.GID = int(sys.Uid), int(sys.Gid)
	}
	return st, nil
}

// File returns the recorded state of a host path.
func (s *Snapshot) File(hostPath string) FileState {
	for _, f := range s.Files {
		if f.Path == hostPath {
			return f
		}
	}
	return FileState{Path: hostPath}
}

// Save writes the snapshot to a file readable only by root: it holds the
// server key.
func (s *Snapshot) Save(path string) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := mkdirPrivate(filepath.Dir(path)); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := certstore.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("saving backup %s: %w", path, err)
	}
	return nil
}

// LoadSnapshot reads a saved snapshot; it returns nil, nil when there is none.
// A symlink in its place, or a snapshot that does not record every file
// tlsdock may change, is an error: restoring it would act on files it does
// not describe.
func LoadSnapshot(path string) (*Snapshot, error) {
	data, err := readPrivate(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading backup %s: %w", path, err)
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("backup %s is damaged: %w", path, err)
	}
	for _, hp := range snapshotPaths {
		if hp == SocketDropInPath {
			// Snapshots of an older tlsdock have no record of it: it
			// did not write it, so it did not exist then.
			continue
		}
		found := false
		for _, f := range s.Files {
			found = found || f.Path == hp
		}
		if !found {
			return nil, fmt.Errorf("backup %s is damaged: it has no record of %s: move it away and check the files tlsdock manages by hand", path, hp)
		}
	}
	return &s, nil
}

// readPrivate reads one of tlsdock's own files in /var/lib/tlsdock, never
// through a symlink.
func readPrivate(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symlink; tlsdock's own files never are: remove it", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (mode %v): remove it", path, fi.Mode())
	}
	return io.ReadAll(f)
}

// Restore puts every recorded file back as it was. The certificate set is
// restored as one unit.
func (s *Snapshot) Restore(p Paths) error {
	var errs []error
	// The set comes back before the files that name it, and goes after
	// the files that stop naming it.
	setFirst := s.namesSet()
	if setFirst && !s.keepSSL {
		if err := s.restoreSSL(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.restoreSocketFile(p, true); err != nil {
		errs = append(errs, err)
	}
	for _, hp := range s.dockerdOrder() {
		if err := restoreFile(p, s.File(hp)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.restoreSocketFile(p, false); err != nil {
		errs = append(errs, err)
	}
	// tlsdock.service's files (proxy mode), when the snapshot recorded
	// them: one taken by an older tlsdock did not.
	for _, hp := range proxyUnitPaths {
		if f, ok := s.recorded(hp); ok {
			if err := restoreFile(p, f); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if !setFirst && !s.keepSSL {
		if err := s.restoreSSL(p); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Dirs != nil {
		for _, d := range createdDirs {
			if s.Dirs[d] {
				// An empty directory an earlier step removed comes back.
				if _, err := os.Lstat(p.Abs(d)); errors.Is(err, os.ErrNotExist) && os.MkdirAll(p.Abs(d), 0o755) == nil {
					p.did("mkdir " + d)
				}
				continue
			}
			if !s.Dirs[d] {
				if os.Remove(p.Abs(d)) == nil { // only succeeds when empty
					p.did("rmdir " + d)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// dockerdOrder is the order daemon.json and tlsdock's drop-in are restored
// in (as writeOrder writes them): the drop-in first, taking its -H and
// --tls* flags away, unless the restored drop-in passes a TCP listener or
// --tls* flags, which need daemon.json's TLS settings in place (or gone,
// for dropin mode) first.
func (s *Snapshot) dockerdOrder() []string {
	d := s.File(DropInPath)
	if d.Exists && dropInAdds(d.Content) {
		return []string{DaemonJSONPath, DropInPath}
	}
	return []string{DropInPath, DaemonJSONPath}
}

// dropInAdds reports whether a drop-in's ExecStart passes a TCP listener
// or a --tls* flag (an unreadable one counts as passing them).
func dropInAdds(content []byte) bool {
	var last string
	for _, line := range strings.Split(string(content), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart="); ok && strings.TrimSpace(v) != "" {
			last = v
		}
	}
	if last == "" {
		return false
	}
	cmd, err := systemd.ParseCommand(last)
	return err != nil || passesTCPOrTLS(cmd)
}

// namesSet reports whether the snapshot's dockerd files name the installed
// set and the snapshot has one.
func (s *Snapshot) namesSet() bool {
	if !s.File(SSLDir + "/" + certstore.CertFile).Exists {
		return false
	}
	for _, hp := range dockerdPaths {
		if bytes.Contains(s.File(hp).Content, []byte(SSLDir+"/")) {
			return true
		}
	}
	return false
}

func (s *Snapshot) restoreSSL(p Paths) error {
	store := certstore.Store{Dir: p.SSL()}
	ca := s.File(SSLDir + "/" + certstore.CAFile)
	cert := s.File(SSLDir + "/" + certstore.CertFile)
	key := s.File(SSLDir + "/" + certstore.KeyFile)
	if s.ManagedSSL && ca.Exists && cert.Exists && key.Exists {
		set, err := certstore.ParseSet(ca.Content, cert.Content, key.Content, certstore.SetNames{CA: ca.Path, Cert: cert.Path, Key: key.Path})
		if err != nil {
			return fmt.Errorf("restoring the certificate set: %w", err)
		}
		if _, err = store.Install(set); err == nil {
			p.did("install the certificate set in " + SSLDir)
		}
		return err
	}
	if err := store.Remove(); err != nil {
		return err
	}
	p.did("remove the certificate set in " + SSLDir)
	var errs []error
	for _, f := range []FileState{ca, cert, key} {
		if err := restoreFile(p, f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func restoreFile(p Paths, f FileState) error {
	abs := p.Abs(f.Path)
	if f.Exists && unchanged(abs, f) {
		// Rewriting an unchanged file could only fail (a full disk) and
		// turn a clean rollback into a failed one.
		return nil
	}
	if !f.Exists {
		if err := os.Remove(abs); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restoring %s: %w", f.Path, err)
		}
		p.did("remove " + f.Path)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return fmt.Errorf("restoring %s: %w", f.Path, err)
	}
	if err := certstore.WriteFileAtomic(abs, f.Content, f.Mode); err != nil {
		return fmt.Errorf("restoring %s: %w", f.Path, err)
	}
	p.did("restore " + f.Path)
	if os.Geteuid() == 0 && (f.UID != 0 || f.GID != 0) {
		if err := os.Lchown(abs, f.UID, f.GID); err != nil {
			return fmt.Errorf("restoring owner of %s: %w", f.Path, err)
		}
	}
	return nil
}

// unchanged reports whether abs is a regular file (not a symlink) with f's
// content, mode and owner.
func unchanged(abs string, f FileState) bool {
	fi, err := os.Lstat(abs)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != f.Mode.Perm() {
		return false
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != f.UID || int(sys.Gid) != f.GID {
		return false
	}
	data, err := certstore.ReadFileBounded(abs)
	return err == nil && bytes.Equal(data, f.Content)
}
