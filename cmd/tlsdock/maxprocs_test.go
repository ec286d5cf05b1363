package main

import "testing"

func TestProxyMaxProcs(t *testing.T) {
	for _, tc := range []struct {
		cur    int
		envSet bool
		want   int
		change bool
	}{
		{cur: 1, want: 1},
		{cur: 2, want: 1, change: true},
		{cur: 3, want: 2, change: true},
		{cur: 4, want: 2, change: true},
		{cur: 64, want: 32, change: true},
		{cur: 2, envSet: true, want: 2},
		{cur: 64, envSet: true, want: 64},
	} {
		n, change := proxyMaxProcs(tc.cur, tc.envSet)
		if n != tc.want || change != tc.change {
			t.Errorf("proxyMaxProcs(%d, %v) = %d, %v; want %d, %v", tc.cur, tc.envSet, n, change, tc.want, tc.change)
		}
	}
}
