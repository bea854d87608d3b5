package events

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// TestDefaultRoutes follows a DHCP client's default routes through their
// events (added, replaced, deleted, in main and another table) and checks
// that DefaultRoutes lists those of one link only.
func TestDefaultRoutes(t *testing.T) {
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")
	b, _ := newNS(t, id, "b")
	ip(t, "-n", a, "link", "add", "eth1", "type", "veth", "peer", "name", "up0", "netns", b)
	ip(t, "-n", a, "link", "add", "eth2", "type", "veth", "peer", "name", "up1", "netns", b)
	ip(t, "-n", a, "addr", "add", "192.0.2.10/24", "dev", "eth1")
	ip(t, "-n", a, "addr", "add", "198.51.100.10/24", "dev", "eth2")
	ip(t, "-n", a, "link", "set", "eth1", "up")
	ip(t, "-n", a, "link", "set", "eth2", "up")
	m := subscribeIn(t, ha)
	w := watch(t, m)

	route := func(what string) DefaultRoute {
		t.Helper()
		ev := w.waitMatch(t, what, func(ev Event) bool {
			re, ok := ev.(RouteEvent)
			return ok && re.Default && re.Route.Table != 255
		}).(RouteEvent)
		return ev.Route
	}
	ip(t, "-n", a, "route", "add", "default", "via", "192.0.2.1", "dev", "eth1", "metric", "1002", "proto", "dhcp")
	r := route("dhcp default route")
	idx := r.Index
	want := DefaultRoute{Family: V4, Table: 254, Protocol: 16, Metric: 1002, Index: idx, Gateway: netip.MustParseAddr("192.0.2.1")}
	if diff := cmp.Diff(want, r, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" || idx <= 0 {
		t.Fatalf("route event (-want +got):\n%s", diff)
	}
	ip(t, "-n", a, "route", "replace", "default", "via", "192.0.2.2", "dev", "eth1", "metric", "1002", "proto", "dhcp")
	ev := w.waitMatch(t, "replaced default", func(ev Event) bool {
		re, ok := ev.(RouteEvent)
		return ok && re.Default && re.Route.Gateway == netip.MustParseAddr("192.0.2.2")
	}).(RouteEvent)
	if !ev.Replace || ev.Deleted {
		t.Errorf("replacing event %+v: want Replace", ev)
	}
	ip(t, "-n", a, "route", "add", "default", "via", "192.0.2.3", "dev", "eth1", "table", "1000")
	ip(t, "-n", a, "route", "add", "default", "via", "198.51.100.1", "dev", "eth2", "metric", "5")
	ip(t, "-n", a, "route", "add", "blackhole", "default", "table", "1001")

	var got []DefaultRoute
	if err := inNS(ha, func() (err error) {
		got, err = DefaultRoutes(context.Background(), idx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	gws := map[netip.Addr]int{}
	for _, r := range got {
		if r.Index != idx {
			t.Errorf("route %+v is not through link %d", r, idx)
		}
		gws[r.Gateway] = r.Table
	}
	if len(got) != 2 || gws[netip.MustParseAddr("192.0.2.2")] != 254 || gws[netip.MustParseAddr("192.0.2.3")] != 1000 {
		t.Errorf("DefaultRoutes = %+v, want 192.0.2.2 in main and 192.0.2.3 in table 1000", got)
	}

	ip(t, "-n", a, "route", "del", "default", "via", "192.0.2.2", "dev", "eth1", "metric", "1002")
	w.waitMatch(t, "deleted default", func(ev Event) bool {
		re, ok := ev.(RouteEvent)
		return ok && re.Deleted && re.Route.Gateway == netip.MustParseAddr("192.0.2.2") && re.Route.Metric == 1002
	})
}
