package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"

	"github.com/tlsdock/tlsdock/certstore"
)

// sourceWatch watches a certificate source directory with fsnotify. It
// watches directories, never the files, because issuers replace files
// rather than rewrite them:
//
//   - the source directory itself (files renamed into place, written in
//     place, Kubernetes' ..data symlink swapped);
//   - the nearest existing ancestor, to see the source directory removed,
//     recreated or swapped for a symlink;
//   - the directory of every symlink hop of the three files (ca.pem,
//     server-cert.pem and server-key.pem, or the names configured; a CA
//     given by an absolute path is watched where it is), certbot's live →
//     archive links, ..data → ..2026_01.
//
// Every path is resolved, so that one directory is never watched under two
// names. sync recomputes the set and is cheap: it runs after every relevant
// event and on a rescan.
type sourceWatch struct {
	dir   string   // the source as configured
	files []string // the absolute paths of the set's files
	names []string // their base names
	w     *fsnotify.Watcher
	log   *slog.Logger

	// Computed by sync.
	self        string          // resolved source directory, "" while it is missing
	anchor      string          // resolved nearest existing ancestor of dir
	pathChild   string          // anchor/<component toward dir>: its events are structural
	dirs        map[string]bool // resolved directories watched
	interesting map[string]bool // resolved paths whose events matter
}

func newSourceWatch(dir string, paths certstore.SetNames, log *slog.Logger) (*sourceWatch, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", dir, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w: raise fs.inotify.max_user_instances (sysctl) or stop other watchers", dir, err)
	}
	s := &sourceWatch{dir: abs, w: w, log: log}
	for _, p := range []string{paths.CA, paths.Cert, paths.Key} {
		if !filepath.IsAbs(p) {
			p = filepath.Join(abs, filepath.Base(p))
		}
		s.files = append(s.files, p)
		s.names = append(s.names, filepath.Base(p))
	}
	s.sync()
	return s, nil
}

func (s *sourceWatch) Close() error { return s.w.Close() }

// resolve returns the absolute, symlink-free form of p, or "" when p does
// not exist.
func resolve(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	r, err = filepath.Abs(r)
	if err != nil {
		return ""
	}
	return r
}

// hops lists p and every path its symlink chain goes through, at most 40
// hops (the kernel's limit).
func hops(p string) []string {
	out := []string{p}
	for i := 0; i < 40; i++ {
		t, err := os.Readlink(p)
		if err != nil {
			break
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		p = filepath.Clean(t)
		out = append(out, p)
	}
	return out
}

// sync recomputes what to watch and adds and removes watches to match.
// Adding an already watched path again is harmless, and re-adds a watch
// that the kernel dropped when its directory was removed and recreated.
func (s *sourceWatch) sync() {
	want := map[string]bool{}
	interesting := map[string]bool{}
	mark := func(p string) {
		d := resolve(filepath.Dir(p))
		if d == "" {
			return
		}
		want[d] = true
		interesting[filepath.Join(d, filepath.Base(p))] = true
	}

	anchor := filepath.Dir(s.dir)
	for {
		if fi, err := os.Stat(anchor); err == nil && fi.IsDir() {
			break
		}
		parent := filepath.Dir(anchor)
		if parent == anchor {
			break
		}
		anchor = parent
	}
	s.anchor = resolve(anchor)
	if s.anchor != "" {
		want[s.anchor] = true
		rel, err := filepath.Rel(anchor, s.dir)
		if err == nil {
			s.pathChild = filepath.Join(s.anchor, strings.Split(rel, string(filepath.Separator))[0])
		}
	}

	s.self = ""
	if fi, err := os.Stat(s.dir); err == nil && fi.IsDir() {
		s.self = resolve(s.dir)
		want[s.self] = true
	}
	for _, f := range s.files {
		if s.self == "" && filepath.Dir(f) == s.dir {
			continue
		}
		for _, p := range hops(f) {
			mark(p)
			// A hop through a symlinked directory (Kubernetes'
			// ..data): watch where that link lives too.
			d := filepath.Dir(p)
			if fi, err := os.Lstat(d); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				mark(d)
			}
		}
	}

	for d := range want {
		if err := s.w.Add(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("cannot watch a directory; changes in it are seen only on the next rescan", "dir", d, "err", err)
		}
	}
	for _, d := range s.w.WatchList() {
		if !want[d] {
			_ = s.w.Remove(d)
		}
	}
	s.dirs = want
	s.interesting = interesting
}

// classify says whether an event may change the source set (relevant) or
// the layout of what is watched (structural). Editors' swap and backup
// files and anything else beside the set are neither.
func (s *sourceWatch) classify(ev fsnotify.Event) (relevant, structural bool) {
	name := filepath.Clean(ev.Name)
	if s.dirs[name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		return true, true // a watched directory went away
	}
	if name == s.pathChild && name != s.anchor {
		return true, true // the source directory (or its parent) came or went
	}
	if s.interesting[name] {
		return true, false
	}
	dir, base := filepath.Dir(name), filepath.Base(name)
	if dir == s.self && strings.HasPrefix(base, "..") {
		return true, true // Kubernetes' ..data, ..data_tmp and generation dirs
	}
	if s.dirs[dir] && dir != s.anchor {
		for _, f := range s.names {
			if base == f {
				return true, false
			}
		}
	}
	return false, false
}
