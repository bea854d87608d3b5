package netops

import (
	"net/netip"
	"testing"
)

// Two routes have equal routeIDs exactly when their Keys are equal, and
// two rules equal ruleIDs exactly when their Strings are: the reconciler
// finds objects by those identities where it compared strings.
func TestIdentitiesAreTheStrings(t *testing.T) {
	s := resilient
	s.Balancer = HashThreshold
	s.MarkMask = 0xff800000
	s.LANInterfaces = []string{"lan0"}
	ups := scaleUplinks(8)
	d := Plan(s, ups)
	d6 := Plan(Settings{Family: V6, BalanceTable: 250, RulePriority: 10000, RouteProtocol: 201}, []Uplink{isp6a(true), isp6b(true)})
	routes := append(d.Routes, d6.Routes...)
	routes = append(routes, Route{Table: 7}, Route{Table: 7, Dst: netip.PrefixFrom(netip.Addr{}, 3)},
		Route{Table: 7, Dst: netip.MustParsePrefix("192.0.2.1/24")}, Route{Table: 7, Dst: netip.MustParsePrefix("192.0.2.0/24")})
	rules := append(d.Rules, d6.Rules...)
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	rules = append(rules,
		Rule{Priority: 10010, Dport: &Range{80, 80}, Table: 300, SuppressPrefixlen: -1},
		Rule{Priority: 10010, Dport: &Range{80, 80}, Table: 300, SuppressPrefixlen: -2},
		Rule{Priority: 10010, Dport: &Range{80, 81}, Table: 300, SuppressPrefixlen: -1},
		Rule{Priority: 10010, Sport: &Range{80, 80}, Table: 300, SuppressPrefixlen: -1},
		Rule{Priority: 10010, UID: &Range{80, 80}, Table: 300, SuppressPrefixlen: -1},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Mark: 5},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Mark: 5, Mask: 0xff},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Mask: 0xff},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Family: V4},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Family: V6},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Src: p("192.0.2.1/24")},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Src: p("192.0.2.0/24")},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Dst: p("192.0.2.0/24")},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, Src: netip.PrefixFrom(netip.Addr{}, 4)},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, IPProto: 6},
		Rule{Priority: 10010, Table: 300, SuppressPrefixlen: -1, IifName: "lo"},
	)
	for _, a := range routes {
		for _, b := range routes {
			if (routeIDOf(a) == routeIDOf(b)) != (a.Key() == b.Key()) {
				t.Errorf("routes %q and %q: ids equal %v", a.Key(), b.Key(), routeIDOf(a) == routeIDOf(b))
			}
		}
	}
	for _, a := range rules {
		for _, b := range rules {
			if (ruleIDOf(a) == ruleIDOf(b)) != (a.String() == b.String()) {
				t.Errorf("rules %q and %q: ids equal %v", a, b, ruleIDOf(a) == ruleIDOf(b))
			}
		}
	}
}
