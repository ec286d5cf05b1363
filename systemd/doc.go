// Package systemd reads and writes what tlsdock needs of systemd: the
// effective ExecStart of docker.service (its fragment and drop-ins, parsed
// with go-systemd's unit package), the effective ListenStream list of
// docker.socket, tlsdock's own drop-ins for both units (rendered as pure
// bytes), control of units over D-Bus (daemon-reload, reset-failed, reload,
// restart with a bounded wait for the job result and the active state) and
// sd_notify.
//
// Nothing here writes files: callers write rendered bytes with
// certstore.WriteFileAtomic.
package systemd
