package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// dockerState is what the bind confinement asks dockerd: the mounts of
// every container, of one container, and the named volumes.
type dockerState interface {
	containers(ctx context.Context) ([]dockerContainer, error)
	container(ctx context.Context, name string) (dockerContainer, error)
	volumes(ctx context.Context) ([]dockerVolume, error)
	exec(ctx context.Context, id string) (dockerExec, error)
}

// dockerExec is the part of an exec instance (GET /exec/{id}/json) the
// guard reads when it is started: its container, and whether it is
// privileged.
type dockerExec struct {
	ID            string
	ContainerID   string
	ProcessConfig execProcess
}

type execProcess struct {
	Privileged bool `json:"privileged"`
}

// dockerContainer is the part of a container (GET /containers/json?all=1,
// GET /containers/{id}/json) the confinement reads.
type dockerContainer struct {
	ID         string `json:"Id"`
	Name       string
	Names      []string
	Mounts     []dockerMount
	HostConfig *dockerHostConfig // inspect only
}

// dockerHostConfig is the part of an existing container's HostConfig that
// decides whether a guarded client may run code in it.
type dockerHostConfig struct {
	Privileged        bool
	NetworkMode       string
	PidMode           string
	IpcMode           string
	UTSMode           string
	UsernsMode        string
	CapAdd            []string
	Devices           []json.RawMessage
	DeviceCgroupRules []string
	DeviceRequests    []json.RawMessage
	SecurityOpt       []string
	MaskedPaths       []string // null: dockerd's defaults
	ReadonlyPaths     []string
}

// label names the container in refusals.
func (c dockerContainer) label() string {
	n := c.Name
	if n == "" && len(c.Names) > 0 {
		n = c.Names[0]
	}
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	if n == "" {
		return id
	}
	return fmt.Sprintf("%s (%s)", n, id)
}

// dockerMount is one mount of a container as dockerd reports it.
type dockerMount struct {
	Type        string
	Name        string
	Source      string
	Destination string
	Driver      string
	RW          bool
}

// dockerVolume is a named volume (GET /volumes).
type dockerVolume struct {
	Name    string
	Driver  string
	Options map[string]string
}

// errNotFound is dockerd's 404; errNoSuchContainer the 404 of a container.
var (
	errNotFound        = errors.New("not found")
	errNoSuchContainer = errors.New("no such container")
	errNoSuchExec      = errors.New("no such exec instance")
)

// DefaultGuardStateTimeout bounds the questions the guard asks dockerd.
const DefaultGuardStateTimeout = 5 * time.Second

// maxStateBody bounds one answer of dockerd.
const maxStateBody = 64 << 20

// socketState asks dockerd over its unix socket, in plain HTTP.
type socketState struct {
	c *http.Client
}

func newSocketState(dial func(ctx context.Context) (net.Conn, error)) *socketState {
	return &socketState{c: &http.Client{
		Transport: &http.Transport{
			DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
		},
		Timeout: DefaultGuardStateTimeout,
	}}
}

func (s *socketState) get(ctx context.Context, p string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://docker"+p, nil)
	if err != nil {
		return err
	}
	resp, err := s.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxStateBody+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", p, err)
	}
	if len(b) > maxStateBody {
		return fmt.Errorf("GET %s: the answer is larger than %d bytes", p, maxStateBody)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("GET %s: %w", p, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		var m struct{ Message string }
		_ = json.Unmarshal(b, &m) // a body that is not Docker's error JSON leaves Message empty
		return fmt.Errorf("GET %s: %s %s", p, resp.Status, m.Message)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", p, err)
	}
	return nil
}

func (s *socketState) containers(ctx context.Context) ([]dockerContainer, error) {
	var cs []dockerContainer
	err := s.get(ctx, "/containers/json?all=1", &cs)
	return cs, err
}

func (s *socketState) container(ctx context.Context, name string) (dockerContainer, error) {
	var c dockerContainer
	err := s.get(ctx, EscapePath("/containers/"+name+"/json"), &c)
	if errors.Is(err, errNotFound) {
		err = errNoSuchContainer
	}
	return c, err
}

func (s *socketState) exec(ctx context.Context, id string) (dockerExec, error) {
	var e dockerExec
	err := s.get(ctx, EscapePath("/exec/"+id+"/json"), &e)
	if errors.Is(err, errNotFound) {
		err = errNoSuchExec
	}
	return e, err
}

func (s *socketState) volumes(ctx context.Context) ([]dockerVolume, error) {
	var l struct{ Volumes []dockerVolume }
	err := s.get(ctx, "/volumes", &l)
	return l.Volumes, err
}

// guardState is the Server's part of the guards: the mutex that
// serializes guarded create and start from check to answer, and the
// client that asks dockerd. Its zero value is ready.
type guardState struct {
	mu    sync.Mutex
	once  sync.Once
	state dockerState // tests set it before serving
}

// setDockerState makes the Server ask st (tests); only before the first
// guarded request.
func (s *Server) setDockerState(st dockerState) {
	s.guards.once.Do(func() { s.guards.state = st })
}

func (s *Server) dockerState() dockerState {
	g := &s.guards
	g.once.Do(func() {
		if g.state == nil {
			g.state = newSocketState(s.o.Dial)
		}
	})
	return g.state
}
