package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
)

func newRevokeCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "revoke NAME|SERIAL",
		Short: "Revoke client certificates of the local CA and publish its CRL",
		Long: `Revoke every client certificate the local CA issued under NAME (see
` + "`tlsdock certs client`" + `), or the certificate with SERIAL (hex, as
` + "`openssl x509 -noout -serial`" + ` prints it). The serials are recorded in
` + agent.RevokedPath + ` and a new CRL of the local CA is published in
` + agent.LocalCRLPath + ` (valid 30 days; every revoke issues the next number).

In proxy mode, tlsdock.service watches the CRL and refuses a revoked
certificate at the handshake within a second, closing its open connections,
without restarting anything. In the native modes dockerd cannot check
revocation at all: use proxy mode, or replace the CA.`,
		Example: `  tlsdock certs revoke alice
  tlsdock certs revoke 3f2a9c41d0`,
		Args: exactlyOne("NAME or SERIAL", "tlsdock certs revoke alice"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, closer, err := env.newAgentNoSystemd()
			if err != nil {
				return err
			}
			defer closer()
			res, err := a.Revoke(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			for _, r := range res.Revoked {
				fmt.Fprintf(env.Stdout, "Revoked serial %s%s\n", certstore.FormatSerial(r.Serial), named(r.Name))
			}
			for _, s := range res.Already {
				fmt.Fprintf(env.Stdout, "Serial %s was already revoked\n", s)
			}
			fmt.Fprintf(env.Stdout, "Published CRL number %d in %s\n", res.CRLNumber, res.CRL)
			if res.Mode != agent.ModeProxy {
				fmt.Fprintf(env.Stderr, "warning: this host is in %s mode, and dockerd cannot check revocation: the certificate still gets in. Use --mode proxy (which enforces %s within a second), or replace the CA (remove %s and provision --generate again) and reissue every client.\n", orDash(string(res.Mode)), res.CRL, agent.CADir)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable result")
	return cmd
}

func named(n string) string {
	if n == "" {
		return ""
	}
	return fmt.Sprintf(" (client %q)", n)
}
