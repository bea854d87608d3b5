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
