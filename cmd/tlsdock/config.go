package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
)

// Exit codes of `tlsdock config` besides 0 (configured), 1 and 2 (a bad
// setting), documented in its help and README.md.
const (
	ExitDefaultSource = 5 // not configured by the file or flags, but DefaultSource holds a complete set
	ExitNotConfigured = 6 // nothing to provision with
	ExitRecorded      = 7 // not configured by the file or flags, but the last provision by hand recorded a source
	ExitReverted      = 8 // `tlsdock revert` put the host back: only a provision by hand provisions it again
)

// exitStatus is a documented exit status that is no failure: the command
// printed what it means, and Run prints nothing more.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// configReport is what `tlsdock config --json` prints.
type configReport struct {
	ConfigFile string          `json:"config_file"`
	State      string          `json:"state"` // configured, recorded, default-source, not-configured or reverted
	ExitCode   int             `json:"exit_code"`
	Provision  string          `json:"provision,omitempty"` // the command that provisions this host
	RevertedAt time.Time       `json:"reverted_at,omitzero"`
	Settings   []agent.Setting `json:"settings"`
}

func newConfigCmd(env *Env) *cobra.Command {
	var f settingsFlags
	var rf runFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective settings, where each came from, and whether they provision this host",
		Long: `Config merges the defaults, the config file (--config, default
` + agent.ConfigFile + `) and the flags given, exactly as provision and
run (tlsdock.service) do, and prints every setting with its value and where
it came from: default, FILE:LINE, or the flag. It changes nothing.

The exit status says whether the host is configured to provision, which the
package's postinstall asks before it runs provision:
  0  configured: generate or certs is set (in the file or by a flag);
     ` + "`tlsdock provision`" + ` uses the settings as they are
  7  not configured by the file, but the last provision run by hand
     recorded its source and settings in ` + agent.StateDir + `/state.json:
     ` + "`tlsdock provision`" + ` (naming no source) provisions them again,
     as tlsdock.service serves them
  5  not configured by the file and nothing recorded, but
     ` + agent.DefaultSource + ` holds ca.pem, server-cert.pem and
     server-key.pem: ` + "`tlsdock provision --certs " + agent.DefaultSource + "`" + ` installs them
  6  not configured: nothing to provision with yet
  8  ` + "`tlsdock revert`" + ` put this host back: it stays so until
     ` + "`tlsdock provision`" + ` is run by hand (the daemon does not
     provision it either), whatever the file says
  2  a bad setting: the error names FILE:LINE (or the flag) and says
     what to do; provision and run would refuse it too
  1  any other failure, such as an unreadable config file or state

The settings are checked for both provision and run, so a value that only
the daemon uses (debounce, renew-before...) is checked too.`,
		Example: `  # What does the daemon use, and where from?
  tlsdock config

  # In a script:
  tlsdock config --json | jq -r '.settings[] | select(.source == "file") | .key'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := f.settings(cmd, env.Root)
			if err != nil {
				return err
			}
			var reverted time.Time
			s.Recorded, reverted, err = agent.LastProvision(agent.Paths{Root: env.Root})
			switch {
			case errors.Is(err, fs.ErrPermission):
				// Not root: the settings are still worth showing.
				fmt.Fprintf(env.Stderr, "tlsdock: %v: showing the settings without the record of the last provision (run as root to include it)\n", err)
			case err != nil:
				return err
			}
			rep, err := checkConfig(s, env.Root, reverted)
			if err != nil {
				return err
			}
			rep.ConfigFile = f.configPath
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printConfig(env.Stdout, rep)
			}
			if rep.ExitCode != ExitOK {
				return exitStatus(rep.ExitCode)
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	rf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the settings and the state as JSON")
	return cmd
}

// checkConfig merges the settings as run does (s.Recorded included),
// then as provision would be run, and tells whether they provision the
// host under root; reverted is when `tlsdock revert` put it back (zero:
// it did not).
func checkConfig(s agent.Settings, root string, reverted time.Time) (configReport, error) {
	rc, settings, err := agent.MergeRun(s)
	if err != nil {
		return configReport{}, err
	}
	rep := configReport{Settings: settings}
	from := map[string]string{}
	for _, st := range settings {
		from[st.Key] = st.Source
	}
	given := func(key string) bool { return from[key] == agent.FromFile || from[key] == agent.FromFlag }
	switch {
	case given("certs") || rc.Generate && given("generate"):
		rep.State, rep.ExitCode, rep.Provision = "configured", ExitOK, "tlsdock provision"
	case from["certs"] == agent.FromProvision || from["generate"] == agent.FromProvision:
		rep.State, rep.ExitCode, rep.Provision = "recorded", ExitRecorded, "tlsdock provision"
	case completeSet(filepath.Join(root, agent.DefaultSource)):
		rep.State, rep.ExitCode, rep.Provision = "default-source", ExitDefaultSource, "tlsdock provision --certs "+agent.DefaultSource
		given := agent.Flags{"certs": {agent.DefaultSource}}
		for k, v := range s.Flags {
			given[k] = v
		}
		s.Flags = given
	default:
		rep.State, rep.ExitCode = "not-configured", ExitNotConfigured
	}
	if rep.ExitCode != ExitNotConfigured {
		if _, _, err := agent.MergeProvision(s); err != nil {
			return configReport{}, err
		}
	}
	if !reverted.IsZero() {
		rep.State, rep.ExitCode, rep.Provision = "reverted", ExitReverted, ""
		rep.RevertedAt = reverted
	}
	return rep, nil
}

// completeSet reports whether dir holds the three files of a set (regular
// files, or links to them), as the postinstall always checked.
func completeSet(dir string) bool {
	for _, name := range []string{"ca.pem", "server-cert.pem", "server-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

func printConfig(w io.Writer, rep configReport) {
	fmt.Fprintf(w, "Settings (config file %s):\n", rep.ConfigFile)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, st := range rep.Settings {
		if len(st.Values) == 0 {
			fmt.Fprintf(tw, "  %s\t(none)\t%s\n", st.Key, st.From())
			continue
		}
		for i, v := range st.Values {
			from := st.From()
			if st.Source == agent.FromFile && i < len(st.Lines) {
				from = fmt.Sprintf("%s:%d", st.File, st.Lines[i])
			}
			if v == "" || strings.TrimSpace(v) != v {
				v = fmt.Sprintf("%q", v)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", st.Key, v, from)
		}
	}
	_ = tw.Flush()
	switch rep.State {
	case "configured":
		fmt.Fprintf(w, "Configured to provision: run `%s`.\n", rep.Provision)
	case "recorded":
		fmt.Fprintf(w, "Not configured by the file, but the last provision by hand recorded its source and settings (%s/state.json): run `%s`, which provisions them again.\n", agent.StateDir, rep.Provision)
	case "reverted":
		fmt.Fprintf(w, "`tlsdock revert` put this host back at %s: nothing provisions it again (neither the package nor tlsdock.service) until you run `tlsdock provision`.\n", rep.RevertedAt.UTC().Format(time.RFC3339))
	case "default-source":
		fmt.Fprintf(w, "Not configured by the file, but %s holds a complete set: run `%s`.\n", agent.DefaultSource, rep.Provision)
	default:
		fmt.Fprintf(w, "Not configured: set generate = true or certs = DIR in %s, or put ca.pem, server-cert.pem and server-key.pem into %s.\n", rep.ConfigFile, agent.DefaultSource)
	}
}
