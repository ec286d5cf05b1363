package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// DockerInfo is the part of dockerd's GET /info that tlsdock reads.
type DockerInfo struct {
	ServerVersion      string
	LiveRestoreEnabled bool
	Swarm              struct {
		LocalNodeState string
	}
}

// SwarmActive reports whether this node is part of a swarm, where
// live-restore is not allowed.
func (i DockerInfo) SwarmActive() bool {
	return i.Swarm.LocalNodeState != "" && i.Swarm.LocalNodeState != "inactive"
}

// SocketClient talks to dockerd's local API over its unix socket.
type SocketClient struct {
	Path string
	hc   *http.Client
}

// NewSocketClient returns a client for the socket at path.
func NewSocketClient(path string) *SocketClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &SocketClient{Path: path, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (c *SocketClient) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dockerd at %s: %w", c.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("dockerd at %s: GET %s: %w", c.Path, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("dockerd at %s: GET %s: %s: %s", c.Path, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// Info reads GET /info.
func (c *SocketClient) Info(ctx context.Context) (DockerInfo, error) {
	var info DockerInfo
	body, err := c.get(ctx, "/info")
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return info, fmt.Errorf("dockerd at %s: GET /info: %w", c.Path, err)
	}
	return info, nil
}

// Ping checks that GET /_ping answers OK.
func (c *SocketClient) Ping(ctx context.Context) error {
	body, err := c.get(ctx, "/_ping")
	if err != nil {
		return err
	}
	if string(body) != "OK" {
		return fmt.Errorf("dockerd at %s: GET /_ping answered %q", c.Path, body)
	}
	return nil
}
