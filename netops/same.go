package netops

import (
	"net/netip"
	"slices"
)

// The reconciler compares what it wants with what the kernel has by their
// strings (String is each object's identity). Formatting some 1,500
// routes, rules and nexthop objects at every reconcile of 256 uplinks made
// much of its time and garbage, while most of them are the very values it
// wrote or planned last time: a field-by-field comparison settles those
// first. Equal fields give equal strings, so the strings are only
// formatted when the fields differ. Objects are found by comparable
// identities (routeID, ruleID, a nexthop's ID), which hold what the
// strings of Route.Key and Rule.String hold, normalised where the strings
// leave a field out, so that two objects have equal identities exactly
// when they have equal strings.

// sameRoute says whether a and b are equal field by field.
func sameRoute(a, b Route) bool {
	return a.Table == b.Table && a.Dst == b.Dst && a.Gateway == b.Gateway && a.Index == b.Index &&
		a.Src == b.Src && a.Link == b.Link && a.OnLink == b.OnLink && a.NHID == b.NHID &&
		a.Protocol == b.Protocol && a.Type == b.Type && a.Family == b.Family && slices.Equal(a.Nexthops, b.Nexthops)
}

// sameNexthop says whether a and b are equal field by field. An Unknown
// object is never the same as any other (see NexthopObject.Unknown).
func sameNexthop(a, b NexthopObject) bool {
	return !a.Unknown && !b.Unknown && a.ID == b.ID && a.Protocol == b.Protocol && a.Family == b.Family &&
		a.Gateway == b.Gateway && a.Index == b.Index && a.OnLink == b.OnLink && a.Blackhole == b.Blackhole &&
		a.Type == b.Type && a.Buckets == b.Buckets && a.IdleTimer == b.IdleTimer &&
		a.UnbalancedTimer == b.UnbalancedTimer && slices.Equal(a.Members, b.Members)
}

// routeMatches says whether the kernel's route have is the desired rt.
func routeMatches(have *cachedRoute, rt Route) bool {
	return have != nil && (sameRoute(have.rt, rt) || have.rt.String() == rt.String())
}

// nexthopMatches says whether the kernel's object have is the desired n.
func nexthopMatches(have, n NexthopObject) bool {
	if sameNexthop(have, n) {
		return true
	}
	if have.ID != n.ID || have.Protocol != n.Protocol || have.Unknown != n.Unknown || !slices.Equal(have.Members, n.Members) {
		return false // fields String formats differ: so do the strings (a group's, of 256 members, is long)
	}
	return have.String() == n.String()
}

// sameRange says whether a and b select the same range (nil: any).
func sameRange(a, b *Range) bool { return a == b || a != nil && b != nil && *a == *b }

// sameRule says whether a and b are equal field by field.
func sameRule(a, b Rule) bool {
	return a.Family == b.Family && a.Priority == b.Priority && a.Src == b.Src && a.IifName == b.IifName &&
		a.Table == b.Table && a.SuppressPrefixlen == b.SuppressPrefixlen && a.Mark == b.Mark && a.Mask == b.Mask &&
		a.Protocol == b.Protocol && a.Dst == b.Dst && a.IPProto == b.IPProto &&
		sameRange(a.Sport, b.Sport) && sameRange(a.Dport, b.Dport) && sameRange(a.UID, b.UID)
}

// routeID identifies a route in the kernel, as Route.Key does: table and
// destination (which tells the family).
type routeID struct {
	table int
	dst   netip.Prefix
}

func routeIDOf(rt Route) routeID {
	dst := rt.Dst
	if !dst.IsValid() {
		dst = netip.Prefix{} // Key formats every invalid prefix alike
	}
	return routeID{rt.Table, dst}
}

// optRange is a selector range that may be absent.
type optRange struct {
	set bool
	r   Range
}

func optRangeOf(r *Range) optRange {
	if r == nil {
		return optRange{}
	}
	return optRange{true, *r}
}

// ruleID identifies a rule as Rule.String does: every field it formats,
// and only those.
type ruleID struct {
	family                    Family
	priority, table, protocol int
	suppress                  int
	src, dst                  netip.Prefix
	iif                       string
	mark, mask                uint32
	ipproto                   int
	sport, dport, uid         optRange
}

func ruleIDOf(ru Rule) ruleID {
	id := ruleID{
		family: ru.Family.norm(), priority: ru.Priority, table: ru.Table, protocol: ru.Protocol,
		suppress: max(ru.SuppressPrefixlen, -1), src: ru.Src, dst: ru.Dst, iif: ru.IifName,
		ipproto: ru.IPProto, sport: optRangeOf(ru.Sport), dport: optRangeOf(ru.Dport), uid: optRangeOf(ru.UID),
	}
	if !id.src.IsValid() {
		id.src = netip.Prefix{}
	}
	if !id.dst.IsValid() {
		id.dst = netip.Prefix{}
	}
	if ru.Mask != 0 {
		id.mark, id.mask = ru.Mark, ru.Mask
	}
	return id
}
