package netops

import (
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Held is what an earlier run of uplinkd left in the kernel and a new run
// adopts: which next hops the balance route holds, which uplink tables
// pinned connections are routed by, and the nexthop objects (whose IDs
// give the uplinks' slots).
type Held struct {
	// Balance are the next hops (gateway and interface) of the balance
	// route, whatever its kind; empty without one.
	Balance []Nexthop
	// Policies are the next hops of the other nexthop groups of the
	// reconciler's protocol: the policies' (group balancers only).
	Policies []Nexthop
	// Pinned are the tables of the fwmark rules.
	Pinned []int
	// Nexthops are the nexthop objects of the reconciler's protocol of
	// the family asked for: its single next hops, and the groups whose
	// members are among them.
	Nexthops []NexthopObject
}

// Holds reads what the kernel holds of uplinkd's IPv4 routing: HoldsFor
// of V4.
func (r *Reconciler) Holds(balance, rulePriority int) (Held, error) {
	return r.HoldsFor(V4, balance, rulePriority)
}

// HoldsFor reads what the kernel holds of uplinkd's routing in family f:
// the balance route of table balance and the fwmark rules at
// rulePriority's fwmark priority, both of the reconciler's protocol, and
// its nexthop objects of f (groups: those with members of f). The daemon
// asks once per family, and matches next hops by (interface, gateway):
// fe80::1 on two interfaces is two uplinks.
func (r *Reconciler) HoldsFor(f Family, balance, rulePriority int) (Held, error) {
	var h Held
	f = f.norm()
	dflt := f.DefaultDst()
	if r.NH != nil {
		list, err := r.NH.NexthopList()
		if err != nil && !unsupported(err) {
			return h, fmt.Errorf("list nexthops: %w", err)
		}
		h.Nexthops = nexthopsOf(f, r.Protocol, list)
		routes, err := r.NH.NHIDRouteList(r.Protocol, balance)
		if err != nil && !unsupported(err) {
			return h, fmt.Errorf("list routes through nexthop objects: %w", err)
		}
		var group uint32
		for _, rt := range routes {
			if rt.Table == balance && rt.Dst == dflt {
				h.Balance, group = hopsOf(rt.NHID, h.Nexthops), rt.NHID
			}
		}
		for _, n := range h.Nexthops {
			if n.IsGroup() && n.ID != group {
				h.Policies = append(h.Policies, hopsOf(n.ID, h.Nexthops)...)
			}
		}
	}
	if len(h.Balance) == 0 {
		routes, err := r.K.RouteListFiltered(f.AF(),
			&netlink.Route{Table: balance, Protocol: netlink.RouteProtocol(r.Protocol)},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return h, fmt.Errorf("list %s routes of table %d: %w", f, balance, err)
		}
		for _, kr := range ofFamily(f, routes) {
			rt, ok := fromKernelRoute(kr)
			if !ok || rt.Dst != dflt || kr.Type != unix.RTN_UNICAST {
				continue
			}
			switch {
			case len(rt.Nexthops) > 0:
				h.Balance = rt.Nexthops
			case rt.Index > 0:
				h.Balance = []Nexthop{{Gateway: rt.Gateway, Index: rt.Index, Weight: 1}}
			}
		}
	}
	rules, err := r.K.RuleList(f.AF())
	if err != nil {
		return h, fmt.Errorf("list %s rules: %w", f, err)
	}
	for _, kr := range rulesOfFamily(f, rules) {
		ru := fromKernelRule(kr)
		if ru.Protocol == r.Protocol && ru.Priority == rulePriority+prioFwmark && ru.Mask != 0 {
			h.Pinned = append(h.Pinned, ru.Table)
		}
	}
	return h, nil
}

// hopsOf resolves group id (or a single next hop) to gateways and
// interfaces.
func hopsOf(id uint32, objs []NexthopObject) []Nexthop {
	byID := make(map[uint32]NexthopObject, len(objs))
	for _, n := range objs {
		byID[n.ID] = n
	}
	g, ok := byID[id]
	if !ok {
		return nil
	}
	if !g.IsGroup() {
		return []Nexthop{{Gateway: g.Gateway, Index: g.Index, Weight: 1}}
	}
	var out []Nexthop
	for _, m := range g.Members {
		if n, ok := byID[m.ID]; ok && !n.IsGroup() {
			out = append(out, Nexthop{Gateway: n.Gateway, Index: n.Index, Weight: m.Weight})
		}
	}
	return out
}

// nexthopsOf returns the objects of protocol of family f: its single next
// hops (not blackholes) and the groups with one of them as a member.
func nexthopsOf(f Family, protocol int, list []NexthopObject) []NexthopObject {
	single := make(map[uint32]bool)
	var out []NexthopObject
	for _, n := range list {
		if n.Protocol == protocol && !n.IsGroup() && !n.Blackhole && n.Family.norm() == f {
			single[n.ID] = true
			out = append(out, n)
		}
	}
	for _, n := range list {
		if n.Protocol == protocol && n.IsGroup() && slices.ContainsFunc(n.Members, func(m GroupMember) bool { return single[m.ID] }) {
			out = append(out, n)
		}
	}
	return out
}
