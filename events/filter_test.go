package events

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/test/testutil"
)

// With a filter, 50,000 foreign IPv4 route changes in main, and 20,000
// IPv6 ones, are dropped by the kernel before they are queued: a socket with the smallest receive
// buffer, not read meanwhile, does not overrun, and Run reads only what
// matters. Link, address and neighbour events of links uplinkd does not
// use are dropped by Run; those of its links (learnt from their names)
// and default routes of any table and either family pass.
func TestFilterDropsForeignEvents(t *testing.T) {
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")
	ip(t, "-n", a, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
	ip(t, "-n", a, "addr", "add", "192.0.2.1/24", "dev", "lan0")
	ip(t, "-n", a, "addr", "add", "2001:db8:9::1/64", "dev", "lan0", "nodad")
	ip(t, "-n", a, "link", "set", "lan0", "up")

	// Far too small for 50,000 routes (each takes ~1 KiB of buffer), ample
	// for what passes.
	m, err := subscribe(int(ha), 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetFilter(Filter{Protocol: 201, Tables: []int{100, 200, 1000}, Interfaces: []string{"eth1"}}); err != nil {
		t.Fatal(err)
	}

	var batch strings.Builder
	for i := range 50_000 {
		fmt.Fprintf(&batch, "route add 198.18.%d.%d/32 via 192.0.2.254 dev lan0\n", i/256, i%256)
	}
	for i := range 20_000 {
		fmt.Fprintf(&batch, "route add 2001:db8:8:%x::/64 via 2001:db8:9::fe dev lan0\n", i)
	}
	// Changes on lan0 and its address: not ours either.
	batch.WriteString("addr add 192.0.2.2/24 dev lan0\nlink set lan0p up\nlink set lan0 down\n")
	cmd := exec.Command("ip", "-n", a, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	// What passes: our link (created, then its address), a route in one
	// of our tables (above 255: only in RTA_TABLE), one of our protocol,
	// and a foreign default route, of each family.
	ip(t, "-n", a, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
	ip(t, "-n", a, "addr", "add", "198.51.100.2/24", "dev", "eth1")
	ip(t, "-n", a, "link", "set", "eth1", "up")
	ip(t, "-n", a, "route", "add", "203.0.113.0/24", "dev", "eth1", "table", "1000")
	ip(t, "-n", a, "route", "add", "198.18.250.0/24", "dev", "eth1", "proto", "201")
	ip(t, "-n", a, "route", "add", "default", "dev", "eth1", "table", "77")
	ip(t, "-n", a, "-6", "route", "add", "2001:db8:7::/48", "dev", "eth1", "table", "1000")
	ip(t, "-n", a, "-6", "route", "add", "2001:db8:6::/48", "dev", "eth1", "proto", "201")
	ip(t, "-n", a, "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth1", "table", "77")

	w := watch(t, m)
	var got []Event
	got = append(got, w.waitFor(t, RouteEvent{Family: V4, Table: 1000, Protocol: 3})...)
	got = append(got, w.waitFor(t, RouteEvent{Family: V4, Table: 254, Protocol: 201})...)
	// (Decoded: a DHCP client's gateway is learned from such a route.)
	got = append(got, w.waitMatch(t, "the foreign default route", func(ev Event) bool {
		e, ok := ev.(RouteEvent)
		return ok && e.Family == V4 && e.Table == 77 && e.Protocol == 3 && e.Default && e.Route.Table == 77 && e.Route.Index > 0
	}))
	got = append(got, w.waitFor(t, RouteEvent{Family: V6, Table: 1000, Protocol: 3})...)
	got = append(got, w.waitFor(t, RouteEvent{Family: V6, Table: 254, Protocol: 201})...)
	w.waitMatch(t, "the foreign IPv6 default route", func(ev Event) bool {
		e, ok := ev.(RouteEvent)
		return ok && e.Family == V6 && e.Table == 77 && e.Default && e.Route.Gateway == netip.MustParseAddr("fe80::1") && e.Route.Index > 0
	})
	var eth1 int
	sawEth1 := false
	for _, ev := range got {
		switch e := ev.(type) {
		case ResyncEvent:
			t.Fatalf("the socket overran: foreign routes were queued (%v)", e)
		case LinkEvent:
			if e.Link.Name != "eth1" {
				t.Fatalf("a foreign link's event passed: %+v", e)
			}
			sawEth1, eth1 = true, e.Link.Index
		case AddrEvent:
			// 198.51.100.2 and the link-local address of eth1.
			if e.Addr.Index != eth1 {
				t.Fatalf("a foreign address event passed: %+v", e)
			}
		case RouteEvent:
			// Not even eth1's local and prefix routes (tables local and
			// main, protocol kernel), of either family.
			if !e.Default || e.Table != 77 {
				t.Fatalf("a foreign route event passed: %+v", e)
			}
		case NeighEvent:
			if e.Index != eth1 {
				t.Fatalf("a foreign neighbour event passed: %+v", e)
			}
		}
	}
	if !sawEth1 {
		t.Fatalf("eth1's link events did not pass:\n%s", describe(got))
	}
	read, delivered := m.Counts()
	if read > 1000 {
		t.Fatalf("Run read %d messages: the kernel did not drop the foreign routes", read)
	}
	t.Logf("70,000 foreign route changes: Run read %d messages and delivered %d events", read, delivered)
}
