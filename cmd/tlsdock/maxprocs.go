package main

// proxyMaxProcs is the GOMAXPROCS `tlsdock run --mode proxy` serves with,
// given cur, the one the Go runtime chose (the CPUs the process may use:
// its affinity and cgroup limit), and whether the operator set the
// GOMAXPROCS environment variable, which always wins: half of cur,
// rounded up. change is false when that is cur already.
//
// Why half: each kept-alive request the proxy forwards costs dockerd, on
// the same host, about as much CPU again as it costs the proxy
// (docs/benchmarks.md, row 6f), so the proxy cannot keep more than about
// half of the CPUs busy while dockerd serves what it forwards. Ps beyond
// that add scheduler work to every request of a proxy that is not
// saturated: threads woken to run or steal from an idle P, and put back
// to sleep. Measured on a 2-CPU host (4 kept-alive clients, GET /_ping,
// the proxy and a dockerd stand-in as processes of their own, 6 runs
// each): one P instead of two took the proxy from 48.8 to 45.0 µs of CPU
// per request and raised the request rate by 14%. On a big host, half of
// the CPUs still leaves the proxy many Ps for what is CPU-heavy in it,
// the TLS handshakes, which run in parallel on them. Where the proxy
// should use every CPU (a small host taking many fresh TLS connections at
// once), GOMAXPROCS in tlsdock.service's environment says so. (Once set,
// the runtime no longer follows later changes of the cgroup's CPU limit;
// a restart of tlsdock.service picks them up.)
func proxyMaxProcs(cur int, envSet bool) (n int, change bool) {
	if envSet || cur <= 1 {
		return cur, false
	}
	return (cur + 1) / 2, true
}
