package proxy

// The contract between the guard's two halves: the route classification
// (guard.go, guardroute.go) decides which body a request carries, and the
// body model (guardbody.go) decodes that body the way dockerd does,
// classifies every field and returns the host paths it would mount, which
// the bind confinement (guard.go) then checks against bind_roots and the
// host's current mounts.

// bodyKind is a request body that the guard decodes and classifies.
type bodyKind int

const (
	bodyNone           bodyKind = iota
	bodyCreate                  // POST /containers/create
	bodyUpdate                  // POST /containers/{id}/update
	bodyStart                   // POST /containers/{id}/start (any non-empty body is refused)
	bodyExec                    // POST /containers/{id}/exec
	bodyVolume                  // POST /volumes/create
	bodyNetworkCreate           // POST /networks/create
	bodyNetworkConnect          // POST /networks/{id}/connect
)

// hostMount is a host path that a request would make dockerd mount into a
// container: a bind source, or the device of a local volume with o=bind.
type hostMount struct {
	// Field names where the path is in the body, for refusals, such as
	// "HostConfig.Binds[0]" or "HostConfig.Mounts[1].Source".
	Field string
	// Source is the host path as written.
	Source string
	// ReadOnly is true when the container gets it read-only.
	ReadOnly bool
}
