package events

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var cmpOpts = cmp.Options{cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})}

func msg(t *testing.T, typ netlink.HeaderType, h string) netlink.Message {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatalf("bad fixture: %v", err)
	}
	return netlink.Message{Header: netlink.Header{Type: typ}, Data: b}
}

// withByte returns a copy of the fixture h with byte i set to v.
func withByte(t *testing.T, h string, i int, v byte) string {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatalf("bad fixture: %v", err)
	}
	b[i] = v
	return hex.EncodeToString(b)
}

func TestParseMessageCaptured(t *testing.T) {
	link := func(index int, name string, up, carrier bool) Link {
		return Link{Index: index, Name: name, AdminUp: up, Carrier: carrier}
	}
	addr := func(index int, p string) Addr {
		return Addr{Index: index, Prefix: netip.MustParsePrefix(p), Flags: AddrPermanent}
	}
	addr6 := func(p string, flags uint32, scope uint8) Addr {
		return Addr{Index: 5, Prefix: netip.MustParsePrefix(p), Flags: flags, Scope: scope}
	}
	fe80 := netip.MustParseAddr("fe80::1")
	ra := DefaultRoute{Family: V6, Table: 254, Protocol: ProtoRA, Metric: 1024, Index: 5, Gateway: fe80}
	tests := []struct {
		name string
		typ  netlink.HeaderType
		hex  string
		want Event // nil: ignored
	}{
		{"link up", unix.RTM_NEWLINK, hexLinkUp, LinkEvent{Link: link(2, "eth2", true, true)}},
		{"carrier lost", unix.RTM_NEWLINK, hexLinkCarrierLost, LinkEvent{Link: link(2, "eth2", true, false)}},
		{"renamed", unix.RTM_NEWLINK, hexLinkRenamed, LinkEvent{Link: link(2, "wan0", false, false)}},
		{"deleted", unix.RTM_DELLINK, hexLinkDeleted, LinkEvent{Link: link(2, "wan0", false, false), Deleted: true}},
		// Leaving a bridge is not a deletion.
		{"bridge port removed", unix.RTM_DELLINK, hexLinkBridgePortDel, nil},
		{"addr new", unix.RTM_NEWADDR, hexAddrNew, AddrEvent{Addr: addr(2, "203.0.113.2/24")}},
		{"addr del", unix.RTM_DELADDR, hexAddrDel, AddrEvent{Addr: addr(2, "203.0.113.2/24"), Deleted: true}},
		// IFA_ADDRESS is the peer 198.18.0.2; IFA_LOCAL wins.
		{"addr peer", unix.RTM_NEWADDR, hexAddrPeer, AddrEvent{Addr: addr(2, "198.18.0.1/32")}},
		{"addr other family ignored", unix.RTM_NEWADDR, withByte(t, hexAddrNew, 0, unix.AF_BRIDGE), nil},
		{"route new", unix.RTM_NEWROUTE, hexRouteNew, RouteEvent{Family: V4, Table: 200, Protocol: 201}},
		{"route del", unix.RTM_DELROUTE, hexRouteDel, RouteEvent{Family: V4, Table: 200, Protocol: 201, Deleted: true}},
		// rtm_table says RT_TABLE_COMPAT (252); RTA_TABLE has the real one.
		{"route table 1000", unix.RTM_NEWROUTE, hexRouteTable1000, RouteEvent{Family: V4, Table: 1000, Protocol: 201}},
		{"route multicast family ignored", unix.RTM_NEWROUTE, withByte(t, hexRouteNew, 0, 128 /* RTNL_FAMILY_IPMR */), nil},
		{"rule new", unix.RTM_NEWRULE, hexRuleNew, RuleEvent{Family: V4, Priority: 10000, Table: 200, Protocol: 201}},
		{"rule del", unix.RTM_DELRULE, hexRuleDel, RuleEvent{Family: V4, Priority: 10000, Table: 200, Protocol: 201, Deleted: true}},
		{"rule table 1000", unix.RTM_NEWRULE, hexRuleTable1000, RuleEvent{Family: V4, Priority: 10001, Table: 1000}},
		{"nexthop new", unix.RTM_NEWNEXTHOP, hexNexthopNew, NexthopEvent{ID: 42, Protocol: 201}},
		{"nexthop del", unix.RTM_DELNEXTHOP, hexNexthopDel, NexthopEvent{ID: 42, Protocol: 201, Deleted: true}},
		// IPv6. A link-local address has scope link; flags come from
		// IFA_FLAGS (all of them here fit ifa_flags too).
		{"addr6 link-local", unix.RTM_NEWADDR, hexAddr6LinkLocal,
			AddrEvent{Addr: addr6("fe80::d4bb:10ff:feba:6704/64", AddrPermanent, ScopeLink)}},
		{"addr6 nodad", unix.RTM_NEWADDR, hexAddr6NoDAD, AddrEvent{Addr: addr6("2001:db8:1::2/64", AddrPermanent|AddrNoDAD, ScopeUniverse)}},
		{"addr6 deprecated tentative", unix.RTM_NEWADDR, hexAddr6DeprecatedTentative,
			AddrEvent{Addr: addr6("2001:db8:1::3/64", AddrDeprecated|AddrTentative, ScopeUniverse)}},
		{"addr6 dadfailed", unix.RTM_NEWADDR, hexAddr6DADFailed,
			AddrEvent{Addr: addr6("2001:db8:1::5/64", AddrPermanent|AddrTentative|AddrDADFailed, ScopeUniverse)}},
		// An RA-installed default: proto ra, main, link-local gateway.
		{"route6 ra", unix.RTM_NEWROUTE, hexRoute6RA, RouteEvent{Family: V6, Table: 254, Protocol: ProtoRA, Default: true, Route: ra}},
		{"route6 ra del", unix.RTM_DELROUTE, hexRoute6RADel,
			RouteEvent{Family: V6, Table: 254, Protocol: ProtoRA, Default: true, Deleted: true, Route: ra}},
		{"route6 table 1000", unix.RTM_NEWROUTE, hexRoute6Table1000, RouteEvent{Family: V6, Table: 1000, Protocol: 201}},
		{"rule6 new", unix.RTM_NEWRULE, hexRule6New, RuleEvent{Family: V6, Priority: 10002, Table: 1000, Protocol: 201}},
		{"nexthop6 new", unix.RTM_NEWNEXTHOP, hexNexthop6New, NexthopEvent{ID: 44, Protocol: 201}},
		{"neigh6 reachable", unix.RTM_NEWNEIGH, hexNeigh6Reachable, NeighEvent{Index: 5, Addr: fe80, State: NeighReachable}},
		{"neigh6 failed", unix.RTM_NEWNEIGH, hexNeigh6Failed, NeighEvent{Index: 5, Addr: fe80, State: NeighFailed}},
		{"other type ignored", unix.RTM_NEWNDUSEROPT, hexAddrNew, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMessage(msg(t, tt.typ, tt.hex))
			if err != nil {
				t.Fatalf("parseMessage: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("parseMessage (-want +got):\n%s", diff)
			}
		})
	}
}

