package monitor

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	attrs := func(f func(ae *netlink.AttributeEncoder)) []byte {
		ae := netlink.NewAttributeEncoder()
		f(ae)
		b, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	route := append([]byte{unix.AF_INET, 24, 0, 0, unix.RT_TABLE_MAIN, 201, 0, unix.RTN_UNICAST, 0, 0, 0, 0},
		attrs(func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.RTA_TABLE, 1000)
			ae.Bytes(unix.RTA_DST, []byte{198, 51, 100, 0})
		})...)
	defRoute := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, 3, 0, unix.RTN_UNICAST, 0, 0, 0, 0}
	rule := append([]byte{unix.AF_INET, 0, 0, 0, 0, 0, 0, unix.FR_ACT_TO_TBL, 0, 0, 0, 0},
		attrs(func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.FRA_TABLE, 250)
			ae.Uint8(unix.FRA_PROTOCOL, 201)
		})...)
	nh := append([]byte{unix.AF_INET, 0, 201, 0, 0, 0, 0, 0},
		attrs(func(ae *netlink.AttributeEncoder) { ae.Uint32(unix.NHA_ID, 2010000000) })...)
	link := make([]byte, 16)
	binary.NativeEndian.PutUint32(link[8:], unix.IFF_UP|unix.IFF_BROADCAST)
	link = append(link, attrs(func(ae *netlink.AttributeEncoder) { ae.String(unix.IFLA_IFNAME, "eth2") })...)

	for _, tc := range []struct {
		typ  uint16
		data []byte
		want Event
	}{
		{unix.RTM_NEWROUTE, route, Event{Type: unix.RTM_NEWROUTE, PID: 7, Table: 1000, Proto: 201, Dst: netip.MustParseAddr("198.51.100.0"), DstLen: 24}},
		{unix.RTM_DELROUTE, defRoute, Event{Type: unix.RTM_DELROUTE, PID: 7, Table: unix.RT_TABLE_MAIN, Proto: 3, Dst: netip.IPv4Unspecified()}},
		{unix.RTM_NEWRULE, rule, Event{Type: unix.RTM_NEWRULE, PID: 7, Table: 250, Proto: 201}},
		{unix.RTM_NEWNEXTHOP, nh, Event{Type: unix.RTM_NEWNEXTHOP, PID: 7, Proto: 201, NHID: 2010000000}},
		{unix.RTM_NEWLINK, link, Event{Type: unix.RTM_NEWLINK, PID: 7, Link: "eth2", Flags: unix.IFF_UP | unix.IFF_BROADCAST}},
	} {
		got, ok := Parse(netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(tc.typ), PID: 7}, Data: tc.data})
		if !ok || got != tc.want {
			t.Errorf("type %d: got %+v, %v; want %+v", tc.typ, got, ok, tc.want)
		}
	}
	if ev, _ := Parse(netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWLINK}, Data: link}); !CarrierLost(ev, "eth2") || CarrierLost(ev, "eth1") {
		t.Error("CarrierLost on a link without LOWER_UP")
	}
	if _, ok := Parse(netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWROUTE}, Data: route[:8]}); ok {
		t.Error("truncated route accepted")
	}
	if _, ok := Parse(netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWADDR}, Data: route}); ok {
		t.Error("address message accepted")
	}
}
