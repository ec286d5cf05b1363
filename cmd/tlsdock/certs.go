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
	var out, owner string
	var groups []string
	client := &cobra.Command{
		Use:   "client NAME --out DIR",
		Short: "Issue a client bundle (ca.pem, cert.pem, key.pem) from the local CA",
		Long: `Issue a client certificate named NAME from the local CA (created by
` + "`tlsdock provision --generate`" + `) and write ca.pem, cert.pem and key.pem to DIR,
ready for DOCKER_CERT_PATH. DIR (0700) and the files (key.pem 0400, ca.pem
and cert.pem 0444) belong to --owner: by default the user who ran sudo
(SUDO_USER), else root. It prints the lines to use it against the first
listener tlsdock configured:

  export DOCKER_HOST=tcp://ADDR:PORT DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=DIR
  docker context create NAME --docker "host=tcp://ADDR:PORT,ca=DIR/ca.pem,cert=DIR/cert.pem,key=DIR/key.pem"`,
		Args: exactlyOne("NAME", "tlsdock certs client alice --out ./alice"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := resolveOwner("--owner", owner, out, "--out")
			if err != nil {
				return err
			}
			a, closer, err := env.newAgentNoSystemd()
			if err != nil {
				return err
			}
			defer closer()
			b, err := a.IssueClientFor(args[0], groups, out, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "Issued %q (serial %s, expires %s) into %s, owned by %s\n", b.Name, b.Serial, b.NotAfter.UTC().Format("2006-01-02"), b.Dir, b.Owner)
			printClientHint(env.Stdout, a.InstalledTCPHosts(), b.Dir)
			if m := a.InstalledMode(); len(groups) > 0 && m != agent.ModeProxy {
				fmt.Fprintf(env.Stderr, "warning: this host is in %s mode, where dockerd does not enforce groups: %s has full access. Only --mode proxy applies a policy by group.\n", orDash(string(m)), b.Name)
			}
			return nil
		},
	}
	client.Flags().StringVar(&out, "out", "", "directory to write the bundle to (required)")
	client.Flags().StringVar(&owner, "owner", "", "USER or USER:GROUP that owns the bundle; default: SUDO_USER under sudo, else root")
	client.Flags().StringArrayVar(&groups, "group", nil, "group recorded in the certificate's O field (repeatable)")
	_ = client.MarkFlagRequired("out")
	certs.AddCommand(client, newRevokeCmd(env))
	return certs
}
