package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/systemd"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Exit codes, documented in README.md.
const (
	ExitOK             = 0
	ExitFailed         = 1 // failed; see the message
	ExitBadInput       = 2 // bad input: nothing on the host was changed
	ExitRolledBack     = 3 // applying failed and the host was rolled back; docker is active on its previous configuration
	ExitRollbackFailed = 4 // applying failed and the rollback failed too: the host needs attention
)

// ExitCode maps an error from a command to the documented exit status.
func ExitCode(err error) int {
	var ie *agent.InputError
	var es exitStatus
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &es):
		return int(es)
	case errors.Is(err, agent.ErrRollbackFailed):
		return ExitRollbackFailed
	case errors.Is(err, agent.ErrRolledBack):
		return ExitRolledBack
	case errors.As(err, &ie), errors.Is(err, errUsage):
		return ExitBadInput
	}
	return ExitFailed
}

var errUsage = errors.New("usage")

// exactlyOne accepts exactly one positional argument and otherwise says
// what is missing, with an example.
func exactlyOne(what, example string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%w: give exactly one %s, for example: %s", errUsage, what, example)
		}
		return nil
	}
}

// Env is what the commands need from outside: output streams, the
// filesystem root, and how to reach systemd. Tests replace them.
type Env struct {
	Stdout, Stderr io.Writer
	// Root is the filesystem root ("/" by default).
	Root string
	// Connect reaches systemd; the default uses D-Bus.
	Connect func(ctx context.Context) (agent.Systemd, func(), error)
	// Agent lets tests adjust the agent's options.
	Agent func(*agent.Options)
	// MaxProcs sets GOMAXPROCS as runtime.GOMAXPROCS does, for the proxy
	// (proxyMaxProcs); main passes runtime.GOMAXPROCS. nil: the proxy
	// leaves it, so that tests do not change their own process's.
	MaxProcs func(n int) int
}

func (e *Env) connect(ctx context.Context) (agent.Systemd, func(), error) {
	if e.Connect != nil {
		return e.Connect(ctx)
	}
	m, err := systemd.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	return m, m.Close, nil
}

// newAgent builds the agent with a connection to systemd.
func (e *Env) newAgent(ctx context.Context, verbose bool) (*agent.Agent, func(), error) {
	sd, closer, err := e.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	o := agent.Options{
		Paths:   agent.Paths{Root: e.Root},
		Systemd: sd,
		Logger:  slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: level})),
		// tlsdock.service may hold the lock for a rotation (the one
		// proxy mode's first provision starts, or a renewal): wait for it
		// rather than fail a provision or revert typed right then.
		LockWait: agent.CommandLockWait,
	}
	testHooks(&o, e.Root) // a no-op unless built with -tags tlsdock_testhooks
	if e.Agent != nil {
		e.Agent(&o)
	}
	return agent.New(o), closer, nil
}

// newAgentNoSystemd builds an agent for commands that do not touch docker.
func (e *Env) newAgentNoSystemd() (*agent.Agent, func(), error) {
	o := agent.Options{
		Paths:  agent.Paths{Root: e.Root},
		Logger: slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if e.Agent != nil {
		e.Agent(&o)
	}
	return agent.New(o), func() {}, nil
}

// NewRootCmd builds the tlsdock command tree.
func NewRootCmd(env Env) *cobra.Command {
	if env.Root == "" {
		env.Root = "/"
	}
	root := &cobra.Command{
		Use:   "tlsdock",
		Short: "Put dockerd's TCP API behind mutual TLS and keep it there",
		Long: `tlsdock puts dockerd's TCP API behind mutual TLS and keeps it there.

It installs certificates into /etc/docker/ssl, configures dockerd (daemon.json
or a systemd drop-in), restarts docker.service over D-Bus without killing
running containers, and checks the result the way an attacker and a client
would. If anything fails, it rolls back and docker keeps running as before.

Start with:  tlsdock provision --generate --client-out ./docker-client`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v (see `%s --help`)", errUsage, err, c.CommandPath())
	})
	root.PersistentFlags().StringVar(&env.Root, "root", env.Root, "filesystem root to operate on (for tests)")
	_ = root.PersistentFlags().MarkHidden("root")
	root.AddCommand(newProvisionCmd(&env), newStatusCmd(&env), newRevertCmd(&env), newCertsCmd(&env))
	root.AddCommand(newRunCmd(&env), newTunnelCmd(&env))
	root.AddCommand(newConfigCmd(&env))
	addGenDocs(root, &env)
	root.SetVersionTemplate("tlsdock {{.Version}}\n")
	return root
}

// Run executes the command tree with args and prints an error the way main
// does; it returns the exit code.
func Run(env Env, args []string) int {
	root := NewRootCmd(env)
	root.SetArgs(args)
	err := root.Execute()
	var es exitStatus
	if err != nil && !errors.As(err, &es) {
		fmt.Fprintf(env.Stderr, "tlsdock: %v\n", err)
	}
	return ExitCode(err)
}
