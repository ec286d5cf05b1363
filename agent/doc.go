// Package agent owns tlsdock's one sequence: plan (read the current state,
// validate the inputs, compute the diff) → back up everything it will touch →
// write atomically → reload → restart docker.service and wait → verify →
// commit, or roll back to the backup and restart again. Provision, rotation
// and revert all go through it.
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
