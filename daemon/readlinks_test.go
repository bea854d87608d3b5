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

// linkReaderNet is fakeNet with partial reads of links (LinkReader).
type linkReaderNet struct {
	*fakeNet
	read [][]int
	// fresh is what DumpLinks returns.
	fresh events.Snapshot
}

func (k *linkReaderNet) DumpLinks(_ context.Context, indexes []int) (events.Snapshot, error) {
	k.read = append(k.read, indexes)
	return k.fresh, nil
}

// Link and address events make the loop re-read only the links they name
// (hundreds of uplinks would make every carrier change read them all); a
// resync, a new subscription or a reload reads everything.
func TestEventsReadOnlyTheirLinks(t *testing.T) {
	eth1 := events.Link{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}
	eth2 := events.Link{Index: 4, Name: "eth2", AdminUp: true, Carrier: true}
	addrs := []events.Addr{
		{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")},
		{Index: 4, Prefix: netip.MustParsePrefix("203.0.113.2/24")},
	}
	net := newFakeNet(250)
	net.snap = events.Snapshot{Links: []events.Link{{Index: 1, Name: "lo"}, eth1, eth2}, Addrs: addrs}
	lost := eth1
	lost.Carrier = false
	k := &linkReaderNet{fakeNet: net, fresh: events.Snapshot{Links: []events.Link{lost}, Addrs: addrs[:1]}}
	d := testDaemon(t)
	d.use(&Kernel{State: k, Events: net, Routing: net, Probers: newFakeProbers()})
	bal := netops.Multipath
	d.balancer.Store(&bal)

	ctx := context.Background()
	d.dumpAll()
	d.settle(ctx)
	if net.dumps != 1 || d.uplinks[0].m.State() != fsm.Active {
		t.Fatalf("start: %d full dumps, isp1 %s", net.dumps, d.uplinks[0].m.State())
	}

	d.note(events.LinkEvent{Link: lost})
	d.note(events.AddrEvent{Addr: addrs[0]})
	d.settle(ctx)
	if net.dumps != 1 || len(k.read) != 1 || !slices.Equal(k.read[0], []int{3}) {
		t.Fatalf("after eth1's events: %d full dumps, links read %v; want 1 and [[3]]", net.dumps, k.read)
	}
	if s := d.uplinks[0].m.State(); s != fsm.Down {
		t.Errorf("isp1 is %s after losing carrier", s)
	}
	if s := d.uplinks[1].m.State(); s != fsm.Active || !slices.Contains(d.snap.Links, eth2) {
		t.Errorf("isp2 is %s, links %+v: eth2 must be kept from the full dump", s, d.snap.Links)
	}

	d.note(events.ResyncEvent{Reason: "test"})
	d.note(events.LinkEvent{Link: eth1})
	d.settle(ctx)
	if net.dumps != 2 || len(k.read) != 1 {
		t.Fatalf("after a resync: %d full dumps, links read %v; want 2 and one partial read", net.dumps, k.read)
	}
}
