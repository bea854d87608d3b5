package daemon

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
)

// Link and address events update the links and addresses the loop knows
// without reading the kernel (hundreds of uplinks made every carrier
// change read them); a resync, a new subscription or a reload reads
// everything.
func TestLinkEventsReadNothing(t *testing.T) {
	eth1 := events.Link{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}
	eth2 := events.Link{Index: 4, Name: "eth2", AdminUp: true, Carrier: true}
	addrs := []events.Addr{
		{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")},
		{Index: 4, Prefix: netip.MustParsePrefix("203.0.113.2/24")},
	}
	net := newFakeNet(250)
	net.snap = events.Snapshot{Links: []events.Link{{Index: 1, Name: "lo"}, eth1, eth2}, Addrs: addrs}
	d := testDaemon(t)
	d.use(&Kernel{State: net, Events: net, Routing: net, Probers: newFakeProbers()})
	bal := netops.Multipath
	d.balancer.Store(&bal)

	ctx := context.Background()
	d.dumpAll()
	d.settle(ctx)
	if net.dumps != 1 || d.uplinks[0].m.State() != fsm.Active {
		t.Fatalf("start: %d dumps, isp1 %s", net.dumps, d.uplinks[0].m.State())
	}

	// eth1 loses carrier, then its address; the fake kernel's dump would
	// still say otherwise: what the loop knows comes from the events.
	lost := eth1
	lost.Carrier = false
	d.note(events.LinkEvent{Link: lost})
	d.settle(ctx)
	if net.dumps != 1 {
		t.Fatalf("a link event made %d dumps", net.dumps-1)
	}
	if s := d.uplinks[0].m.State(); s != fsm.Down || !slices.Contains(d.snap.Links, lost) {
		t.Errorf("isp1 is %s after losing carrier; links %+v", s, d.snap.Links)
	}
	d.note(events.LinkEvent{Link: eth1})
	d.note(events.AddrEvent{Addr: addrs[0], Deleted: true})
	d.settle(ctx)
	if u := d.uplinks[0]; net.dumps != 1 || u.m.State() != fsm.Down || u.m.Reason() != "eth1 has no IPv4 address" {
		t.Errorf("after eth1's address went: %d dumps, isp1 %s (%s)", net.dumps, u.m.State(), u.m.Reason())
	}
	if s := d.uplinks[1].m.State(); s != fsm.Active || !slices.Contains(d.snap.Links, eth2) {
		t.Errorf("isp2 is %s, links %+v: eth2 must be kept", s, d.snap.Links)
	}

	// Lost events: everything is read again, and queued events are
	// not applied on top of the dump.
	d.note(events.LinkEvent{Link: lost})
	d.note(events.ResyncEvent{Reason: "test"})
	d.note(events.LinkEvent{Link: lost})
	d.settle(ctx)
	if net.dumps != 2 || !slices.Contains(d.snap.Links, eth1) || d.uplinks[0].m.State() != fsm.Active {
		t.Fatalf("after a resync: %d dumps, links %+v, isp1 %s; want 2 dumps and the dump's eth1", net.dumps, d.snap.Links, d.uplinks[0].m.State())
	}
}

// What link and address events touch: the uplinks on their links, and
// the IPv6 sides whose source may be on any link; everything after a
// dump, with default routes to read, or when something else changed.
func TestTouchedLinks(t *testing.T) {
	d := quietDaemon(t, `
[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
table = 100
[[uplink]]
name = "isp2"
interface = "eth2"
gateway = "203.0.113.1"
gateway6 = "fe80::1"
lan_prefix6 = "2001:db8:2200::/48"
table = 200
[[uplink]]
name = "isp3"
interface = "eth3"
gateway = "192.0.2.1"
gateway6 = "fe80::1"
table = 300
`)
	index := map[string]int{"eth1": 3, "eth2": 4, "eth3": 5}
	for _, u := range d.entities() {
		u.link = &events.Link{Index: index[u.cfg.Interface], Name: u.cfg.Interface}
	}
	d.snap = events.Snapshot{Links: []events.Link{{Index: 3, Name: "eth1"}, {Index: 4, Name: "eth2"}, {Index: 5, Name: "eth3"}}}
	touchedNames := func() []string {
		only := d.touched()
		after := d.snap.Clone()
		after.Apply(d.linkEvs)
		only.resolve(d, after)
		var out []string
		for _, u := range d.entities() {
			if only.has(u) {
				out = append(out, u.label())
			}
		}
		return out
	}
	d.linkChanged(events.LinkEvent{Link: events.Link{Index: 4, Name: "eth2"}})
	if got, want := touchedNames(), []string{"isp2", "isp2/ipv6"}; !slices.Equal(got, want) {
		t.Errorf("eth2's link event touches %q, want %q", got, want)
	}
	d.linkEvs = nil
	// A new link under isp1's name (its old index is gone).
	d.linkChanged(events.LinkEvent{Link: events.Link{Index: 9, Name: "eth1"}})
	if got, want := touchedNames(), []string{"isp1"}; !slices.Equal(got, want) {
		t.Errorf("a new eth1 touches %q, want %q", got, want)
	}
	d.linkEvs = nil
	// eth3 renamed away: the uplink on its old name.
	d.linkChanged(events.LinkEvent{Link: events.Link{Index: 5, Name: "wan9"}})
	if got, want := touchedNames(), []string{"isp3", "isp3/ipv6"}; !slices.Equal(got, want) {
		t.Errorf("eth3 renamed touches %q, want %q", got, want)
	}
	d.linkEvs = nil
	// An address on a link made in the same burst, under isp1's name.
	d.linkChanged(events.LinkEvent{Link: events.Link{Index: 12, Name: "eth1"}})
	d.linkEvs = d.linkEvs[1:]
	d.linkChanged(events.AddrEvent{Addr: events.Addr{Index: 12, Prefix: netip.MustParsePrefix("198.51.100.2/24")}})
	d.snap.Apply([]events.Event{events.LinkEvent{Link: events.Link{Index: 12, Name: "eth1"}}})
	if got, want := touchedNames(), []string{"isp1", "isp2/ipv6"}; !slices.Equal(got, want) {
		t.Errorf("an address on the new eth1 touches %q, want %q", got, want)
	}
	d.linkEvs = nil
	// An address on eth3: isp3's sides, and isp2's IPv6 side, whose
	// source may be an address of its lan_prefix6 on any link.
	d.linkChanged(events.AddrEvent{Addr: events.Addr{Index: 5, Prefix: netip.MustParsePrefix("192.0.2.2/24")}})
	if got, want := touchedNames(), []string{"isp2/ipv6", "isp3", "isp3/ipv6"}; !slices.Equal(got, want) {
		t.Errorf("an address on eth3 touches %q, want %q", got, want)
	}
	d.needRoutes = true
	if d.touched() != nil {
		t.Error("with default routes to read, not every uplink is evaluated")
	}
	d.needRoutes = false
	d.dumpAll()
	if d.touched() != nil {
		t.Error("after a dump, not every uplink is evaluated")
	}
}

// linkCache is a Router with a cache that records the links it is told
// to read again.
type linkCache struct {
	*fakeNet
	noCache
	links []int
}

func (c *linkCache) InvalidateLink(ifindex int) { c.links = append(c.links, ifindex) }

// A link that comes back (up with carrier, known down or without carrier
// before) changes nothing of uplinkd's in the kernel: its event does not
// make the cache read the link's nexthop objects, groups and tables
// again. Every other link event does, a link up that was up included (a
// flap too short to be seen may have made the kernel delete them).
func TestLinkReturnKeepsCache(t *testing.T) {
	up := events.Link{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}
	noCarrier, adminDown := up, up
	noCarrier.Carrier = false
	adminDown.AdminUp, adminDown.Carrier = false, false
	for _, c := range []struct {
		name   string
		before events.Link   // in the snapshot
		queued []events.Link // events not applied yet
		ev     events.LinkEvent
		read   bool
	}{
		{"carrier back", noCarrier, nil, events.LinkEvent{Link: up}, false},
		{"admin up with carrier", adminDown, nil, events.LinkEvent{Link: up}, false},
		{"carrier back, after a loss in the same burst", up, []events.Link{noCarrier}, events.LinkEvent{Link: up}, false},
		{"carrier lost", up, nil, events.LinkEvent{Link: noCarrier}, true},
		{"up, as it was", up, nil, events.LinkEvent{Link: up}, true},
		{"up again after a return in the same burst", noCarrier, []events.Link{up}, events.LinkEvent{Link: up}, true},
		{"admin up, no carrier yet", adminDown, nil, events.LinkEvent{Link: noCarrier}, true},
		{"deleted", noCarrier, nil, events.LinkEvent{Link: up, Deleted: true}, true},
		{"a link not known", events.Link{Index: 9, Name: "eth9"}, nil, events.LinkEvent{Link: up}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := testDaemon(t)
			lc := &linkCache{fakeNet: newFakeNet(250)}
			d.rec = lc
			d.snap = events.Snapshot{Links: []events.Link{{Index: 1, Name: "lo"}, c.before}}
			for _, u := range d.uplinks {
				if u.cfg.Interface == c.before.Name {
					l := c.before
					u.link = &l // observed, so its events are watched
				}
			}
			for _, l := range c.queued {
				d.note(events.LinkEvent{Link: l})
			}
			lc.links = nil
			d.note(c.ev)
			if read := slices.Contains(lc.links, 3); read != c.read {
				t.Errorf("link read again: %v, want %v", read, c.read)
			}
		})
	}
}

