package netops

import (
	"net/netip"
	"testing"
)

// The identity strings kept from one reconcile to the next are those the
// objects format, whatever changed in between (a field, a range's value
// behind its pointer, the length of the plan).
func TestIdentitiesFollowChanges(t *testing.T) {
	s := resilient
	s.Balancer = HashThreshold
	s.MarkMask = 0xff800000
	s.LANInterfaces = []string{"lan0"}
	ups := scaleUplinks(8)
	var ids identities
	check := func(what string, d Desired) {
		t.Helper()
		keys, strs := ids.routeKeysOf(d.Routes), ids.ruleStrsOf(d.Rules)
		for i, rt := range d.Routes {
			if keys[i] != rt.Key() {
				t.Errorf("%s: route %d key %q, want %q", what, i, keys[i], rt.Key())
			}
		}
		for i, ru := range d.Rules {
			if strs[i] != ru.String() {
				t.Errorf("%s: rule %d %q, want %q", what, i, strs[i], ru.String())
			}
		}
	}
	check("first", Plan(s, ups))
	check("same", Plan(s, ups))
	ups[3].Addr = netip.MustParsePrefix("198.51.100.2/30")
	ups[3].Gateway = netip.MustParseAddr("198.51.100.1")
	ups[5].Usable = false
	check("renumbered, one unusable", Plan(s, ups))
	check("fewer uplinks", Plan(s, ups[:5]))

	d := Desired{Rules: []Rule{{Priority: 10010, Dport: &Range{80, 80}, Table: 300, SuppressPrefixlen: -1}}}
	check("a port rule", d)
	d.Rules[0].Dport = &Range{443, 443}
	check("its port changed", d)
	d.Rules[0].Table = 301
	check("its table changed", d)
}
