package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sizeofFibRuleHdr is the size of struct fib_rule_hdr
// (include/uapi/linux/fib_rules.h), which x/sys/unix does not define.
const sizeofFibRuleHdr = 12

// parseMessage decodes one rtnetlink notification. It returns a nil Event for
// messages that carry nothing uplinkd tracks (other families, other types).
func parseMessage(m netlink.Message) (Event, error) {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		return event(parseLink(m))
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		return event(parseAddr(m))
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		return event(parseRoute(m))
	case unix.RTM_NEWRULE, unix.RTM_DELRULE:
		return event(parseRule(m))
	case unix.RTM_NEWNEXTHOP, unix.RTM_DELNEXTHOP:
		return event(parseNexthop(m))
	case unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH:
		return event(parseNeigh(m))
	}
	return nil, nil
}

// event adapts a typed parser result to parseMessage's.
func event[E Event](ev E, ok bool, err error) (Event, error) {
	if err != nil || !ok {
		return nil, err
	}
	return ev, nil
}

// errShort reports a message whose fixed header is truncated.
var errShort = errors.New("message shorter than its fixed header")

// parseLink decodes RTM_NEWLINK/RTM_DELLINK. ok is false for messages that
// are not about a link as such: the bridge code notifies port changes with
// ifi_family AF_BRIDGE on the same group, and its RTM_DELLINK only means
// "no longer a bridge port", not "deleted".
func parseLink(m netlink.Message) (ev LinkEvent, ok bool, err error) {
	// struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32.
	b := m.Data
	if len(b) < unix.SizeofIfInfomsg {
		return LinkEvent{}, false, fmt.Errorf("link: %w", errShort)
	}
	if b[0] != unix.AF_UNSPEC {
		return LinkEvent{}, false, nil
	}
	flags := binary.NativeEndian.Uint32(b[8:12])
	l := Link{
		Index:   int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		AdminUp: flags&unix.IFF_UP != 0,
		// IFF_LOWER_UP is netif_running && netif_carrier_ok: the one bit
		// that says "frames can flow". IFLA_CARRIER is netif_carrier_ok
		// alone, which some drivers leave set on an admin-down port, so it
		// may only ever narrow the answer.
		Carrier:      flags&unix.IFF_LOWER_UP != 0,
		PointToPoint: flags&unix.IFF_POINTOPOINT != 0,
	}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return LinkEvent{}, false, fmt.Errorf("link %d: %w", l.Index, err)
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			l.Name = ad.String()
		case unix.IFLA_CARRIER:
			if ad.Uint8() == 0 {
				l.Carrier = false
			}
		}
	}
	if err := ad.Err(); err != nil {
		return LinkEvent{}, false, fmt.Errorf("link %d: %w", l.Index, err)
	}
	return LinkEvent{Link: l, Deleted: m.Header.Type == unix.RTM_DELLINK}, true, nil
}

// parseAddr decodes RTM_NEWADDR/RTM_DELADDR; ok is false for addresses that
// are neither IPv4 nor IPv6.
func parseAddr(m netlink.Message) (ev AddrEvent, ok bool, err error) {
	// struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32.
	b := m.Data
	if len(b) < unix.SizeofIfAddrmsg {
		return AddrEvent{}, false, fmt.Errorf("addr: %w", errShort)
	}
	family, known := families[b[0]]
	if !known {
		return AddrEvent{}, false, nil
	}
	bits := int(b[1])
	index := int(binary.NativeEndian.Uint32(b[4:8]))
	// ifa_flags holds the low 8 bits; IFA_FLAGS, when present, all 32.
	flags := uint32(b[2])
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfAddrmsg:])
	if err != nil {
		return AddrEvent{}, false, fmt.Errorf("addr on link %d: %w", index, err)
	}
	// IFA_ADDRESS is the peer on point-to-point links; IFA_LOCAL is always
	// our own address when present (IPv6 sends it only with a peer).
	var local, address netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case unix.IFA_LOCAL:
			local, err = ipAddr(family, ad.Bytes())
		case unix.IFA_ADDRESS:
			address, err = ipAddr(family, ad.Bytes())
		case unix.IFA_FLAGS:
			flags = ad.Uint32()
		}
		if err != nil {
			return AddrEvent{}, false, fmt.Errorf("addr on link %d: %w", index, err)
		}
	}
	if err := ad.Err(); err != nil {
		return AddrEvent{}, false, fmt.Errorf("addr on link %d: %w", index, err)
	}
	a := local
	if !a.IsValid() {
		a = address
	}
	if !a.IsValid() {
		return AddrEvent{}, false, fmt.Errorf("addr on link %d: no IFA_LOCAL or IFA_ADDRESS", index)
	}
	if bits > a.BitLen() {
		return AddrEvent{}, false, fmt.Errorf("addr on link %d: prefix length %d", index, bits)
	}
	addr := Addr{Index: index, Prefix: netip.PrefixFrom(a, bits), Flags: flags, Scope: b[3]}
	return AddrEvent{Addr: addr, Deleted: m.Header.Type == unix.RTM_DELADDR}, true, nil
}

