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

// Family is an address family. The values are those of netops.Family;
// the zero value, which no decoded event carries, means IPv4.
type Family uint8

// Address families.
const (
	V4 Family = 4
	V6 Family = 6
)

func (f Family) String() string {
	if f == V6 {
		return "ipv6"
	}
	return "ipv4"
}

// familyOf returns the family of a (IPv4 for an IPv4-mapped address).
func familyOf(a netip.Addr) Family {
	if a.Is6() && !a.Is4In6() {
		return V6
	}
	return V4
}

// Addr is one IPv4 or IPv6 address on an interface. Prefix.Addr() is the
// local address (IFA_LOCAL, else IFA_ADDRESS), Prefix.Bits() the prefix
// length. An IPv6 link-local address has Scope ScopeLink and no zone: Index
// says which link it is on.
type Addr struct {
	Index  int
	Prefix netip.Prefix
	// Flags are the kernel's IFA_F_* bits (IFA_FLAGS, the 32-bit
	// attribute, else ifa_flags): AddrTentative, AddrDeprecated...
	Flags uint32
	// Scope is ifa_scope: ScopeUniverse (global), ScopeLink, ScopeHost...
	Scope uint8
}

// Address flags (IFA_F_*, include/uapi/linux/if_addr.h). The lowest bit
// is AddrTemporary on an IPv6 address (a privacy address, RFC 8981) and
// AddrSecondary on an IPv4 one.
const (
	AddrSecondary      uint32 = 0x01
	AddrTemporary      uint32 = 0x01
	AddrNoDAD          uint32 = 0x02 // duplicate address detection skipped
	AddrOptimistic     uint32 = 0x04 // usable while DAD runs (RFC 4429)
	AddrDADFailed      uint32 = 0x08 // another host has it: unusable
	AddrHomeAddress    uint32 = 0x10
	AddrDeprecated     uint32 = 0x20 // preferred lifetime over: no new connections
	AddrTentative      uint32 = 0x40 // DAD in progress (or failed): not yet usable
	AddrPermanent      uint32 = 0x80 // configured, not learned (no lifetime)
	AddrManageTempAddr uint32 = 0x100
	AddrNoPrefixRoute  uint32 = 0x200
	AddrMCAutoJoin     uint32 = 0x400
	AddrStablePrivacy  uint32 = 0x800
)

// Address scopes (ifa_scope, enum rt_scope_t).
const (
	ScopeUniverse uint8 = 0
	ScopeSite     uint8 = 200
	ScopeLink     uint8 = 253
	ScopeHost     uint8 = 254
	ScopeNowhere  uint8 = 255
)

// Family is the family of a's address.
func (a Addr) Family() Family { return familyOf(a.Prefix.Addr()) }

// Stable reports whether a is an IPv6 address fit to be an uplink's
// source: global scope, and neither temporary, deprecated, tentative nor
// refused by duplicate address detection. It is false for IPv4.
func (a Addr) Stable() bool {
	return a.Family() == V6 && a.Scope == ScopeUniverse &&
		a.Flags&(AddrTemporary|AddrDeprecated|AddrTentative|AddrDADFailed) == 0
}

// FlagNames writes address flags as ip(8) does ("nodad permanent"); the
// lowest bit reads "temporary" for IPv6 and "secondary" for IPv4.
func FlagNames(f uint32, family Family) string {
	low := "secondary"
	if family == V6 {
		low = "temporary"
	}
	names := []struct {
		bit  uint32
		name string
	}{
		{0x01, low}, {AddrNoDAD, "nodad"}, {AddrOptimistic, "optimistic"}, {AddrDADFailed, "dadfailed"},
		{AddrHomeAddress, "home"}, {AddrDeprecated, "deprecated"}, {AddrTentative, "tentative"},
		{AddrPermanent, "permanent"}, {AddrManageTempAddr, "mngtmpaddr"}, {AddrNoPrefixRoute, "noprefixroute"},
		{AddrMCAutoJoin, "autojoin"}, {AddrStablePrivacy, "stable-privacy"},
	}
	var out []string
	for _, n := range names {
		if f&n.bit != 0 {
			out = append(out, n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		out = append(out, fmt.Sprintf("%#x", f))
	}
	return strings.Join(out, " ")
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

// AddrEvent reports an IPv4 or IPv6 address added to, changed on (flags:
// DAD done or failed, deprecated) or removed from a link.
type AddrEvent struct {
	Addr    Addr
	Deleted bool
}

// RouteEvent reports that an IPv4 or IPv6 route was added, replaced or
// deleted in Table (the kernel keeps the tables of the families apart). Protocol is the route's protocol (rtm_protocol), which tells whose
// route it is. Only enough is decoded to decide whether a re-read is needed,
// and, for a default route, to learn a DHCP client's gateway from it.
type RouteEvent struct {
	Family   Family
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

// DefaultRoute is a default route with a single next hop, as a DHCP client
// installs it for IPv4, or the kernel for IPv6 from a router advertisement
// (Protocol 9, ProtoRA, in main, through a link-local Gateway). The kernel
// tells such routes apart by Family, Table, TOS and Metric (and, for
// appended ones, by their next hop). An IPv6 Gateway is link-local more
// often than not; it carries no zone: Index is its link.
type DefaultRoute struct {
	Family   Family // V4 or V6, also for a route without a Gateway
	Table    int
	Protocol int
	TOS      int
	Metric   int
	Index    int        // RTA_OIF; 0 when absent or multipath
	Gateway  netip.Addr // RTA_GATEWAY; invalid without one (dev routes)
}

// ProtoRA is the protocol (rtm_protocol, RTPROT_RA) of the routes the
// kernel installs from IPv6 router advertisements.
const ProtoRA = 9

// RuleEvent reports that an IPv4 or IPv6 policy routing rule was added or
// deleted.
type RuleEvent struct {
	Family   Family
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

// NeighEvent reports a new, changed or deleted IPv4 neighbour (ARP) or IPv6
// neighbour (NDP) entry: the kernel's knowledge of whether Addr answers on
// link Index. Addr carries no zone, even when link-local (fe80::1 is the
// gateway of many uplinks): a neighbour is the pair (Index, Addr).
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
	NeighFailed     NeighState = 0x20 // resolution failed: no answer to ARP or NDP
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

// Snapshot is the result of Dump: every link and every IPv4 and IPv6
// address (IPv4 first), in the order the kernel listed them.
type Snapshot struct {
	Links []Link
	Addrs []Addr
}
