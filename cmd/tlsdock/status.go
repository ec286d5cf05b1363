package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/proxy"
)

func newStatusCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the mode, listeners, installed certificate, file modes and docker's state",
		Long: `Status shows what tlsdock set up on this host: the mode and listeners, the
installed server certificate (subject, names, serial, expiry and days left),
the modes and owners of the installed files, docker.service's state, and the
result of the last provision or rotation, and where tlsdock.service takes
its certificates from ("source:", with the setting that says so: a flag,
the config file, the record of the last provision, or the default). It
changes nothing.

"attention:" is what the rotation daemon found wrong: an invalid or unsafe
source set, a failed rotation, or a certificate about to expire. It warns
30, 7 and 1 days before the served certificate expires (7 and 1 with the
local CA, which renews at two thirds of the lifetime). A certificate valid
for less than 120 days gets those thresholds scaled to its lifetime: the
first when a quarter of it is left, so a 24-hour certificate is warned
about 6 hours, 84 minutes and 12 minutes before it expires, and one its
issuer renews at two thirds (step ca renew, cert-manager) never is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, closer, err := env.newAgent(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer closer()
			s, err := a.Status(cmd.Context())
			if err != nil {
				return err
			}
			var ps *agent.ProxyDaemonStatus
			var perr error
			if s.Mode == agent.ModeProxy {
				ps, perr = a.ProxyStatus(cmd.Context())
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				out := struct {
					*agent.Status
					DaemonSource string                   `json:"daemon_source,omitempty"`
					Proxy        *agent.ProxyDaemonStatus `json:"proxy,omitempty"`
					ProxyError   string                   `json:"proxy_error,omitempty"`
				}{Status: s, DaemonSource: daemonSource(env.Root, s.Mode), Proxy: ps}
				if perr != nil {
					out.ProxyError = perr.Error()
				}
				return enc.Encode(out)
			}
			w := env.Stdout
			if !s.Provisioned {
				fmt.Fprintln(w, "tlsdock has not provisioned this host: run `tlsdock provision --help`.")
			}
			fmt.Fprintf(w, "mode:        %s\n", orDash(string(s.Mode)))
			fmt.Fprintf(w, "listeners:   %s\n", orDash(strings.Join(s.Hosts, " ")))
			if s.TCPHeldBy != "" {
				fmt.Fprintf(w, "  tcp held by: %s\n", s.TCPHeldBy)
			}
			if c := s.Certificate; c != nil {
				fmt.Fprintf(w, "certificate: %s\n", c.Subject)
				fmt.Fprintf(w, "  issuer:    %s\n", c.Issuer)
				fmt.Fprintf(w, "  names:     %s\n", strings.Join(append(append([]string{}, c.DNSNames...), c.IPAddresses...), ", "))
				fmt.Fprintf(w, "  serial:    %s\n", c.Serial)
				fmt.Fprintf(w, "  expires:   %s (%s)\n", c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), timeLeft(c.DaysLeft, time.Until(c.NotAfter)))
			} else {
				fmt.Fprintln(w, "certificate: none installed")
			}
			if ds := daemonSource(env.Root, s.Mode); ds != "" {
				fmt.Fprintf(w, "source:      %s\n", ds)
			}
			if p := s.Pending; p != nil {
				fmt.Fprintf(w, "pending:     %s\n", p.Summary)
			}
			for _, f := range s.Files {
				mark := "ok"
				if !f.OK {
					mark = "WRONG: keys must be 0400 and certificates 0444, root:root"
				}
				fmt.Fprintf(w, "  %s %s %s %s\n", f.Mode, f.Owner, f.Path, mark)
			}
			fmt.Fprintf(w, "docker:      %s (%s), main PID %d\n", s.Docker.ActiveState, s.Docker.SubState, s.Docker.MainPID)
			if !s.LastApply.Time.IsZero() {
				fmt.Fprintf(w, "last apply:  %s %s", s.LastApply.Time.UTC().Format("2006-01-02 15:04:05 MST"), s.LastApply.Result)
				if s.LastApply.Error != "" {
					fmt.Fprintf(w, ": %s", s.LastApply.Error)
				}
				fmt.Fprintln(w)
			}
			for _, note := range s.LastApply.Notes {
				fmt.Fprintf(w, "  note:      %s\n", note)
			}
			for _, warn := range s.LastApply.Warnings {
				fmt.Fprintf(w, "WARNING:     %s\n", strings.TrimPrefix(warn, "warning: "))
			}
			if a := attention(s); a != "" && a != s.LastApply.Error {
				fmt.Fprintf(w, "attention:   %s\n", a)
			}
			if s.Mode == agent.ModeProxy {
				printProxyStatus(w, ps, perr, time.Now())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	return cmd
}

// attention is the recorded error without the warnings the last apply
// already shows (the daemon records them too).
func attention(s *agent.Status) string {
	var keep []string
	for _, part := range strings.Split(s.LastError, "; ") {
		if part != "" && !slices.Contains(s.LastApply.Warnings, part) {
			keep = append(keep, part)
		}
	}
	return strings.Join(keep, "; ")
}

// daemonSource says where tlsdock.service takes its certificates from,
// and which setting says so: a flag of its command line (proxy mode's
// drop-in), the config file, the record of the last provision, or the
// default. "" when the settings do not merge (the daemon refuses them;
// `tlsdock config` says why).
func daemonSource(root string, mode agent.Mode) string {
	if mode == agent.ModeProxy {
		return "as on tlsdock.service's command line (" + agent.ProxyDropInPath + ", written by provision --mode proxy)"
	}
	p := agent.Paths{Root: root}
	file, err := agent.LoadConfigFile(p.Abs(agent.ConfigFile))
	if err != nil {
		return ""
	}
	rec, err := agent.RecordedSource(p)
	if err != nil {
		return ""
	}
	rc, settings, err := agent.MergeRun(agent.Settings{Root: root, File: file, Recorded: rec})
	if err != nil {
		return ""
	}
	from := map[string]string{}
	for _, st := range settings {
		from[st.Key] = st.From()
	}
	if rc.Generate {
		return fmt.Sprintf("the local CA %s (generate from %s)", agent.CADir, from["generate"])
	}
	n := rc.SourceNames()
	out := fmt.Sprintf("%s (from %s), files %s, %s, %s", rc.Certs, from["certs"], n.CA, n.Cert, n.Key)
	for _, k := range []string{"ca-file", "cert-file", "key-file"} {
		if f := from[k]; f != agent.FromDefault && f != from["certs"] {
			out += fmt.Sprintf("; %s from %s", k, f)
		}
	}
	return out
}

// timeLeft is "N days left", or in hours under two days (a short-lived
// certificate), or "expired".
func timeLeft(days int, d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case days >= 2:
		return fmt.Sprintf("%d days left", days)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours left", int(d.Hours()))
	}
	return fmt.Sprintf("%d minutes left", int(d.Minutes()))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printProxyStatus shows what the running proxy serves and has seen, at
// now.
func printProxyStatus(w io.Writer, ps *agent.ProxyDaemonStatus, err error, now time.Time) {
	if err != nil {
		fmt.Fprintf(w, "proxy:       NOT ANSWERING: %v\n", err)
		return
	}
	fmt.Fprintf(w, "proxy:       serving serial %s on %s, %d connections (%d hijacked)\n", ps.Serial, orDash(strings.Join(ps.Listeners, " ")), ps.Connections, ps.Hijacked)
	fmt.Fprintf(w, "  policy:    %s, %d rules, default %s\n", ps.Policy.Source, len(ps.Policy.Rules), ps.Policy.Default)
	for _, r := range ps.Policy.Rules {
		fmt.Fprintf(w, "    %-24s %-5s %d hits\n", r.Name, r.Action, r.Hits)
	}
	if len(ps.Clients) == 0 {
		fmt.Fprintln(w, "  clients:   none seen since the proxy started")
	}
	for i, c := range ps.Clients {
		if i == 10 {
			fmt.Fprintf(w, "    ... and %d more (--json lists them)\n", len(ps.Clients)-10)
			break
		}
		groups := ""
		if len(c.Groups) > 0 {
			groups = " [" + strings.Join(c.Groups, ",") + "]"
		}
		fmt.Fprintf(w, "  client:    %s%s serial %s, last seen %s, %d requests, %d denied, %d open\n", c.User, groups, c.Serial, c.LastSeen.UTC().Format(time.DateTime), c.Requests, c.Denied, c.Active)
	}
	for _, c := range ps.CRLs {
		stale := ""
		if c.Stale {
			stale = " (STALE: past its next update; its serials stay revoked)"
		}
		fmt.Fprintf(w, "  crl:       %s number %s by %s, %d revoked%s\n", c.Source, orDash(c.Number), c.Issuer, c.Revoked, stale)
	}
	for _, p := range ps.CRLProblems {
		fmt.Fprintf(w, "  crl:       %s\n", crlProblemLine(p))
	}
	for _, f := range ps.CRLFetches {
		fmt.Fprintf(w, "  crl-url:   %s\n", crlFetchLine(f, now))
	}
	for _, r := range ps.Revoked {
		fmt.Fprintf(w, "  revoked:   serial %s at %s\n", r.Serial, r.RevokedAt.UTC().Format(time.DateTime))
	}
}

// crlFetchLine says how fresh the CRL of a --crl-url is and why its last
// fetch failed.
func crlFetchLine(f agent.CRLFetchStatus, now time.Time) string {
	line := f.URL + ": "
	if f.LastSuccess.IsZero() {
		line += "never fetched successfully"
	} else {
		line += "fetched " + ago(now, f.LastSuccess) + " ago"
	}
	line += " (every " + f.Refresh + ")"
	if f.InForce {
		line += ", number " + orDash(f.Number)
		if !f.NextUpdate.IsZero() {
			line += ", next update " + f.NextUpdate.UTC().Format(time.DateTime) + " UTC"
		}
	} else {
		line += ", NO CRL IN FORCE: every client is refused"
	}
	if f.LastError != "" {
		line += fmt.Sprintf("; last fetch %s ago: %s (failures since the start: %d)", ago(now, f.LastAttempt), f.LastError, f.Failures)
	}
	return line
}

// ago is how long before now t was, to the second.
func ago(now, t time.Time) string {
	return max(0, now.Sub(t)).Round(time.Second).String()
}

// crlProblemLine says what happened to a refused CRL and what is in force.
func crlProblemLine(p proxy.CRLProblem) string {
	if p.Keeping != "" {
		return fmt.Sprintf("%s: rejected: %s; keeping %s", p.Source, p.Reason, p.Keeping)
	}
	return fmt.Sprintf("%s: rejected: %s; no good CRL was ever loaded from it: EVERY CLIENT IS REFUSED until one loads", p.Source, p.Reason)
}
