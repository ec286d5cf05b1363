package agent

import (
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsdock/tlsdock/certstore/certtest"
)

// TestCRLURLStaleReplay: a server (or whoever is on a plain http path)
// that keeps serving the CRL in force past its next update holds back
// every revocation since. The CRL stays in force, as a stale --crl file
// does, but such a fetch is no success: the fetch age grows, the failures
// count and the status says why.
func TestCRLURLStaleReplay(t *testing.T) {
	p := certtest.New(t)
	alice, aliceLeaf := certtest.Client(t, p.Inter, "alice", nil)
	bob, _ := certtest.Client(t, p.Inter, "bob", nil)
	start := time.Now()
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	srv := newCRLServer(t, p, false)
	srv.set(p.Inter.CRL(t, big.NewInt(5), start, start.Add(time.Hour), aliceLeaf.SerialNumber), 0, "")
	metrics := NewMetrics()
	metrics.now = clock
	cd := startCRLDaemonWith(t, t.TempDir(), p, func(o *ProxyDaemonOptions) {
		o.Config.CRLURLs = []string{srv.URL + "/crl"}
		o.Config.CRLRefresh = 50 * time.Millisecond
		o.Proxy.Now = clock
		o.Metrics = metrics
	})
	fs := cd.fetchStatus(t)
	if !fs.InForce || fs.LastError != "" || fs.LastSuccess.IsZero() {
		t.Fatalf("fetch status %+v", fs)
	}
	fresh := fs.LastSuccess

	// Two hours on, the server still answers number 5.
	skew.Store(int64(2 * time.Hour))
	later := clock()
	waitFor(t, "a fetch past the next update", func() bool {
		fs = cd.fetchStatus(t)
		return fs.LastAttempt.After(later) && fs.Failures > 0
	})
	if !strings.Contains(fs.LastError, "expired") || !fs.LastSuccess.Equal(fresh) || !fs.InForce || fs.Number != "5" {
		t.Fatalf("fetch status of a CRL served past its next update %+v: want a failure naming the expiry, number 5 kept, the last success at %v", fs, fresh)
	}
	if err := cd.ping(p, alice); err == nil {
		t.Fatal("alice gets in: the stale CRL must stay in force")
	}
	if err := cd.ping(p, bob); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if age := scrape(t, metrics)["tlsdock_crl_fetch_age_seconds"].Metric[0].GetGauge().GetValue(); age < time.Hour.Seconds() {
		t.Fatalf("fetch age %vs: a CRL served past its next update reset it", age)
	}
}
