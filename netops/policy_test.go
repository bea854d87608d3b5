package netops

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func isp3(in bool) Uplink {
	return Uplink{
		Name: "lte", Table: 300, Weight: 1, Gateway: netip.MustParseAddr("192.0.2.1"), Index: 5,
		Addr: netip.MustParsePrefix("192.0.2.2/24"), InBalance: in, Slot: 2, Carrier: true,
	}
}

func withPolicies(s Settings, rules []PolicyRule, pols ...Policy) Settings {
	s.Policies, s.Rules = pols, rules
	return s
}

func degraded(u Uplink) Uplink {
	u.InBalance, u.Degraded = false, true
	return u
}

func TestChooseTiers(t *testing.T) {
	s := withPolicies(hashThreshold, nil, Policy{
		Name: "default", Tiers: [][]string{{"isp1", "isp2"}, {"lte"}}, LastResort: ResortUnreachable,
	})
	up := func(u Uplink) Uplink { u.Carrier = true; return u }
	tests := []struct {
		name    string
		uplinks []Uplink
		keep    bool
		tier    int
		members string
	}{
		{"pair balanced", []Uplink{up(isp1(true)), up(isp2(true)), isp3(true)}, false, 1, "isp1:1 isp2:3"},
		{"one of the pair", []Uplink{up(isp1(false)), up(isp2(true)), isp3(true)}, false, 1, "isp2:3"},
		{"backup", []Uplink{up(isp1(false)), up(isp2(false)), isp3(true)}, false, 2, "lte:1"},
		{"degraded primary stands by for an active backup", []Uplink{degraded(up(isp1(true))), up(isp2(false)), isp3(true)}, false, 2, "lte:1"},
		{"degraded primary kept", []Uplink{degraded(up(isp1(true))), up(isp2(false)), isp3(true)}, true, 1, "isp1:1"},
		{"only degraded ones: the best tier of them", []Uplink{degraded(up(isp1(true))), up(isp2(false)), degraded(isp3(true))}, false, 1, "isp1:1"},
		{"no carrier is not usable", []Uplink{isp1(true), isp2(true), isp3(false)}, false, 0, ""},
		{"nothing", []Uplink{up(isp1(false)), up(isp2(false)), isp3(false)}, false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s
			s.Policies[0].KeepDegraded = tt.keep
			c := Choose(s, tt.uplinks)[0]
			var got []string
			for _, m := range c.Members {
				got = append(got, m.Name+":"+itoa(m.Weight))
			}
			if c.Tier != tt.tier || strings.Join(got, " ") != tt.members {
				t.Fatalf("tier %d members %q, want tier %d members %q", c.Tier, got, tt.tier, tt.members)
			}
		})
	}
}

func itoa(n int) string { return Range{uint32(n), uint32(n)}.String() }

