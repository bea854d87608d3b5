package netops

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var hashThreshold = Settings{
	LANInterfaces: []string{"eth0"}, BalanceTable: 250, RulePriority: 10000, RouteProtocol: 201,
	Balancer: HashThreshold, NexthopIDBase: 2010000000, MarkMask: 0xff000000,
}

func pinned(u Uplink, mark uint32, usable bool) Uplink {
	u.Carrier, u.Mark, u.Usable = true, mark, usable
	return u
}

func TestPlanRuleOrder(t *testing.T) {
	d := Plan(hashThreshold, []Uplink{pinned(isp1(true), 0x1000000, true), pinned(isp2(false), 0x2000000, true)})
	var got []string
	for _, r := range d.Rules {
		got = append(got, r.String())
	}
	want := []string{
		// main's specific routes first, for all traffic (no iif): the
		// router's replies from its WAN addresses to the LAN included.
		"10000: from all lookup 254 suppress_prefixlength 0 proto 201",
		"10001: from 198.51.100.2/32 lookup 100 proto 201",
		"10001: from 203.0.113.2/32 lookup 200 proto 201",
		// Pinned connections of every usable uplink, in the balance or not.
		"10002: from all fwmark 0x1000000/0xff000000 lookup 100 proto 201",
		"10002: from all fwmark 0x2000000/0xff000000 lookup 200 proto 201",
		"10099: from all iif eth0 lookup 250 proto 201",
		"10099: from all iif lo lookup 250 proto 201",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	for _, r := range d.Rules {
		if r.Priority < 10000 || r.Priority >= 10000+PriorityRange ||
			(r.Priority >= 10000+PrioPolicyFirst && r.Priority <= 10000+PrioPolicyLast) {
			t.Errorf("rule %s outside uplinkd's range or inside the policies' range", r)
		}
	}
}

func TestPlanFwmarkRules(t *testing.T) {
	fwmarks := func(d Desired) []string {
		var out []string
		for _, r := range d.Rules {
			if r.Mask != 0 {
				out = append(out, r.String())
			}
		}
		return out
	}
	tests := []struct {
		name    string
		s       Settings
		uplinks []Uplink
		want    []string
	}{
		{
			name:    "usable out of the balance (standby, degraded) keeps its rule",
			s:       hashThreshold,
			uplinks: []Uplink{pinned(isp1(false), 0x1000000, true), pinned(isp2(true), 0x2000000, true)},
			want: []string{
				"10002: from all fwmark 0x1000000/0xff000000 lookup 100 proto 201",
				"10002: from all fwmark 0x2000000/0xff000000 lookup 200 proto 201",
			},
		},
		{
			name:    "down or probing: no rule",
			s:       hashThreshold,
			uplinks: []Uplink{pinned(isp1(false), 0x1000000, false), pinned(isp2(true), 0x2000000, true)},
			want:    []string{"10002: from all fwmark 0x2000000/0xff000000 lookup 200 proto 201"},
		},
		{
			name: "no interface: no table, no rule",
			s:    hashThreshold,
			uplinks: []Uplink{func() Uplink {
				u := pinned(isp1(false), 0x1000000, true)
				u.Index = 0
				return u
			}()},
		},
		{
			name: "pinning off: no fwmark rules",
			s: func() Settings {
				s := hashThreshold
				s.MarkMask = 0
				return s
			}(),
			uplinks: []Uplink{pinned(isp1(true), 0x1000000, true)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, fwmarks(Plan(tt.s, tt.uplinks))); diff != "" {
				t.Fatalf("fwmark rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanHashThreshold(t *testing.T) {
	u1, u2 := pinned(isp1(true), 0x1000000, true), pinned(isp2(true), 0x2000000, true)
	d := Plan(hashThreshold, []Uplink{u1, u2})
	want := []NexthopObject{
		{ID: 2010000001, Gateway: gw1, Index: 3, Protocol: 201},
		{ID: 2010000002, Gateway: gw2, Index: 4, Protocol: 201},
		{ID: 2010000000, Members: []GroupMember{{2010000001, 1}, {2010000002, 3}}, Type: GroupMultipath, Protocol: 201, Alt: 2010000640},
	}
	cmpAddr := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	if diff := cmp.Diff(want, d.Nexthops, cmpAddr); diff != "" {
		t.Fatalf("nexthops (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(d.Routes, func(r Route) bool { return r.Table == 250 && r.NHID == 2010000000 }) {
		t.Fatalf("no balance route through the group: %v", d.Routes)
	}
	// A weight change replaces the group in place: same ID, same type.
	u2.Weight = 1
	d2 := Plan(hashThreshold, []Uplink{u1, u2})
	g := d2.Nexthops[len(d2.Nexthops)-1]
	if g.ID != 2010000000 || g.Type != GroupMultipath || !replaceable(want[2], g) {
		t.Fatalf("group after a weight change: %s", g)
	}
}

func TestSlotsStableByName(t *testing.T) {
	first, err := Slots([]string{"isp1", "isp2", "isp3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Reordered: the same slots, whatever the order of the file.
	again, _ := Slots([]string{"isp3", "isp1", "isp2"}, nil)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Fatalf("reordered (-first +again):\n%s", diff)
	}
	// isp1 removed, a new uplink added: the others keep theirs.
	later, _ := Slots([]string{"isp3", "isp2", "lte"}, first)
	for _, n := range []string{"isp2", "isp3"} {
		if later[n] != first[n] {
			t.Fatalf("%s moved from slot %d to %d", n, first[n], later[n])
		}
	}
	seen := map[int]string{}
	for n, s := range later {
		if o, dup := seen[s]; dup || s < 0 || s >= MaxUplinks {
			t.Fatalf("slot %d of %s (also %q)", s, n, o)
		}
		seen[s] = n
	}
	// An adopted slot is kept even where the hash would point elsewhere.
	kept, _ := Slots([]string{"isp1"}, map[string]int{"isp1": 42})
	if kept["isp1"] != 42 {
		t.Fatalf("adopted slot not kept: %v", kept)
	}
	// Collisions probe to the next free slot.
	many := make([]string, MaxUplinks)
	for i := range many {
		many[i] = string(rune('A'+i%26)) + string(rune('a'+i/26))
	}
	all, err := Slots(many, nil)
	if err != nil || len(all) != MaxUplinks {
		t.Fatalf("%d uplinks: %v, %d slots", MaxUplinks, err, len(all))
	}
	if _, err := Slots(append(many, "one too many"), nil); err == nil {
		t.Fatalf("%d uplinks: no error", MaxUplinks+1)
	}
}

func TestPlanIDsStableUnderReorder(t *testing.T) {
	ups := []Uplink{pinned(isp1(true), 0x1000000, true), pinned(isp2(true), 0x2000000, true)}
	slots, _ := Slots([]string{"isp1", "isp2"}, nil)
	for i := range ups {
		ups[i].Slot = slots[ups[i].Name]
	}
	for _, s := range []Settings{hashThreshold, resilient} {
		a := Plan(s, ups)
		b := Plan(s, []Uplink{ups[1], ups[0]})
		if diff := cmp.Diff(a.Nexthops, b.Nexthops, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("%v: reordering the uplinks changed the nexthops (-a +b):\n%s", s.Balancer, diff)
		}
		// Removing isp1 leaves isp2's objects as they were.
		c := Plan(s, ups[1:])
		for _, n := range c.Nexthops {
			if !n.IsGroup() && !slices.ContainsFunc(a.Nexthops, func(m NexthopObject) bool { return m.String() == n.String() }) {
				t.Fatalf("%v: after removing isp1, %s is new", s.Balancer, n)
			}
		}
	}
}

func TestAdoptSlots(t *testing.T) {
	ids := NexthopIDs(2010000000)
	objs := []NexthopObject{
		{ID: ids.Uplink(7), Gateway: gw1, Index: 3, Protocol: 201},
		{ID: ids.Twin(7), Gateway: gw1, Index: 3, Protocol: 201},
		{ID: ids.Uplink(9), Gateway: gw2, Index: 4, Protocol: 99}, // not ours
		{ID: ids.Group, Members: []GroupMember{{ids.Uplink(7), 1}}, Protocol: 201},
	}
	got := AdoptSlots(objs, ids, 201, []Uplink{isp1(true), isp2(true)})
	if diff := cmp.Diff(map[string]int{"isp1": 7}, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}
