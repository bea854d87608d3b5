package netops

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/test/testutil"
	"golang.org/x/sys/unix"
)

// dualNS is carrierNS with IPv6 too: eth1 has 2001:db8:1::2/64, eth2 only
// its link-local address (isp2 routes from 2001:db8:100::1, an address of
// its delegated prefix on lo), and both peers are fe80::1.
func dualNS(t *testing.T) (string, *Reconciler, [2]Uplink, [2]Uplink) {
	t.Helper()
	ns, h, nh := carrierNS(t)
	ipOut(t, ns, "addr", "add", "2001:db8:1::2/64", "dev", "eth1", "nodad")
	ipOut(t, ns, "addr", "add", "2001:db8:100::1/128", "dev", "lo")
	for _, l := range []string{"up1", "up2"} {
		ipOut(t, ns+"-p", "addr", "add", "fe80::1/64", "dev", l, "nodad")
	}
	kh := handleIn(t, ns, h)
	r := &Reconciler{K: kh, NH: nh, Protocol: 201}
	a, b := inNS(t, h, pinned(isp1(true), 0x1000000, true), pinned(isp2(true), 0x2000000, true))
	a6, b6 := isp6a(true), isp6b(true)
	a6.Index, b6.Index = a.Index, b.Index
	a6.Mark, b6.Mark = a.Mark, b.Mark
	return ns, r, [2]Uplink{a, b}, [2]Uplink{a6, b6}
}

func ip6Out(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return ipOut(t, ns, append([]string{"-6"}, args...)...)
}

func wantLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// TestReconcile6Kernel: both families planned, reconciled, read back,
// adopted per family and cleaned up, with every balancer; both ISPs'
// gateway is fe80::1, on two interfaces, and never mixed up.
func TestReconcile6Kernel(t *testing.T) {
	for _, tc := range []struct {
		bal    Balancer
		cached bool
	}{{Multipath, false}, {HashThreshold, false}, {Resilient, false}, {HashThreshold, true}} {
		bal := tc.bal
		name := bal.String()
		if tc.cached {
			name += " cached"
		}
		t.Run(name, func(t *testing.T) {
			ns, r, v4, v6 := dualNS(t)
			if tc.cached {
				r.EnableCache()
			}
			s := hashThreshold
			s.Balancer = bal
			ids6 := NexthopIDsFor(s.NexthopIDBase, V6)
			// What is not uplinkd's survives.
			ip6Out(t, ns, "route", "add", "2001:db8:9::/48", "via", "fe80::9", "dev", "eth1", "table", "100")
			ip6Out(t, ns, "rule", "add", "from", "2001:db8:9::/48", "lookup", "100", "pref", "10001")

			plan := func(v6 [2]Uplink) Desired { return PlanAll(s, v4[:], v6[:]) }
			d := plan(v6)
			res, err := r.Reconcile(d)
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if want := len(d.Routes) + len(d.Rules) + len(d.Nexthops); res.Changes() != want {
				t.Fatalf("first reconcile made %d changes, want %d: %v", res.Changes(), want, res)
			}
			wantLines(t, "table 100", ip6Out(t, ns, "route", "show", "table", "100"),
				"default via fe80::1 dev eth1 proto 201 src 2001:db8:1::2",
				"2001:db8:1::/64 dev eth1 proto 201 src 2001:db8:1::2",
				"2001:db8:9::/48 via fe80::9 dev eth1")
			t200 := ip6Out(t, ns, "route", "show", "table", "200")
			wantLines(t, "table 200", t200, "default via fe80::1 dev eth2 proto 201 src 2001:db8:100::1")
			if strings.Count(t200, "\n") != 1 {
				t.Fatalf("table 200: want the default route only (no connected route for a /128):\n%s", t200)
			}
			bal6 := ip6Out(t, ns, "route", "show", "table", "250")
			switch bal {
			case Multipath:
				wantLines(t, "IPv6 balance", bal6, "nexthop via fe80::1 dev eth1 weight 1", "nexthop via fe80::1 dev eth2 weight 3")
			default:
				wantLines(t, "IPv6 balance", bal6, fmt.Sprintf("default nhid %d proto 201", ids6.Group))
				wantLines(t, "IPv6 nexthops", ipOut(t, ns, "nexthop", "show"),
					fmt.Sprintf("id %d via fe80::1 dev eth1 scope link proto 201", ids6.Uplink(0)),
					fmt.Sprintf("id %d via fe80::1 dev eth2 scope link proto 201", ids6.Uplink(1)),
					fmt.Sprintf("id %d via 198.51.100.1 dev eth1 scope link proto 201", NexthopIDs(s.NexthopIDBase).Uplink(0)))
			}
			wantLines(t, "IPv4 balance", ipOut(t, ns, "route", "show", "table", "250"), "198.51.100.1", "203.0.113.1")
			wantLines(t, "IPv6 rules", ip6Out(t, ns, "rule"),
				"10000:\tfrom all lookup main suppress_prefixlength 0 proto 201",
				"10001:\tfrom 2001:db8:1::2 lookup 100 proto 201",
				"10001:\tfrom 2001:db8:100::1 lookup 200 proto 201",
				"10001:\tfrom 2001:db8:100::/64 lookup 200 proto 201",
				"10002:\tfrom all fwmark 0x1000000/0xff000000 lookup 100 proto 201",
				"10099:\tfrom all iif lo lookup 250 proto 201")
			wantLines(t, "IPv4 rules", ipOut(t, ns, "rule"), "10001:\tfrom 198.51.100.2 lookup 100 proto 201")
			// The kernel routes each source by its uplink.
			routeOf(t, ns, "2001:db8:1::2", "table 100 via fe80::1 oif 2")
			routeOf(t, ns, "2001:db8:100::77", "table 200 via fe80::1 oif 3")

			// Idempotent: the kernel's IPv6 listings read back as planned.
			r.Invalidate()
			if res, err := r.Reconcile(d); err != nil || res.Changes() != 0 {
				t.Fatalf("second reconcile: %v, err %v", res, err)
			}
			// A full listing too (every table, both families).
			r.Rescan()
			if res, err := r.Reconcile(d); err != nil || res.Changes() != 0 {
				t.Fatalf("reconcile after Rescan: %v, err %v", res, err)
			}

			// Adoption, per family: the same gateway on two links is two
			// next hops.
			h6, err := r.HoldsFor(V6, 250, 10000)
			if err != nil {
				t.Fatal(err)
			}
			hop := func(u Uplink) Nexthop { return Nexthop{Gateway: u.Gateway, Index: u.Index} }
			for _, u := range v6 {
				if !slices.ContainsFunc(h6.Balance, func(n Nexthop) bool { return n.Gateway == u.Gateway && n.Index == u.Index }) {
					t.Errorf("IPv6 held balance %v lacks %v", h6.Balance, hop(u))
				}
			}
			// Two next hops, or four in a resilient group (twins).
			wantHops := 2
			if bal == Resilient {
				wantHops = 4
			}
			if len(h6.Balance) != wantHops || !slices.Equal(h6.Pinned, []int{100, 200}) {
				t.Errorf("IPv6 held: %+v", h6)
			}
			h4, err := r.Holds(250, 10000)
			if err != nil {
				t.Fatal(err)
			}
			if len(h4.Balance) != wantHops || slices.ContainsFunc(h4.Balance, func(n Nexthop) bool { return n.Gateway.Is6() }) {
				t.Errorf("IPv4 held balance: %v", h4.Balance)
			}
			for _, n := range h4.Nexthops {
				if n.Family == V6 {
					t.Errorf("IPv4 held nexthop %s", n)
				}
			}
			if bal != Multipath {
				slots := AdoptSlots(h6.Nexthops, ids6, 201, v6[:])
				if slots["isp1"] != 0 || slots["isp2"] != 1 || len(slots) != 2 {
					t.Errorf("IPv6 slots adopted: %v", slots)
				}
			}

			// isp2 loses carrier in IPv6's view: its table answers its
			// prefix unreachable, and it leaves the balance.
			down := v6
			down[1].Carrier, down[1].InBalance, down[1].Usable = false, false, false
			if _, err := r.Reconcile(plan(down)); err != nil {
				t.Fatalf("isp2 down: %v", err)
			}
			wantLines(t, "table 200", ip6Out(t, ns, "route", "show", "table", "200"), "unreachable default dev lo proto 201")
			// Its prefix never leaks through isp1.
			routeOf(t, ns, "2001:db8:100::77", "unreachable route")
			if b := ip6Out(t, ns, "route", "show", "table", "250"); strings.Contains(b, "eth2") {
				t.Fatalf("isp2 still in the IPv6 balance:\n%s", b)
			}
			r.Invalidate()
			if res, err := r.Reconcile(plan(down)); err != nil || res.Changes() != 0 {
				t.Fatalf("second reconcile with isp2 down: %v, err %v", res, err)
			}
			// Back.
			if _, err := r.Reconcile(d); err != nil {
				t.Fatalf("isp2 back: %v", err)
			}
			wantLines(t, "table 200", ip6Out(t, ns, "route", "show", "table", "200"), "default via fe80::1 dev eth2")
			r.Invalidate()
			if res, err := r.Reconcile(d); err != nil || res.Changes() != 0 {
				t.Fatalf("reconcile after isp2 came back: %v, err %v", res, err)
			}

			// Cleanup leaves nothing in either family, and everything else.
			if _, err := r.Cleanup(); err != nil {
				t.Fatalf("cleanup: %v", err)
			}
			for _, fam := range []string{"-4", "-6"} {
				if all := ipOut(t, ns, fam, "route", "show", "table", "all", "proto", "201"); all != "" {
					t.Fatalf("%s routes left behind:\n%s", fam, all)
				}
				if rules := ipOut(t, ns, fam, "rule"); strings.Contains(rules, "proto 201") {
					t.Fatalf("%s rules left behind:\n%s", fam, rules)
				}
			}
			if got := ipOut(t, ns, "nexthop", "show"); strings.TrimSpace(got) != "" {
				t.Fatalf("nexthops left behind: %s", got)
			}
			wantLines(t, "foreign IPv6 route", ip6Out(t, ns, "route", "show", "table", "100"), "2001:db8:9::/48 via fe80::9 dev eth1")
			wantLines(t, "foreign IPv6 rule", ip6Out(t, ns, "rule"), "from 2001:db8:9::/48 lookup 100")
		})
	}
}

