package netops

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	llgw      = netip.MustParseAddr("fe80::1") // both ISPs' gateway, on different links
	addr6a    = netip.MustParsePrefix("2001:db8:1::2/64")
	lan6b     = netip.MustParsePrefix("2001:db8:100::/64")
	addr6b    = netip.MustParsePrefix("2001:db8:100::1/128") // from lan_prefix6, on the LAN
	settings6 = func() Settings { s := settings; s.Family = V6; return s }()
)

// isp6a has a global address on its WAN link; isp6b only a link-local one,
// and routes from an address of its delegated prefix.
func isp6a(in bool) Uplink {
	return Uplink{Name: "isp1", Table: 100, Weight: 1, Gateway: llgw, Index: 3, Addr: addr6a, Carrier: true,
		InBalance: in, Usable: in, Slot: 0}
}

func isp6b(in bool) Uplink {
	return Uplink{Name: "isp2", Table: 200, Weight: 3, Gateway: llgw, Index: 4, Addr: addr6b, LANPrefix: lan6b,
		Carrier: true, InBalance: in, Usable: in, Slot: 1}
}

func v6(rs []Route) []Route {
	for i := range rs {
		rs[i].Family = V6
	}
	return rs
}

func v6rules(rs []Rule) []Rule {
	for i := range rs {
		rs[i].Family = V6
	}
	return rs
}

var dflt6 = netip.MustParsePrefix("::/0")

func TestPlan6(t *testing.T) {
	a, b := addr6a.Addr(), addr6b.Addr()
	tableA := []Route{
		{Table: 100, Dst: dflt6, Gateway: llgw, Index: 3, Src: a, Protocol: 201},
		{Table: 100, Dst: addr6a.Masked(), Index: 3, Src: a, Protocol: 201},
	}
	// No connected route for a /128 of the LAN prefix.
	tableB := []Route{{Table: 200, Dst: dflt6, Gateway: llgw, Index: 4, Src: b, Protocol: 201}}
	unreachB := []Route{{Table: 200, Dst: dflt6, Type: Unreachable, Protocol: 201}}
	srcRules := []Rule{
		{Priority: 10001, Src: netip.MustParsePrefix("2001:db8:1::2/128"), Table: 100, SuppressPrefixlen: -1, Protocol: 201},
		{Priority: 10001, Src: netip.MustParsePrefix("2001:db8:100::1/128"), Table: 200, SuppressPrefixlen: -1, Protocol: 201},
	}
	lanRule := Rule{Priority: 10001, Src: lan6b, Table: 200, SuppressPrefixlen: -1, Protocol: 201}
	tests := []struct {
		name    string
		s       Settings
		uplinks []Uplink
		want    Desired
	}{
		{
			name:    "both active: weighted multipath through two fe80::1 on two links",
			s:       settings6,
			uplinks: []Uplink{isp6a(true), isp6b(true)},
			want: Desired{
				Routes: v6(cat(tableA, tableB, []Route{{
					Table: 250, Dst: dflt6, Protocol: 201,
					Nexthops: []Nexthop{{Gateway: llgw, Index: 3, Weight: 1}, {Gateway: llgw, Index: 4, Weight: 3}},
				}})),
				Rules: v6rules(cat([]Rule{suppressRule}, srcRules, []Rule{lanRule}, lanRules("eth0", "lo"))),
			},
		},
		{
			name: "the prefix uplink without carrier: unreachable, its sources stay on it",
			s:    settings6,
			uplinks: []Uplink{isp6a(true), func() Uplink {
				u := isp6b(false)
				u.Carrier = false
				return u
			}()},
			want: Desired{
				Routes: v6(cat(tableA, unreachB, []Route{{Table: 250, Dst: dflt6, Gateway: llgw, Index: 3, Protocol: 201}})),
				Rules:  v6rules(cat([]Rule{suppressRule}, srcRules, []Rule{lanRule}, lanRules("eth0", "lo"))),
			},
		},
		{
			name: "the prefix uplink's link is gone: only the unreachable route and its prefix rule",
			s:    settings6,
			uplinks: []Uplink{isp6a(true), func() Uplink {
				u := isp6b(false)
				u.Index, u.Carrier = 0, false
				return u
			}()},
			want: Desired{
				Routes: v6(cat(tableA, unreachB, []Route{{Table: 250, Dst: dflt6, Gateway: llgw, Index: 3, Protocol: 201}})),
				Rules:  v6rules(cat([]Rule{suppressRule}, srcRules[:1], []Rule{lanRule}, lanRules("eth0", "lo"))),
			},
		},
		{
			name: "the prefix uplink has no address yet: unreachable too",
			s:    settings6,
			uplinks: []Uplink{func() Uplink {
				u := isp6b(false)
				u.Addr = netip.Prefix{}
				return u
			}()},
			want: Desired{
				Routes: v6(unreachB),
				Rules:  v6rules(cat([]Rule{suppressRule}, []Rule{lanRule}, lanRules("eth0", "lo"))),
			},
		},
		{
			// Probes of a probing uplink leave from its address through
			// its table: the route stays while the link can carry them.
			name:    "the prefix uplink probing: its own route, out of the balance",
			s:       settings6,
			uplinks: []Uplink{isp6a(true), isp6b(false)},
			want: Desired{
				Routes: v6(cat(tableA, tableB, []Route{{Table: 250, Dst: dflt6, Gateway: llgw, Index: 3, Protocol: 201}})),
				Rules:  v6rules(cat([]Rule{suppressRule}, srcRules, []Rule{lanRule}, lanRules("eth0", "lo"))),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan(tt.s, tt.uplinks)
			want := tt.want
			sortKeyed(want.Routes, func(Route) int { return 0 }, Route.appendKey)
			sortKeyed(want.Rules, func(r Rule) int { return r.Priority }, Rule.appendTo)
			if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		})
	}
}

