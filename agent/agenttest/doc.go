// Package agenttest is test support for the agent and the CLI, in the way
// net/http/httptest is for HTTP: a fake Debian host with docker.io under a
// temporary root. It plays systemd over D-Bus (the calls the agent makes,
// recorded, with failure injection and docker.service's start limit) and
// dockerd (its local API reflects the configuration it last started or
// reloaded with).
//
// Whether dockerd starts is decided by rules written from dockerd's
// documented behaviour and its configuration-loading code (see
// dockerd.go), not by tlsdock's own checks: tests can then judge tlsdock's
// output with it. Nothing here runs outside tests.
package agenttest
