package testhost

import (
	"net/netip"
	"testing"
)

func TestHostAddr(t *testing.T) {
	for _, c := range []struct {
		subnet string
		i      int
		want   string // empty: an error
	}{
		{"10.231.0.0/24", 2, "10.231.0.2"},
		{"10.231.0.0/24", 254, "10.231.0.254"},
		{"10.231.0.0/24", 255, ""}, // broadcast
		{"10.231.0.0/24", 1, ""},   // left to a gateway
		{"10.231.0.0/24", 0, ""},
		{"10.231.0.0/24", -1, ""},
		{"10.231.0.77/24", 2, "10.231.0.2"}, // host bits are masked
		{"10.231.0.0/16", 300, "10.231.1.44"},
		{"10.231.0.0/16", 65534, "10.231.255.254"},
		{"10.231.0.0/16", 65535, ""},
		{"10.231.0.252/30", 2, "10.231.0.254"},
		{"10.231.0.252/30", 3, ""},
		{"10.231.0.0/31", 2, ""},
		{"fd00::/64", 2, ""},
	} {
		got, err := hostAddr(netip.MustParsePrefix(c.subnet), c.i)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("hostAddr(%s, %d) = %v, want an error", c.subnet, c.i, got)
		case c.want != "" && err != nil:
			t.Errorf("hostAddr(%s, %d): %v, want %s", c.subnet, c.i, err, c.want)
		case c.want != "" && got.String() != c.want:
			t.Errorf("hostAddr(%s, %d) = %v, want %s", c.subnet, c.i, got, c.want)
		}
	}
	if _, err := hostAddr(netip.Prefix{}, 2); err == nil {
		t.Error("hostAddr of the zero prefix gave an address")
	}
}

func TestNetworkAlloc(t *testing.T) {
	n := &Network{Name: "t", Subnet: netip.MustParsePrefix("10.231.0.248/29"), next: 2}
	var got []string
	seen := map[string]bool{}
	for {
		i, a, err := n.alloc()
		if err != nil {
			break
		}
		got = append(got, a.String())
		v := vethName(i)
		if len(v) > 15 || seen[v] {
			t.Errorf("veth name %q for host %d: too long or not unique", v, i)
		}
		seen[v] = true
	}
	want := []string{"10.231.0.250", "10.231.0.251", "10.231.0.252", "10.231.0.253", "10.231.0.254"}
	if len(got) != len(want) {
		t.Fatalf("a /29 gave %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("a /29 gave %v, want %v", got, want)
		}
	}
	// Exhausted: still an error, no address given twice.
	if _, a, err := n.alloc(); err == nil {
		t.Errorf("a full /29 gave %v", a)
	}
}

func TestVethName(t *testing.T) {
	// The largest host number a /8 can have still fits the kernel's limit
	// (IFNAMSIZ 16 with the NUL).
	seen := map[string]int{}
	for _, i := range []int{2, 3, 10, 254, 1<<24 - 2} {
		v := vethName(i)
		if len(v) > 15 {
			t.Errorf("vethName(%d) = %q: %d bytes", i, v, len(v))
		}
		if j, ok := seen[v]; ok {
			t.Errorf("vethName(%d) = vethName(%d) = %q", i, j, v)
		}
		seen[v] = i
	}
}
