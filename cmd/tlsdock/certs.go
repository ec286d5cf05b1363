package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
)

func newCertsCmd(env *Env) *cobra.Command {
	certs := &cobra.Command{
		Use:   "certs",
		Short: "Manage certificates of the local CA",
	}
	var out string
	var groups []string
	client := &cobra.Command{
		Use:   "client NAME --out DIR",
		Short: "Issue a client bundle (ca.pem, cert.pem, key.pem) from the local CA",
		Long: `Issue a client certificate named NAME from the local CA (created by
` + "`tlsdock provision --generate`" + `) and write ca.pem, cert.pem and key.pem to DIR,
ready for DOCKER_CERT_PATH:

  export DOCKER_HOST=tcp://HOST:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=DIR`,
		Args: exactlyOne("NAME", "tlsdock certs client alice --out ./alice"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, closer, err := env.newAgentNoSystemd()
			if err != nil {
				return err
			}
			defer closer()
			b, err := a.IssueClient(args[0], groups, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "Issued %q (serial %s, expires %s) into %s\n", b.Name, b.Serial, b.NotAfter.UTC().Format("2006-01-02"), b.Dir)
			fmt.Fprintf(env.Stdout, "  export DOCKER_HOST=tcp://HOST:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=%s\n", b.Dir)
			if m := a.InstalledMode(); len(groups) > 0 && m != agent.ModeProxy {
				fmt.Fprintf(env.Stderr, "warning: this host is in %s mode, where dockerd does not enforce groups: %s has full access. Only --mode proxy applies a policy by group.\n", orDash(string(m)), b.Name)
			}
			return nil
		},
	}
	client.Flags().StringVar(&out, "out", "", "directory to write the bundle to (required)")
	client.Flags().StringArrayVar(&groups, "group", nil, "group recorded in the certificate's O field (repeatable)")
	_ = client.MarkFlagRequired("out")
	certs.AddCommand(client, newRevokeCmd(env))
	return certs
}
