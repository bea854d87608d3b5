package events

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/uplinkd/uplinkd/test/testutil"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestMonitorIPv6 follows what the daemon learns of an IPv6 uplink: its
// link-local address (scope link), its addresses with their flags as DAD
// runs, succeeds or fails, a default route as a router advertisement
// installs it (proto ra, main, link-local gateway, an expiry), a rule, and
// the gateway's neighbour entry failing (NDP). Dump and DefaultRoutes see
// the same.
func TestMonitorIPv6(t *testing.T) {
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")
	b, _ := newNS(t, id, "b")
	ip(t, "-n", a, "link", "add", "eth2", "type", "veth", "peer", "name", "up0", "netns", b)
	// DAD at once and in 100ms; one neighbour solicitation 100ms apart.
	ip(t, "netns", "exec", a, "sysctl", "-qw", "net.ipv6.conf.eth2.router_solicitation_delay=0",
		"net.ipv6.neigh.eth2.retrans_time_ms=100", "net.ipv6.neigh.eth2.mcast_solicit=1")
	// The far side holds 2001:db8:1::5, so that DAD fails for it here. It
	// has no fe80::1: the gateway never answers.
	ip(t, "-n", b, "addr", "add", "2001:db8:1::5/64", "dev", "up0", "nodad")
	ip(t, "-n", b, "link", "set", "up0", "up")
	m := subscribeIn(t, ha)
	w := watch(t, m)

	ip(t, "-n", a, "link", "set", "eth2", "up")
	ev := w.waitMatch(t, "eth2's link-local address", func(ev Event) bool {
		e, ok := ev.(AddrEvent)
		return ok && e.Addr.Prefix.Addr().IsLinkLocalUnicast()
	}).(AddrEvent)
	idx := ev.Addr.Index
	if ev.Addr.Scope != ScopeLink || ev.Addr.Prefix.Bits() != 64 || ev.Addr.Prefix.Addr().Zone() != "" || idx <= 0 || ev.Addr.Stable() {
		t.Errorf("link-local address %+v: want scope link, /64, no zone, a link, not stable", ev.Addr)
	}

	addrEvent := func(what, prefix string, match func(Addr) bool) Addr {
		t.Helper()
		p := netip.MustParsePrefix(prefix)
		return w.waitMatch(t, what, func(ev Event) bool {
			e, ok := ev.(AddrEvent)
			return ok && !e.Deleted && e.Addr.Prefix == p && e.Addr.Index == idx && match(e.Addr)
		}).(AddrEvent).Addr
	}
	has := func(f uint32) func(Addr) bool { return func(a Addr) bool { return a.Flags&f == f } }
	ip(t, "-n", a, "addr", "add", "2001:db8:1::2/64", "dev", "eth2", "nodad")
	if got := addrEvent("nodad address", "2001:db8:1::2/64", has(0)); got.Flags != AddrNoDAD|AddrPermanent || got.Scope != ScopeUniverse || !got.Stable() {
		t.Errorf("nodad address %+v (%s): want nodad permanent, global, stable", got, FlagNames(got.Flags, V6))
	}
	ip(t, "-n", a, "addr", "add", "2001:db8:1::6/64", "dev", "eth2")
	addrEvent("tentative address", "2001:db8:1::6/64", has(AddrTentative))
	addrEvent("address after DAD", "2001:db8:1::6/64", func(a Addr) bool { return a.Stable() && a.Flags == AddrPermanent })
	ip(t, "-n", a, "addr", "add", "2001:db8:1::5/64", "dev", "eth2")
	addrEvent("address that failed DAD", "2001:db8:1::5/64", has(AddrDADFailed|AddrTentative))
	ip(t, "-n", a, "addr", "add", "2001:db8:1::3/64", "dev", "eth2", "nodad", "preferred_lft", "0", "valid_lft", "600")
	if got := addrEvent("deprecated address", "2001:db8:1::3/64", has(AddrDeprecated)); got.Stable() {
		t.Errorf("deprecated address %+v is stable", got)
	}

	// A default route as the kernel installs it from a router
	// advertisement, written here over netlink.
	gw := netip.MustParseAddr("fe80::1")
	addRARoute(t, ha, idx, gw)
	want := DefaultRoute{Family: V6, Table: 254, Protocol: ProtoRA, Metric: 1024, Index: idx, Gateway: gw}
	w.waitFor(t, RouteEvent{Family: V6, Table: 254, Protocol: ProtoRA, Default: true, Route: want})
	var routes []DefaultRoute
	if err := inNS(ha, func() (err error) {
		routes, err = DefaultRoutes(context.Background(), idx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(routes, want) || len(routes) != 1 {
		t.Errorf("DefaultRoutes = %+v, want only %+v", routes, want)
	}

	ip(t, "-n", a, "-6", "rule", "add", "priority", "10002", "from", "2001:db8:1::2", "lookup", "1000", "proto", "201")
	w.waitFor(t, RuleEvent{Family: V6, Priority: 10002, Table: 1000, Protocol: 201})

	// Traffic through the gateway: neighbour discovery fails.
	sendUDP(t, ha, netip.MustParseAddrPort("[2001:db8:ff::9]:9"))
	w.waitFor(t, NeighEvent{Index: idx, Addr: gw, State: NeighFailed})

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	snap, err := DumpAt(ctx, ha)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]uint32{}
	for _, a := range snap.Addrs {
		if a.Index == idx {
			flags[a.Prefix.String()] = a.Flags
		}
	}
	for p, f := range map[string]uint32{
		"2001:db8:1::2/64": AddrNoDAD | AddrPermanent,
		"2001:db8:1::6/64": AddrPermanent,
		"2001:db8:1::5/64": AddrDADFailed | AddrTentative | AddrPermanent,
		"2001:db8:1::3/64": AddrNoDAD | AddrDeprecated,
	} {
		if got, ok := flags[p]; !ok || got != f {
			t.Errorf("Dump: %s has flags %q (listed: %v), want %q", p, FlagNames(got, V6), ok, FlagNames(f, V6))
		}
	}
	if !slices.ContainsFunc(snap.Addrs, func(a Addr) bool { return a.Index == idx && a.Scope == ScopeLink }) {
		t.Errorf("Dump: no link-local address on eth2 in %+v", snap.Addrs)
	}
}

// addRARoute adds, in namespace ns, `default via gw dev <index> proto ra
// metric 1024 expires 1800` to main, as the kernel does on a router
// advertisement.
func addRARoute(t *testing.T, ns netns.NsHandle, index int, gw netip.Addr) {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(ns)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.RTA_GATEWAY, gw.AsSlice())
	ae.Uint32(unix.RTA_OIF, uint32(index))
	ae.Uint32(unix.RTA_PRIORITY, 1024)
	ae.Uint32(unix.RTA_EXPIRES, 1800)
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
	hdr := []byte{unix.AF_INET6, 0, 0, 0, unix.RT_TABLE_MAIN, ProtoRA, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	if _, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWROUTE, Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
		Data:   append(hdr, attrs...),
	}); err != nil {
		t.Fatalf("add RA default route: %v", err)
	}
}
