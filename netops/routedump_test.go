package netops

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// addForeignRoutes adds n routes to table main of namespace ns, /32s of
// 198.18.0.0/15 via 192.0.2.254 on lan0 (a link uplinkd does not use),
// repeated with increasing metrics past 131,072: as a router carrying a
// full BGP feed from elsewhere. One `ip -batch` adds them quickly.
func addForeignRoutes(t *testing.T, ns string, n int) {
	t.Helper()
	ipOut(t, ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
	ipOut(t, ns, "addr", "add", "192.0.2.1/24", "dev", "lan0")
	ipOut(t, ns, "link", "set", "lan0", "up")
	ipOut(t, ns, "link", "set", "lan0p", "up")
	batch := filepath.Join(t.TempDir(), "routes")
	f, err := os.Create(batch)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	base := netip.MustParseAddr("198.18.0.0").As4()
	for i := range n {
		host, metric := i%(1<<17), i/(1<<17)
		fmt.Fprintf(w, "route add %d.%d.%d.%d/32 via 192.0.2.254 dev lan0 metric %d\n",
			base[0], base[1]+byte(host>>16), byte(host>>8), byte(host), metric)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("ip", "-n", ns, "-batch", batch).CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
}

// With 100,000 foreign routes in main, a reconcile reads only uplinkd's
// own routes: the kernel filters the listing by table and protocol, so
// the messages it sends are those of uplinkd's routes, not main's. The
// first listing (every table, filtered by protocol) adopts routes an
// earlier run left in a table no longer configured; later ones list only
// the known tables.
func TestReconcileReadsOnlyOwnRoutes(t *testing.T) {
	ns, h := nsHandle(t)
	addForeignRoutes(t, ns, 100_000)
	if out := ipOut(t, ns, "route", "show", "198.18.255.255/32"); !strings.Contains(out, "lan0") {
		t.Fatalf("foreign routes missing:\n%s", out)
	}
	// Left by an earlier run configured with table 300.
	ipOut(t, ns, "route", "add", "default", "via", "198.51.100.1", "dev", "eth1", "table", "300", "proto", "201")

	kh := handleIn(t, ns, h)
	r := &Reconciler{K: kh, Protocol: 201}
	u1, u2 := inNS(t, h, isp1(true), isp2(true))
	both := Plan(settings, []Uplink{u1, u2})

	read := func(what string, max int) {
		t.Helper()
		before := kh.RouteMessages()
		if _, err := r.Reconcile(both); err != nil {
			t.Fatalf("%s: reconcile: %v", what, err)
		}
		if n := int(kh.RouteMessages() - before); n > max {
			t.Fatalf("%s: the kernel sent %d route messages, want at most %d (uplinkd's own)", what, n, max)
		}
	}
	read("first reconcile", 1) // only the orphan exists yet
	if out := ipOut(t, ns, "route", "show", "table", "300"); out != "" {
		t.Fatalf("the orphan in table 300 was not removed:\n%s", out)
	}
	read("second reconcile", len(both.Routes))
	r.Rescan()
	read("after a rescan", len(both.Routes))

	// The listing returns what the vishvananda handle returns.
	for _, table := range []int{100, 200, 250} {
		filter := &netlink.Route{Table: table, Protocol: 201}
		mask := netlink.RT_FILTER_TABLE | netlink.RT_FILTER_PROTOCOL
		got, err := kh.RouteListFiltered(netlink.FAMILY_V4, filter, mask)
		if err != nil {
			t.Fatal(err)
		}
		want, err := h.RouteListFiltered(netlink.FAMILY_V4, filter, mask)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("table %d: %d routes, vishvananda/netlink lists %d", table, len(got), len(want))
		}
		for i := range got {
			g, _ := fromKernelRoute(got[i])
			w, _ := fromKernelRoute(want[i])
			if g.String() != w.String() || got[i].Type != want[i].Type || got[i].Scope != want[i].Scope {
				t.Fatalf("table %d: route %d decoded as %s (type %d scope %d), vishvananda/netlink: %s (type %d scope %d)",
					table, i, g, got[i].Type, got[i].Scope, w, want[i].Type, want[i].Scope)
			}
		}
	}
	// A table that does not exist is empty, not an error.
	if got, err := kh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 4000, Protocol: 201},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL); err != nil || len(got) != 0 {
		t.Fatalf("missing table: %v, %v", got, err)
	}
}

