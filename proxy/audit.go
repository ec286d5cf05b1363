package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Defaults of AuditLogOptions.
const (
	DefaultAuditMaxSize       = 100 << 20
	DefaultAuditKeep          = 3
	DefaultAuditFlushInterval = 100 * time.Millisecond
	auditBufSize              = 64 << 10
	// auditMaxPending bounds the records held while the file fails (a
	// full disk): beyond it Write refuses them, for the journal.
	auditMaxPending = 1 << 20
)

// AuditRecord is one request's line in the audit log (JSON). Time is when
// the request's header arrived, Duration (nanoseconds) how long it took.
type AuditRecord struct {
	Time     time.Time     `json:"time"`
	User     string        `json:"user"`
	Groups   []string      `json:"groups"`
	Serial   string        `json:"serial"`
	Remote   string        `json:"remote"`
	Method   string        `json:"method"`
	Path     string        `json:"path"`
	Status   int           `json:"status"`
	Decision string        `json:"decision"`
	Rule     string        `json:"rule,omitempty"`
	Guard    string        `json:"guard,omitempty"`
	Hijacked bool          `json:"hijacked,omitempty"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`
}

// AuditLogOptions are an AuditLog's settings; the zero value of each field
// means its default.
type AuditLogOptions struct {
	// MaxSize is the size past which the file is rotated
	// (DefaultAuditMaxSize); negative: never.
	MaxSize int64
	// Keep is how many rotated files are kept: PATH.1 (the newest) to
	// PATH.Keep (DefaultAuditKeep).
	Keep int
	// FlushInterval bounds how long a record stays in the buffer
	// (DefaultAuditFlushInterval).
	FlushInterval time.Duration
	// Logger receives the log's own failures (component=audit).
	Logger *slog.Logger
	// AfterFunc runs f after d; default time.AfterFunc. Tests pass a hook.
	AfterFunc func(d time.Duration, f func())
}

// AuditLog is the audit trail's own sink: one JSON line per request in a
// file, 0600 and owned by root, buffered and written out within
// FlushInterval, on Flush and on Close. It refuses a path that is a
// symlink or not a regular file. It rotates by size (PATH.1 ... PATH.Keep)
// and Reopen opens PATH anew after logrotate renamed it. It is safe for
// concurrent use.
type AuditLog struct {
	path string
	o    AuditLogOptions
	log  *slog.Logger

	mu sync.Mutex
	f  auditFile
	// pending are the records not yet in the file: buffered, or kept
	// while writes fail (a full disk) until they succeed again.
	pending []byte
	size    int64
	line    []byte // the record being written (appendAuditRecord)
	armed   bool
	closed  bool
	failing bool
}

// auditFile is the open log file.
type auditFile interface {
	Write([]byte) (int, error)
	Sync() error
	Close() error
}

// OpenAuditLog opens (or creates) the audit log at path, creating its
// directory 0700 when missing.
func OpenAuditLog(path string, o AuditLogOptions) (*AuditLog, error) {
	if o.MaxSize == 0 {
		o.MaxSize = DefaultAuditMaxSize
	}
	if o.Keep <= 0 {
		o.Keep = DefaultAuditKeep
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultAuditFlushInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.AfterFunc == nil {
		o.AfterFunc = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	a := &AuditLog{path: path, o: o, log: o.Logger.With("component", "audit", "audit_log", path)}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if err := a.open(); err != nil {
		return nil, err
	}
	return a, nil
}

// Path is the file the log writes.
func (a *AuditLog) Path() string { return a.path }

// open opens a.path for appending: never through a symlink, only a
// regular file, mode 0600 and root's when tlsdock runs as root.
func (a *AuditLog) open() error {
	f, err := a.openInDir()
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return fmt.Errorf("audit log %s is a symlink: tlsdock writes only a regular file (remove the link, or set audit-log to another path)", a.path)
		}
		if errors.Is(err, syscall.ENXIO) {
			return fmt.Errorf("audit log %s is not a regular file: remove it, or set audit-log to another path", a.path)
		}
		return fmt.Errorf("opening the audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log %s: %w", a.path, err)
	}
	if !st.Mode().IsRegular() {
		err = fmt.Errorf("audit log %s is not a regular file (%v): remove it, or set audit-log to another path", a.path, st.Mode().Type())
	}
	if err == nil && st.Mode().Perm() != 0o600 {
		err = f.Chmod(0o600)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); err == nil && ok && os.Geteuid() == 0 && (sys.Uid != 0 || sys.Gid != 0) {
		err = f.Chown(0, 0)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log %s: %w", a.path, err)
	}
	a.f, a.size = f, st.Size()
	return nil
}

