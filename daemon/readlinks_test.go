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

// Link and address events make the loop re-read only the links they name
// (hundreds of uplinks would make every carrier change read them all); a
// resync, a new subscription or a reload reads everything.
func TestEventsReadOnlyTheirLinks(t *testing.T) {
	d := testDaemon(t)
	d.rec = &netops.Reconciler{K: &fakeKernel{}, Protocol: d.cfg.Routing.RouteProtocol}
	bal := netops.Multipath
	d.balancer.Store(&bal)
	eth1 := events.Link{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}
	eth2 := events.Link{Index: 4, Name: "eth2", AdminUp: true, Carrier: true}
	addrs := []events.Addr{
		{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")},
		{Index: 4, Prefix: netip.MustParsePrefix("203.0.113.2/24")},
	}
	full := 0
	d.dump = func(context.Context) (events.Snapshot, error) {
		full++
		return events.Snapshot{Links: []events.Link{{Index: 1, Name: "lo"}, eth1, eth2}, Addrs: addrs}, nil
	}
	var read [][]int
	d.dumpLinks = func(_ context.Context, idx []int) (events.Snapshot, error) {
		read = append(read, idx)
		l := eth1
		l.Carrier = false
		return events.Snapshot{Links: []events.Link{l}, Addrs: addrs[:1]}, nil
	}
	ctx := context.Background()
	d.dumpAll()
	d.settle(ctx)
	if full != 1 || d.uplinks[0].m.State() != fsm.Active {
		t.Fatalf("start: %d full dumps, isp1 %s", full, d.uplinks[0].m.State())
	}

	d.note(events.LinkEvent{Link: events.Link{Index: 3, Name: "eth1", AdminUp: true}})
	d.note(events.AddrEvent{Addr: addrs[0]})
	d.settle(ctx)
	if full != 1 || len(read) != 1 || !slices.Equal(read[0], []int{3}) {
		t.Fatalf("after eth1's events: %d full dumps, links read %v; want 1 and [[3]]", full, read)
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
	if full != 2 || len(read) != 1 {
		t.Fatalf("after a resync: %d full dumps, links read %v; want 2 and one partial read", full, read)
	}
}
