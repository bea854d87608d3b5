package netops

import "slices"

// The reconciler compares what it wants with what the kernel has by their
// strings (String is each object's identity). Formatting some 1,500
// routes, rules and nexthop objects at every reconcile of 256 uplinks made
// much of its time and garbage, while most of them are the very values it
// wrote or planned last time: a field-by-field comparison settles those
// first. Equal fields give equal strings, so the strings are only
// formatted when the fields differ.

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
	return have != nil && (sameRoute(have.rt, rt) || have.str == rt.String())
}

// nexthopMatches says whether the kernel's object have is the desired n.
func nexthopMatches(have, n NexthopObject) bool {
	return sameNexthop(have, n) || have.String() == n.String()
}
