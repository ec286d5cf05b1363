package main

import (
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/certstore"
)

// settingsFlags are the flags that the config file can also set.
type settingsFlags struct {
	configPath  string
	mode        string
	certs       string
	generate    bool
	clientOut   string
	hosts       []string
	sans        []string
	keyType     string
	liveRestore bool
	probeClient string
	timeout     time.Duration
	policy      string
	crls        []string
	auditLog    string
	auditMax    string
	allowOwner  string
}

func (f *settingsFlags) register(fs *pflag.FlagSet) {
	d := agent.Defaults()
	fs.StringVar(&f.configPath, "config", agent.ConfigFile, "config file; flags override it")
	fs.StringVar(&f.mode, "mode", string(d.Mode), "how the API is served: daemon-json (dockerd's TLS settings in /etc/docker/daemon.json), dropin (dockerd flags in a systemd drop-in) or proxy (tlsdock.service terminates mutual TLS in front of docker.sock: hot reload, per-client policy, revocation)")
	fs.StringVar(&f.certs, "certs", "", "directory with ca.pem, server-cert.pem and server-key.pem to install")
	fs.BoolVar(&f.generate, "generate", false, "use a local CA in "+agent.CADir+" (created once, then reused) to issue the server certificate")
	fs.StringVar(&f.clientOut, "client-out", "", "with --generate: also write a client bundle (ca.pem, cert.pem, key.pem) to this directory, for DOCKER_CERT_PATH")
	fs.StringArrayVar(&f.hosts, "host", d.Hosts, "TCP address dockerd listens on with mutual TLS (repeatable)")
	fs.StringArrayVar(&f.sans, "san", nil, "extra DNS name or IP address the server certificate must cover (repeatable)")
	fs.StringVar(&f.keyType, "key-type", string(d.KeyType), "key type of issued certificates: ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096")
	fs.BoolVar(&f.liveRestore, "live-restore", d.LiveRestore, "turn on dockerd's live-restore first, so containers survive the restart (skipped in swarm mode)")
	fs.StringVar(&f.probeClient, "probe-client", "", "with --certs: directory with cert.pem and key.pem of a client, used to check that a valid client gets in")
	fs.DurationVar(&f.timeout, "timeout", d.Timeout, "how long to wait for docker.service to restart")
	fs.StringVar(&f.policy, "policy", "", "proxy mode: policy file (JSON, see README) deciding each client's requests; default: group read-only may GET and HEAD, others have full access")
	fs.StringVar(&f.allowOwner, "allow-source-owner", "", "with --certs: let this one account (USER or USER:GROUP, a PKI agent's service user) own and write the source; otherwise only root may be able to change it. Whoever controls that account controls dockerd: tlsdock warns on every run")
	fs.StringArrayVar(&f.crls, "crl", nil, "proxy mode: external CRL file (PEM or DER) to enforce (repeatable); the local CA's "+agent.LocalCRLPath+" is enforced whenever it exists")
	fs.StringVar(&f.auditLog, "audit-log", d.AuditLog, "proxy mode: file of per-request audit records (JSON lines, 0600; reopened on SIGHUP); the journal keeps denials and events. \"\": every record to the journal")
	fs.StringVar(&f.auditMax, "audit-log-max-size", agent.FormatSize(d.AuditLogMaxSize), "proxy mode: rotate the audit log past this size (K, M or G suffix) to .1, keeping 3 old files; 0: never (leave it to logrotate)")
}

// config merges the config file under the flags: a flag given on the
// command line wins over the file, and the file over the defaults.
func (f *settingsFlags) config(cmd *cobra.Command) (agent.Config, error) {
	fileSettings, err := agent.LoadConfigFile(f.configPath)
	if err != nil {
		return agent.Config{}, err
	}
	changed := cmd.Flags().Changed
	str := func(name string, dst *string) {
		if v, ok := fileSettings.String(name); ok && !changed(name) {
			*dst = v
		}
	}
	list := func(name string, dst *[]string) {
		if v := fileSettings[name]; len(v) > 0 && !changed(name) {
			*dst = v
		}
	}
	boolean := func(name string, dst *bool) error {
		v, ok, err := fileSettings.Bool(name)
		if err != nil {
			return err
		}
		if ok && !changed(name) {
			*dst = v
		}
		return nil
	}
	str("mode", &f.mode)
	str("certs", &f.certs)
	str("client-out", &f.clientOut)
	str("key-type", &f.keyType)
	str("probe-client", &f.probeClient)
	str("policy", &f.policy)
	str("allow-source-owner", &f.allowOwner)
	list("crl", &f.crls)
	str("audit-log", &f.auditLog)
	str("audit-log-max-size", &f.auditMax)
	list("host", &f.hosts)
	list("san", &f.sans)
	if err := boolean("generate", &f.generate); err != nil {
		return agent.Config{}, err
	}
	if err := boolean("live-restore", &f.liveRestore); err != nil {
		return agent.Config{}, err
	}
	if d, ok, err := fileSettings.Duration("timeout"); err != nil {
		return agent.Config{}, err
	} else if ok && !changed("timeout") {
		f.timeout = d
	}
	mode, err := agent.ParseMode(f.mode)
	if err != nil {
		return agent.Config{}, err
	}
	kt, err := certstore.ParseKeyType(f.keyType)
	if err != nil {
		return agent.Config{}, &agent.InputError{Field: "--key-type", Err: err}
	}
	auditMax, err := agent.ParseSize("--audit-log-max-size", f.auditMax)
	if err != nil {
		return agent.Config{}, err
	}
	cfg := agent.Config{
		Mode: mode, Certs: f.certs, Generate: f.generate, ClientOut: f.clientOut,
		Hosts: f.hosts, SANs: f.sans, KeyType: kt, LiveRestore: f.liveRestore,
		ProbeClient: f.probeClient, Timeout: f.timeout, Policy: f.policy, CRLs: f.crls,
		AuditLog: f.auditLog, AuditLogMaxSize: auditMax,
		AllowSourceOwner: f.allowOwner,
	}
	return cfg, cfg.Validate()
}