// With a nexthop group balancer, IPv6's objects take IPv6's IDs, carry
// the family, and the route goes through the group.
func TestPlan6Group(t *testing.T) {
	for _, bal := range []Balancer{HashThreshold, Resilient} {
		s := settings6
		s.Balancer, s.NexthopIDBase = bal, 2010000000
		d := Plan(s, []Uplink{isp6a(true), isp6b(true)})
		ids4, ids6 := NexthopIDs(s.NexthopIDBase), NexthopIDsFor(s.NexthopIDBase, V6)
		var group *NexthopObject
		for i, n := range d.Nexthops {
			if n.Family != V6 || !ids6.Contains(n.ID) || n.ID < ids6.Base {
				t.Errorf("%s: nexthop %s: want an IPv6 object with an IPv6 ID", bal, n)
			}
			if n.ID == ids4.Group || n.ID == ids4.Uplink(0) || n.ID == ids4.Uplink(1) {
				t.Errorf("%s: nexthop %s has an IPv4 ID", bal, n)
			}
			if n.IsGroup() {
				group = &d.Nexthops[i]
			} else if n.Gateway != llgw || n.OnLink {
				t.Errorf("%s: nexthop %s: want via fe80::1, not onlink", bal, n)
			}
		}
		if group == nil || group.ID != ids6.Group {
			t.Fatalf("%s: no group %d in %v", bal, ids6.Group, d.Nexthops)
		}
		wantMembers := 2
		if bal == Resilient {
			wantMembers = 4
		}
		if len(group.Members) != wantMembers {
			t.Errorf("%s: group %s, want %d members", bal, group, wantMembers)
		}
		var bal6 []Route
		for _, rt := range d.Routes {
			if rt.Table == 250 {
				bal6 = append(bal6, rt)
			}
		}
		if len(bal6) != 1 || bal6[0].NHID != ids6.Group || bal6[0].Dst != dflt6 || bal6[0].Family != V6 {
			t.Errorf("%s: balance routes %v, want ::/0 through nhid %d", bal, bal6, ids6.Group)
		}
		if !strings.HasPrefix(bal6[0].String(), "-6 default nhid") {
			t.Errorf("%s: route renders as %q", bal, bal6[0])
		}
	}
}

// A policy rule with selectors of one family has kernel rules only in that
// family; one without address selectors is in both.
func TestPlanPolicyFamilies(t *testing.T) {
	s := settings
	s.Policies = []Policy{{Name: "video", Table: 300, Tiers: [][]string{{"isp1"}}}}
	s.Rules = []PolicyRule{
		{From: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:5::/48")}, Policy: "video"},
		{To: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Policy: "video"},
		{Dport: &Range{443, 443}, IPProto: 6, Policy: "video"},
	}
	rulesAt := func(d Desired, prio int) []string {
		var out []string
		for _, r := range d.Rules {
			if r.Priority == prio {
				out = append(out, r.String())
			}
		}
		return out
	}
	d := PlanAll(s, []Uplink{isp1(true)}, []Uplink{isp6a(true)})
	want := map[int][]string{
		10010: {"10010: from 192.0.2.0/24 lookup 300 proto 201", "-6 10010: from 2001:db8:5::/48 lookup 300 proto 201"},
		10011: {"10011: from all to 198.51.100.0/24 lookup 300 proto 201"},
		10012: {"10012: from all ipproto 6 dport 443 lookup 300 proto 201", "-6 10012: from all ipproto 6 dport 443 lookup 300 proto 201"},
	}
	for prio, w := range want {
		if d := cmp.Diff(w, rulesAt(d, prio)); d != "" {
			t.Errorf("rules at %d (-want +got):\n%s", prio, d)
		}
	}
	// The policy's IPv6 table routes through the IPv6 uplink.
	var found bool
	for _, rt := range d.Routes {
		if rt.Table == 300 && rt.Family == V6 {
			found = rt.Gateway == llgw && rt.Index == 3
		}
	}
	if !found {
		t.Errorf("no IPv6 route in the policy's table: %v", d.Routes)
	}
}

// PlanAll is Plan of IPv4 alone without IPv6 uplinks (IPv6 routing is
// left alone), else both, with no object of one family equal to one of
// the other.
func TestPlanAll(t *testing.T) {
	s := settings
	s.Family = V6 // ignored
	v4 := []Uplink{isp1(true), isp2(true)}
	s4 := settings
	if d := cmp.Diff(Plan(s4, v4), PlanAll(s, v4, nil), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Fatalf("without IPv6 uplinks (-Plan +PlanAll):\n%s", d)
	}
	d := PlanAll(s, v4, []Uplink{isp6a(true), isp6b(true)})
	seen := map[string]bool{}
	var n4, n6 int
	for _, r := range d.Rules {
		if seen[r.String()] {
			t.Errorf("rule %q twice", r)
		}
		seen[r.String()] = true
		if r.Family == V6 {
			n6++
		} else {
			n4++
		}
	}
	for _, r := range d.Routes {
		if seen[r.Key()] {
			t.Errorf("route key %q twice", r.Key())
		}
		seen[r.Key()] = true
	}
	if n4 == 0 || n6 == 0 {
		t.Errorf("%d IPv4 and %d IPv6 rules, want both", n4, n6)
	}
}
