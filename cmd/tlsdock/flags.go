package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
)

// settingsFlags are the flags that the config file can also set. Their
// values are read back from the flag set (givenFlags) and merged by the
// agent; only --config is kept here.
type settingsFlags struct {
	configPath string
}

func (f *settingsFlags) register(fs *pflag.FlagSet) {
	d := agent.Defaults()
	fs.StringVar(&f.configPath, "config", agent.ConfigFile, "config file; flags override it")
	fs.String("mode", string(d.Mode), "how the API is served: daemon-json (dockerd's TLS settings in /etc/docker/daemon.json), dropin (dockerd flags in a systemd drop-in) or proxy (tlsdock.service terminates mutual TLS in front of docker.sock: hot reload, per-client policy, revocation)")
	fs.String("certs", "", "directory with ca.pem, server-cert.pem and server-key.pem to install (other names: --ca-file, --cert-file, --key-file)")
	fs.String("ca-file", certstore.CAFile, "with --certs: the CA bundle that signs the clients, a file name inside --certs or an absolute path (certbot's directory holds no client CA), such as root_ca.crt (step), ca.crt (Kubernetes)")
	fs.String("cert-file", certstore.CertFile, "with --certs: the server certificate, leaf first then intermediates, a file name inside --certs, such as server.crt (step), server.pem (cfssl), tls.crt (Kubernetes), fullchain.pem (certbot); it chains to --ca-file, or to the system's trusted roots (a public CA: --ca-file then only signs the clients)")
	fs.String("key-file", certstore.KeyFile, "with --certs: the server key, a file name inside --certs, such as server.key (step), server-key.pem (cfssl), tls.key (Kubernetes), privkey.pem (certbot)")
	fs.Bool("generate", false, "use a local CA in "+agent.CADir+" (created once, then reused) to issue the server certificate")
	fs.String("client-out", "", "with --generate: also write a client bundle (ca.pem, cert.pem, key.pem) to this directory, for DOCKER_CERT_PATH")
	fs.String("client-owner", "", "USER or USER:GROUP that owns the --client-out bundle (directory 0700, key.pem 0400, ca.pem and cert.pem 0444); default: SUDO_USER under sudo, else root")
	fs.StringArray("host", d.Hosts, "TCP address dockerd listens on with mutual TLS (repeatable)")
	fs.StringArray("san", nil, "extra DNS name or IP address the server certificate must cover (repeatable)")
	fs.String("key-type", string(d.KeyType), "key type of issued certificates: ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096")
	fs.Bool("live-restore", d.LiveRestore, "turn on dockerd's live-restore first, so containers survive the restart (skipped in swarm mode)")
	fs.String("probe-client", "", "with --certs: directory with cert.pem and key.pem of a client, used to check that a valid client gets in")
	fs.Duration("timeout", d.Timeout, "bound on the whole command, its rollback included: the steps (restarts, reloads, verification) share the first half and end at the latest then, so that a rollback always keeps at least the second half to restore the files and restart docker back. Past it tlsdock exits 3 or 4 and says what systemd is still doing")
	fs.String("policy", "", "proxy mode: policy file (JSON, see README) deciding each client's requests; default: group read-only may GET and HEAD, others have full access")
	fs.String("allow-source-owner", "", "with --certs: let this one account (USER or USER:GROUP, a PKI agent's service user) own and write the source; otherwise only root may be able to change it. Whoever controls that account controls dockerd: tlsdock warns on every run")
	fs.StringArray("crl", nil, "proxy mode: external CRL file (PEM or DER) to enforce (repeatable); the local CA's "+agent.LocalCRLPath+" is enforced whenever it exists")
	fs.StringArray("crl-url", nil, "proxy mode: fetch a CRL from this http or https URL every --crl-refresh (repeatable), such as step-ca's https://CA:PORT/crl; trusted over https: the system's roots and ca.pem. It must verify like a --crl; the last good one is kept (also across restarts) when a fetch fails or brings an older or foreign-signed CRL. \"cdp\": the http and https CRL distribution points of the installed CA bundle, intermediates and server certificate (never a client's)")
	fs.Duration("crl-refresh", d.CRLRefresh, "proxy mode: how often each --crl-url is fetched (10s to 24h); SIGHUP fetches at once")
	fs.String("audit-log", d.AuditLog, "proxy mode: file of per-request audit records (JSON lines, 0600; reopened on SIGHUP); the journal keeps denials and events. \"\": every record to the journal")
	fs.String("audit-log-max-size", agent.FormatSize(d.AuditLogMaxSize), "proxy mode: rotate the audit log past this size (K, M or G suffix) to .1, keeping 3 old files; 0: never (leave it to logrotate)")
}

// settings loads the config file and collects the settings flags given
// on the command line: the inputs of the agent's merge.
func (f *settingsFlags) settings(cmd *cobra.Command, root string) (agent.Settings, error) {
	file, err := agent.LoadConfigFile(f.configPath)
	if err != nil {
		return agent.Settings{}, err
	}
	return agent.Settings{Root: root, File: file, Flags: givenFlags(cmd.Flags())}, nil
}

// runSettings are the settings of the daemon and of provision: those of
// settings, and the source the last provision recorded (used when neither
// sets one).
func (f *settingsFlags) runSettings(cmd *cobra.Command, root string) (agent.Settings, error) {
	s, err := f.settings(cmd, root)
	if err != nil {
		return s, err
	}
	if s.Recorded, err = agent.RecordedSource(agent.Paths{Root: root}); err != nil {
		return s, err
	}
	return s, nil
}

// config merges the settings of provision: a flag given on the command
// line wins over the config file, and the file over the defaults. When no
// flag names a source, the record of the last provision by hand (under
// --root) fills what neither sets, as for the daemon.
func (f *settingsFlags) config(cmd *cobra.Command) (agent.Config, error) {
	root := "/"
	if fl := cmd.Flags().Lookup("root"); fl != nil {
		root = fl.Value.String()
	}
	s, err := f.runSettings(cmd, root)
	if err != nil {
		return agent.Config{}, err
	}
	cfg, _, err := agent.MergeProvision(s)
	return cfg, err
}

// givenFlags collects the settings flags given on the command line, with
// every value of a repeated one.
func givenFlags(fs *pflag.FlagSet) agent.Flags {
	given := agent.Flags{}
	fs.Visit(func(fl *pflag.Flag) {
		if !agent.IsSetting(fl.Name) {
			return
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			given[fl.Name] = sv.GetSlice()
			return
		}
		given[fl.Name] = []string{fl.Value.String()}
	})
	return given
}
