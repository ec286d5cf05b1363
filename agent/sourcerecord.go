package agent

import (
	"context"
	"fmt"
	"time"
)

// LastProvision is what state.json under p says of the last provision by
// hand: the source and settings it recorded (nil when none), and when
// `tlsdock revert` put the host back (zero when it did not since). A host
// without state has neither.
func LastProvision(p Paths) (rec *SourceRecord, revertedAt time.Time, err error) {
	st, err := (&Agent{o: Options{Paths: p}}).loadState()
	if err != nil || st == nil {
		return nil, time.Time{}, err
	}
	return st.Source, st.RevertedAt, nil
}

// provisionRecorded lets a provision whose command line names no source
// (neither --certs nor --generate) provision the host as the last
// provision by hand left it, exactly as `tlsdock run` would serve it: the
// recorded source when the config file sets none either, and each
// recorded setting of the served API (mode, host, san...) that no flag or
// file line sets. This is what the package's postinstall runs on an
// upgrade. A provision that names a source starts afresh from the file
// and the defaults.
func (m *merger) provisionRecorded(rc *RunConfig) {
	r := m.s.Recorded
	if r == nil {
		return
	}
	for _, key := range []string{"certs", "generate"} {
		if _, named := m.s.Flags[key]; named {
			return
		}
	}
	_, certsSet := m.origins["certs"]
	_, genSet := m.origins["generate"]
	if !certsSet && !genSet {
		m.recorded(rc, r)
	}
	m.recordedSettings(rc, r)
}

// daemonReloadWait bounds the reload of tlsdock.service after a
// provision by hand.
const daemonReloadWait = 10 * time.Second

// tellDaemon has a running tlsdock.service re-read its settings (SIGHUP,
// its ExecReload) after a successful provision by hand in a native mode.
// The daemon merged its settings, the record of the last provision
// included, when it started: without this it keeps watching the source
// it started with, and its next rotation from there would undo the
// provision (another mode, another set). In proxy mode provision restarts
// the unit itself; the daemon's own provisions and failed ones change no
// record. A failed reload is a warning of the result: the host is
// provisioned, the daemon is behind.
func (a *Agent) tellDaemon(ctx context.Context, cfg Config, res *Result) {
	if cfg.daemon || cfg.DryRun || cfg.Mode == ModeProxy || res.Error != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), daemonReloadWait)
	defer cancel()
	info, err := a.o.Systemd.Unit(ctx, ProxyUnit)
	if err != nil || info.ActiveState != "active" {
		return
	}
	if err := a.o.Systemd.Reload(ctx, ProxyUnit); err != nil {
		a.o.Logger.Warn("reloading tlsdock.service failed", "err", err)
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s still runs with the settings it started with (reloading it failed: %v): run `systemctl reload %s`, or it may rotate from its old source", ProxyUnit, err, ProxyUnit))
		return
	}
	res.Notes = append(res.Notes, ProxyUnit+" re-reads its settings (SIGHUP): it takes the source and settings this provision recorded")
}
