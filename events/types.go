package events

import (
	"fmt"
	"net/netip"
	"strings"
)

// Link is the state of one network interface as the kernel reported it.
type Link struct {
	Index   int
	Name    string
	AdminUp bool // IFF_UP: configured up by an administrator
	Carrier bool // IFF_LOWER_UP: admin up and the driver reports carrier
	// PointToPoint (IFF_POINTOPOINT): a link with no gateway (PPP, a
	// tunnel, LTE in raw-IP mode); routes through it are `dev IF`.
	PointToPoint bool
}

// Addr is one IPv4 address on an interface. Prefix.Addr() is the local
// address (IFA_LOCAL), Prefix.Bits() the prefix length.
type Addr struct {
	Index  int
	Prefix netip.Prefix
}

// Event is one of LinkEvent, AddrEvent, RouteEvent, RuleEvent, NexthopEvent,
// NeighEvent or ResyncEvent.
type Event interface{ isEvent() }

// LinkEvent reports a new or changed link (RTM_NEWLINK) or a deleted one
// (RTM_DELLINK, Deleted set). A rename arrives as a LinkEvent with the same
// Index and the new Name.
type LinkEvent struct {
	Link    Link
	Deleted bool
}

// AddrEvent reports an IPv4 address added to or removed from a link.
type AddrEvent struct {
	Addr    Addr
	Deleted bool
}

// RouteEvent reports that an IPv4 route was added, replaced or deleted in
// Table. Protocol is the route's protocol (rtm_protocol), which tells whose
// route it is. Only enough is decoded to decide whether a re-read is needed,
// and, for a default route, to learn a DHCP client's gateway from it.
type RouteEvent struct {
	Table    int
	Protocol int
	Deleted  bool
	// Default: a default route (dst_len 0).
	Default bool
	// Replace: the route replaced the one with its table, TOS and metric
	// (NLM_F_REPLACE); no deletion is reported for that one.
	Replace bool
	// Route is the route, decoded for default unicast routes only.
	Route DefaultRoute
}

// DefaultRoute is an IPv4 default route with a single next hop, as a DHCP
// client installs it. The kernel tells such routes apart by Table, TOS and
// Metric (and, for appended ones, by their next hop).
type DefaultRoute struct {
	Table    int
	Protocol int
	TOS      int
	Metric   int
	Index    int        // RTA_OIF; 0 when absent or multipath
	Gateway  netip.Addr // RTA_GATEWAY; invalid without one (dev routes)
}

// RuleEvent reports that an IPv4 policy routing rule was added or deleted.
type RuleEvent struct {
	Priority int
	Table    int
	Protocol int
	Deleted  bool
}

// NexthopEvent reports that a nexthop object or group (RTM_NEWNEXTHOP /
// RTM_DELNEXTHOP) was added, replaced or deleted. Nexthops of every family
// are reported, because groups carry no family of their own.
type NexthopEvent struct {
	ID       int
	Protocol int
	Deleted  bool
}

// NeighEvent reports a new, changed or deleted IPv4 neighbour (ARP) entry:
// the kernel's knowledge of whether Addr answers on link Index.
type NeighEvent struct {
	Index   int
	Addr    netip.Addr
	State   NeighState
	Deleted bool
}

// NeighState is a neighbour entry's state, the kernel's NUD_* bits
// (include/uapi/linux/neighbour.h).
type NeighState uint16

// Neighbour states.
const (
	NeighIncomplete NeighState = 0x01 // resolving: ARP request sent, no answer yet
	NeighReachable  NeighState = 0x02 // confirmed recently
	NeighStale      NeighState = 0x04 // usable, confirmation due
	NeighDelay      NeighState = 0x08 // used while stale; a probe follows
	NeighProbe      NeighState = 0x10 // unicast ARP probes being sent
	NeighFailed     NeighState = 0x20 // resolution failed: no answer to ARP
	NeighNoARP      NeighState = 0x40
	NeighPermanent  NeighState = 0x80
)

func (s NeighState) String() string {
	names := []struct {
		bit  NeighState
		name string
	}{
		{NeighIncomplete, "INCOMPLETE"}, {NeighReachable, "REACHABLE"}, {NeighStale, "STALE"}, {NeighDelay, "DELAY"},
		{NeighProbe, "PROBE"}, {NeighFailed, "FAILED"}, {NeighNoARP, "NOARP"}, {NeighPermanent, "PERMANENT"},
	}
	var out []string
	for _, n := range names {
		if s&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf("NONE(%#x)", uint16(s))
	}
	return strings.Join(out, "|")
}

// ResyncEvent means events were lost (the receive buffer overran, or a
// message could not be decoded). The consumer must re-read the full state.
type ResyncEvent struct {
	Reason string
	// Overrun: the socket's receive buffer overran (ENOBUFS), as opposed
	// to an undecodable message.
	Overrun bool
}

func (LinkEvent) isEvent()    {}
func (AddrEvent) isEvent()    {}
func (RouteEvent) isEvent()   {}
func (RuleEvent) isEvent()    {}
func (NexthopEvent) isEvent() {}
func (NeighEvent) isEvent()   {}
func (ResyncEvent) isEvent()  {}

// Snapshot is the result of Dump: every link and every IPv4 address, in the
// order the kernel listed them.
type Snapshot struct {
	Links []Link
	Addrs []Addr
}
