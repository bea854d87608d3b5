package netops

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

var (
	settings = Settings{LANInterfaces: []string{"eth0"}, BalanceTable: 250, RulePriority: 10000, RouteProtocol: 201}
	gw1      = netip.MustParseAddr("198.51.100.1")
	gw2      = netip.MustParseAddr("203.0.113.1")
	addr1    = netip.MustParsePrefix("198.51.100.2/24")
	addr2    = netip.MustParsePrefix("203.0.113.2/24")
)

func isp1(in bool) Uplink {
	return Uplink{Name: "isp1", Table: 100, Weight: 1, Gateway: gw1, Index: 3, Addr: addr1, InBalance: in, Slot: 0}
}

func isp2(in bool) Uplink {
	return Uplink{Name: "isp2", Table: 200, Weight: 3, Gateway: gw2, Index: 4, Addr: addr2, InBalance: in, Slot: 1}
}

var ptpAddr = netip.MustParsePrefix("198.18.0.2/32")

// ptp is a point-to-point uplink: no gateway, a /32 local address.
func ptp(in bool) Uplink {
	return Uplink{Name: "ppp", Table: 300, Weight: 2, Index: 5, Addr: ptpAddr, InBalance: in, Slot: 2}
}

func tableRoutes(u Uplink) []Route {
	return []Route{
		{Table: u.Table, Dst: defaultDst, Gateway: u.Gateway, Index: u.Index, Src: u.Addr.Addr(), Protocol: 201},
		{Table: u.Table, Dst: u.Addr.Masked(), Index: u.Index, Src: u.Addr.Addr(), Link: true, Protocol: 201},
	}
}

func sourceRule(u Uplink) Rule {
	return Rule{Priority: 10001, Src: netip.PrefixFrom(u.Addr.Addr(), 32), Table: u.Table, SuppressPrefixlen: -1, Protocol: 201}
}

// suppressRule is the first rule: main without its default, all traffic.
var suppressRule = Rule{Priority: 10000, Table: 254, SuppressPrefixlen: 0, Protocol: 201}

// lanRules are the balance rules of iifs.
func lanRules(iifs ...string) []Rule {
	var r []Rule
	for _, iif := range iifs {
		r = append(r, Rule{Priority: 10099, IifName: iif, Table: 250, SuppressPrefixlen: -1, Protocol: 201})
	}
	return r
}

