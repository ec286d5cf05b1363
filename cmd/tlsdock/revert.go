package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
)

func newRevertCmd(env *Env) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "revert",
		Short: "Restore the host exactly as it was before the first provision",
		Long: `Revert puts back daemon.json, the docker.service drop-ins and /etc/docker/ssl
exactly as they were before the first provision, restarts docker.service and
checks that the local unix socket answers. The local CA in /etc/tlsdock/ca is
kept, so client bundles issued from it stay valid for a later provision.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, closer, err := env.newAgent(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer closer()
			cfg := agent.Defaults()
			cfg.Timeout = timeout
			res, err := a.Revert(cmd.Context(), cfg)
			for _, f := range res.Files {
				fmt.Fprintf(env.Stdout, "  %s %s\n", f.Action, f.Path)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "Reverted: docker.service restarted and its local socket answers.")
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", agent.Defaults().Timeout, "how long to wait for docker.service to restart")
	return cmd
}
