package events

import (
	"encoding/hex"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Any rtnetlink message decodes to at most one event or fails cleanly,
// and what decodes goes through the filter. Seeds: the captured messages
// of the unit tests.
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
		if ev != nil {
			fs.pass(ev)
		}
	})
}
