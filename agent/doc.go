// Package agent owns tlsdock's one sequence: plan (read the current state,
// validate the inputs, compute the diff) → back up everything it will touch
// → save a new local CA → turn live-restore on first → write atomically →
// serve → verify → commit, or roll back to the backup and put back into
// service only what the serve step restarted or stopped. Provision and
// rotation run it with the planned configuration as the target; revert runs
// it with the original snapshot (taken before the first provision) as the
// target.
//
// How the API is served is a server (server.go), chosen once from the mode
// and from how the agent was built: dockerd's own TLS (daemon-json or
// dropin mode, which differ only in their plan), tlsdock.service driven by
// the CLI (proxy mode), or the proxy in the running daemon (Options.Proxy).
// A server plans its files, serves them (restarting what they belong to)
// and undoes that; the sequence never asks which one it holds. What to
// restart or stop is derived from the files the plan changes.
//
// In daemon-json mode docker.socket holds the TCP listeners where it can
// (socket.go): daemon.json's TLS settings are written before the socket
// listens, and the socket gives its listeners up before anything takes
// those settings away, so no kill leaves a plain TCP listener.
//
// The agent reaches systemd, dockerd's local API and the clock only through
// small interfaces declared here, so the sequence is unit-tested with fakes
// against a root under t.TempDir(); real systemd is exercised in test/e2e.
package agent