// A link that takes an uplink's interface name (renamed back, or made
// anew) is read: while it was no uplink's, the event filter dropped its
// address events, and an address changed meanwhile must not be missed.
func TestLinkRenamedBackIsRead(t *testing.T) {
	eth1 := events.Link{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}
	eth2 := events.Link{Index: 4, Name: "eth2", AdminUp: true, Carrier: true}
	addrs := []events.Addr{
		{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")},
		{Index: 4, Prefix: netip.MustParsePrefix("203.0.113.2/24")},
	}
	net := newFakeNet(250)
	net.snap = events.Snapshot{Links: []events.Link{{Index: 1, Name: "lo"}, eth1, eth2}, Addrs: addrs}
	d := testDaemon(t)
	d.use(&Kernel{State: net, Events: net, Routing: net, Probers: newFakeProbers()})
	bal := netops.Multipath
	d.balancer.Store(&bal)
	ctx := context.Background()
	d.dumpAll()
	d.settle(ctx)

	// Renamed away: the uplink goes down, from the event alone.
	away := eth1
	away.Name = "wan9"
	d.note(events.LinkEvent{Link: away})
	d.settle(ctx)
	if u := d.uplinks[0]; net.dumps != 1 || u.m.State() != fsm.Down {
		t.Fatalf("renamed away: %d dumps, isp1 %s", net.dumps, u.m.State())
	}
	// Readdressed under the other name (the event is filtered out), then
	// renamed back: read, with its new address.
	net.snap.Addrs[0].Prefix = netip.MustParsePrefix("198.51.100.4/24")
	d.note(events.LinkEvent{Link: eth1})
	d.settle(ctx)
	if u := d.uplinks[0]; net.dumps != 2 || u.addr != net.snap.Addrs[0].Prefix {
		t.Errorf("renamed back: %d dumps, isp1's address %s, want 2 dumps and %s", net.dumps, u.addr, net.snap.Addrs[0].Prefix)
	}
	// The same link's next event is read from the event again.
	d.note(events.LinkEvent{Link: eth1})
	d.settle(ctx)
	if net.dumps != 2 {
		t.Errorf("a later event of the link made %d dumps", net.dumps-2)
	}
}
