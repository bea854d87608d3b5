package netops

import (
	"fmt"
	"net/netip"
	"testing"
)

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