// families maps the address families uplinkd tracks to theirs.
var families = map[byte]Family{unix.AF_INET: V4, unix.AF_INET6: V6}

// ipAddr decodes an address attribute of family f.
func ipAddr(f Family, b []byte) (netip.Addr, error) {
	switch {
	case f == V4 && len(b) == 4:
		return netip.AddrFrom4([4]byte(b)), nil
	case f == V6 && len(b) == 16:
		return netip.AddrFrom16([16]byte(b)), nil
	}
	return netip.Addr{}, fmt.Errorf("%s address attribute has %d bytes", f, len(b))
}

// parseRoute decodes RTM_NEWROUTE/RTM_DELROUTE; ok is false for routes that
// are neither IPv4 nor IPv6 unicast routing (IPv4 multicast routes use a
// family of their own).
func parseRoute(m netlink.Message) (ev RouteEvent, ok bool, err error) {
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
	// type (all u8), flags u32.
	b := m.Data
	if len(b) < unix.SizeofRtMsg {
		return RouteEvent{}, false, fmt.Errorf("route: %w", errShort)
	}
	family, known := families[b[0]]
	if !known {
		return RouteEvent{}, false, nil
	}
	ev = RouteEvent{
		Family:   family,
		Table:    int(b[4]),
		Protocol: int(b[5]),
		Deleted:  m.Header.Type == unix.RTM_DELROUTE,
		Default:  b[1] == 0,
		Replace:  m.Header.Flags&netlink.Replace != 0,
	}
	r := DefaultRoute{Family: family, TOS: int(b[3]), Protocol: ev.Protocol}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofRtMsg:])
	if err != nil {
		return RouteEvent{}, false, fmt.Errorf("route: %w", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_TABLE:
			// rtm_table is only 8 bits; tables above 255 exist only here.
			ev.Table = int(ad.Uint32())
		case unix.RTA_OIF:
			r.Index = int(ad.Uint32())
		case unix.RTA_PRIORITY:
			r.Metric = int(ad.Uint32())
		case unix.RTA_GATEWAY:
			if r.Gateway, err = ipAddr(family, ad.Bytes()); err != nil {
				return RouteEvent{}, false, fmt.Errorf("route: gateway: %w", err)
			}
		}
	}
	if err := ad.Err(); err != nil {
		return RouteEvent{}, false, fmt.Errorf("route: %w", err)
	}
	// Unicast default routes only: a blackhole or unreachable default
	// leads nowhere.
	if ev.Default && b[7] == unix.RTN_UNICAST {
		r.Table = ev.Table
		ev.Route = r
	}
	return ev, true, nil
}