func cat[T any](parts ...[]T) []T {
	var out []T
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		s       Settings
		uplinks []Uplink
		want    Desired
	}{
		{
			name:    "both active: weighted multipath",
			s:       settings,
			uplinks: []Uplink{isp1(true), isp2(true)},
			want: Desired{
				Routes: cat(tableRoutes(isp1(true)), tableRoutes(isp2(true)), []Route{{
					Table: 250, Dst: defaultDst, Protocol: 201,
					Nexthops: []Nexthop{{Gateway: gw1, Index: 3, Weight: 1}, {Gateway: gw2, Index: 4, Weight: 3}},
				}}),
				Rules: cat([]Rule{suppressRule, sourceRule(isp1(true)), sourceRule(isp2(true))}, lanRules("eth0", "lo")),
			},
		},
		{
			name:    "one active: single path, the other keeps its table",
			s:       settings,
			uplinks: []Uplink{isp1(true), isp2(false)},
			want: Desired{
				Routes: cat(tableRoutes(isp1(true)), tableRoutes(isp2(false)), []Route{
					{Table: 250, Dst: defaultDst, Gateway: gw1, Index: 3, Protocol: 201},
				}),
				Rules: cat([]Rule{suppressRule, sourceRule(isp1(true)), sourceRule(isp2(true))}, lanRules("eth0", "lo")),
			},
		},
		{
			name:    "none usable: empty balance table, rules stay",
			s:       settings,
			uplinks: []Uplink{{Name: "isp1", Table: 100, Weight: 1, Gateway: gw1}, {Name: "isp2", Table: 200, Weight: 3, Gateway: gw2, Index: 4}},
			want:    Desired{Rules: cat([]Rule{suppressRule}, lanRules("eth0", "lo"))},
		},
		{
			name: "no lan interfaces: rules for all traffic",
			s:    Settings{BalanceTable: 250, RulePriority: 10000, RouteProtocol: 201},
			uplinks: []Uplink{isp1(false), {Name: "isp2", Table: 200, Weight: 3, Gateway: gw2, Index: 4,
				Addr: netip.MustParsePrefix("192.0.2.7/24"), InBalance: true}},
			want: Desired{
				Routes: cat(tableRoutes(isp1(false)), []Route{
					{Table: 200, Dst: defaultDst, Gateway: gw2, Index: 4, Src: netip.MustParseAddr("192.0.2.7"), OnLink: true, Protocol: 201},
					{Table: 200, Dst: netip.MustParsePrefix("192.0.2.0/24"), Index: 4, Src: netip.MustParseAddr("192.0.2.7"), Link: true, Protocol: 201},
					{Table: 250, Dst: defaultDst, Gateway: gw2, Index: 4, OnLink: true, Protocol: 201},
				}),
				Rules: cat([]Rule{
					suppressRule,
					{Priority: 10001, Src: netip.MustParsePrefix("192.0.2.7/32"), Table: 200, SuppressPrefixlen: -1, Protocol: 201},
					sourceRule(isp1(false))},
					lanRules("")),
			},
		},
		{
			name:    "point-to-point: dev routes, gateway-less multipath hop",
			s:       settings,
			uplinks: []Uplink{isp1(true), ptp(true)},
			want: Desired{
				Routes: cat(tableRoutes(isp1(true)), []Route{
					{Table: 250, Dst: defaultDst, Protocol: 201,
						Nexthops: []Nexthop{{Gateway: gw1, Index: 3, Weight: 1}, {Index: 5, Weight: 2}}},
					{Table: 300, Dst: defaultDst, Index: 5, Src: ptpAddr.Addr(), Link: true, Protocol: 201},
					{Table: 300, Dst: ptpAddr, Index: 5, Src: ptpAddr.Addr(), Link: true, Protocol: 201},
				}),
				Rules: cat([]Rule{suppressRule, sourceRule(ptp(true)), sourceRule(isp1(true))}, lanRules("eth0", "lo")),
			},
		},
		{
			name:    "point-to-point alone: balance route dev IF",
			s:       settings,
			uplinks: []Uplink{isp1(false), ptp(true)},
			want: Desired{
				Routes: cat(tableRoutes(isp1(false)), []Route{
					{Table: 250, Dst: defaultDst, Index: 5, Link: true, Protocol: 201},
					{Table: 300, Dst: defaultDst, Index: 5, Src: ptpAddr.Addr(), Link: true, Protocol: 201},
					{Table: 300, Dst: ptpAddr, Index: 5, Src: ptpAddr.Addr(), Link: true, Protocol: 201},
				}),
				Rules: cat([]Rule{suppressRule, sourceRule(ptp(true)), sourceRule(isp1(true))}, lanRules("eth0", "lo")),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan(tt.s, tt.uplinks)
			if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Fatalf("Plan (-want +got):\n%s", d)
			}
			if d := cmp.Diff(got, Plan(tt.s, tt.uplinks), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Fatalf("Plan is not deterministic:\n%s", d)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	d := Plan(settings, []Uplink{isp1(true), isp2(true)})
	var got []string
	for _, r := range d.Routes {
		got = append(got, r.String())
	}
	for _, r := range d.Rules {
		got = append(got, r.String())
	}
	want := []string{
		"default via 198.51.100.1 dev #3 src 198.51.100.2 table 100 proto 201",
		"198.51.100.0/24 dev #3 src 198.51.100.2 scope link table 100 proto 201",
		"default via 203.0.113.1 dev #4 src 203.0.113.2 table 200 proto 201",
		"203.0.113.0/24 dev #4 src 203.0.113.2 scope link table 200 proto 201",
		"default nexthop via 198.51.100.1 dev #3 weight 1 nexthop via 203.0.113.1 dev #4 weight 3 table 250 proto 201",
		"10000: from all lookup 254 suppress_prefixlength 0 proto 201",
		"10001: from 198.51.100.2/32 lookup 100 proto 201",
		"10001: from 203.0.113.2/32 lookup 200 proto 201",
		"10099: from all iif eth0 lookup 250 proto 201",
		"10099: from all iif lo lookup 250 proto 201",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestReconcileMeasuresItself(t *testing.T) {
	res, err := (&Reconciler{K: slowKernel{}, Protocol: 201}).Reconcile(Desired{})
	if err != nil || res.Took < time.Millisecond {
		t.Fatalf("Took = %v (err %v), want the time spent listing (>= 1ms)", res.Took, err)
	}
}

// slowKernel is an empty kernel whose listings take a millisecond.
type slowKernel struct{ Kernel }

func (slowKernel) RouteListFiltered(int, *netlink.Route, uint64) ([]netlink.Route, error) {
	time.Sleep(time.Millisecond)
	return nil, nil
}
func (slowKernel) RuleList(int) ([]netlink.Rule, error) { return nil, nil }

var resilient = Settings{
	LANInterfaces: []string{"eth0"}, BalanceTable: 250, RulePriority: 10000, RouteProtocol: 201,
	Balancer: Resilient, NexthopIDBase: 2010000000, IdleTimer: 120 * time.Second,
}

func withCarrier(u Uplink) Uplink {
	u.Carrier = true
	return u
}

// nhOf returns the two nexthop objects of uplink u with the given IDs.
func nhOf(u Uplink, id, twin uint32) []NexthopObject {
	return []NexthopObject{
		{ID: id, Gateway: u.Gateway, Index: u.Index, Protocol: 201},
		{ID: twin, Gateway: u.Gateway, Index: u.Index, Protocol: 201},
	}
}

// members returns both members of an uplink with the given IDs.
func members(id, twin uint32, w int) []GroupMember {
	return []GroupMember{{id, w}, {twin, w}}
}

func TestPlanResilient(t *testing.T) {
	u1, u2 := withCarrier(isp1(true)), withCarrier(isp2(true))
	group := func(members ...[]GroupMember) NexthopObject {
		return NexthopObject{ID: 2010000000, Members: cat(members...), Type: GroupResilient, Buckets: 1024,
			IdleTimer: 120 * time.Second, Protocol: 201}
	}
	nh1, nh2 := nhOf(u1, 2010000001, 2010000065), nhOf(u2, 2010000002, 2010000066)
	m1, m2 := members(2010000001, 2010000065, 1), members(2010000002, 2010000066, 3)
	balance := Route{Table: 250, Dst: defaultDst, NHID: 2010000000, Protocol: 201}
	rules := cat([]Rule{suppressRule, sourceRule(u1), sourceRule(u2)}, lanRules("eth0", "lo"))
	tests := []struct {
		name    string
		uplinks []Uplink
		want    Desired
	}{
		{
			name:    "both in the balance: a group of both behind one route",
			uplinks: []Uplink{u1, u2},
			want: Desired{
				Routes:   cat(tableRoutes(u1), tableRoutes(u2), []Route{balance}),
				Rules:    rules,
				Nexthops: cat(cat(nh1, nh2), []NexthopObject{group(m1, m2)}),
			},
		},
		{
			name:    "isp2 out: same group id and route, one member; isp2 keeps its nexthop",
			uplinks: []Uplink{u1, withCarrier(isp2(false))},
			want: Desired{
				Routes:   cat(tableRoutes(u1), tableRoutes(u2), []Route{balance}),
				Rules:    rules,
				Nexthops: cat(cat(nh1, nh2), []NexthopObject{group(m1)}),
			},
		},
		{
			name:    "isp1 without carrier: no nexthop object, the group keeps its bucket count",
			uplinks: []Uplink{isp1(false), u2},
			want: Desired{
				Routes:   cat(tableRoutes(u1), tableRoutes(u2), []Route{balance}),
				Rules:    rules,
				Nexthops: cat(nh2, []NexthopObject{group(m2)}),
			},
		},
		{
			name:    "none in the balance: no group (it cannot be empty) and no balance route",
			uplinks: []Uplink{withCarrier(isp1(false)), withCarrier(isp2(false))},
			want: Desired{
				Routes:   cat(tableRoutes(u1), tableRoutes(u2)),
				Rules:    rules,
				Nexthops: cat(nh1, nh2),
			},
		},
	}
	cmpAddr := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	cmpPrefix := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan(resilient, tt.uplinks)
			if d := cmp.Diff(tt.want, got, cmpAddr, cmpPrefix); d != "" {
				t.Fatalf("Plan (-want +got):\n%s", d)
			}
		})
	}
}