// TestPlanPolicies: a policy has its own table and group; its rules come
// in file order in the policies' band, with every from × to pair.
func TestPlanPolicies(t *testing.T) {
	s := withPolicies(hashThreshold, []PolicyRule{
		{To: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/32")}, IPProto: 17, Dport: &Range{5060, 5061}, Policy: "voip"},
		{From: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25"), netip.MustParsePrefix("198.18.1.0/24")}, IifName: "eth0", Policy: "guest"},
		{Mark: 0x10, Mask: 0xff, Policy: "guest"},
		{UID: &Range{1000, 1999}, IPProto: 6, Sport: &Range{22, 22}, Policy: "default"},
	},
		Policy{Name: "voip", Table: 251, Tiers: [][]string{{"isp2"}, {"isp1"}}},
		Policy{Name: "guest", Table: 252, Tiers: [][]string{{"lte"}}, LastResort: ResortUnreachable},
	)
	uplinks := []Uplink{pinned(isp1(true), 0x1000000, true), pinned(isp2(true), 0x2000000, true), isp3(false)}
	d := Plan(s, uplinks)
	var rules []string
	for _, r := range d.Rules {
		if r.Priority >= 10000+PrioPolicyFirst {
			rules = append(rules, r.String())
		}
	}
	want := []string{
		"10010: from all to 198.18.0.2/32 ipproto 17 dport 5060-5061 lookup 251 proto 201",
		"10011: from 192.0.2.128/25 iif eth0 lookup 252 proto 201",
		"10011: from 198.18.1.0/24 iif eth0 lookup 252 proto 201",
		"10012: from all fwmark 0x10/0xff lookup 252 proto 201",
		"10013: from all iif lo ipproto 6 sport 22 uidrange 1000-1999 lookup 250 proto 201",
		"10099: from all iif eth0 lookup 250 proto 201",
		"10099: from all iif lo lookup 250 proto 201",
	}
	if diff := cmp.Diff(want, rules); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	routes := make(map[string]string)
	for _, r := range d.Routes {
		if r.Dst == defaultDst {
			routes[r.Key()] = r.String()
		}
	}
	for key, want := range map[string]string{
		"table 250 0.0.0.0/0": "default nhid 2010000000 table 250 proto 201",
		"table 251 0.0.0.0/0": "default nhid 2010000129 table 251 proto 201",
		"table 252 0.0.0.0/0": "unreachable default table 252 proto 201",
	} {
		if routes[key] != want {
			t.Errorf("%s: %q, want %q", key, routes[key], want)
		}
	}
	var groups []string
	for _, n := range d.Nexthops {
		if n.IsGroup() {
			groups = append(groups, n.String())
		}
	}
	if diff := cmp.Diff([]string{
		"id 2010000000 group 2010000001/2010000002,3 proto 201",
		"id 2010000129 group 2010000002,3 proto 201",
	}, groups); diff != "" {
		t.Fatalf("groups (-want +got):\n%s", diff)
	}
}

// TestPlanLastResort: each kind of last resort, for a policy and for the
// default policy.
func TestPlanLastResort(t *testing.T) {
	rule := []PolicyRule{{IifName: "eth0", Policy: "p"}}
	down := []Uplink{pinned(isp1(false), 0x1000000, false), pinned(isp2(true), 0x2000000, true)}
	tests := []struct {
		name     string
		p, def   LastResort
		rule     string // the policy's rule
		routes   []string
		balanced bool // the default policy still has isp2
	}{
		{"main", ResortMain, ResortMain, "10010: from all iif eth0 lookup 254 proto 201", nil, true},
		{"default, default balancing", ResortDefault, ResortMain, "10010: from all iif eth0 lookup 250 proto 201", nil, true},
		{"unreachable", ResortUnreachable, ResortMain, "10010: from all iif eth0 lookup 251 proto 201", []string{"unreachable default table 251 proto 201"}, true},
		{"blackhole", ResortBlackhole, ResortMain, "10010: from all iif eth0 lookup 251 proto 201", []string{"blackhole default table 251 proto 201"}, true},
		{"default, default on main", ResortDefault, ResortMain, "10010: from all iif eth0 lookup 254 proto 201", nil, false},
		{"default, default unreachable", ResortDefault, ResortUnreachable, "10010: from all iif eth0 lookup 250 proto 201", []string{"unreachable default table 250 proto 201"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := Policy{Name: "default", Tiers: [][]string{{"isp1", "isp2"}}, LastResort: tt.def}
			if !tt.balanced {
				def.Tiers = [][]string{{"isp1"}}
			}
			s := withPolicies(hashThreshold, rule, Policy{Name: "p", Table: 251, Tiers: [][]string{{"isp1"}}, LastResort: tt.p}, def)
			d := Plan(s, down)
			var got []string
			for _, r := range d.Rules {
				if r.Priority == 10010 {
					got = append(got, r.String())
				}
			}
			if diff := cmp.Diff([]string{tt.rule}, got); diff != "" {
				t.Errorf("rule (-want +got):\n%s", diff)
			}
			var typed []string
			for _, r := range d.Routes {
				if r.Type != Unicast {
					typed = append(typed, r.String())
				}
			}
			if diff := cmp.Diff(tt.routes, typed); diff != "" {
				t.Errorf("typed routes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlanBuiltinDefaultUnchanged: without policies the plan is the one
// uplinkd always made, degraded uplinks standing by.
func TestPlanBuiltinDefaultUnchanged(t *testing.T) {
	a, b := pinned(isp1(true), 0x1000000, true), degraded(pinned(isp2(true), 0x2000000, true))
	explicit := withPolicies(hashThreshold, nil, Policy{Name: "default", Tiers: [][]string{{"isp1", "isp2"}}})
	for _, s := range []Settings{hashThreshold, explicit} {
		d := Plan(s, []Uplink{a, b})
		for _, n := range d.Nexthops {
			if n.IsGroup() && n.String() != "id 2010000000 group 2010000001 proto 201" {
				t.Fatalf("group %s: the degraded uplink should stand by", n)
			}
		}
	}
	// With nothing active the degraded one carries the traffic.
	a.InBalance = false
	for _, n := range Plan(hashThreshold, []Uplink{a, b}).Nexthops {
		if n.IsGroup() && n.String() != "id 2010000000 group 2010000002,3 proto 201" {
			t.Fatalf("group %s: the degraded uplink should carry the traffic", n)
		}
	}
}
