package netops

// The implementation of Plan before it was made cheap at 256 uplinks
// (sorting by formatted keys, per-call maps), kept as the oracle that
// TestPlanOracle compares the current one with.

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
)

func oldPlan(s Settings, uplinks []Uplink) Desired {
	// Sized for the common case, two routes, two rules and up to two
	// nexthop objects per uplink: a plan of 256 uplinks is made at every
	// reconcile, and growing these made half its garbage.
	n := len(uplinks)
	d := Desired{
		Routes:   make([]Route, 0, 2*n+4),
		Rules:    make([]Rule, 0, 2*n+8),
		Nexthops: make([]NexthopObject, 0, 2*n+2),
	}
	hops := make([]Nexthop, 0, n)
	members := make([]GroupMember, 0, 2*n)
	fam := s.Family.norm()
	dflt := fam.DefaultDst()
	ids := NexthopIDsFor(s.NexthopIDBase, fam)
	choices := oldChoose(s, uplinks)
	inDefault := make(map[string]bool)
	for _, m := range choices[0].Members {
		inDefault[m.Name] = true
	}
	// In slot order, so that the group's members keep their order (and a
	// hash-threshold group its cut of the hash space) however the
	// configuration file orders the uplinks.
	for _, i := range oldBySlot(uplinks) {
		u := uplinks[i]
		lan := fam == V6 && u.LANPrefix.IsValid()
		if lan {
			d.Rules = append(d.Rules, Rule{
				Priority: s.RulePriority + prioSource, Src: u.LANPrefix.Masked(),
				Table: u.Table, SuppressPrefixlen: -1, Protocol: s.RouteProtocol,
			})
		}
		// The sources of a delegated prefix must never fall through to
		// another uplink's table: while this one cannot route, its table
		// answers them unreachable.
		unreachable := Route{Table: u.Table, Dst: dflt, Type: Unreachable, Protocol: s.RouteProtocol}
		if u.Index <= 0 || !u.Addr.IsValid() {
			if lan {
				d.Routes = append(d.Routes, unreachable)
			}
			continue
		}
		src := u.Addr.Addr()
		onlink := onLink(u)
		if fam == V4 || u.Addr.Bits() != 128 {
			d.Routes = append(d.Routes,
				Route{Table: u.Table, Dst: u.Addr.Masked(), Index: u.Index, Src: src, Link: fam == V4, Protocol: s.RouteProtocol})
		}
		if lan && !u.Carrier {
			d.Routes = append(d.Routes, unreachable)
		} else {
			// Without a gateway (a point-to-point link) the default
			// route is `default dev IF`, scope link as ip(8) makes it.
			d.Routes = append(d.Routes, Route{Table: u.Table, Dst: dflt, Gateway: u.Gateway, Index: u.Index, Src: src,
				OnLink: onlink, Link: scopeLink(fam, u.Gateway), Protocol: s.RouteProtocol})
		}
		if srcRule := netip.PrefixFrom(src, src.BitLen()); !lan || srcRule != u.LANPrefix.Masked() {
			d.Rules = append(d.Rules, Rule{
				Priority: s.RulePriority + prioSource, Src: srcRule,
				Table: u.Table, SuppressPrefixlen: -1, Protocol: s.RouteProtocol,
			})
		}
		if s.MarkMask != 0 && u.Mark != 0 && u.Usable {
			d.Rules = append(d.Rules, Rule{
				Priority: s.RulePriority + prioFwmark, Mark: u.Mark & s.MarkMask, Mask: s.MarkMask,
				Table: u.Table, SuppressPrefixlen: -1, Protocol: s.RouteProtocol,
			})
		}
		switch {
		case s.Balancer == Multipath:
			if inDefault[u.Name] {
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
			for _, id := range objs {
				d.Nexthops = append(d.Nexthops, NexthopObject{
					ID: id, Gateway: u.Gateway, Index: u.Index, OnLink: onlink, Protocol: s.RouteProtocol,
				})
				if inDefault[u.Name] {
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
		// A hash-threshold group, replaced in place on any change
		// (weights included): pinned connections do not care how the
		// hash space is cut, only new ones are routed through it.
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
	d.oldPlanPolicies(s, uplinks, choices)

	d.Rules = append(d.Rules, Rule{
		Priority: s.RulePriority + prioSuppress, Table: mainTable, SuppressPrefixlen: 0, Protocol: s.RouteProtocol,
	})
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
	sortKeyed(d.Routes, func(Route) int { return 0 }, Route.appendKey)
	sortKeyed(d.Rules, func(r Rule) int { return r.Priority }, Rule.appendTo)
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

func oldPlanAll(s Settings, v4, v6 []Uplink) Desired {
	s.Family = V4
	d := oldPlan(s, v4)
	if len(v6) == 0 {
		return d
	}
	s.Family = V6
	d6 := oldPlan(s, v6)
	d.Routes = append(d.Routes, d6.Routes...)
	d.Rules = append(d.Rules, d6.Rules...)
	d.Nexthops = append(d.Nexthops, d6.Nexthops...)
	return d
}

func sortKeyed[T any](s []T, prio func(T) int, appendKey func(T, []byte) []byte) {
	type keyed struct {
		prio, i    int
		start, end int // the key in buf
	}
	k := make([]keyed, len(s))
	buf := make([]byte, 0, 64*len(s))
	for i, v := range s {
		start := len(buf)
		buf = appendKey(v, buf)
		k[i] = keyed{prio(v), i, start, len(buf)}
	}
	slices.SortFunc(k, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.prio, b.prio), bytes.Compare(buf[a.start:a.end], buf[b.start:b.end]), cmp.Compare(a.i, b.i))
	})
	// Position i takes s[k[i].i]: follow each cycle of that permutation
	// in place (a sorted copy of the elements was a third of a plan's
	// garbage).
	for i := range k {
		if k[i].i == i {
			continue
		}
		first := s[i]
		j := i
		for {
			src := k[j].i
			k[j].i = j
			if src == i {
				s[j] = first
				break
			}
			s[j] = s[src]
			j = src
		}
	}
}

func oldBySlot(uplinks []Uplink) []int {
	idx := make([]int, len(uplinks))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(uplinks[a].Slot, uplinks[b].Slot) })
	return idx
}

func (s Settings) oldPolicies(uplinks []Uplink) []Policy {
	def := Policy{Name: DefaultPolicy, LastResort: ResortMain, KeepDegraded: s.KeepDegraded}
	var all []string
	for _, u := range uplinks {
		all = append(all, u.Name)
	}
	def.Tiers = [][]string{all}
	out := []Policy{def}
	for _, p := range s.Policies {
		if p.Name == DefaultPolicy {
			out[0] = p
			continue
		}
		out = append(out, p)
	}
	out[0].Table = s.BalanceTable
	return out
}

func oldChoose(s Settings, uplinks []Uplink) []Choice {
	pols := s.oldPolicies(uplinks)
	out := make([]Choice, len(pols))
	for i, p := range pols {
		out[i] = oldChoose1(s, p, uplinks)
	}
	return out
}

func oldChoose1(s Settings, p Policy, uplinks []Uplink) Choice {
	c := Choice{Policy: p.Name, Table: p.Table, LastResort: p.LastResort}
	// By index, not by copies: a plan of 256 uplinks chooses several
	// times per reconcile.
	byName := make(map[string]int, len(uplinks))
	for i, u := range uplinks {
		byName[u.Name] = i
	}
	pick := func(tier []string, fit func(*Uplink) bool) []int {
		m := make([]int, 0, len(tier))
		for _, name := range tier {
			if i, ok := byName[name]; ok && routable(s, &uplinks[i]) && fit(&uplinks[i]) {
				m = append(m, i)
			}
		}
		return m
	}
	active := func(u *Uplink) bool { return u.InBalance || p.KeepDegraded && u.Degraded }
	degraded := func(u *Uplink) bool { return u.Degraded }
	for _, fit := range []func(*Uplink) bool{active, degraded} {
		for i, tier := range p.Tiers {
			if m := pick(tier, fit); len(m) > 0 {
				c.Tier = i + 1
				// In slot order (bySlot's).
				slices.SortStableFunc(m, func(a, b int) int { return cmp.Compare(uplinks[a].Slot, uplinks[b].Slot) })
				c.Members = make([]Member, 0, len(m))
				for _, j := range m {
					c.Members = append(c.Members, Member{Name: uplinks[j].Name, Weight: uplinks[j].Weight})
				}
				return c
			}
		}
		if p.KeepDegraded {
			break
		}
	}
	return c
}

func (d *Desired) oldPlanPolicies(s Settings, uplinks []Uplink, choices []Choice) {
	ids := NexthopIDsFor(s.NexthopIDBase, s.Family)
	byName := make(map[string]Uplink, len(uplinks))
	for _, u := range uplinks {
		byName[u.Name] = u
	}
	tables := map[string]int{choices[0].Policy: choices[0].Table}
	for i, c := range choices[1:] {
		tables[c.Policy] = ruleTarget(c, choices[0])
		if lr := lastResortRoute(s, c); lr != nil {
			d.Routes = append(d.Routes, *lr)
			continue
		}
		if c.Tier == 0 || i >= MaxPolicies {
			continue
		}
		route := Route{Table: c.Table, Dst: s.Family.DefaultDst(), Protocol: s.RouteProtocol}
		if s.Balancer == Multipath {
			for _, m := range c.Members {
				u := byName[m.Name]
				route.Nexthops = append(route.Nexthops, Nexthop{Gateway: u.Gateway, Index: u.Index, Weight: u.Weight})
			}
			if len(route.Nexthops) == 1 {
				h := route.Nexthops[0]
				route.Nexthops, route.Gateway, route.Index = nil, h.Gateway, h.Index
				route.OnLink = onLinkOf(uplinks, h.Index)
			}
		} else {
			g := NexthopObject{ID: ids.Policy(i), Type: GroupMultipath, Protocol: s.RouteProtocol, Alt: ids.Alt(ids.Policy(i))}
			for _, m := range c.Members {
				g.Members = append(g.Members, GroupMember{ID: ids.Uplink(byName[m.Name].Slot), Weight: m.Weight})
			}
			d.Nexthops = append(d.Nexthops, g)
			route.NHID = g.ID
		}
		d.Routes = append(d.Routes, route)
	}
	d.Rules = append(d.Rules, policyRules(s, s.Rules, tables)...)
}
