package events

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Any rtnetlink message decodes to at most one event or fails cleanly,
// what decodes goes through the filter, and every address in an event is
// of the message's family: IPv4 from AF_INET, IPv6 from AF_INET6, never an
// IPv4-mapped one or with a zone. Seeds: the captured messages of the unit
// tests, IPv4 and IPv6.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []struct {
		typ uint16
		hex string
	}{
		{unix.RTM_NEWLINK, hexLinkUp}, {unix.RTM_NEWLINK, hexLinkRenamed}, {unix.RTM_DELLINK, hexLinkBridgePortDel},
		{unix.RTM_DELLINK, hexLinkDeleted}, {unix.RTM_NEWADDR, hexAddrNew}, {unix.RTM_NEWADDR, hexAddrPeer},
		{unix.RTM_NEWROUTE, hexRouteNew}, {unix.RTM_DELROUTE, hexRouteTable1000}, {unix.RTM_NEWRULE, hexRuleNew},
		{unix.RTM_NEWRULE, hexRuleTable1000}, {unix.RTM_NEWNEXTHOP, hexNexthopNew}, {unix.RTM_DELNEXTHOP, hexNexthopDel},
		{unix.RTM_NEWNEIGH, "02000000020000000200000008000100cb007101"},
		{unix.RTM_NEWADDR, hexAddr6LinkLocal}, {unix.RTM_NEWADDR, hexAddr6DADFailed}, {unix.RTM_NEWROUTE, hexRoute6RA},
		{unix.RTM_DELROUTE, hexRoute6RADel}, {unix.RTM_NEWROUTE, hexRoute6Table1000}, {unix.RTM_NEWRULE, hexRule6New},
		{unix.RTM_NEWNEXTHOP, hexNexthop6New}, {unix.RTM_NEWNEIGH, hexNeigh6Failed},
	} {
		b, err := hex.DecodeString(s.hex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.typ, b)
	}
	var fs filterState
	fs.set(Filter{Protocol: 201, Tables: []int{100, 1000}, Interfaces: []string{"eth2"}, Indexes: []int{3}})
	f.Fuzz(func(t *testing.T, typ uint16, b []byte) {
		ev, err := parseMessage(netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ)}, Data: b})
		if err != nil {
			if ev != nil {
				t.Fatalf("an event (%#v) and an error (%v)", ev, err)
			}
			return
		}
		if ev == nil {
			return
		}
		fs.pass(ev)
		want := map[byte]Family{unix.AF_INET: V4, unix.AF_INET6: V6}[b[0]]
		check := func(what string, a netip.Addr) {
			if a.IsValid() && (familyOf(a) != want || a.Is4In6() || a.Zone() != "") {
				t.Fatalf("%s %v in a message of family %d", what, a, b[0])
			}
		}
		switch e := ev.(type) {
		case AddrEvent:
			check("address", e.Addr.Prefix.Addr())
			if e.Addr.Prefix.Bits() < 0 || e.Addr.Family() != want {
				t.Fatalf("address %+v in a message of family %d", e.Addr, b[0])
			}
		case RouteEvent:
			check("gateway", e.Route.Gateway)
			if e.Family != want || (e.Route.Family != 0 && e.Route.Family != want) {
				t.Fatalf("route %+v in a message of family %d", e, b[0])
			}
		case RuleEvent:
			if e.Family != want {
				t.Fatalf("rule %+v in a message of family %d", e, b[0])
			}
		case NeighEvent:
			check("neighbour", e.Addr)
		}
	})
}
