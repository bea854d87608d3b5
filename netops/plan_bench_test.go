package netops

import (
	"fmt"
	"net/netip"
	"testing"
)

// scaleUplinks returns n uplinks as the scale lab has them: a /30 each,
// carrier, in the balance, pinned.
func scaleUplinks(n int) []Uplink {
	var ups []Uplink
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 19, byte(i * 4 / 256), byte(i*4%256 + 2)})
		gw := netip.AddrFrom4([4]byte{198, 19, byte(i * 4 / 256), byte(i*4%256 + 1)})
		ups = append(ups, Uplink{Name: fmt.Sprintf("w%d", i), Table: 1000 + i, Weight: 1, Gateway: gw, Index: 3 + i,
			Addr: netip.PrefixFrom(a, 30), Carrier: true, InBalance: true, Usable: true, Mark: uint32(i+1) << 23, Slot: i})
	}
	return ups
}

// Plan runs at every reconcile; with 256 uplinks its cost is part of every
// event's way to the routes (make bench-scale).
func BenchmarkPlan256(b *testing.B) {
	s := resilient
	s.Balancer = HashThreshold
	s.MarkMask = 0xff800000
	s.LANInterfaces = []string{"lan0"}
	ups := scaleUplinks(256)
	for b.Loop() {
		Plan(s, ups)
	}
}

// The identity strings of one plan of 256 uplinks, which the reconciler
// compares.
func BenchmarkStrings256(b *testing.B) {
	s := resilient
	s.Balancer = HashThreshold
	s.MarkMask = 0xff800000
	ups := scaleUplinks(256)
	d := Plan(s, ups)
	for b.Loop() {
		for _, r := range d.Routes {
			_ = r.String()
			_ = r.Key()
		}
		for _, r := range d.Rules {
			_ = r.String()
		}
		for _, n := range d.Nexthops {
			_ = n.String()
		}
	}
}

// The implementation Plan replaced (plan_oracle_test.go), for comparison
// on the same machine in the same run: go test -bench 'Plan256' ./netops/
func BenchmarkPlan256Old(b *testing.B) {
	s := resilient
	s.Balancer = HashThreshold
	s.MarkMask = 0xff800000
	s.LANInterfaces = []string{"lan0"}
	ups := scaleUplinks(256)
	for b.Loop() {
		oldPlan(s, ups)
	}
}
