package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/systemd"
)

// runFlags are the flags only `tlsdock run` has; the config file can set
// them too. Like settingsFlags, their values are read back from the flag
// set and merged by the agent.
type runFlags struct{}

func (rf *runFlags) register(fs *pflag.FlagSet) {
	d := agent.RunDefaults()
	fs.Duration("debounce", d.Debounce, "while the source set is incomplete or invalid, wait this long for more changes (a complete, valid set is acted on at once)")
	fs.Duration("max-wait", d.MaxWait, "act at the latest this long after a burst of changes began")
	fs.Duration("min-restart-interval", d.MinRestartInterval, "least time between two rotations (docker.service allows 3 starts in 60s)")
	fs.Duration("renew-before", 0, "with --generate: renew the server certificate this long before it expires (0: at two thirds of its lifetime)")
	fs.String("metrics-listen", "", "serve Prometheus metrics on HOST:PORT at /metrics (off by default)")
}

// config merges the settings of the daemon (agent.MergeRun): the config
// file under the flags given on the command line.
func (rf *runFlags) config(cmd *cobra.Command, f *settingsFlags, root string) (agent.RunConfig, error) {
	s, err := f.runSettings(cmd, root)
	if err != nil {
		return agent.RunConfig{}, err
	}
	rc, _, err := agent.MergeRun(s)
	return rc, err
}

// reloadRunConfig reads the settings again for SIGHUP: the config file as
// it is now, under the flags given on the command line.
func reloadRunConfig(cmd *cobra.Command, root string) (agent.RunConfig, error) {
	f := settingsFlags{configPath: cmd.Flags().Lookup("config").Value.String()}
	var rf runFlags
	return rf.config(cmd, &f, root)
}

