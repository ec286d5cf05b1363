package agent

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tlsdock/tlsdock/systemd"
)

// dropInUnitDirs are the directories of systemd's system unit search path
// (systemd.unit(5), "Unit File Load Path") where a drop-in of
// docker.service can be, highest priority first.
var dropInUnitDirs = []string{
	"/etc/systemd/system.control", "/run/systemd/system.control", "/run/systemd/transient",
	"/etc/systemd/system", "/etc/systemd/system.attached",
	"/run/systemd/system", "/run/systemd/system.attached",
	"/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system",
}

// dropInsOnDisk lists docker.service's drop-ins as systemd will load them
// at its next daemon-reload: the .conf files of docker.service.d and of
// service.d (the drop-ins of every service) in each directory of the
// search path, a name in a directory of higher priority hiding the same
// name below it, in the order of their names. loaded is what systemd
// loaded last; the ones outside those directories (a generator's) are
// kept while they exist. A drop-in written to /run/systemd/system without
// a daemon-reload would otherwise escape the plan and take effect at the
// restart.
func (a *Agent) dropInsOnDisk(loaded []string) []string {
	byName := map[string]string{}
	scanned := map[string]bool{}
	for _, dir := range dropInUnitDirs {
		for _, sub := range []string{systemd.DockerUnit + ".d", "service.d"} {
			d := dir + "/" + sub
			scanned[d] = true
			entries, _ := os.ReadDir(a.o.Paths.Abs(d))
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), ".conf") || e.IsDir() {
					continue
				}
				if fi, err := os.Stat(a.o.Paths.Abs(d + "/" + e.Name())); err != nil || fi.IsDir() {
					continue
				}
				if _, ok := byName[e.Name()]; !ok {
					byName[e.Name()] = d + "/" + e.Name()
				}
			}
		}
	}
	for _, p := range loaded {
		name := filepath.Base(p)
		if scanned[filepath.Dir(p)] || byName[name] != "" {
			continue
		}
		if _, err := os.Stat(a.o.Paths.Abs(p)); err == nil {
			byName[name] = p
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, byName[n])
	}
	return out
}
