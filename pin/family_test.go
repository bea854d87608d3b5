package pin

import (
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TestRulesetFamilyNeutral: the table is inet, so every expression must
// work for IPv4 and IPv6 alike: marks, interface names, conntrack
// direction and verdict maps; nothing that reads a network header
// (payload, addresses, nfproto) or a family-typed set key.
func TestRulesetFamilyNeutral(t *testing.T) {
	rs := build(DefaultMask, []Uplink{{Name: "isp1", Ifname: "eth1", Mark: m1}, {Name: "isp2", Ifname: "eth2", Mark: m2}})
	var rules int
	for _, ch := range append(rs.chains, rs.base...) {
		for _, r := range ch.rules {
			for _, e := range r.exprs {
				rules++
				ok := false
				switch e := e.(type) {
				case *expr.Meta:
					ok = e.Key == expr.MetaKeyMARK || e.Key == expr.MetaKeyIIFNAME || e.Key == expr.MetaKeyOIFNAME
				case *expr.Ct:
					ok = e.Key == expr.CtKeyMARK || e.Key == expr.CtKeyDIRECTION
				case *expr.Cmp, *expr.Bitwise, *expr.Lookup:
					ok = true
				}
				if !ok {
					t.Errorf("chain %s, rule %q: expression %T %+v may be family-specific", ch.name, r.comment, e, e)
				}
			}
		}
	}
	for _, m := range rs.maps {
		if m.key != nftables.TypeIFName && m.key != nftables.TypeMark {
			t.Errorf("map %s keyed by %s", m.name, m.key.Name)
		}
	}
	if rules == 0 {
		t.Fatal("no expressions: the test proves nothing")
	}
}

// TestFlusherFamily: an IPv4 and an IPv6 entry with the same mark; a flush
// of IPv6 deletes the IPv6 one only (one family of an uplink failed).
func TestFlusherFamily(t *testing.T) {
	ns := newNS(t, "pin-flushf")
	c := ns.conntrack(t)
	v4a, v4b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.7")
	v6a, v6b := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8:1::7")
	ctEntries(t, c, v4a, v4b, 1000, 3, m1)
	ctEntries(t, c, v6a, v6b, 1000, 4, m1)
	ctEntries(t, c, v6a, v6b, 2000, 2, m2)
	f, err := NewFlusher(ns.fd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if r := flushWait(t, f, unix.AF_INET6, m1, DefaultMask); r.err != nil || r.deleted != 4 {
		t.Fatalf("flush isp1 ipv6 = %+v, want 4 deleted", r)
	}
	want := map[uint32]int{m1 | 4: 3, m2 | 6: 2}
	if got := ctCount(t, c); !equalCounts(got, want) {
		t.Fatalf("entries left %v, want %v", got, want)
	}
}
