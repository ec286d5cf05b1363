package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/proxy"
)

func newTunnelCmd(env *Env) *cobra.Command {
	var listen, to, certs string
	var allowRemote bool
	cmd := &cobra.Command{
		Use:   "tunnel --listen unix:///PATH|tcp://127.0.0.1:PORT --to tcp://HOST:PORT --certs DIR",
		Short: "Give local tools the remote Docker API over mutual TLS, on a unix socket or a loopback port",
		Long: `Tunnel listens locally and pipes every connection, byte for byte, through
mutual TLS to a remote tlsdock proxy (or any TLS dockerd). Tools that speak
plain HTTP, or only use a unix socket, then reach the remote API:

  tlsdock tunnel --listen unix:///run/user/1000/docker-remote.sock --to tcp://HOST:2376 --certs ~/.docker/myhost
  DOCKER_HOST=unix:///run/user/1000/docker-remote.sock docker ps

DIR is a client bundle (ca.pem, cert.pem, key.pem, as written by --client-out
or ` + "`tlsdock certs client`" + `). A unix socket is created 0600. A TCP listener must
be on a loopback address unless --allow-remote is given: anyone who can
connect to it gets the remote Docker API with your certificate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case listen == "":
				return &agent.InputError{Field: "--listen", Err: errors.New("give unix:///PATH or tcp://127.0.0.1:PORT")}
			case to == "":
				return &agent.InputError{Field: "--to", Err: errors.New("give the proxy as tcp://HOST:PORT")}
			case certs == "":
				return &agent.InputError{Field: "--certs", Err: errors.New("give the client bundle directory (ca.pem, cert.pem, key.pem)")}
			}
			tc, err := proxy.LoadClientBundle(certs)
			if err != nil {
				return &agent.InputError{Field: "--certs", Err: err}
			}
			logger := slog.New(slog.NewTextHandler(env.Stderr, nil))
			t, err := proxy.NewTunnel(proxy.TunnelConfig{Listen: listen, To: to, TLS: tc, AllowRemote: allowRemote, Logger: logger})
			if err != nil {
				return &agent.InputError{Field: "--listen", Err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			fmt.Fprintf(env.Stderr, "tlsdock tunnel: %s -> %s (mutual TLS)\n", listen, to)
			return t.Serve(ctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "where local clients connect: unix:///PATH or tcp://127.0.0.1:PORT")
	cmd.Flags().StringVar(&to, "to", "", "the remote endpoint: tcp://HOST:PORT")
	cmd.Flags().StringVar(&certs, "certs", "", "client bundle directory: ca.pem, cert.pem, key.pem")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback TCP listen address (anyone who reaches it gets the remote API)")
	return cmd
}
