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
// no connection is dropped.
// Session tickets are off, so every connection is verified against the
// client CAs and CRLs in force.
//
// # Identity and audit
//
// A client is named by its certificate: the subject CN is the user, each O
// value a group (the Kubernetes convention). Every request is logged once,
// with slog at Info and component=proxy: user, groups, serial, remote,
// method, clean path, status, decision (allow, deny or error), rule and
// duration. A hijacked stream is logged when it starts, with hijacked=true.
//
// # Policy file
//
// Without a policy file the built-in policy applies: group "read-only" may
// use GET and HEAD only (but not the websocket attach), every other valid
// client has full access. A policy file replaces it. It is JSON; unknown
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
// Paths are matched after normalisation, exactly as dockerd routes them: the
// path is percent-decoded once (%2F is a slash, %2e a dot), cleaned ("//",
// "." and ".." resolved, trailing slash dropped) and stripped of its API
// version prefix (/v1.41). So /v1.41/containers/../../secrets is /secrets,
// and /containers%2Fcreate is /containers/create. The proxy forwards the
// normalised path, so what is authorized is what dockerd serves. Patterns
// are written clean and without the version prefix; "*" matches one or more
// whole segments (like dockerd's {name:.*}), "**" zero or more.
//
// An allow rule with a "guard" has the bodies of POST /containers/create,
// POST /containers/{id}/exec and POST /volumes/create checked (at most
// Options.MaxGuardBody bytes are read; the same bytes are forwarded). A
// guard denies privileged containers and execs, NetworkMode, PidMode,
// IpcMode and UsernsMode "host", CapAdd, Devices (and device cgroup rules and
// requests), SecurityOpt other than no-new-privileges, VolumesFrom, and bind
// mounts (HostConfig.Binds, Mounts of type bind, local volumes with o=bind)
// outside "bind_roots", checked as written and with symlinks resolved. Each
// can be allowed: allow_privileged, allow_host_network, allow_host_pid,
// allow_host_ipc, allow_host_userns, allow_cap_add, allow_devices,
// allow_security_opt, allow_volumes_from. Other endpoints that reach the
// host (plugins, swarm services) need rules.
//
// A refusal is HTTP 403 with Docker's JSON error body {"message": "..."}
// naming the user, the request and the rule (and guard), so the docker CLI
// prints it.
//
// # Revocation
//
// IssueCRL issues a CRL from the local CA. LoadCRLFiles (or ParseCRL and
// SetCRLs or SetRevocation) installs CRLs, PEM or DER, local or external.
// Each must be signed by one of CRLIssuers: a certificate of the CA bundle
// (ca.pem, intermediates included) or an intermediate of the server's own
// chain that verifies to one as a CA, since real PKIs (step-ca) sign the
// CRL with the intermediate that issues the leaves. CheckUpdate refuses a
// CRL past its next update or older than the one in force (a lower CRL
// number; without numbers, an earlier this-update); the caller keeps the
// CRL in force (package agent persists the last good one of each file).
//
// At the handshake (VerifyConnection) a client certificate needs exactly
// one CN attribute and the clientAuth extended key usage, explicitly (Go
// accepts no extended key usage at all, and anyExtendedKeyUsage; tlsdock
// refuses both). Then, while CRLs are in force: the leaf's issuer must have
// a CRL in force (otherwise it is refused, and the log names the issuer
// that needs one), and neither the leaf nor any CA of its verified chains
// below the trust anchor may be revoked. A Revocation with a problem that
// keeps no CRL (a configured source that never had a good CRL) refuses
// every client: revocation fails closed. Open connections that the new
// revocation refuses are closed when it is installed, and a stale CRL
// stays in force.
//
// # Limits
//
// Handshake, request-header and keep-alive idle timeouts, a maximum header
// size (431), and a cap on concurrent connections per client certificate
// (429). Shutdown stops accepting, closes idle connections, lets requests in
// flight finish and gives hijacked streams Options.HijackGrace.
//
// # Tunnel
//
// A Tunnel listens on a unix socket or a loopback TCP address and pipes raw
// bytes through mutual TLS to a proxy (or any TLS dockerd), for tools that
// speak plain HTTP or only use a unix socket.
package proxy
