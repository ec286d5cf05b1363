package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
)

func newRevertCmd(env *Env) *cobra.Command {
	var timeout time.Duration
	var keepLiveRestore bool
	cmd := &cobra.Command{
		Use:   "revert",
		Short: "Restore the host exactly as it was before the first provision",
		Long: `Revert puts back daemon.json, the docker.service drop-ins and /etc/docker/ssl
exactly as they were before the first provision, restarts docker.service when
its own files change (a proxy-mode revert only stops tlsdock.service) and
checks that the local unix socket answers. The local CA in /etc/tlsdock/ca is
kept, so client bundles issued from it stay valid for a later provision.

A restart stops every running container unless the dockerd being stopped
has live-restore on. With --keep-live-restore, revert keeps it on in
daemon.json (the only difference from the original files) and, when the
running dockerd has none, turns it on first (SIGHUP, as provision does), so
containers survive; without it, revert says when containers stop.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, closer, err := env.newAgent(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer closer()
			cfg := agent.Defaults()
			cfg.Timeout = timeout
			cfg.LiveRestore = keepLiveRestore
			res, err := a.Revert(cmd.Context(), cfg)
			for _, f := range res.Files {
				fmt.Fprintf(env.Stdout, "  %s %s\n", f.Action, f.Path)
			}
			for _, n := range res.Notes {
				fmt.Fprintf(env.Stdout, "  note: %s\n", n)
			}
			if err != nil {
				return err
			}
			local := "its local socket answers"
			for _, c := range res.Checks {
				if c.Endpoint == agent.DockerSocket && strings.HasPrefix(c.Detail, "skipped") {
					local = "it serves no local socket, as before the first provision"
				}
			}
			if res.Restarted {
				fmt.Fprintf(env.Stdout, "Reverted: docker.service restarted and %s.\n", local)
			} else {
				fmt.Fprintf(env.Stdout, "Reverted: docker.service kept running (its own files did not change) and %s.\n", local)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keepLiveRestore, "keep-live-restore", false, "keep \"live-restore\": true in daemon.json so running containers survive the revert")
	cmd.Flags().DurationVar(&timeout, "timeout", agent.Defaults().Timeout, "bound on the whole command, its rollback included: the steps (restarts, reloads, verification) share the first half and end at the latest then, so that a rollback always keeps at least the second half to restore the files and restart docker back. Past it tlsdock exits 3 or 4 and says what systemd is still doing")
	return cmd
}
