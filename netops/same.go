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

// sameRange says whether a and b select the same range (nil: any).
func sameRange(a, b *Range) bool { return a == b || a != nil && b != nil && *a == *b }

// sameRule says whether a and b are equal field by field.
func sameRule(a, b Rule) bool {
	return a.Family == b.Family && a.Priority == b.Priority && a.Src == b.Src && a.IifName == b.IifName &&
		a.Table == b.Table && a.SuppressPrefixlen == b.SuppressPrefixlen && a.Mark == b.Mark && a.Mask == b.Mask &&
		a.Protocol == b.Protocol && a.Dst == b.Dst && a.IPProto == b.IPProto &&
		sameRange(a.Sport, b.Sport) && sameRange(a.Dport, b.Dport) && sameRange(a.UID, b.UID)
}

// identities keeps the identity strings of the last reconcile's desired
// routes (Key) and rules (String), by position: a plan differs from the
// last one in a few places, so most are not formatted again.
type identities struct {
	routes    []Route
	routeKeys []string
	rules     []Rule
	ruleStrs  []string
}

// routeKeysOf returns the Key of every route of rs.
func (m *identities) routeKeysOf(rs []Route) []string {
	keys := make([]string, len(rs))
	for i, rt := range rs {
		if i < len(m.routes) && sameRoute(m.routes[i], rt) {
			keys[i] = m.routeKeys[i]
		} else {
			keys[i] = rt.Key()
		}
	}
	m.routes, m.routeKeys = append(m.routes[:0], rs...), keys
	return keys
}

// ruleStrsOf returns the String of every rule of rs.
func (m *identities) ruleStrsOf(rs []Rule) []string {
	strs := make([]string, len(rs))
	for i, ru := range rs {
		if i < len(m.rules) && sameRule(m.rules[i], ru) {
			strs[i] = m.ruleStrs[i]
		} else {
			strs[i] = ru.String()
		}
	}
	m.rules, m.ruleStrs = append(m.rules[:0], rs...), strs
	return strs
}
