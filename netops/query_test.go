package netops

import (
	"net/netip"
	"testing"

	"github.com/uplinkd/uplinkd/test/testutil"
)

// RouteQuery answers for IPv6 as for IPv4: the table that answered, the
// next hop and device, or the kernel's refusal; addresses of two families
// are not asked about.
func TestRouteQuery6(t *testing.T) {
	ns, _ := nsHandle(t)
	ipOut(t, ns, "-6", "addr", "add", "2001:db8:1::2/64", "dev", "eth1", "nodad")
	ipOut(t, ns, "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth1", "table", "100")
	ipOut(t, ns, "-6", "route", "add", "unreachable", "default", "table", "200")
	ipOut(t, ns, "-6", "rule", "add", "from", "2001:db8:2::/64", "lookup", "200", "pref", "100")
	ipOut(t, ns, "-6", "rule", "add", "to", "2001:db8:ffff::/48", "lookup", "100", "pref", "101")
	ipOut(t, ns, "rule", "add", "to", "198.18.0.0/15", "lookup", "100", "pref", "101")
	ipOut(t, ns, "route", "add", "default", "via", "198.51.100.1", "dev", "eth1", "table", "100")

	type answer struct {
		Table, Oif int
		Type       RouteType
		Gateway    string
		Refused    bool // an error answer the kernel gives for no route
	}
	var got []answer
	err := testutil.InNS(ns, func() {
		for _, q := range []Query{
			{Dst: netip.MustParseAddr("2001:db8:ffff::1")},
			{Dst: netip.MustParseAddr("2001:db8:ffff::1"), Src: netip.MustParseAddr("2001:db8:2::5")},
			{Dst: netip.MustParseAddr("198.18.0.1")},
		} {
			a, err := RouteQuery(q)
			if err != nil {
				t.Errorf("%+v: %v", q, err)
				continue
			}
			got = append(got, answer{a.Table, a.Oif, a.Type, a.Gateway.String(), a.Unreachable()})
		}
		if _, err := RouteQuery(Query{Dst: netip.MustParseAddr("2001:db8:ffff::1"), Src: netip.MustParseAddr("192.0.2.1")}); err == nil {
			t.Error("a query with an IPv4 source and an IPv6 destination was made")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("answers: %+v", got)
	if len(got) != 3 {
		t.Fatalf("answers: %+v", got)
	}
	if a := got[0]; a.Table != 100 || a.Gateway != "fe80::1" || a.Oif == 0 || a.Refused {
		t.Errorf("IPv6 through table 100: %+v", a)
	}
	// The kernel refuses an IPv6 lookup through an unreachable route
	// with ENETUNREACH, as IPv4's: no table is named.
	if a := got[1]; !a.Refused {
		t.Errorf("IPv6 from a source sent to an unreachable default: %+v", a)
	}
	if a := got[2]; a.Table != 100 || a.Gateway != "198.51.100.1" {
		t.Errorf("IPv4 through table 100: %+v", a)
	}
}
