package netops

import (
	"fmt"

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
	// Nexthops are all nexthop objects of the reconciler's protocol.
	Nexthops []NexthopObject
}

// Holds reads what the kernel holds of uplinkd's routing: the balance
// route of table balance and the fwmark rules at rulePriority's fwmark
// priority, both of the reconciler's protocol.
func (r *Reconciler) Holds(balance, rulePriority int) (Held, error) {
	var h Held
	if r.NH != nil {
		list, err := r.NH.NexthopList()
		if err != nil && !unsupported(err) {
			return h, fmt.Errorf("list nexthops: %w", err)
		}
		for _, n := range list {
			if n.Protocol == r.Protocol {
				h.Nexthops = append(h.Nexthops, n)
			}
		}
		routes, err := r.NH.NHIDRouteList(r.Protocol, balance)
		if err != nil && !unsupported(err) {
			return h, fmt.Errorf("list routes through nexthop objects: %w", err)
		}
		var group uint32
		for _, rt := range routes {
			if rt.Table == balance && rt.Dst == defaultDst {
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
		routes, err := r.K.RouteListFiltered(netlink.FAMILY_V4,
			&netlink.Route{Table: balance, Protocol: netlink.RouteProtocol(r.Protocol)},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return h, fmt.Errorf("list routes of table %d: %w", balance, err)
		}
		for _, kr := range routes {
			rt, ok := fromKernelRoute(kr)
			if !ok || rt.Dst != defaultDst || kr.Type != unix.RTN_UNICAST {
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
	rules, err := r.K.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return h, fmt.Errorf("list rules: %w", err)
	}
	for _, kr := range rules {
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