func newRunCmd(env *Env) *cobra.Command {
	var f settingsFlags
	var rf runFlags
	var verbose bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Keep dockerd's certificate current: watch the source or renew from the local CA (the daemon of tlsdock.service)",
		Long: `Run is the rotation daemon, started by tlsdock.service (Type=notify). It reads
the same config file and flags as provision.

With --certs DIR it watches DIR (the files named by --ca-file, --cert-file
and --key-file; a CA given by an absolute path is watched where it is).
When neither a flag nor the config file sets certs or generate, it takes
the source of the last ` + "`tlsdock provision`" + ` run by hand, as recorded in
` + agent.StateDir + `/state.json (its directory and file names, or the local
CA), else ` + agent.DefaultSource + `; ` + "`tlsdock status`" + ` shows which. Likewise
it keeps that provision's mode, host, san, key-type, live-restore and
probe-client where neither a flag nor the file sets them. When the files
change it checks at once that the set is complete and valid (if not, it
waits for more changes: --debounce, at most --max-wait), and rotates with the provision sequence:
back up, install, restart docker.service, verify, roll back on failure. An
invalid set is never installed: the error names the file, shows in
` + "`tlsdock status`" + ` and is checked again when the files change. Rotations are at
least --min-restart-interval apart, and the latest valid set wins. The
certificate served is warned about 30, 7 and 1 days before it expires, or,
when it is valid for less than 120 days, at the same fractions of its
lifetime (a quarter, 7/120 and 1/120 of it: 6 hours, 84 and 12 minutes
before a 24-hour certificate expires).

With --generate it renews the server certificate from the local CA at two
thirds of its lifetime (or --renew-before its expiry), with a little jitter.

At start, before anything else, it undoes an apply that was interrupted
(a killed tlsdock left its journal): the files that apply was writing go
back to what they were, docker restarts on them if they are its own, and
a file changed by someone else since is left alone; the log and
` + "`tlsdock status`" + ` say what was done. Then it rotates if the installed set
differs from a valid source set. After ` + "`tlsdock revert`" + ` it provisions
nothing until ` + "`tlsdock provision`" + ` is run.
SIGHUP re-reads the settings and checks at once; SIGTERM waits for a
rotation in progress, then exits. A failed rotation is retried with backoff
(30s, doubling, at most 10m) and never stops the daemon.

With --mode proxy (what provision --mode proxy configures) the daemon is the
proxy: it listens on each --host (or on systemd's sockets when
socket-activated) with the installed set and sends READY=1 first, then
swaps new sets in without restarting dockerd (--min-restart-interval
defaults to 0). It enforces --policy and the CRLs (--crl, and the local CA's
` + agent.LocalCRLPath + `), reloading them within a second of a change,
and fetches each --crl-url every --crl-refresh (and on SIGHUP), keeping
the last good CRL when a fetch fails.
Every request's audit record goes to --audit-log (default
` + agent.DefaultAuditLog + `, JSON lines, rotated past
--audit-log-max-size); the journal keeps denials, errors and events.
SIGHUP also reopens the audit log (logrotate). SIGTERM lets requests
finish, gives attach and exec streams a grace and writes out the audit log.`,
		Example: `  # As tlsdock.service does, with settings in /etc/tlsdock/tlsdock.conf:
  tlsdock run

  # Watch another directory, with metrics:
  tlsdock run --certs /etc/vault-agent/docker --metrics-listen 127.0.0.1:9323`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := rf.config(cmd, &f, env.Root)
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			logger := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))

			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)

			var metrics *agent.Metrics
			if cfg.MetricsListen != "" {
				m, closeMetrics, err := serveMetrics(cfg.MetricsListen, logger)
				if err != nil {
					return err
				}
				defer closeMetrics()
				metrics = m
			}

			sd, closer, err := env.connect(ctx)
			if err != nil {
				return err
			}
			defer closer()
			o := agent.Options{Paths: agent.Paths{Root: env.Root}, Systemd: sd, Logger: logger}
			testHooks(&o, env.Root) // a no-op unless built with -tags tlsdock_testhooks
			// Before anything else (the proxy, the first rotation, the
			// status), what a killed run left is undone.
			// A tlsdock holding the lock (a provision) recovers
			// the journal itself; a failure here is retried by the
			// first rotation, which recovers too.
			ro := o
			if env.Agent != nil {
				env.Agent(&ro)
			}
			if _, err := agent.New(ro).Recover(ctx, cfg.Config); err != nil {
				logger.Error("undoing an interrupted apply at start-up failed; the first rotation tries again", "err", err)
			}
			var rotHup <-chan os.Signal = hup
			var pd *proxyRun
			if cfg.Mode == agent.ModeProxy {
				if pd, err = startProxy(ctx, env, cfg.Config, logger, metrics, &o); err != nil {
					return err
				}
				defer pd.shutdown()
				rotHup = pd.hangups(hup)
				ctx = pd.ctx
			}
			if env.Agent != nil {
				env.Agent(&o)
			}
			notify := systemd.Notify
			if cfg.Mode != agent.ModeProxy {
				// The proxy serves clients between events: its heap is
				// in use, and the runtime's own scavenger is enough.
				notify = returnMemoryAfterEvents(notify, idleMemoryDelay, debug.FreeOSMemory)
			}
			r := agent.NewRotator(agent.New(o), cfg, agent.RunOptions{
				Logger:   logger,
				Notify:   notify,
				Watchdog: systemd.WatchdogInterval(),
				Metrics:  metrics,
				Hangup:   rotHup,
				Reload:   func() (agent.RunConfig, error) { return reloadRunConfig(cmd, env.Root) },
			})
			if err := r.Run(ctx); err != nil {
				return err
			}
			if pd != nil {
				return pd.err
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	rf.register(cmd.Flags())
	if fl := cmd.Flags().Lookup("certs"); fl != nil {
		fl.Usage = "directory to watch for ca.pem, server-cert.pem and server-key.pem or the names of --ca-file, --cert-file and --key-file (unless --generate; default: the source the last provision recorded, else " + agent.DefaultSource + ")"
		fl.DefValue = agent.DefaultSource
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every file event and check")
	return cmd
}

// serveMetrics serves the metrics on addr in Prometheus's text format:
// tlsdock's own families, then the process_* families.
func serveMetrics(addr string, logger *slog.Logger) (*agent.Metrics, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, &agent.InputError{Field: "--metrics-listen", Err: fmt.Errorf("cannot listen on %s (%w): choose a free address, or leave metrics-listen unset", addr, err)}
	}
	m := agent.NewMetrics()
	mux := http.NewServeMux()
	var procErr onChange
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		if _, err := m.WriteTo(&b); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		err := agent.WriteProcessMetrics(&b, "/proc")
		// A scraper asks every few seconds: say it when reading starts
		// failing (or fails differently) and when it works again, not at
		// every scrape.
		switch procErr.set(err) {
		case changedToError:
			logger.Warn("reading the process metrics failed; serving the others until it works again", "component", "metrics", "err", err)
		case changedToOK:
			logger.Info("reading the process metrics works again", "component", "metrics")
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(b.Bytes())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serving metrics stopped", "component", "metrics", "addr", addr, "err", err)
		}
	}()
	logger.Info("serving metrics", "component", "metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return m, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// onChange remembers the last outcome of a repeated step, to tell when it
// changed.
type onChange struct {
	mu   sync.Mutex
	last string // the last error's text, "" after a success
}

const (
	unchanged = iota
	changedToError
	changedToOK
)

// set records err and says how the outcome changed from the last one.
func (o *onChange) set(err error) int {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	prev := o.last
	o.last = msg
	switch {
	case msg == prev:
		return unchanged
	case msg != "":
		return changedToError
	default:
		return changedToOK
	}
}
