package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newStatusCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the mode, listeners, installed certificate, file modes and docker's state",
		Long: `Status shows what tlsdock set up on this host: the mode and listeners, the
installed server certificate (subject, names, serial, expiry and days left),
the modes and owners of the installed files, docker.service's state, and the
result of the last provision or rotation. It changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, closer, err := env.newAgent(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer closer()
			s, err := a.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			w := env.Stdout
			if !s.Provisioned {
				fmt.Fprintln(w, "tlsdock has not provisioned this host: run `tlsdock provision --help`.")
			}
			fmt.Fprintf(w, "mode:        %s\n", orDash(string(s.Mode)))
			fmt.Fprintf(w, "listeners:   %s\n", orDash(strings.Join(s.Hosts, " ")))
			if c := s.Certificate; c != nil {
				fmt.Fprintf(w, "certificate: %s\n", c.Subject)
				fmt.Fprintf(w, "  issuer:    %s\n", c.Issuer)
				fmt.Fprintf(w, "  names:     %s\n", strings.Join(append(append([]string{}, c.DNSNames...), c.IPAddresses...), ", "))
				fmt.Fprintf(w, "  serial:    %s\n", c.Serial)
				fmt.Fprintf(w, "  expires:   %s (%d days left)\n", c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), c.DaysLeft)
			} else {
				fmt.Fprintln(w, "certificate: none installed")
			}
			for _, f := range s.Files {
				mark := "ok"
				if !f.OK {
					mark = "WRONG: keys must be 0400 and certificates 0444, root:root"
				}
				fmt.Fprintf(w, "  %s %s %s %s\n", f.Mode, f.Owner, f.Path, mark)
			}
			fmt.Fprintf(w, "docker:      %s (%s), main PID %d\n", s.Docker.ActiveState, s.Docker.SubState, s.Docker.MainPID)
			if !s.LastApply.Time.IsZero() {
				fmt.Fprintf(w, "last apply:  %s %s", s.LastApply.Time.UTC().Format("2006-01-02 15:04:05 MST"), s.LastApply.Result)
				if s.LastApply.Error != "" {
					fmt.Fprintf(w, ": %s", s.LastApply.Error)
				}
				fmt.Fprintln(w)
			}
			if s.LastError != "" && s.LastError != s.LastApply.Error {
				fmt.Fprintf(w, "attention:   %s\n", s.LastError)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