// parseRule decodes RTM_NEWRULE/RTM_DELRULE; ok is false for rules that are
// neither IPv4 nor IPv6.
func parseRule(m netlink.Message) (ev RuleEvent, ok bool, err error) {
	// struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2,
	// action (all u8), flags u32.
	b := m.Data
	if len(b) < sizeofFibRuleHdr {
		return RuleEvent{}, false, fmt.Errorf("rule: %w", errShort)
	}
	family, known := families[b[0]]
	if !known {
		return RuleEvent{}, false, nil
	}
	// The kernel omits FRA_PRIORITY for priority 0, so 0 is the default.
	ev = RuleEvent{
		Family:  family,
		Table:   int(b[4]),
		Deleted: m.Header.Type == unix.RTM_DELRULE,
	}
	ad, err := netlink.NewAttributeDecoder(b[sizeofFibRuleHdr:])
	if err != nil {
		return RuleEvent{}, false, fmt.Errorf("rule: %w", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.FRA_PRIORITY:
			ev.Priority = int(ad.Uint32())
		case unix.FRA_TABLE:
			ev.Table = int(ad.Uint32())
		case unix.FRA_PROTOCOL:
			ev.Protocol = int(ad.Uint8())
		}
	}
	if err := ad.Err(); err != nil {
		return RuleEvent{}, false, fmt.Errorf("rule: %w", err)
	}
	return ev, true, nil
}

// parseNexthop decodes RTM_NEWNEXTHOP/RTM_DELNEXTHOP of any family.
func parseNexthop(m netlink.Message) (ev NexthopEvent, ok bool, err error) {
	// struct nhmsg: family, scope, protocol, resvd (all u8), flags u32.
	b := m.Data
	if len(b) < unix.SizeofNhmsg {
		return NexthopEvent{}, false, fmt.Errorf("nexthop: %w", errShort)
	}
	ev = NexthopEvent{
		Protocol: int(b[2]),
		Deleted:  m.Header.Type == unix.RTM_DELNEXTHOP,
	}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofNhmsg:])
	if err != nil {
		return NexthopEvent{}, false, fmt.Errorf("nexthop: %w", err)
	}
	for ad.Next() {
		if ad.Type() == unix.NHA_ID {
			ev.ID = int(ad.Uint32())
		}
	}
	if err := ad.Err(); err != nil {
		return NexthopEvent{}, false, fmt.Errorf("nexthop: %w", err)
	}
	if ev.ID == 0 {
		return NexthopEvent{}, false, errors.New("nexthop: no NHA_ID")
	}
	return ev, true, nil
}

// parseNeigh decodes RTM_NEWNEIGH/RTM_DELNEIGH; ok is false for entries
// that are neither IPv4 (ARP) nor IPv6 (NDP) neighbours, such as bridge FDB
// entries.
func parseNeigh(m netlink.Message) (ev NeighEvent, ok bool, err error) {
	// struct ndmsg: family u8, pad u8, pad u16, ifindex i32, state u16,
	// flags u8, type u8.
	b := m.Data
	if len(b) < unix.SizeofNdMsg {
		return NeighEvent{}, false, fmt.Errorf("neigh: %w", errShort)
	}
	family, known := families[b[0]]
	if !known {
		return NeighEvent{}, false, nil
	}
	ev = NeighEvent{
		Index:   int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		State:   NeighState(binary.NativeEndian.Uint16(b[8:10])),
		Deleted: m.Header.Type == unix.RTM_DELNEIGH,
	}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofNdMsg:])
	if err != nil {
		return NeighEvent{}, false, fmt.Errorf("neigh on link %d: %w", ev.Index, err)
	}
	for ad.Next() {
		if ad.Type() == unix.NDA_DST {
			if ev.Addr, err = ipAddr(family, ad.Bytes()); err != nil {
				return NeighEvent{}, false, fmt.Errorf("neigh on link %d: %w", ev.Index, err)
			}
		}
	}
	if err := ad.Err(); err != nil {
		return NeighEvent{}, false, fmt.Errorf("neigh on link %d: %w", ev.Index, err)
	}
	if !ev.Addr.IsValid() {
		return NeighEvent{}, false, fmt.Errorf("neigh on link %d: no NDA_DST", ev.Index)
	}
	return ev, true, nil
}
