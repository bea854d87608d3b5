package netops

import (
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Rule priorities relative to Settings.RulePriority; uplinkd owns
// [RulePriority, RulePriority+PriorityRange). See the package
// documentation for the layout.
const (
	prioSuppress = 0 // lookup main suppress_prefixlength 0, all traffic
	prioSource   = 1 // from <uplink address> lookup <uplink table>
	prioFwmark   = 2 // fwmark M(u)/mask lookup <uplink table>: pinned connections
	// PrioPolicyFirst and PrioPolicyLast bound the priorities kept for
	// the policies of issue 10, one priority per policy, in order.
	PrioPolicyFirst = 10
	PrioPolicyLast  = 89
	prioBalance     = 99 // the default policy: lookup <balance table>
	// PriorityRange is how many rule priorities uplinkd owns.
	PriorityRange = 100
)

// Settings are the routing parameters from the [routing] section.
type Settings struct {
	// Family is the address family Plan plans (the zero value: V4).
	// PlanAll plans both.
	Family Family
	// LANInterfaces whose incoming traffic is balanced, plus locally
	// originated traffic (iif lo). Empty means all traffic.
	LANInterfaces []string
	BalanceTable  int
	RulePriority  int
	RouteProtocol int

	// Balancer is the kind of balance route; the zero value is Multipath.
	Balancer Balancer
	// NexthopIDBase is the first of the NexthopIDRange nexthop object IDs
	// uplinkd owns (group balancers only); see NexthopIDs.
	NexthopIDBase uint32
	// MarkMask is the mask of the connection marks that pin connections
	// to their uplink; 0 when pinning is off (no fwmark rules).
	MarkMask uint32
	// IdleTimer and UnbalancedTimer are the resilient group's timers.
	IdleTimer       time.Duration
	UnbalancedTimer time.Duration

	// Policies are the configured policies in file order; one named
	// DefaultPolicy replaces the built-in default policy (every uplink in
	// one tier). Rules send traffic to them, in order.
	Policies []Policy
	Rules    []PolicyRule
	// KeepDegraded is the built-in default policy's degraded_policy.
	KeepDegraded bool
}

// Uplink is what Plan needs to know of one uplink.
type Uplink struct {
	Name   string
	Table  int
	Weight int
	// Gateway is the next hop; invalid on a point-to-point link, whose
	// routes and nexthops are `dev IF` only.
	Gateway netip.Addr
	// Index is the interface's current ifindex, 0 when it does not exist
	// or is administratively down (the kernel refuses routes through it).
	Index int
	// Addr is the uplink's address (of the plan's family) with its
	// prefix length; invalid when the interface has none. An IPv6 /128
	// (an address of LANPrefix found on the router) gets no connected
	// route.
	Addr netip.Prefix
	// LANPrefix is the uplink's delegated IPv6 prefix (V6 only; invalid:
	// none): rule `from LANPrefix lookup Table` at the source rule's
	// priority, always; while the uplink cannot route (no Index, no Addr
	// or no Carrier) its table holds `unreachable default` instead of its
	// default route, so those sources never leave through another uplink.
	LANPrefix netip.Prefix
	// Carrier says the link has carrier. The kernel refuses nexthop
	// objects on a link without it, and deletes them when it goes.
	Carrier bool
	// InBalance says the uplink may carry new connections: it is active
	// (or held in the balance after a restart). Whether it does depends
	// on the policies' tiers (see Choose).
	InBalance bool
	// Degraded says the uplink is degraded: policies use it when no tier
	// has an active uplink, or always with KeepDegraded.
	Degraded bool
	// Usable says the uplink carries the connections pinned to it
	// (active or degraded): its fwmark rule exists. Needs Mark.
	Usable bool
	// Mark is the uplink's connection mark, inside Settings.MarkMask; 0
	// without pinning.
	Mark uint32
	// Slot is the uplink's place in the nexthop ID layout (see IDs),
	// stable by name (see Slots); group balancers only.
	Slot int
}

// Nexthop is one path of a multipath route.
type Nexthop struct {
	Gateway netip.Addr
	Index   int
	Weight  int
}

// Route is a desired route. Exactly one of Gateway/Index (single path),
// Nexthops (multipath) or NHID (a nexthop object) describes the path; a
// connected route has Index and Scope link but no Gateway.
type Route struct {
	Table    int
	Dst      netip.Prefix
	Gateway  netip.Addr
	Index    int
	Src      netip.Addr
	Link     bool // scope link (a connected prefix)
	OnLink   bool // gateway outside the interface's prefix
	Nexthops []Nexthop
	NHID     uint32
	Protocol int
	// Type is the route's kind; the zero value is a unicast route. An
	// unreachable or blackhole route has no path.
	Type RouteType
	// Family is the route's family (zero: V4). IPv6 routes have no
	// scope: Link is always false.
	Family Family
}

// Rule is a desired policy rule.
type Rule struct {
	// Family is the rule's family (zero: V4).
	Family   Family
	Priority int
	Src      netip.Prefix // invalid: from all
	IifName  string       // empty: any
	Table    int
	// SuppressPrefixlen is -1 for none.
	SuppressPrefixlen int
	// Mark and Mask select packets by firewall mark (fwmark Mark/Mask);
	// Mask 0: any mark.
	Mark, Mask uint32
	Protocol   int

	// Selectors of the policy rules (see PolicyRule).
	Dst     netip.Prefix // invalid: to all
	IPProto int          // 0: any
	Sport   *Range       // nil: any
	Dport   *Range
	UID     *Range
}

// Range is an inclusive range of ports or uids.
type Range struct{ Start, End uint32 }

func (r Range) String() string { return string(r.appendTo(nil)) }

func (r Range) appendTo(b []byte) []byte {
	b = appendUint(b, uint64(r.Start))
	if r.Start == r.End {
		return b
	}
	return appendUint(append(b, '-'), uint64(r.End))
}

// Desired is the whole routing state uplinkd wants in the kernel.
type Desired struct {
	Routes []Route
	Rules  []Rule
	// Nexthops are the nexthop objects, single next hops before the
	// groups that use them.
	Nexthops []NexthopObject
}

const mainTable = 254

// Plan computes the desired routing state. It is pure and deterministic:
// equal inputs give equal outputs, in a stable order. uplinks are all the
// configured uplinks: with the resilient balancer all their weights give
// the group's bucket count. Nexthop IDs come from each uplink's Slot, never
// from its position, so reordering or removing uplinks moves no one else.
//
// Rules, lowest priority first: main without its default route for all
// traffic (main's specific routes win, also for the router's replies from
// its WAN addresses), the source rules, the fwmark rules of pinned
// connections (uplinks that are Usable), then the balance rules of the LAN
// interfaces and lo.
func Plan(s Settings, uplinks []Uplink) Desired {
	// Sized for the common case, two routes, two rules and up to two
	// nexthop objects per uplink: a plan of 256 uplinks is made at every
	// reconcile, and growing these made half its garbage.
	n := len(uplinks)
	perUplink := 0 // nexthop objects
	switch s.Balancer {
	case Resilient:
		perUplink = 2
	case HashThreshold:
		perUplink = 1
	}
	d := Desired{
		Routes:   make([]Route, 0, 2*n+4),
		Rules:    make([]Rule, 0, 2*n+8),
		Nexthops: make([]NexthopObject, 0, perUplink*n+1+len(s.Policies)),
	}
	var hops []Nexthop
	var members []GroupMember
	if s.Balancer == Multipath {
		hops = make([]Nexthop, 0, n)
	} else {
		members = make([]GroupMember, 0, perUplink*n)
	}
	fam := s.Family.norm()
	dflt := fam.DefaultDst()
	ids := NexthopIDsFor(s.NexthopIDBase, fam)
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	slots := bySlotIn(uplinks, &sc.idx, &sc.slots)
	choices, picked := chooseBySlot(s, uplinks, slots)
	// By position: whether the default policy balances over uplink i.
	sc.inDefault = grow(sc.inDefault, n)
	inDefault := sc.inDefault
	clear(inDefault)
	for _, i := range picked[0] {
		inDefault[i] = true
	}
	// The rules and routes in the order Plan returns them, as far as
	// cheap keys tell it (the final sort then has nothing to move), in
	// slot order where they do not: the suppress rule first, then the
	// source rules, the fwmark rules; the uplinks' tables. Their sort
	// keys are made with them, from each uplink's table key made once.
	sc.tables = grow(sc.tables, n)
	p := planner{s: s, fam: fam, d: &d, tables: sc.tables, proto: noKey, ruleKeys: sc.ruleKeys[:0], routeKeys: sc.routeKeys[:0]}
	if s.RouteProtocol >= 0 {
		if k, ok := decKey(uint64(s.RouteProtocol), protoWidth); ok {
			p.proto = k
		}
	}
	for i := range uplinks {
		p.tables[i] = tableSortKey(uplinks[i].Table)
	}
	p.rule(Rule{
		Priority: s.RulePriority + prioSuppress, Table: mainTable, SuppressPrefixlen: 0, Protocol: s.RouteProtocol,
	}, tableSortKey(mainTable))
	for _, i := range orderUplinks(slots, func(i int) uint64 { return sourceKey(fam, &uplinks[i]) }, &sc.order) {
		p.sourceRules(&uplinks[i], p.tables[i])
	}
	if s.MarkMask != 0 {
		for _, i := range orderUplinks(slots, func(i int) uint64 { return hexKey(uplinks[i].Mark & s.MarkMask) }, &sc.order) {
			if u := &uplinks[i]; u.Index > 0 && u.Addr.IsValid() && u.Mark != 0 && u.Usable {
				p.rule(Rule{
					Priority: s.RulePriority + prioFwmark, Mark: u.Mark & s.MarkMask, Mask: s.MarkMask,
					Table: u.Table, SuppressPrefixlen: -1, Protocol: s.RouteProtocol,
				}, p.tables[i])
			}
		}
	}
	for _, i := range orderUplinks(slots, func(i int) uint64 { return p.tables[i] % noKey }, &sc.order) {
		p.uplinkRoutes(&uplinks[i], p.tables[i])
	}
	// In slot order, so that the group's members keep their order (and a
	// hash-threshold group its cut of the hash space) however the
	// configuration file orders the uplinks.
	for _, i := range slots {
		u := &uplinks[i]
		if u.Index <= 0 || !u.Addr.IsValid() {
			continue
		}
		switch {
		case s.Balancer == Multipath:
			if inDefault[i] {
				hops = append(hops, Nexthop{Gateway: u.Gateway, Index: u.Index, Weight: u.Weight})
			}
		case u.Carrier:
			// The kernel refuses nexthop objects on a link without
			// carrier. A resilient group has two members per uplink: see
			// IDs.
			objs := []uint32{ids.Uplink(u.Slot)}
			if s.Balancer == Resilient {
				objs = append(objs, ids.Twin(u.Slot))
			}
			onlink := onLink(*u)
			for _, id := range objs {
				d.Nexthops = append(d.Nexthops, NexthopObject{
					ID: id, Gateway: u.Gateway, Index: u.Index, OnLink: onlink, Protocol: s.RouteProtocol,
				})
				if inDefault[i] {
					members = append(members, GroupMember{ID: id, Weight: u.Weight})
				}
			}
		}
	}
	switch {
	case len(members) > 0 && s.Balancer == Resilient:
		// One resilient group, replaced in place as members come and
		// go; the route through it never changes.
		weights := make([]int, len(uplinks))
		for i, u := range uplinks {
			weights[i] = u.Weight
		}
		d.Nexthops = append(d.Nexthops, NexthopObject{
			ID: ids.Group, Members: members, Type: GroupResilient, Buckets: Buckets(weights),
			IdleTimer: s.IdleTimer, UnbalancedTimer: s.UnbalancedTimer, Protocol: s.RouteProtocol,
		})
		d.Routes = append(d.Routes, Route{Table: s.BalanceTable, Dst: dflt, NHID: ids.Group, Protocol: s.RouteProtocol})
	case len(members) > 0:
		// A hash-threshold group, changed on any change (weights
		// included): pinned connections do not care how the hash space
		// is cut, only new ones are routed through it. The reconciler
		// makes it anew at its alternate ID rather than replacing it
		// in place (altgroup.go).
		d.Nexthops = append(d.Nexthops, NexthopObject{
			ID: ids.Group, Members: members, Type: GroupMultipath, Protocol: s.RouteProtocol, Alt: ids.Alt(ids.Group),
		})
		d.Routes = append(d.Routes, Route{Table: s.BalanceTable, Dst: dflt, NHID: ids.Group, Protocol: s.RouteProtocol})
	case len(hops) == 1:
		d.Routes = append(d.Routes, Route{
			Table: s.BalanceTable, Dst: dflt, Gateway: hops[0].Gateway, Index: hops[0].Index,
			OnLink: onLinkOf(uplinks, hops[0].Index), Link: scopeLink(fam, hops[0].Gateway), Protocol: s.RouteProtocol,
		})
	case len(hops) > 1:
		d.Routes = append(d.Routes, Route{Table: s.BalanceTable, Dst: dflt, Nexthops: hops, Protocol: s.RouteProtocol})
	}
	// With nothing usable the balance table stays empty and balanced
	// traffic falls through to main's own default route (an empty
	// nexthop group does not exist), unless the default policy's last
	// resort says otherwise.
	if lr := lastResortRoute(s, choices[0]); lr != nil {
		d.Routes = append(d.Routes, *lr)
	}
	d.planPolicies(s, uplinks, choices, picked)

	iifs := []string{""}
	if len(s.LANInterfaces) > 0 {
		iifs = append(slices.Clone(s.LANInterfaces), "lo")
	}
	for _, iif := range iifs {
		d.Rules = append(d.Rules,
			Rule{Priority: s.RulePriority + prioBalance, IifName: iif, Table: s.BalanceTable, SuppressPrefixlen: -1, Protocol: s.RouteProtocol},
		)
	}
	if fam == V6 {
		d.setFamily(V6)
	}
	sc.routeKeys = sortRoutes(d.Routes, p.routeKeys)
	sc.ruleKeys = sortRules(d.Rules, p.ruleKeys)
	// Empty parts are nil, as they were before the slices were sized.
	if len(d.Routes) == 0 {
		d.Routes = nil
	}
	if len(d.Rules) == 0 {
		d.Rules = nil
	}
	if len(d.Nexthops) == 0 {
		d.Nexthops = nil
	}
	return d
}

// setFamily marks every route, rule and nexthop object of d as f's.
func (d *Desired) setFamily(f Family) {
	for i := range d.Routes {
		d.Routes[i].Family = f
	}
	for i := range d.Rules {
		d.Rules[i].Family = f
	}
	for i := range d.Nexthops {
		d.Nexthops[i].Family = f
	}
}

// PlanAll plans both families with s (whatever its Family says) and
// returns the IPv4 plan followed by the IPv6 one. v4 and v6 are the
// uplinks of each family (an uplink with both is in both, with the same
// name, table, slot and mark); with no IPv6 uplink nothing IPv6 is
// planned at all, so a configuration without IPv6 leaves IPv6 routing
// alone. Choose works per family: call it with the family's uplinks.
func PlanAll(s Settings, v4, v6 []Uplink) Desired {
	s.Family = V4
	d := Plan(s, v4)
	if len(v6) == 0 {
		return d
	}
	s.Family = V6
	d6 := Plan(s, v6)
	d.Routes = append(d.Routes, d6.Routes...)
	d.Rules = append(d.Rules, d6.Rules...)
	d.Nexthops = append(d.Nexthops, d6.Nexthops...)
	return d
}

// scopeLink says whether a route through gw is scope link: a route without
// a gateway, in IPv4 (IPv6 routes have no scope).
func scopeLink(f Family, gw netip.Addr) bool { return f.norm() == V4 && !gw.IsValid() }

func onLinkOf(uplinks []Uplink, index int) bool {
	for _, u := range uplinks {
		if u.Index == index {
			return onLink(u)
		}
	}
	return false
}

// onLink says whether u's gateway lies outside its interface's prefix, so
// that the kernel must take it as directly reachable; never without a
// gateway, nor for an IPv6 link-local one (always on the link).
func onLink(u Uplink) bool {
	return u.Gateway.IsValid() && !u.Addr.Masked().Contains(u.Gateway) &&
		!(u.Gateway.Is6() && u.Gateway.IsLinkLocalUnicast())
}

// Key identifies a route in the kernel: table and destination (uplinkd
// uses neither TOS nor metrics); the destination tells the family.
func (r Route) Key() string { return string(r.appendKey(make([]byte, 0, 40))) }

// appendKey appends r.Key() to b.
func (r Route) appendKey(b []byte) []byte {
	b = append(b, "table "...)
	b = strconv.AppendInt(b, int64(r.Table), 10)
	b = append(b, ' ')
	return appendPrefix(b, r.Dst)
}

// String renders the route like `ip route`, for logs and diffs. Strings
// are how the reconciler compares routes, rules and nexthop objects, some
// thousand of them per reconcile with 256 uplinks: they are appended
// without fmt.
func (r Route) String() string {
	b := make([]byte, 0, 96)
	b = append(b, r.Family.prefix()...)
	if r.Type != Unicast {
		b = append(b, r.Type.String()...)
		b = append(b, ' ')
	}
	if r.Dst.IsValid() && r.Dst.Bits() == 0 {
		b = append(b, "default"...)
	} else {
		b = appendPrefix(b, r.Dst)
	}
	switch {
	case r.Type != Unicast:
	case r.NHID != 0:
		b = appendUint(append(b, " nhid "...), uint64(r.NHID))
	case len(r.Nexthops) > 0:
		for _, h := range r.Nexthops {
			b = append(b, " nexthop"...)
			if h.Gateway.IsValid() {
				b = h.Gateway.AppendTo(append(b, " via "...))
			}
			b = appendInt(append(b, " dev #"...), h.Index)
			b = appendInt(append(b, " weight "...), h.Weight)
		}
	default:
		if r.Gateway.IsValid() {
			b = r.Gateway.AppendTo(append(b, " via "...))
		}
		b = appendInt(append(b, " dev #"...), r.Index)
	}
	if r.Src.IsValid() {
		b = r.Src.AppendTo(append(b, " src "...))
	}
	if r.Link {
		b = append(b, " scope link"...)
	}
	if r.OnLink {
		b = append(b, " onlink"...)
	}
	b = appendInt(append(b, " table "...), r.Table)
	b = appendInt(append(b, " proto "...), r.Protocol)
	return string(b)
}

// String renders the rule like `ip rule`; it doubles as the rule's identity.
func (r Rule) String() string { return string(r.appendTo(make([]byte, 0, 96))) }

// appendTo appends r.String() to b.
func (r Rule) appendTo(b []byte) []byte {
	b = append(b, r.Family.prefix()...)
	b = appendInt(b, r.Priority)
	b = append(b, ": from "...)
	if r.Src.IsValid() {
		b = r.Src.AppendTo(b)
	} else {
		b = append(b, "all"...)
	}
	if r.Dst.IsValid() {
		b = r.Dst.AppendTo(append(b, " to "...))
	}
	if r.IifName != "" {
		b = append(append(b, " iif "...), r.IifName...)
	}
	if r.Mask != 0 {
		b = strconv.AppendUint(append(b, " fwmark 0x"...), uint64(r.Mark), 16)
		b = strconv.AppendUint(append(b, "/0x"...), uint64(r.Mask), 16)
	}
	if r.IPProto != 0 {
		b = appendInt(append(b, " ipproto "...), r.IPProto)
	}
	if r.Sport != nil {
		b = r.Sport.appendTo(append(b, " sport "...))
	}
	if r.Dport != nil {
		b = r.Dport.appendTo(append(b, " dport "...))
	}
	if r.UID != nil {
		b = appendUint(append(b, " uidrange "...), uint64(r.UID.Start))
		b = appendUint(append(b, '-'), uint64(r.UID.End))
	}
	b = appendInt(append(b, " lookup "...), r.Table)
	if r.SuppressPrefixlen >= 0 {
		b = appendInt(append(b, " suppress_prefixlength "...), r.SuppressPrefixlen)
	}
	b = appendInt(append(b, " proto "...), r.Protocol)
	return b
}

func appendInt(b []byte, v int) []byte     { return strconv.AppendInt(b, int64(v), 10) }
func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }

// appendPrefix appends p as p.String() gives it, "invalid Prefix" included.
func appendPrefix(b []byte, p netip.Prefix) []byte {
	if !p.IsValid() {
		return append(b, p.String()...)
	}
	return p.AppendTo(b)
}
