package scenario

import (
	"net/netip"
	"testing"
)

func TestForeignRoutes(t *testing.T) {
	inside := netip.MustParsePrefix("198.18.128.0/17")
	seen := make(map[string]bool)
	for k := range foreignPrefixes {
		p, metric := foreignRoute(k)
		if metric != 1 || !inside.Contains(p.Addr()) || p.Bits() < 17 || p != p.Masked() {
			t.Fatalf("route %d: %s metric %d", k, p, metric)
		}
		if seen[p.String()] {
			t.Fatalf("route %d: %s twice", k, p)
		}
		seen[p.String()] = true
	}
	if p, m := foreignRoute(foreignPrefixes); p.String() != "198.18.128.0/17" || m != 2 {
		t.Errorf("first route of the second round: %s metric %d", p, m)
	}
	if p, _ := foreignRoute(foreignPrefixes - 1); p.String() != "198.18.255.255/32" {
		t.Errorf("last prefix: %s", p)
	}
}
