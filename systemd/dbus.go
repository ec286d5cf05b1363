package systemd

import (
	"context"
	"errors"
	"fmt"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// UnitInfo is the state of a unit as systemd reports it.
type UnitInfo struct {
	LoadState        string
	ActiveState      string
	SubState         string
	MainPID          uint32
	FragmentPath     string
	DropInPaths      []string
	NeedDaemonReload bool
}

// Manager controls units over systemd's D-Bus API.
type Manager struct {
	conn *sddbus.Conn
	// Poll is how often the active state is re-read while waiting.
	Poll time.Duration
}

// Connect opens a connection to systemd (its private socket when root, else
// the system bus).
func Connect(ctx context.Context) (*Manager, error) {
	conn, err := sddbus.NewWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd over D-Bus: %w (is systemd running?)", err)
	}
	return &Manager{conn: conn, Poll: 100 * time.Millisecond}, nil
}

// Close closes the connection.
func (m *Manager) Close() { m.conn.Close() }

// DaemonReload reloads systemd's unit files.
func (m *Manager) DaemonReload(ctx context.Context) error {
	if err := m.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	return nil
}

// ResetFailed clears a unit's failed state and its start-rate counter.
func (m *Manager) ResetFailed(ctx context.Context, name string) error {
	err := m.conn.ResetFailedUnitContext(ctx, name)
	var dbe godbus.Error
	if errors.As(err, &dbe) && dbe.Name == "org.freedesktop.systemd1.NoSuchUnit" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("systemd reset-failed %s: %w", name, err)
	}
	return nil
}

// Restart restarts a unit and waits until its job finishes and the unit is
// active. The wait is bounded by ctx: docker.service has TimeoutStartSec=0.
func (m *Manager) Restart(ctx context.Context, name string) error {
	return m.runJob(ctx, "restart", name, m.conn.RestartUnitContext)
}

// Start starts a unit and waits like Restart.
func (m *Manager) Start(ctx context.Context, name string) error {
	return m.runJob(ctx, "start", name, m.conn.StartUnitContext)
}

// Stop stops a unit and waits for the job result. A unit systemd does not
// know is already stopped.
func (m *Manager) Stop(ctx context.Context, name string) error {
	ch := make(chan string, 1) // buffered, as in runJob
	_, err := m.conn.StopUnitContext(ctx, name, "replace", ch)
	var dbe godbus.Error
	if errors.As(err, &dbe) && dbe.Name == "org.freedesktop.systemd1.NoSuchUnit" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("systemd stop %s: %w", name, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("systemd stop %s: job result %q", name, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd stop %s: no job result: %w", name, ctx.Err())
	}
}

// Reload asks a unit to reload its configuration (docker.service sends
// SIGHUP to dockerd) and waits for the job.
func (m *Manager) Reload(ctx context.Context, name string) error {
	return m.runJob(ctx, "reload", name, m.conn.ReloadUnitContext)
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

func (m *Manager) runJob(ctx context.Context, verb, name string, start jobFunc) error {
	// Buffered: the library sends the result while holding its listener lock.
	ch := make(chan string, 1)
	if _, err := start(ctx, name, "replace", ch); err != nil {
		return fmt.Errorf("systemd %s %s: %w", verb, name, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("systemd %s %s: job result %q", verb, name, res)
		}
	case <-ctx.Done():
		return fmt.Errorf("systemd %s %s: no job result: %w", verb, name, ctx.Err())
	}
	return m.WaitActive(ctx, name)
}

// WaitActive waits until the unit is active, and fails at once if it is
// failed or inactive.
func (m *Manager) WaitActive(ctx context.Context, name string) error {
	for {
		info, err := m.Unit(ctx, name)
		if err != nil {
			return err
		}
		switch info.ActiveState {
		case "active":
			return nil
		case "failed", "inactive":
			return fmt.Errorf("%s is %s (%s)", name, info.ActiveState, info.SubState)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to become active (it is %s): %w", name, info.ActiveState, ctx.Err())
		case <-time.After(m.Poll):
		}
	}
}

// Unit reads a unit's state.
func (m *Manager) Unit(ctx context.Context, name string) (UnitInfo, error) {
	props, err := m.conn.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return UnitInfo{}, fmt.Errorf("reading %s over D-Bus: %w", name, err)
	}
	info := UnitInfo{
		LoadState:    str(props["LoadState"]),
		ActiveState:  str(props["ActiveState"]),
		SubState:     str(props["SubState"]),
		FragmentPath: str(props["FragmentPath"]),
	}
	if v, ok := props["DropInPaths"].([]string); ok {
		info.DropInPaths = v
	}
	if v, ok := props["NeedDaemonReload"].(bool); ok {
		info.NeedDaemonReload = v
	}
	p, err := m.conn.GetServicePropertyContext(ctx, name, "MainPID")
	if err == nil {
		if pid, ok := p.Value.Value().(uint32); ok {
			info.MainPID = pid
		}
	}
	return info, nil
}

// ManagerEnvironment returns the environment systemd gives every
// service (DefaultEnvironment= and systemctl set-environment), as
// NAME=VALUE: the Manager's Environment property.
func (m *Manager) ManagerEnvironment(ctx context.Context) ([]string, error) {
	s, err := m.conn.GetManagerProperty("Environment")
	if err != nil {
		return nil, fmt.Errorf("reading systemd's environment over D-Bus: %w", err)
	}
	v, err := godbus.ParseVariant(s, godbus.ParseSignatureMust("as"))
	if err != nil {
		return nil, fmt.Errorf("reading systemd's environment over D-Bus: %q: %w", s, err)
	}
	env, _ := v.Value().([]string)
	return env, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
