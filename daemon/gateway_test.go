package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
)

const dynamicUplinks = `[[uplink]]
name = "dhcp"
interface = "eth1"
gateway = "auto"
gateway_hold = "2s"
table = 100
[[uplink]]
name = "ppp"
interface = "ppp0"
gateway = "none"
table = 200
`

func dhcpRoute(table, metric int, gw string) events.RouteEvent {
	r := events.DefaultRoute{Table: table, Protocol: 16, Metric: metric, Index: 3, Gateway: netip.MustParseAddr(gw)}
	return events.RouteEvent{Table: table, Protocol: 16, Default: true, Route: r}
}

func deleted(e events.RouteEvent) events.RouteEvent   { e.Deleted = true; return e }
func replacing(e events.RouteEvent) events.RouteEvent { e.Replace = true; return e }

// TestLearnedGateway drives an uplink with gateway = "auto" through the
// default routes a DHCP client installs, and a point-to-point uplink.
func TestLearnedGateway(t *testing.T) {
	cfg := parse(t, dynamicUplinks)
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	dhcp, ppp := d.uplinks[0], d.uplinks[1]
	snap := events.Snapshot{
		Links: []events.Link{{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}},
		Addrs: []events.Addr{{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")}},
	}
	d.defaults = map[int][]events.DefaultRoute{3: nil} // as readRoutes found them
	d.observe(snap, nil)
	state := func(u *uplink, want fsm.State, reason string) {
		t.Helper()
		if u.m.State() != want || !strings.Contains(u.m.Reason(), reason) {
			t.Fatalf("%s: %s %q, want %s with %q", u.cfg.Name, u.m.State(), u.m.Reason(), want, reason)
		}
	}
	state(dhcp, fsm.Down, `no gateway known: no default route through eth1 in any table (gateway = "auto")`)
	state(ppp, fsm.Down, "interface ppp0 does not exist")

	event := func(e events.RouteEvent) bool {
		t.Helper()
		changed := d.routeEvent(e)
		return d.observe(d.snap, nil) || changed
	}
	gw := func(want string) {
		t.Helper()
		if got := d.inputs()[0].Gateway.String(); got != want {
			t.Fatalf("gateway %s, want %s", got, want)
		}
	}
	if !event(dhcpRoute(254, 1002, "198.51.100.1")) {
		t.Fatal("the client's route changed nothing")
	}
	state(dhcp, fsm.Active, "gateway 198.51.100.1")
	gw("198.51.100.1")
	// A lower metric in another table wins; uplinkd's own table never.
	event(dhcpRoute(1000, 5, "198.51.100.254"))
	gw("198.51.100.254")
	event(dhcpRoute(100, 0, "198.51.100.99"))
	gw("198.51.100.254")
	event(deleted(dhcpRoute(1000, 5, "198.51.100.254")))
	gw("198.51.100.1")
	// A renewal replacing the route with a new gateway.
	event(replacing(dhcpRoute(254, 1002, "198.51.100.3")))
	gw("198.51.100.3")
	state(dhcp, fsm.Active, "gateway changed from 198.51.100.1 to 198.51.100.3")
	if n := len(d.defaults[3]); n != 2 {
		t.Fatalf("routes kept after replace: %+v", d.defaults[3])
	}

	// The client deletes its route and adds it back: held meanwhile.
	event(deleted(dhcpRoute(254, 1002, "198.51.100.3")))
	state(dhcp, fsm.Active, "")
	gw("198.51.100.3")
	if dhcp.gwHold.IsZero() {
		t.Fatal("no hold after the route went")
	}
	if left := time.Until(dhcp.gwHold); left > 2*time.Second || left <= 0 {
		t.Fatalf("hold ends in %v, want within gateway_hold (2s)", left)
	}
	event(dhcpRoute(254, 1002, "198.51.100.3"))
	if !dhcp.gwHold.IsZero() {
		t.Fatal("hold kept after the route came back")
	}
	// Gone for longer than the hold.
	event(deleted(dhcpRoute(254, 1002, "198.51.100.3")))
	dhcp.gwHold = time.Now().Add(-time.Millisecond)
	d.observe(d.snap, nil)
	state(dhcp, fsm.Down, "no gateway known")
	gw("invalid IP")

	// A new lease: new address and gateway; then a renewal moves both.
	event(dhcpRoute(254, 1002, "198.51.100.1"))
	state(dhcp, fsm.Active, "gateway 198.51.100.1")
	snap.Addrs = []events.Addr{{Index: 3, Prefix: netip.MustParsePrefix("192.0.2.20/24")}}
	d.defaults[3] = []events.DefaultRoute{dhcpRoute(254, 1002, "192.0.2.1").Route}
	d.observe(snap, nil)
	state(dhcp, fsm.Active, "address on eth1 changed from 198.51.100.2 to 192.0.2.20, gateway changed from 198.51.100.1 to 192.0.2.1")
	if !d.renum["dhcp"] {
		t.Fatal("renumbered uplink not marked for a conntrack flush")
	}
	if in := d.inputs()[0]; in.Addr.String() != "192.0.2.20/24" || in.Gateway.String() != "192.0.2.1" {
		t.Fatalf("plan input %+v", in)
	}
	// The address goes: down at once, no hold.
	snap.Addrs = nil
	d.observe(snap, nil)
	state(dhcp, fsm.Down, "eth1 has no IPv4 address")

	// The point-to-point link appears with its address.
	snap.Links = append(snap.Links, events.Link{Index: 9, Name: "ppp0", AdminUp: true, Carrier: true, PointToPoint: true})
	snap.Addrs = []events.Addr{{Index: 9, Prefix: netip.MustParsePrefix("198.18.0.2/32")}}
	d.observe(snap, nil)
	state(ppp, fsm.Active, "point-to-point")
	if in := d.inputs()[1]; in.Gateway.IsValid() || in.Index != 9 || in.Addr.String() != "198.18.0.2/32" {
		t.Fatalf("ppp plan input %+v", in)
	}
	if s := ppp.gatewayStatus(); s != "none (point-to-point)" {
		t.Fatalf("ppp gateway status %q", s)
	}
}

// TestAddressSelector picks the configured address among several.
func TestAddressSelector(t *testing.T) {
	cfg := parse(t, strings.Replace(testUplinks, `table = 100`, "table = 100\naddress = \"192.0.2.0/24\"", 1))
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	snap := events.Snapshot{
		Links: []events.Link{{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}},
		Addrs: []events.Addr{
			{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")},
			{Index: 3, Prefix: netip.MustParsePrefix("192.0.2.9/24")},
		},
	}
	d.observe(snap, nil)
	if a := d.uplinks[0].addr.String(); a != "192.0.2.9/24" {
		t.Fatalf("address %s, want 192.0.2.9/24 (selected by address)", a)
	}
	snap.Addrs = snap.Addrs[:1]
	d.observe(snap, nil)
	if u := d.uplinks[0]; u.m.State() != fsm.Down || u.m.Reason() != "eth1 has no IPv4 address in 192.0.2.0/24" {
		t.Fatalf("%s %q", u.m.State(), u.m.Reason())
	}
}

// TestPointToPointFlag: an interface the kernel flags POINTOPOINT gets dev
// routes whatever its gateway key says.
func TestPointToPointFlag(t *testing.T) {
	d := quietDaemon(t, testUplinks)
	snap := events.Snapshot{
		Links: []events.Link{{Index: 7, Name: "eth1", AdminUp: true, Carrier: true, PointToPoint: true}},
		Addrs: []events.Addr{{Index: 7, Prefix: netip.MustParsePrefix("198.18.60.2/32")}},
	}
	d.observe(snap, nil)
	u := d.uplinks[0]
	if u.m.State() != fsm.Active || !strings.Contains(u.m.Reason(), "point-to-point") {
		t.Fatalf("%s %q", u.m.State(), u.m.Reason())
	}
	if in := d.inputs()[0]; in.Gateway.IsValid() || in.Index != 7 {
		t.Fatalf("plan input %+v: want dev routes without the configured gateway", in)
	}
}

// A replace event names its route's key, and the key includes the
// family: an IPv6 route replacing one of table main at metric 1024 does
// not take the IPv4 default route of the same table and metric with it.
func TestRouteReplaceKeepsOtherFamily(t *testing.T) {
	d := quietDaemon(t, dynamicUplinks)
	v4 := events.DefaultRoute{Family: events.V4, Table: 254, Protocol: 16, Metric: 1024, Index: 3, Gateway: netip.MustParseAddr("198.51.100.1")}
	v6 := events.DefaultRoute{Family: events.V6, Table: 254, Protocol: events.ProtoRA, Metric: 1024, Index: 3, Gateway: netip.MustParseAddr("fe80::1")}
	d.defaults = map[int][]events.DefaultRoute{3: {v4}}
	d.routeEvent(events.RouteEvent{Family: events.V6, Table: 254, Protocol: events.ProtoRA, Default: true, Replace: true, Route: v6})
	if got := d.defaults[3]; len(got) != 2 || got[0] != v4 || got[1] != v6 {
		t.Fatalf("after an IPv6 replace: %+v, want the IPv4 route kept and the IPv6 one added", got)
	}
	if d.learned(3, ipv4) != v4.Gateway || d.learned(3, ipv6) != v6.Gateway {
		t.Fatalf("learned: %v %v", d.learned(3, ipv4), d.learned(3, ipv6))
	}
	// A replace within IPv6 does drop the IPv6 route it replaced.
	v6b := v6
	v6b.Gateway = netip.MustParseAddr("fe80::2")
	d.routeEvent(events.RouteEvent{Family: events.V6, Table: 254, Protocol: events.ProtoRA, Default: true, Replace: true, Route: v6b})
	if got := d.defaults[3]; len(got) != 2 || got[0] != v4 || got[1] != v6b {
		t.Fatalf("after a second IPv6 replace: %+v", got)
	}
}
