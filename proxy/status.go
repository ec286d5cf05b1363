package proxy

import (
	"sort"
	"time"

	"github.com/tlsdock/tlsdock/certstore"
)

// Status is a snapshot of the proxy for `tlsdock status`.
type Status struct {
	// Serial, Subject and NotAfter describe the server certificate served.
	Serial   string    `json:"serial"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	// Listeners are the addresses being served.
	Listeners []string `json:"listeners"`
	// Connections counts open client connections; Hijacked those carrying
	// an attach or exec stream.
	Connections int `json:"connections"`
	Hijacked    int `json:"hijacked"`
	// Clients are the clients seen recently, most recent first.
	Clients []ClientStatus `json:"clients"`
	Policy  PolicyStatus   `json:"policy"`
	CRLs    []CRLStatus    `json:"crls"`
	// CRLProblems are refused CRL files and configured sources without a
	// good CRL (then every client is refused).
	CRLProblems []CRLProblem `json:"crl_problems,omitempty"`
	// Revoked lists every revoked serial of the CRLs in force.
	Revoked []RevokedStatus `json:"revoked"`
}

// ClientStatus is one client seen recently.
type ClientStatus struct {
	Identity
	LastSeen time.Time `json:"last_seen"`
	// Active counts its open connections.
	Active   int64  `json:"active"`
	Requests uint64 `json:"requests"`
	Denied   uint64 `json:"denied"`
}

// CRLStatus describes one CRL in force.
type CRLStatus struct {
	Source     string    `json:"source"`
	Issuer     string    `json:"issuer"`
	Number     string    `json:"number"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	// Stale is true past NextUpdate; its serials stay revoked.
	Stale   bool `json:"stale"`
	Revoked int  `json:"revoked"`
}

// RevokedStatus is one revoked certificate.
type RevokedStatus struct {
	Serial    string    `json:"serial"`
	Issuer    string    `json:"issuer"`
	RevokedAt time.Time `json:"revoked_at"`
	Reason    int       `json:"reason,omitempty"`
}

// Status returns a snapshot of what the proxy serves and has seen.
func (s *Server) Status() Status {
	now := s.o.Now()
	st := Status{}
	cs := s.certs.Load()
	st.Serial = cs.set.Serial()
	st.Subject = cs.set.Cert.Subject.String()
	st.NotAfter = cs.set.Cert.NotAfter
	st.Policy = s.policy.Load().Status()

	s.mu.Lock()
	for l := range s.listeners {
		st.Listeners = append(st.Listeners, l.Addr().String())
	}
	st.Connections = len(s.conns)
	for c := range s.conns {
		if c.state.Load() == stateHijacked {
			st.Hijacked++
		}
	}
	for _, cl := range s.clients {
		st.Clients = append(st.Clients, ClientStatus{
			Identity: cl.id,
			LastSeen: time.Unix(0, cl.lastSeen.Load()),
			Active:   cl.active.Load(),
			Requests: cl.requests.Load(),
			Denied:   cl.denied.Load(),
		})
	}
	s.mu.Unlock()
	sort.Strings(st.Listeners)
	sort.Slice(st.Clients, func(i, j int) bool {
		a, b := st.Clients[i], st.Clients[j]
		if !a.LastSeen.Equal(b.LastSeen) {
			return a.LastSeen.After(b.LastSeen)
		}
		return a.Serial < b.Serial
	})

	rev := s.revoc.Load()
	st.CRLProblems = append(st.CRLProblems, rev.problems...)
	for _, c := range rev.crls {
		cst := CRLStatus{
			Source: c.Source, Issuer: c.Issuer,
			ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate,
			Stale: c.Stale(now), Revoked: len(c.Revoked),
		}
		if c.Number != nil {
			cst.Number = c.Number.String()
		}
		st.CRLs = append(st.CRLs, cst)
		for _, r := range c.Revoked {
			st.Revoked = append(st.Revoked, RevokedStatus{Serial: certstore.FormatSerial(r.Serial), Issuer: c.Issuer, RevokedAt: r.RevokedAt, Reason: r.Reason})
		}
	}
	return st
}
