package main

import (
	"context"

	"github.com/tlsdock/tlsdock/agent"
	"github.com/tlsdock/tlsdock/agent/agenttest"
)

// fakeAttacker answers an attacker's probes of a TCP listener from how the
// fake dockerd serves it.
type fakeAttacker struct{ h *agenttest.Host }

func (f fakeAttacker) Attack(_ context.Context, addr string) ([]agent.Check, error) {
	cs, err := f.h.AttackChecks(addr)
	out := make([]agent.Check, len(cs))
	for i, c := range cs {
		out[i] = agent.Check{Endpoint: c.Endpoint, Name: c.Name, OK: c.OK, Detail: c.Detail}
	}
	return out, err
}
