// Package proxy is tlsdock's proxy mode: a mutual-TLS listener in front of
// dockerd's unix socket, and the client-side tunnel.
//
// # Server
//
// A Server terminates TLS 1.2 or newer on the listeners it is given (TCP from
// --host, or sockets from systemd activation), requires and verifies a client
// certificate against the client CAs (the CA bundle of the certificate set),
// and forwards every allowed request to dockerd's unix socket
// (/var/run/docker.sock by default).
//
// The forwarding path is lean: each client connection reads requests with
// http.ReadRequest, decides, and writes them to a persistent dockerd
// connection (taken from a small shared pool), then streams the response
// back with the proxy's own framing (Content-Length or re-chunked). Buffered
// output is flushed exactly when no more input is at hand, so streams (logs
// -f, events, stats) flow as they arrive and a short response costs one
// write. Request bodies (docker load, build contexts) stream in both framings
// and are never buffered, except the bounded body a guard reads. A 101
// UPGRADED response, or dockerd's 200 with a raw stream, turns the
// connection into a byte pipe in both directions with half-close, so `echo hi
// | docker run -i IMAGE cat` ends.
//
// Certificates, client CAs, policy and CRLs are swapped atomically while
// serving (SetCertificates, SetPolicy, SetCRLs or SetRevocation,
// LoadCRLFiles). The TLS configuration comes from GetConfigForClient, so a
// handshake finishes with the set current when its ClientHello arrived and
// no connection is dropped, except those of clients the new client CAs no
// longer verify (a CA taken out of ca.pem cuts off its clients' open
// connections and hijacked streams).
// Session tickets are off, so every connection is verified against the
// client CAs and CRLs in force.
//
// # Identity and audit
//
// A client is named by its certificate: the subject CN is the user, each O
// value a group (the Kubernetes convention). Every request has one audit
// record, aborted ones included: user, groups, serial, remote, method,
// clean path, status, decision (allow, deny or error), rule, guard,
// duration and error. A hijacked stream is recorded when it starts, with
// hijacked=true.
//
// Without Options.AuditLog every record goes to the logger (slog at Info,
// component=proxy). With it (an AuditLog: a JSON-lines file, 0600 root,
// never through a symlink, in a directory only root can write (checked on
// the descriptor it is opened in, at every open), buffered and written out within 100 ms and on
// Close, rotated by size to PATH.1 ... PATH.3, reopened by Reopen after
// logrotate) every record goes to the file, and the logger (the journal)
// keeps the denials, the errors and the events: journald rate-limits each
// unit, and the file keeps the whole trail under sustained load. A record
// the file cannot take goes to the logger. A record is buffered after its
// response is written: a crash of the process (not Shutdown and Close)
// loses at most FlushInterval of records of answered requests.
//
// # Policy file
//
// Without a policy file the built-in policy applies: group "read-only" may
// use GET and HEAD only, and never to write into a container (see below),
// every other valid client has full access. A policy file replaces it. It is JSON; unknown
// fields are errors:
//
//	{
//	  "default": "deny",
//	  "rules": [
//	    {"name": "no-swarm", "paths": ["/swarm/**", "/secrets/**"], "action": "deny",
//	     "message": "ask the ops team"},
//	    {"name": "ping", "methods": ["GET", "HEAD"], "paths": ["/_ping", "/version"], "action": "allow"},
//	    {"name": "ci-no-exec", "users": ["ci"], "methods": ["POST"],
//	     "paths": ["/containers/*/exec", "/exec/**"], "action": "deny"},
//	    {"name": "ci", "users": ["ci"], "action": "allow", "guard": "sandbox"},
//	    {"name": "ops", "groups": ["ops"], "action": "allow"}
//	  ],
//	  "guards": {
//	    "sandbox": {"bind_roots": ["/srv/ci"]}
//	  }
//	}
//
// Rules are tried in order and the first that matches decides; "default"
// ("deny" unless set to "allow") decides when none matches. A rule matches a
// client whose user is in "users" or who is in one of "groups" (both empty:
// every client), a method in "methods" (empty: any) and a path matching one
// of "paths" (empty: any). Rule names are unique; a refusal names the rule.
//
// A read-only rule never lets a client write into a container. An allow
// rule whose "methods" are all read methods (GET, HEAD, OPTIONS) does not
// match a request that writes (Writes), whatever its method: one that
// upgrades the connection (Connection: upgrade with an Upgrade header, as
// attach, exec start and sessions do) and any route ending in /ws (the
// websocket attach, which dockerd upgrades whatever the headers say). Such
// a request goes on to the next rules; a deny rule matches it as usual.
// Should dockerd still hijack a request a read-only rule allowed, the
// client's bytes are not carried to it.
//
// Paths are matched after normalisation, exactly as dockerd routes them: the
// path is percent-decoded once (%2F is a slash, %2e a dot), cleaned ("//",
// "." and ".." resolved, trailing slash dropped) and stripped of its API
// version prefix (/v1.41). So /v1.41/containers/../../secrets is /secrets,
// and /containers%2Fcreate is /containers/create. The proxy forwards the
// normalised path, so what is authorized is what dockerd serves. Patterns
// are written clean and without the version prefix; "*" matches one or more
// whole segments (like dockerd's {name:.*}), "**" zero or more.
//
// An allow rule with a "guard" applies these checks, all default-deny
// (SECURITY.md lists them field by field):
//
//   - Routes. Every request is matched against dockerd's own route table
//     (API 1.41 to 1.52, in dockerd's order). Reads and container lifecycle
//     calls pass as they are; create, update, exec, volume create, network
//     create and connect pass once their body does; start takes no body
//     and no checkpoint; POST /build and POST /images/create take only
//     known query parameters (no remote context, host or container
//     network, cgroup parent, BuildKit, outputs, or a fromSrc URL that
//     dockerd would fetch). Plugins (all but GET), swarm (/swarm/**, and
//     the writes of services, nodes, secrets and configs), /session, /grpc,
//     checkpoints, the debug endpoints and every route the table does not
//     know are refused unless the guard's "allow_endpoints" (path
//     patterns, as in rules) names them, so guarded clients build with
//     DOCKER_BUILDKIT=0 (BuildKit needs /session). A form-encoded body
//     and a ";" in the query are refused, since dockerd would read
//     parameters from them.
//     A version prefix older than "min_api_version" (default 1.41, at least
//     1.24) is refused; a request without a prefix is allowed.
//   - Bodies. At most Options.MaxGuardBody bytes are read, decoded as
//     dockerd decodes them, and forwarded unchanged. A field the guard
//     does not know is refused; privileged containers and execs, host and
//     container:<id> namespaces, added capabilities, devices, weakened
//     security options and the like are refused unless an allow_* knob
//     allows them.
//   - Binds. dockerd resolves a bind source when it mounts it, at every
//     start. Every host path (a bind source, or the device of a local
//     volume with o=bind, existing named volumes included) must lie under
//     "bind_roots" with no symlink below the resolved root, and must not
//     nest with another container's mounts: no container may have a
//     writable mount of an ancestor inside the roots, and a new writable
//     mount may have no other container's mount below it. The proxy asks
//     dockerd for every container's mounts (a short deadline; if dockerd
//     cannot be asked the request is refused), checks create, and checks
//     the container's mounts again at start and restart. Guarded create
//     and start are serialized from check to answer.
//   - Existing containers. Start, restart, exec create and start, attach,
//     the archive endpoints and rename reach into a container that may be
//     someone else's: the proxy inspects it (and, at exec start, the exec
//     instance: a privileged one is refused), and refuses when its host
//     settings (privileged, host or container:<id> namespaces, added
//     capabilities, devices, unconfined security options, an unmasked or
//     writable /proc) are ones the guard's knobs do not allow, or when its
//     mounts fail the bind checks.
//     The request is forwarded with the container's full ID in place of
//     the name the client wrote, so a rename between the check and
//     dockerd's handling of it cannot send it to another container.
//
// A rule without a guard passes every route it matches.
//
// A refusal is HTTP 403 with Docker's JSON error body {"message": "..."}
// naming the user, the request and the rule (and guard), so the docker CLI
// prints it.
//
// # Revocation
//
// The local CA's CRL is issued by package certstore (CA.IssueCRL), which
// also owns the revoked-certificate type (certstore.RevokedCert) and the
// serial format. LoadCRLFiles (or ParseCRL and SetCRLs or SetRevocation)
// installs CRLs, PEM or DER, local or external.
// Each must be signed by one of CRLIssuers: a certificate of the CA bundle
// (ca.pem, intermediates included) or an intermediate of the server's own
// chain that verifies to one as a CA, since real PKIs (step-ca) sign the
// CRL with the intermediate that issues the leaves. Only a complete CRL is
// taken: a delta CRL, an indirect one, one limited to some reasons or to
// attribute certificates, and one with a critical extension tlsdock does
// not know are refused; one for CA certificates only (an ARL) revokes CAs
// but is not its issuer's CRL for clients. CheckUpdate refuses a
// CRL past its next update or older than the one in force (a lower CRL
// number; without numbers, an earlier this-update); the caller keeps the
// CRL in force (package agent persists the last good one of each file).
// The CRL to compare with is the newest of the same issuer (IssuerID: name
// and key) ever in force, from any file: a file that passes through
// another CA's CRL must not reset the comparison (LoadCRLFiles, and
// package agent, which persists that floor too).
//
// At the handshake (VerifyConnection) a client certificate needs exactly
// one CN attribute and the clientAuth extended key usage, explicitly (Go
// accepts no extended key usage at all, and anyExtendedKeyUsage; tlsdock
// refuses both). Then, while CRLs are in force: the leaf's issuer must have
// a CRL in force (otherwise it is refused, and the log names the issuer
// that needs one), and neither the leaf nor any CA of its verified chains
// may be revoked, the trust anchor included (an intermediate in ca.pem
// anchors the chain of a client that sends only its leaf). A Revocation
// with a problem that keeps no CRL (a configured source that never had a good CRL) refuses
// every client: revocation fails closed. Open connections that the new
// revocation refuses are closed when it is installed, and a stale CRL
// stays in force.
//
// # Limits
//
// Handshake, request-header and keep-alive idle timeouts, a maximum header
// size (431), and a cap on concurrent connections per client certificate
// (429). Every read of a request body waits at most
// Options.BodyIdleTimeout (30 s). A body that stops arriving (408), ends
// before its length or breaks off (400) has dockerd's connection closed at
// once, so that dockerd aborts the request and releases what it holds (the
// container an archive upload locks); the client's connection closes and
// leaves its cap, and the audit record says what happened. Shutdown stops accepting, closes idle connections, lets requests in
// flight finish and gives hijacked streams Options.HijackGrace.
//
// # Tunnel
//
// A Tunnel listens on a unix socket or a loopback TCP address and pipes raw
// bytes through mutual TLS to a proxy (or any TLS dockerd), for tools that
// speak plain HTTP or only use a unix socket.
package proxy