// openInDir opens a.path in its directory, which must be owned by root
// (or the account tlsdock runs as) and writable by nobody else: whoever
// can write the directory could create the file first and keep it open,
// or remove the records. The directory is checked on the descriptor the
// file is opened in, so swapping it meanwhile does not help.
func (a *AuditLog) openInDir() (*os.File, error) {
	dir := filepath.Dir(a.path)
	dfd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer syscall.Close(dfd)
	var st syscall.Stat_t
	if err := syscall.Fstat(dfd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if (st.Uid != 0 && int(st.Uid) != os.Geteuid()) || st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("audit log directory %s (owner uid %d, mode %04o) can be written by others than root: they could forge or remove audit records: chown root:root %s && chmod go-w %s", dir, st.Uid, st.Mode&0o7777, dir, dir)
	}
	fd, err := syscall.Openat(dfd, filepath.Base(a.path), syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: a.path, Err: err}
	}
	return os.NewFile(uintptr(fd), a.path), nil
}

// ErrAuditLogClosed is returned by Write after Close.
var ErrAuditLogClosed = errors.New("audit log closed")

// Write appends one record. It goes out within FlushInterval; while the
// file fails (a full disk) records are kept, up to auditMaxPending, and
// written once it works again. An error means the record was not taken:
// the caller logs it elsewhere.
func (a *AuditLog) Write(r *AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrAuditLogClosed
	}
	if a.f == nil {
		// A failed rotation or reopen: try again.
		if err := a.open(); err != nil {
			return a.failed(err)
		}
	}
	line, err := appendAuditRecord(a.line[:0], r)
	if err != nil {
		return err
	}
	if cap(line) <= auditBufSize {
		a.line = line // reused; a huge one is not kept
	}
	n := int64(len(line))
	if cur := a.size + int64(len(a.pending)); a.o.MaxSize > 0 && cur > 0 && cur+n > a.o.MaxSize {
		if err := a.rotateLocked(); err != nil {
			return a.failed(err)
		}
	}
	if len(a.pending)+int(n) > auditBufSize {
		if err := a.flushLocked(); err != nil && len(a.pending)+int(n) > auditMaxPending {
			return fmt.Errorf("audit log %s: %d bytes of records wait for the file: %w", a.path, len(a.pending), err)
		}
	}
	a.pending = append(a.pending, line...)
	a.armLocked()
	return nil
}

func (a *AuditLog) armLocked() {
	if !a.armed && len(a.pending) > 0 {
		a.armed = true
		a.o.AfterFunc(a.o.FlushInterval, a.flushArmed)
	}
}

// failed logs the first of a run of failures.
func (a *AuditLog) failed(err error) error {
	if !a.failing {
		a.failing = true
		a.log.Error("the audit log fails; records go to the journal until it works again", "err", err)
	}
	return err
}

func (a *AuditLog) flushArmed() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armed = false
	if !a.closed {
		a.flushLocked()
		a.armLocked() // what failed is tried again
	}
}

// flushLocked writes the pending records out, counting them into the
// file's size; what a failed write left stays pending.
func (a *AuditLog) flushLocked() error {
	if a.f == nil {
		if len(a.pending) == 0 {
			return nil
		}
		if err := a.open(); err != nil {
			return a.failed(err)
		}
	}
	for len(a.pending) > 0 {
		n, err := a.f.Write(a.pending)
		a.size += int64(n)
		a.pending = a.pending[:copy(a.pending, a.pending[n:])]
		if err != nil {
			return a.failed(err)
		}
	}
	if a.failing {
		a.failing = false
		a.log.Info("the audit log works again")
	}
	return nil
}

// Flush writes the buffered records to the file now.
func (a *AuditLog) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	return a.flushLocked()
}

// rotateLocked renames PATH.i to PATH.i+1 (dropping the oldest), PATH to
// PATH.1, and opens a new PATH.
func (a *AuditLog) rotateLocked() error {
	a.flushLocked()
	a.f.Close()
	a.f = nil
	os.Remove(a.path + "." + strconv.Itoa(a.o.Keep))
	for i := a.o.Keep - 1; i >= 1; i-- {
		if err := os.Rename(a.path+"."+strconv.Itoa(i), a.path+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("rotating the audit log", "err", err)
		}
	}
	rerr := os.Rename(a.path, a.path+".1")
	if err := a.open(); err != nil {
		return err
	}
	if rerr != nil {
		a.log.Warn("the audit log could not be rotated; it grows on", "err", rerr)
	}
	return nil
}

// Reopen writes out the buffer and opens PATH anew: after logrotate moved
// the file away (SIGHUP), records go to a new file.
func (a *AuditLog) Reopen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrAuditLogClosed
	}
	if a.f != nil {
		a.flushLocked()
		a.f.Close()
		a.f = nil
	}
	if err := a.open(); err != nil {
		return a.failed(err)
	}
	return nil
}

// Close writes out the buffer, syncs and closes the file. Later writes
// fail with ErrAuditLogClosed.
func (a *AuditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	err := a.flushLocked()
	if len(a.pending) > 0 {
		// The file cannot take them: the journal keeps them.
		a.log.Error("audit records the file could not take", "records", string(a.pending), "err", err)
		a.pending = nil
	}
	if a.f == nil {
		return err
	}
	if serr := a.f.Sync(); err == nil {
		err = serr
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	a.f = nil
	return err
}
