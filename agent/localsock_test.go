package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Attack is the fake dockerd's answer to an attacker's probes.
func (h *fakeHost) Attack(_ context.Context, addr string) ([]Check, error) {
	cs, err := h.AttackChecks(addr)
	out := make([]Check, len(cs))
	for i, c := range cs {
		out[i] = Check(c)
	}
	return out, err
}

// localAPI is dockerd's local API as a client on the host meets it: a
// call blocks until its context ends when docker.socket holds
// /run/docker.sock and the running dockerd does not serve it.
type localAPI struct{ *fakeHost }

var errHung = errors.New("the call over /run/docker.sock hung")

func (l localAPI) Info(ctx context.Context) (DockerInfo, error) {
	if l.LocalAPIHangs() {
		<-ctx.Done()
		return DockerInfo{}, ctx.Err()
	}
	return l.fakeHost.Info(ctx)
}

func (l localAPI) Ping(ctx context.Context) error {
	if l.LocalAPIHangs() {
		<-ctx.Done()
		return ctx.Err()
	}
	return l.fakeHost.Ping(ctx)
}

var (
	_ = strings.Contains
	_ testing.T
)
