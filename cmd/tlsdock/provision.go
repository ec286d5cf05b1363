package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
)

func newProvisionCmd(env *Env) *cobra.Command {
	var f settingsFlags
	var dryRun, asJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Put dockerd's TCP API behind mutual TLS (idempotent)",
		Long: `Provision configures this host so that dockerd's API is reachable over mutual
TLS on --host (default tcp://0.0.0.0:2376) and nowhere else without it.

It validates the certificates and the current configuration before touching
anything, backs up every file it changes to /var/lib/tlsdock, installs the
set into /etc/docker/ssl (keys 0400, certificates 0444, root:root), turns on
live-restore so containers survive, restarts docker.service and checks the
endpoint as an attacker and as a client would. On any failure it rolls back
and docker keeps running on its previous configuration.

Running it again with the same inputs changes nothing and restarts nothing.

With --mode proxy, dockerd keeps only its local socket (a TCP listener it
had is removed, and only then is it restarted) and tlsdock.service
terminates mutual TLS in front of it: provision writes its drop-in (and the
unit itself when no package installed it), restarts it and verifies the
endpoint. New certificates are then swapped in without restarting dockerd;
--policy and --crl decide and revoke per client.

Certificates come from one of:
  --certs DIR    ca.pem, server-cert.pem and server-key.pem, as in Docker's docs,
                 or the names of --ca-file, --cert-file and --key-file (step:
                 root_ca.crt, server.crt, server.key; cfssl: server.pem,
                 server-key.pem; Kubernetes: ca.crt, tls.crt, tls.key;
                 certbot: fullchain.pem, privkey.pem, with --ca-file an
                 absolute path to the client CA)
  --generate     a local CA in /etc/tlsdock/ca issues the server certificate

With --generate, --client-out DIR also writes a client bundle (ca.pem,
cert.pem, key.pem) that belongs to --client-owner, by default the user who
ran sudo (SUDO_USER), else root: DIR 0700, key.pem 0400, the certificates
0444. provision then prints DOCKER_HOST for the first --host (the machine's
hostname for 0.0.0.0 or ::), DOCKER_CERT_PATH and a docker context create
line for it.

The source and settings are recorded in /var/lib/tlsdock/state.json:
tlsdock.service (` + "`tlsdock run`" + `) watches that source and keeps those
settings unless its flags or the config file say otherwise. A source that
tlsdock.service's sandbox hides (under /root, /home, /run/user with
ProtectHome=, /tmp, /var/tmp with PrivateTmp=) is refused.

Exit status: 0 success, 2 bad input (nothing changed), 3 failed and rolled
back (docker runs its previous configuration), 4 failed and the rollback
failed too, 1 any other failure.`,
		Example: `  # New host, local CA, client bundle for this machine's docker CLI:
  tlsdock provision --generate --client-out ~/.docker/myhost

  # Certificates from your own CA, daemon flags in a drop-in:
  tlsdock provision --certs /etc/tlsdock/certs --mode dropin --san docker.example.com

  # step's file names:
  tlsdock provision --certs /etc/tlsdock/step --ca-file root_ca.crt --cert-file server.crt --key-file server.key

  # Proxy mode: hot reload, per-client policy, revocation:
  tlsdock provision --mode proxy --generate --client-out ~/.docker/myhost

  # What would change?
  tlsdock provision --generate --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			cfg.DryRun = dryRun
			if cfg.ClientOwner, err = resolveOwner("--client-owner", cfg.ClientOwnerSpec, cfg.ClientOut, "--client-out"); err != nil {
				return err
			}
			a, closer, err := env.newAgent(cmd.Context(), verbose)
			if err != nil {
				return err
			}
			defer closer()
			res, err := a.Provision(cmd.Context(), cfg)
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(res); jerr != nil {
					return jerr
				}
				return err
			}
			printResult(env.Stdout, res, err, cfg.Hosts)
			return err
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (every file with its diff, and whether docker restarts) and change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable result (with \"changed\") instead of text")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log each step to stderr")
	return cmd
}

// resolveOwner resolves the owner of a client bundle written to out (the
// value of outFlag): spec as given with flag, or else SUDO_USER under sudo,
// else root. It is nil when no bundle is written. It also checks that the
// bundle can go to out (agent.CheckClientOut), so that a refusal comes
// before anything is written.
func resolveOwner(flag, spec, out, outFlag string) (*agent.ClientOwner, error) {
	if out == "" {
		if spec != "" {
			return nil, &agent.InputError{Field: flag, Err: fmt.Errorf("%s names the owner of a client bundle: add %s DIR", flag, outFlag)}
		}
		return nil, nil
	}
	field := flag
	if spec == "" {
		spec = agent.DefaultClientOwner(os.Getenv, os.Geteuid())
		if os.Geteuid() == 0 && os.Getenv("SUDO_USER") != "" {
			field = flag + " (default: SUDO_USER=" + spec + ")"
		}
	}
	o, err := agent.ParseClientOwner(field, spec)
	if err != nil {
		return nil, err
	}
	if err := agent.CheckClientOut(outFlag, out, o); err != nil {
		return nil, err
	}
	return o, nil
}

// printClientHint prints how to use the bundle in dir against the first
// TCP listener of hosts.
func printClientHint(w io.Writer, hosts []string, dir string) {
	h := agent.NewClientHint(hosts, dir, os.Hostname)
	fmt.Fprintf(w, "  %s\n", h.Env)
	fmt.Fprintf(w, "or, as a docker context:\n  %s\n", h.Context)
}

func printResult(w io.Writer, res *agent.Result, err error, hosts []string) {
	if res == nil {
		return
	}
	if res.Serial == "" && len(res.Files) == 0 && err != nil {
		return // failed before planning: the error says it all
	}
	title := "Plan"
	if res.DryRun {
		title = "Plan (dry run)"
	}
	fmt.Fprintf(w, "%s, mode %s:\n", title, res.Mode)
	switch res.Certs {
	case "install":
		fmt.Fprintf(w, "  certificates: install serial %s (expires %s) into %s\n", res.Serial, res.NotAfter.UTC().Format("2006-01-02"), agent.SSLDir)
	default:
		fmt.Fprintf(w, "  certificates: unchanged (serial %s)\n", res.Serial)
	}
	for _, fc := range res.Files {
		fmt.Fprintf(w, "  %s %s\n", fc.Action, fc.Path)
		if res.DryRun && fc.Diff != "" {
			for _, line := range strings.Split(strings.TrimRight(fc.Diff, "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", line)
			}
		}
	}
	fmt.Fprintf(w, "  listeners: %s\n", strings.Join(res.Hosts, " "))
	if res.TCPHeldBy != "" {
		fmt.Fprintf(w, "  tcp held by: %s\n", res.TCPHeldBy)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	for _, n := range res.Warnings {
		fmt.Fprintf(w, "  WARNING: %s\n", strings.TrimPrefix(n, "warning: "))
	}
	if res.SocketRestarted {
		fmt.Fprintln(w, "  docker.socket: restart (its TCP listeners change)")
	}
	if res.Restarted {
		fmt.Fprintln(w, "  docker.service: restart")
	} else {
		fmt.Fprintln(w, "  docker.service: no restart")
	}
	if res.DryRun {
		fmt.Fprintln(w, "Dry run: nothing was changed.")
		return
	}
	if len(res.Checks) > 0 {
		fmt.Fprintln(w, "Verification:")
		for _, c := range res.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			detail := ""
			if c.Detail != "" {
				detail = " (" + c.Detail + ")"
			}
			fmt.Fprintf(w, "  %s %s: %s%s\n", mark, c.Endpoint, c.Name, detail)
		}
	}
	if res.Journal != "" {
		fmt.Fprintln(w, "Last lines of docker.service's journal:")
		for _, line := range strings.Split(strings.TrimRight(res.Journal, "\n"), "\n") {
			fmt.Fprintf(w, "  | %s\n", line)
		}
	}
	switch {
	case err != nil && res.RolledBack:
		fmt.Fprintln(w, "Rolled back: docker is active on its previous configuration.")
	case err != nil:
	case !res.Changed:
		fmt.Fprintln(w, "No changes: the host already matches.")
	default:
		fmt.Fprintf(w, "Done: dockerd serves mutual TLS on %s.\n", strings.Join(tcpOnly(res.Hosts), " "))
	}
	if res.ClientOut != "" && err == nil {
		fmt.Fprintf(w, "Client bundle: %s\n", res.ClientOut)
		printClientHint(w, hosts, res.ClientOut)
	}
}

func tcpOnly(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if strings.HasPrefix(h, "tcp://") {
			out = append(out, h)
		}
	}
	return out
}