// routeOf asks the kernel of ns for the route of a packet from src to an
// IPv6 Internet address and compares its table, gateway and interface (or
// an unreachable route) with want.
func routeOf(t *testing.T, ns, src, want string) {
	t.Helper()
	var a Answer
	var err error
	if ierr := testutil.InNS(ns, func() {
		a, err = RouteQuery(Query{Dst: netip.MustParseAddr("2001:db8:ffff::1"), Src: netip.MustParseAddr(src)})
	}); ierr != nil {
		t.Fatal(ierr)
	}
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("table %d via %s oif %d", a.Table, a.Gateway, a.Oif)
	if errors.Is(a.Err, unix.EHOSTUNREACH) {
		got = "unreachable route" // no route at all would be ENETUNREACH
	} else if a.Err != nil {
		got = a.Err.Error()
	}
	if got != want {
		t.Fatalf("route from %s: %s (%+v), want %s", src, got, a, want)
	}
}

// An IPv6 uplink whose prefix-only source is a /128 and whose gateway is
// global but off-link gets an onlink route; a link-local one never does.
func TestPlan6OnLink(t *testing.T) {
	u := isp6b(true)
	if onLink(u) {
		t.Error("link-local gateway planned onlink")
	}
	u.Gateway = netip.MustParseAddr("2001:db8:ffff::1")
	if !onLink(u) {
		t.Error("off-link global gateway not planned onlink")
	}
}