// encode builds a message payload: a fixed header followed by attributes.
func encode(t *testing.T, hdr []byte, attrs func(ae *netlink.AttributeEncoder)) string {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	attrs(ae)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(append(hdr, b...))
}

func TestParseMessageSynthetic(t *testing.T) {
	ifinfo := func(index uint32, flags uint32) []byte {
		b := make([]byte, unix.SizeofIfInfomsg)
		nativePut32(b[4:], index)
		nativePut32(b[8:], flags)
		return b
	}
	tests := []struct {
		name string
		typ  netlink.HeaderType
		hex  string
		want Event
	}{
		{
			name: "IFLA_CARRIER 0 overrides IFF_LOWER_UP",
			typ:  unix.RTM_NEWLINK,
			hex: encode(t, ifinfo(7, unix.IFF_UP|unix.IFF_LOWER_UP), func(ae *netlink.AttributeEncoder) {
				ae.String(unix.IFLA_IFNAME, "wan1")
				ae.Uint8(unix.IFLA_CARRIER, 0)
			}),
			want: LinkEvent{Link: Link{Index: 7, Name: "wan1", AdminUp: true}},
		},
		{
			name: "IFLA_CARRIER 1 does not invent IFF_LOWER_UP",
			typ:  unix.RTM_NEWLINK,
			hex: encode(t, ifinfo(7, 0), func(ae *netlink.AttributeEncoder) {
				ae.String(unix.IFLA_IFNAME, "wan1")
				ae.Uint8(unix.IFLA_CARRIER, 1)
			}),
			want: LinkEvent{Link: Link{Index: 7, Name: "wan1"}},
		},
		{
			name: "address without IFA_LOCAL",
			typ:  unix.RTM_NEWADDR,
			hex: encode(t, []byte{unix.AF_INET, 24, 0, 0, 3, 0, 0, 0}, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(unix.IFA_ADDRESS, []byte{192, 0, 2, 9})
			}),
			want: AddrEvent{Addr: Addr{Index: 3, Prefix: netip.MustParsePrefix("192.0.2.9/24")}},
		},
		{
			// IFA_FLAGS holds the bits above 8 that ifa_flags cannot.
			name: "IFA_FLAGS overrides ifa_flags",
			typ:  unix.RTM_NEWADDR,
			hex: encode(t, []byte{unix.AF_INET6, 64, byte(AddrTentative), 0, 3, 0, 0, 0}, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(unix.IFA_ADDRESS, netip.MustParseAddr("2001:db8::9").AsSlice())
				ae.Uint32(unix.IFA_FLAGS, AddrStablePrivacy|AddrManageTempAddr|AddrPermanent)
			}),
			want: AddrEvent{Addr: Addr{Index: 3, Prefix: netip.MustParsePrefix("2001:db8::9/64"),
				Flags: AddrStablePrivacy | AddrManageTempAddr | AddrPermanent}},
		},
		{
			name: "IPv6 default route without gateway",
			typ:  unix.RTM_NEWROUTE,
			hex: encode(t, []byte{unix.AF_INET6, 0, 0, 0, 254, 3, 0, unix.RTN_UNICAST, 0, 0, 0, 0}, func(ae *netlink.AttributeEncoder) {
				ae.Uint32(unix.RTA_TABLE, 254)
				ae.Uint32(unix.RTA_OIF, 4)
			}),
			want: RouteEvent{Family: V6, Table: 254, Protocol: 3, Default: true, Route: DefaultRoute{Family: V6, Table: 254, Protocol: 3, Index: 4}},
		},
		{
			name: "IPv6 unreachable default is not a route to learn",
			typ:  unix.RTM_NEWROUTE,
			hex: encode(t, []byte{unix.AF_INET6, 0, 0, 0, 200, 201, 0, unix.RTN_UNREACHABLE, 0, 0, 0, 0}, func(ae *netlink.AttributeEncoder) {
				ae.Uint32(unix.RTA_TABLE, 200)
			}),
			want: RouteEvent{Family: V6, Table: 200, Protocol: 201, Default: true},
		},
		{
			name: "neighbour failed",
			typ:  unix.RTM_NEWNEIGH,
			hex: encode(t, ndmsg(unix.AF_INET, 3, NeighFailed), func(ae *netlink.AttributeEncoder) {
				ae.Bytes(unix.NDA_DST, []byte{203, 0, 113, 1})
				ae.Bytes(unix.NDA_LLADDR, []byte{2, 0, 0, 0, 0, 1})
			}),
			want: NeighEvent{Index: 3, Addr: netip.MustParseAddr("203.0.113.1"), State: NeighFailed},
		},
		{
			name: "neighbour deleted",
			typ:  unix.RTM_DELNEIGH,
			hex: encode(t, ndmsg(unix.AF_INET, 3, NeighStale), func(ae *netlink.AttributeEncoder) {
				ae.Bytes(unix.NDA_DST, []byte{203, 0, 113, 1})
			}),
			want: NeighEvent{Index: 3, Addr: netip.MustParseAddr("203.0.113.1"), State: NeighStale, Deleted: true},
		},
		{
			name: "bridge FDB entry ignored",
			typ:  unix.RTM_NEWNEIGH,
			hex: encode(t, ndmsg(unix.AF_BRIDGE, 3, NeighReachable), func(ae *netlink.AttributeEncoder) {
				ae.Bytes(unix.NDA_LLADDR, []byte{2, 0, 0, 0, 0, 1})
			}),
			want: nil,
		},
		{
			name: "rule priority 0 has no FRA_PRIORITY",
			typ:  unix.RTM_NEWRULE,
			hex: encode(t, []byte{unix.AF_INET, 0, 0, 0, 255, 0, 0, 1, 0, 0, 0, 0}, func(ae *netlink.AttributeEncoder) {
				ae.Uint32(unix.FRA_TABLE, 255)
			}),
			want: RuleEvent{Family: V4, Table: 255},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMessage(msg(t, tt.typ, tt.hex))
			if err != nil {
				t.Fatalf("parseMessage: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("parseMessage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMessageErrors(t *testing.T) {
	truncate := func(h string, n int) string { return h[:2*n] }
	tests := []struct {
		name string
		typ  netlink.HeaderType
		hex  string
	}{
		{"short ifinfomsg", unix.RTM_NEWLINK, truncate(hexLinkUp, unix.SizeofIfInfomsg-1)},
		{"short ifaddrmsg", unix.RTM_NEWADDR, truncate(hexAddrNew, unix.SizeofIfAddrmsg-1)},
		{"short rtmsg", unix.RTM_NEWROUTE, truncate(hexRouteNew, unix.SizeofRtMsg-1)},
		{"short fib_rule_hdr", unix.RTM_NEWRULE, truncate(hexRuleNew, sizeofFibRuleHdr-1)},
		{"short nhmsg", unix.RTM_NEWNEXTHOP, truncate(hexNexthopNew, unix.SizeofNhmsg-1)},
		// Cut in the middle of the first attribute.
		{"truncated link attribute", unix.RTM_NEWLINK, truncate(hexLinkUp, unix.SizeofIfInfomsg+6)},
		{"truncated addr attribute", unix.RTM_NEWADDR, truncate(hexAddrNew, unix.SizeofIfAddrmsg+6)},
		{"truncated rule attribute", unix.RTM_NEWRULE, truncate(hexRuleNew, sizeofFibRuleHdr+6)},
		{"address without attributes", unix.RTM_NEWADDR, truncate(hexAddrNew, unix.SizeofIfAddrmsg)},
		{"prefix length 33", unix.RTM_NEWADDR, withByte(t, hexAddrNew, 1, 33)},
		{"nexthop without NHA_ID", unix.RTM_NEWNEXTHOP, truncate(hexNexthopNew, unix.SizeofNhmsg)},
		{"short ndmsg", unix.RTM_NEWNEIGH, hex.EncodeToString(ndmsg(unix.AF_INET, 3, NeighFailed)[:unix.SizeofNdMsg-1])},
		{"neighbour without NDA_DST", unix.RTM_NEWNEIGH, hex.EncodeToString(ndmsg(unix.AF_INET, 3, NeighFailed))},
		{
			"neighbour IPv4 address of 3 bytes", unix.RTM_NEWNEIGH,
			encode(t, ndmsg(unix.AF_INET, 3, NeighFailed), func(ae *netlink.AttributeEncoder) {
				ae.Bytes(unix.NDA_DST, []byte{203, 0, 113})
			}),
		},
		{"prefix length 129", unix.RTM_NEWADDR, withByte(t, hexAddr6NoDAD, 1, 129)},
		{"IPv6 address of 4 bytes", unix.RTM_NEWADDR, withByte(t, hexAddrNew, 0, unix.AF_INET6)},
		{"IPv6 gateway of 4 bytes", unix.RTM_NEWROUTE, withByte(t, hexRouteNew, 0, unix.AF_INET6)},
		{"IPv4 gateway of 16 bytes", unix.RTM_NEWROUTE, withByte(t, hexRoute6RA, 0, unix.AF_INET)},
		{"IPv6 neighbour of 4 bytes", unix.RTM_NEWNEIGH, encode(t, ndmsg(unix.AF_INET6, 3, NeighFailed), func(ae *netlink.AttributeEncoder) {
			ae.Bytes(unix.NDA_DST, []byte{203, 0, 113, 1})
		})},
		{
			"IPv4 attribute of 16 bytes", unix.RTM_NEWADDR,
			encode(t, []byte{unix.AF_INET, 24, 0, 0, 3, 0, 0, 0}, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(unix.IFA_LOCAL, make([]byte, 16))
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMessage(msg(t, tt.typ, tt.hex))
			if err == nil {
				t.Fatalf("parseMessage = %+v, want error", got)
			}
			if got != nil {
				t.Errorf("parseMessage returned event %+v with error %v", got, err)
			}
		})
	}
}

func nativePut32(b []byte, v uint32) { binary.NativeEndian.PutUint32(b, v) }

// ndmsg returns a struct ndmsg.
func ndmsg(family byte, index uint32, state NeighState) []byte {
	b := make([]byte, unix.SizeofNdMsg)
	b[0] = family
	nativePut32(b[4:], index)
	binary.NativeEndian.PutUint16(b[8:], uint16(state))
	return b
}

func TestAddrFlags(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tt := range []struct {
		a      Addr
		stable bool
		names  string
	}{
		{Addr{Prefix: p("2001:db8::2/64"), Flags: AddrPermanent | AddrNoDAD}, true, "nodad permanent"},
		{Addr{Prefix: p("2001:db8::2/64"), Flags: AddrTemporary}, false, "temporary"},
		{Addr{Prefix: p("2001:db8::2/64"), Flags: AddrDeprecated | AddrTentative}, false, "deprecated tentative"},
		{Addr{Prefix: p("2001:db8::2/64"), Flags: AddrTentative | AddrDADFailed | AddrPermanent}, false, "dadfailed tentative permanent"},
		{Addr{Prefix: p("2001:db8::2/64"), Flags: AddrManageTempAddr | 0x10000}, true, "mngtmpaddr 0x10000"},
		{Addr{Prefix: p("fe80::2/64"), Scope: ScopeLink}, false, ""},
		{Addr{Prefix: p("192.0.2.2/24"), Flags: AddrSecondary}, false, "secondary"},
	} {
		if got := tt.a.Stable(); got != tt.stable {
			t.Errorf("%+v.Stable() = %v, want %v", tt.a, got, tt.stable)
		}
		if got := FlagNames(tt.a.Flags, tt.a.Family()); got != tt.names {
			t.Errorf("FlagNames(%#x) = %q, want %q", tt.a.Flags, got, tt.names)
		}
	}
}

func TestNeighStateString(t *testing.T) {
	for s, want := range map[NeighState]string{
		NeighFailed:                  "FAILED",
		NeighReachable | NeighNoARP:  "REACHABLE|NOARP",
		NeighIncomplete | NeighProbe: "INCOMPLETE|PROBE",
		0:                            "NONE(0x0)",
	} {
		if got := s.String(); got != want {
			t.Errorf("NeighState(%#x) = %q, want %q", uint16(s), got, want)
		}
	}
}
