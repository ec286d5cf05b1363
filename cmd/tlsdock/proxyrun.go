package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/systemd"
)

// proxyRun is the proxy of `tlsdock run --mode proxy`.
type proxyRun struct {
	d      *agent.ProxyDaemon
	ctx    context.Context // done on SIGTERM, or when a listener fails
	cancel context.CancelFunc
	err    error // the listener failure, set before cancel
}

// startProxy starts the proxy with the installed set and tells systemd it
// is ready BEFORE the rotation loop's startup reconcile: a CLI provision
// holds the lock while it restarts tlsdock.service and waits for READY=1,
// and the reconcile needs that lock. The agent's serve step then swaps sets
// into the running proxy, and its lock waits are bounded by --timeout.
func startProxy(ctx context.Context, env *Env, cfg agent.Config, logger *slog.Logger, metrics *agent.Metrics, o *agent.Options) (*proxyRun, error) {
	if env.MaxProcs != nil {
		_, envSet := os.LookupEnv("GOMAXPROCS")
		cur := env.MaxProcs(0)
		if n, change := proxyMaxProcs(cur, envSet); change {
			env.MaxProcs(n)
			logger.Info("the proxy runs with GOMAXPROCS at half the CPUs it may use; GOMAXPROCS in tlsdock.service's environment overrides it", "gomaxprocs", n, "cpus", cur)
		}
	}
	paths := agent.Paths{Root: env.Root}
	var listen func() ([]net.Listener, error)
	if os.Getenv("LISTEN_FDS") != "" {
		listen = activatedListeners
	}
	set, err := certstore.Store{Dir: paths.SSL()}.Load()
	if err != nil {
		logger.Warn("the installed set does not load; the proxy starts with the first valid set", "dir", agent.SSLDir, "err", err)
	}
	// --crl-url cdp: the daemon fetches the distribution points of the
	// first set it serves (the installed one, or the first valid one).
	d, err := agent.NewProxyDaemon(agent.ProxyDaemonOptions{Paths: paths, Config: cfg, Logger: logger, Listen: listen, Metrics: metrics})
	if err != nil {
		return nil, err
	}
	pr := &proxyRun{d: d}
	pr.ctx, pr.cancel = context.WithCancel(ctx)
	go func() {
		select {
		case err := <-d.Errors():
			pr.err = err
			pr.cancel()
		case <-pr.ctx.Done():
		}
	}()
	if set != nil {
		if err := d.Reload(set); err != nil {
			pr.shutdown()
			return nil, err
		}
		systemd.Notify("READY=1")
		systemd.Notify("STATUS=serving serial " + set.Serial())
	}
	o.Proxy = d
	o.LockWait = cfg.Timeout
	o.Stopping = pr.ctx.Done()
	return pr, nil
}

// activatedListeners are the sockets systemd passed (socket activation).
func activatedListeners() ([]net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, err
	}
	var out []net.Listener
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("LISTEN_FDS is set but systemd passed no stream socket: check the .socket unit (ListenStream=)")
	}
	return out, nil
}

// hangups forwards SIGHUP to the rotation loop after the proxy re-read its
// policy and CRL files.
func (pr *proxyRun) hangups(in <-chan os.Signal) <-chan os.Signal {
	out := make(chan os.Signal, 1)
	go func() {
		for {
			select {
			case <-pr.ctx.Done():
				return
			case s := <-in:
				pr.d.Hangup()
				select {
				case out <- s:
				default:
				}
			}
		}
	}()
	return out
}

// shutdown lets requests in flight finish (hijacked streams get a grace),
// bounded.
func (pr *proxyRun) shutdown() {
	pr.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = pr.d.Shutdown(ctx)
}
