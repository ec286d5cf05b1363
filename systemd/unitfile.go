package systemd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// DockerUnit is the unit tlsdock configures.
const DockerUnit = "docker.service"

// DropInName is the file name of tlsdock's drop-in. It sorts after
// "override.conf" (what `systemctl edit` writes) so that tlsdock's ExecStart,
// which is built from the effective one, comes last.
const DropInName = "zz-tlsdock.conf"

// DropInDir is where tlsdock writes its drop-in, relative to the root.
const DropInDir = "/etc/systemd/system/docker.service.d"

// maxUnitSize bounds how much of a unit file is read.
const maxUnitSize = 1 << 20

// Service is what tlsdock needs to know of a service's unit files.
type Service struct {
	// ExecStart is the effective command line, or nil if none is set.
	ExecStart Command
	// ExecStartFrom is the file that set it.
	ExecStartFrom string
	// ExecReload is the effective ExecReload value, "" if none.
	ExecReload string
	// Files lists the files read, fragment first, in the order systemd
	// applies them.
	Files []string
	// Requires lists the units of Requires= and BindsTo=: a start of the
	// service fails when one of them cannot start (systemd.unit(5)).
	Requires []string
	// Environment and EnvironmentFiles are the Environment= assignments
	// and EnvironmentFile= settings, in the order systemd applies them
	// (environment.go; Env reads the files).
	Environment      []Assignment
	EnvironmentFiles []EnvFile
	// UnsetEnvironment are the UnsetEnvironment= words: NAME, or
	// NAME=VALUE.
	UnsetEnvironment []string
}

// ReadService parses a service's fragment and drop-ins (paths as systemd
// reports them, resolved under root) and computes the effective ExecStart:
// an empty "ExecStart=" resets the list, and a service of this kind may have
// only one command. Drop-ins named in skip are left out.
func ReadService(root, fragment string, dropIns []string, skip ...string) (*Service, error) {
	if fragment == "" {
		return nil, errors.New("the unit has no fragment file: is docker.io (or docker-ce) installed?")
	}
	files := []string{fragment}
	ordered := append([]string(nil), dropIns...)
	sort.SliceStable(ordered, func(i, j int) bool {
		return filepath.Base(ordered[i]) < filepath.Base(ordered[j])
	})
	for _, d := range ordered {
		if contains(skip, d) {
			continue
		}
		files = append(files, d)
	}
	svc := &Service{Files: files}
	var cmds []string
	var from string
	for _, f := range files {
		opts, err := readOptions(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		for _, o := range opts {
			if o.Section == "Unit" && (o.Name == "Requires" || o.Name == "BindsTo") {
				if strings.TrimSpace(o.Value) == "" {
					svc.Requires = nil
				}
				svc.Requires = append(svc.Requires, strings.Fields(o.Value)...)
				continue
			}
			if o.Section != "Service" {
				continue
			}
			switch o.Name {
			case "Environment", "EnvironmentFile", "UnsetEnvironment":
				svc.addEnv(o.Name, o.Value, f)
			case "ExecStart":
				if strings.TrimSpace(o.Value) == "" {
					cmds = nil
					continue
				}
				cmds = append(cmds, o.Value)
				from = f
			case "ExecReload":
				if strings.TrimSpace(o.Value) == "" {
					svc.ExecReload = ""
				} else {
					svc.ExecReload = o.Value
				}
			}
		}
	}
	switch len(cmds) {
	case 0:
		return svc, nil
	case 1:
	default:
		return nil, fmt.Errorf("%s: docker.service ends up with %d ExecStart= lines; a service of this type takes one: add an empty \"ExecStart=\" before the last one", from, len(cmds))
	}
	cmd, err := ParseCommand(cmds[0])
	if err != nil {
		return nil, fmt.Errorf("%s: ExecStart: %w", from, err)
	}
	svc.ExecStart = cmd
	svc.ExecStartFrom = from
	return svc, nil
}

// LaterExecStart reports the drop-ins that would be applied after tlsdock's
// drop-in and set ExecStart themselves, which would silently undo it.
func LaterExecStart(root string, dropIns []string) ([]string, error) {
	var later []string
	for _, d := range dropIns {
		if filepath.Base(d) <= DropInName {
			continue
		}
		opts, err := readOptions(filepath.Join(root, d))
		if err != nil {
			return nil, err
		}
		for _, o := range opts {
			if o.Section == "Service" && o.Name == "ExecStart" {
				later = append(later, d)
				break
			}
		}
	}
	return later, nil
}

func readOptions(path string) ([]*unit.UnitOption, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading unit file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxUnitSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading unit file %s: %w", path, err)
	}
	if len(data) > maxUnitSize {
		return nil, fmt.Errorf("unit file %s is larger than %d bytes: tlsdock does not parse it", path, maxUnitSize)
	}
	opts, err := unit.DeserializeOptions(strings.NewReader(string(data)))
	if err != nil {
		return nil, fmt.Errorf("parsing unit file %s: %w", path, err)
	}
	return opts, nil
}

// RenderDropIn returns tlsdock's drop-in for docker.service: an empty
// ExecStart= that clears the unit's command, then the given one.
func RenderDropIn(cmd Command) []byte {
	opts := []*unit.UnitOption{
		unit.NewUnitOption("Service", "ExecStart", ""),
		unit.NewUnitOption("Service", "ExecStart", cmd.String()),
	}
	body, _ := io.ReadAll(unit.Serialize(opts))
	return append([]byte("# Written by tlsdock. `tlsdock revert` removes it; edits are overwritten.\n"), body...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
