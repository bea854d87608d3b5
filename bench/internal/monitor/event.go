package monitor

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Event is one routing message as the monitor saw it.
type Event struct {
	At time.Time
	// Overrun is set on the event that stands for messages lost to a full
	// socket buffer (ENOBUFS); its other fields are zero.
	Overrun bool
	Type    uint16 // RTM_NEWROUTE, RTM_DELRULE, RTM_NEWNEXTHOP, RTM_NEWLINK, ...
	// PID is the netlink port of the request that caused the change; 0 for
	// a change the kernel made by itself (a link losing its carrier, the
	// routes of a deleted interface).
	PID uint32

	Table  uint32     // route, rule
	Proto  uint8      // route, rule, nexthop
	Dst    netip.Addr // route
	DstLen uint8      // route
	NHID   uint32     // nexthop
	Link   string     // link: its name
	Flags  uint32     // link: IFF_* flags
}

// Kind names the object the message is about.
func (e Event) Kind() string {
	switch e.Type {
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		return "route"
	case unix.RTM_NEWRULE, unix.RTM_DELRULE:
		return "rule"
	case unix.RTM_NEWNEXTHOP, unix.RTM_DELNEXTHOP:
		return "nexthop"
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		return "link"
	}
	return "?"
}

// Routing reports whether e changes a route, rule or nexthop.
func (e Event) Routing() bool {
	k := e.Kind()
	return k == "route" || k == "rule" || k == "nexthop"
}

func (e Event) String() string {
	switch e.Kind() {
	case "route":
		return fmt.Sprintf("%s %s/%d table %d proto %d pid %d", typeName(e.Type), e.Dst, e.DstLen, e.Table, e.Proto, e.PID)
	case "rule":
		return fmt.Sprintf("%s table %d proto %d pid %d", typeName(e.Type), e.Table, e.Proto, e.PID)
	case "nexthop":
		return fmt.Sprintf("%s id %d proto %d pid %d", typeName(e.Type), e.NHID, e.Proto, e.PID)
	case "link":
		return fmt.Sprintf("%s %s flags %#x", typeName(e.Type), e.Link, e.Flags)
	}
	return fmt.Sprintf("message type %d", e.Type)
}

func typeName(t uint16) string {
	switch t {
	case unix.RTM_NEWROUTE, unix.RTM_NEWRULE, unix.RTM_NEWNEXTHOP, unix.RTM_NEWLINK:
		return "new"
	}
	return "del"
}

// Parse decodes the parts of a link, IPv4 route, rule or nexthop message
// the bench uses. It reports false for other messages and for truncated
// ones.
func Parse(m netlink.Message) (Event, bool) {
	e := Event{Type: uint16(m.Header.Type), PID: m.Header.PID}
	b := m.Data
	var attrs []byte
	switch e.Kind() {
	case "route", "rule":
		// struct rtmsg and struct fib_rule_hdr are both 12 bytes with the
		// table at 4; a route's protocol is at 5, a rule's travels as
		// FRA_PROTOCOL.
		if len(b) < 12 {
			return Event{}, false
		}
		e.DstLen, e.Table = b[1], uint32(b[4])
		if e.Kind() == "route" {
			e.Proto = b[5]
		}
		attrs = b[12:]
	case "nexthop":
		if len(b) < 8 { // struct nhmsg
			return Event{}, false
		}
		e.Proto = b[2]
		attrs = b[8:]
	case "link":
		if len(b) < 16 { // struct ifinfomsg
			return Event{}, false
		}
		e.Flags = binary.NativeEndian.Uint32(b[8:12])
		attrs = b[16:]
	default:
		return Event{}, false
	}
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return Event{}, false
	}
	for ad.Next() {
		switch e.Kind() {
		case "route":
			switch ad.Type() {
			case unix.RTA_TABLE:
				e.Table = ad.Uint32()
			case unix.RTA_DST:
				if a, ok := netip.AddrFromSlice(ad.Bytes()); ok {
					e.Dst = a
				}
			}
		case "rule":
			switch ad.Type() {
			case unix.FRA_TABLE:
				e.Table = ad.Uint32()
			case unix.FRA_PROTOCOL:
				e.Proto = ad.Uint8()
			}
		case "nexthop":
			if ad.Type() == unix.NHA_ID {
				e.NHID = ad.Uint32()
			}
		case "link":
			if ad.Type() == unix.IFLA_IFNAME {
				e.Link = ad.String()
			}
		}
	}
	if ad.Err() != nil {
		return Event{}, false
	}
	if e.Kind() == "route" && !e.Dst.IsValid() {
		e.Dst = netip.IPv4Unspecified() // a default route has no RTA_DST
	}
	return e, true
}