func TestParseKernelRoute(t *testing.T) {
	for _, tt := range []struct{ name, hex, want string }{
		{"single", "02000000" + "64c90001" + "00000000" + "08000f0064000000" + "08000500c6336401" + "0800040002000000",
			"default via 198.51.100.1 dev #2 table 100 proto 201"},
		{"multipath", "02000000" + "fac90001" + "00000000" + "08000f00fa000000" +
			"24000900" + "1000000002000000" + "08000500c6336401" + "1000020303000000" + "08000500cb007101",
			"default nexthop via 198.51.100.1 dev #2 weight 1 nexthop via 203.0.113.1 dev #3 weight 4 table 250 proto 201"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			kr, ok, err := parseKernelRoute(b)
			if err != nil || !ok {
				t.Fatalf("ok %v err %v", ok, err)
			}
			rt, _ := fromKernelRoute(kr)
			if rt.String() != tt.want {
				t.Fatalf("got  %s\nwant %s", rt, tt.want)
			}
		})
	}
	for _, bad := range []string{"0200", "02000000" + "64c90001" + "00000000" + "0600050001020000", "02000000fac9000100000000" + "0c000900" + "0c00000002000000"} {
		b, _ := hex.DecodeString(bad)
		if _, _, err := parseKernelRoute(b); err == nil {
			t.Errorf("%s: decoded", bad)
		}
	}
}

// With 10,000 foreign nexthop objects (a routing daemon's), a reconcile
// after the first fetches only uplinkd's own objects, by ID; a foreign
// deletion of one of them is still repaired.
func TestReconcileReadsOnlyOwnNexthops(t *testing.T) {
	ns, h, nh := carrierNS(t)
	var b strings.Builder
	for i := range 10_000 {
		fmt.Fprintf(&b, "nexthop add id %d blackhole\n", 1_000_000+i)
	}
	batch := filepath.Join(t.TempDir(), "nexthops")
	if err := os.WriteFile(batch, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", ns, "-batch", batch).CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	u1, u2 := inNS(t, h, withCarrier(isp1(true)), withCarrier(isp2(true)))
	r := &Reconciler{K: h, NH: nh, Protocol: 201}
	plan := Plan(resilient, []Uplink{u1, u2})
	if _, err := r.Reconcile(plan); err != nil {
		t.Fatal(err)
	}
	before := nh.NexthopMessages()
	if res, err := r.Reconcile(plan); err != nil || res.Changes() != 0 {
		t.Fatalf("second reconcile: %v, err %v", res, err)
	}
	if n := nh.NexthopMessages() - before; n > uint64(len(plan.Nexthops)) {
		t.Fatalf("the second reconcile read %d nexthop objects, want at most uplinkd's %d", n, len(plan.Nexthops))
	}
	ipOut(t, ns, "nexthop", "del", "id", "2010000066")
	if res, err := r.Reconcile(plan); err != nil || res.Changes() == 0 {
		t.Fatalf("a deleted member was not restored: %v, err %v", res, err)
	}
	if out := ipOut(t, ns, "nexthop", "show", "id", "2010000066"); !strings.Contains(out, "proto 201") {
		t.Fatalf("nexthop 2010000066: %s", out)
	}
}

// A route through a group of 256 next hops, as the balance route of 256
// uplinks is, is bigger than a page with nexthop_compat_mode's per-hop
// gateways. The kernel silently leaves such a route out of a dump whose
// datagrams are a page long; both listings must still see it, from the
// first dump of a fresh socket on.
func TestListRouteThroughBigGroup(t *testing.T) {
	ns, h := nsHandle(t)
	ipOut(t, ns+"-p", "link", "set", "up1", "up")
	const n, proto, table = 256, 201, 250
	var batch strings.Builder
	g := NexthopObject{ID: 999, Protocol: proto}
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&batch, "nexthop add id %d via 198.51.100.%d dev eth1 proto %d\n", 1000+i, i%250+3, proto)
		g.Members = append(g.Members, GroupMember{ID: uint32(1000 + i), Weight: 1})
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	setup := nexthopConn(t, ns)
	if err := setup.NexthopAdd(g, false); err != nil {
		t.Fatal(err)
	}
	want := Route{Table: table, Dst: defaultDst, NHID: g.ID, Protocol: proto}
	if err := setup.NHIDRouteReplace(want); err != nil {
		t.Fatal(err)
	}

	kh := handleIn(t, ns, h)
	routes, err := kh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table, Protocol: proto},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || len(routes[0].MultiPath) != n {
		t.Errorf("fresh Handle listed %d routes (want 1 with %d next hops): %v", len(routes), n, routes)
	}
	nhRoutes, err := nexthopConn(t, ns).NHIDRouteList(proto, table)
	if err != nil {
		t.Fatal(err)
	}
	if len(nhRoutes) != 1 || nhRoutes[0].String() != want.String() {
		t.Errorf("fresh NexthopConn listed %v, want [%s]", nhRoutes, want)
	}
}
