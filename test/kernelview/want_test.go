package kernelview

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// converged is the kernel of a lab with isp1 (eth1, table 100, weight 1)
// and isp2 (eth2, table 200, weight 3) both active, as uplinkd leaves it.
func converged() *View {
	zero := 0
	return &View{
		Rules: []Rule{
			{Priority: 0, Src: "all", Table: "local"},
			{Priority: 10000, Src: "all", Table: "main", SuppressPlen: &zero, Protocol: "201"},
			{Priority: 10001, Src: "198.51.100.2", Table: "100", Protocol: "201"},
			{Priority: 10001, Src: "203.0.113.2", Table: "200", Protocol: "201"},
			{Priority: 10002, Src: "all", Fwmark: "0xa3000000", Fwmask: "0xff000000", Table: "200", Protocol: "201"},
			{Priority: 10002, Src: "all", Fwmark: "0x39000000", Fwmask: "0xff000000", Table: "100", Protocol: "201"},
			{Priority: 10099, Src: "all", Iif: "eth0", Table: "250", Protocol: "201"},
			{Priority: 10099, Src: "all", Iif: "lo", Table: "250", Protocol: "201"},
			{Priority: 32766, Src: "all", Table: "main"},
		},
		Routes: []Route{
			{Dst: "default", Gateway: "198.51.100.1", Dev: "eth1", Table: "100", Scope: "global", PrefSrc: "198.51.100.2", Protocol: "201"},
			{Dst: "198.51.100.0/24", Dev: "eth1", Table: "100", Scope: "link", PrefSrc: "198.51.100.2", Protocol: "201"},
			{Dst: "default", Gateway: "203.0.113.1", Dev: "eth2", Table: "200", Scope: "global", PrefSrc: "203.0.113.2", Protocol: "201"},
			{Dst: "203.0.113.0/24", Dev: "eth2", Table: "200", Scope: "link", PrefSrc: "203.0.113.2", Protocol: "201"},
			{Dst: "default", NHID: 2010000000, Table: "250", Protocol: "201"},
			{Dst: "default", Gateway: "198.51.100.1", Dev: "eth1", Protocol: "boot"},
		},
		Nexthops: []Nexthop{
			{ID: 2010000000, Group: []Member{{ID: 2010000011}, {ID: 2010000056, Weight: 3}}, Protocol: "201"},
			{ID: 2010000011, Gateway: "198.51.100.1", Dev: "eth1", Protocol: "201"},
			{ID: 2010000056, Gateway: "203.0.113.1", Dev: "eth2", Protocol: "201"},
		},
		Links: map[string]Link{
			"eth0": {Name: "eth0", AdminUp: true, Carrier: true, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}},
			"eth1": {Name: "eth1", AdminUp: true, Carrier: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")}},
			"eth2": {Name: "eth2", AdminUp: true, Carrier: true, Addrs: []netip.Prefix{netip.MustParsePrefix("203.0.113.2/24")}},
		},
		NFTables: []string{"uplinkd"},
	}
}

func want(isp1, isp2 string) Want {
	return Want{
		RulePriority: 10000, Protocol: 201, BalanceTable: 250, LANInterfaces: []string{"eth0"},
		MarkMask: 0xff000000, GroupID: 2010000000, NFTable: "uplinkd",
		Uplinks: []Uplink{
			{Name: "isp1", Dev: "eth1", Gateway: netip.MustParseAddr("198.51.100.1"), Table: 100, Weight: 1, State: isp1},
			{Name: "isp2", Dev: "eth2", Gateway: netip.MustParseAddr("203.0.113.1"), Table: 200, Weight: 3, State: isp2},
		},
	}
}

func wantAlt(isp1, isp2 string) Want {
	w := want(isp1, isp2)
	w.AltGroupID = 2010000640
	return w
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		want   Want
		change func(v *View)
		diff   []string
	}{
		{"converged", want("active", "active"), func(*View) {}, nil},
		{"stale fwmark rule", want("active", "probing"), func(v *View) {
			v.Nexthops[0].Group = v.Nexthops[0].Group[:1]
		}, []string{"unexpected rule: 10002: fwmark/0xff000000 lookup 200"}},
		{"old weight", want("active", "active"), func(v *View) {
			v.Nexthops[0].Group[1].Weight = 2
		}, []string{"unexpected nexthop: group 2010000000 eth1/1 eth2/2", "missing nexthop: group 2010000000 eth1/1 eth2/3"}},
		{"duplicate rule", want("active", "active"), func(v *View) {
			v.Rules = append(v.Rules, v.Rules[2])
		}, []string{"duplicate rule (1 extra): 10001: from 198.51.100.2 lookup 100"}},
		{"same mark twice", want("active", "active"), func(v *View) {
			v.Rules[4].Fwmark = "0x39000000"
		}, []string{"mark 0x39000000 twice"}},
		{"nftables table gone", want("active", "active"), func(v *View) {
			v.NFTables = nil
		}, []string{"missing: nftables table inet uplinkd"}},
		{"interface gone", want("active", "down"), func(v *View) {
			delete(v.Links, "eth2")
			v.Nexthops[0].Group = v.Nexthops[0].Group[:1]
			v.Nexthops = v.Nexthops[:2]
			v.Rules = slices.Delete(v.Rules, 3, 5)
		}, []string{
			"unexpected route: table 200 203.0.113.0/24 dev eth2 scope link src 203.0.113.2",
			"unexpected route: table 200 default via 203.0.113.1 dev eth2 src 203.0.113.2",
		}},
		{"group at its alternate ID", wantAlt("active", "active"), func(v *View) {
			v.Nexthops[0].ID, v.Routes[4].NHID = 2010000640, 2010000640
		}, nil},
		{"group at an ID not its own", want("active", "active"), func(v *View) {
			v.Nexthops[0].ID, v.Routes[4].NHID = 2010000640, 2010000640
		}, []string{"missing route: table 250 default nhid 2010000000", "unexpected route: table 250 default nhid 2010000640", "missing nexthop: group 2010000000", "unexpected nexthop: group 2010000640"}},
		{"group at both IDs", wantAlt("active", "active"), func(v *View) {
			g := v.Nexthops[0]
			g.ID = 2010000640
			v.Nexthops = append(v.Nexthops, g)
		}, []string{"duplicate nexthop (1 extra): group 2010000000 eth1/1 eth2/3"}},
		{"foreign route in the balance table", want("active", "active"), func(v *View) {
			v.Routes = append(v.Routes, Route{Dst: "default", Gateway: "192.0.2.9", Dev: "eth0", Table: "250", Protocol: "static"})
		}, []string{"foreign route in the balance table"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := converged()
			tc.change(v)
			got := Diff(tc.want, v)
			if len(got) != len(tc.diff) {
				t.Fatalf("diff:\n%s\nwant %d lines starting with:\n%s", strings.Join(got, "\n"), len(tc.diff), strings.Join(tc.diff, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.diff[i]) {
					t.Errorf("diff line %d: %q, want it to start with %q", i, got[i], tc.diff[i])
				}
			}
		})
	}
}

func TestLeftovers(t *testing.T) {
	if got := converged().Leftovers(201, "uplinkd"); len(got) != 7+5+3+1 {
		t.Fatalf("leftovers of a running uplinkd: %d\n%s", len(got), strings.Join(got, "\n"))
	}
	v := &View{Rules: []Rule{{Priority: 32766, Src: "all", Table: "main"}}, NFTables: []string{"filter"}}
	if got := v.Leftovers(201, "uplinkd"); len(got) != 0 {
		t.Fatalf("leftovers of a clean stop: %v", got)
	}
}
