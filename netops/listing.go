package netops

import (
	"fmt"
	"maps"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// listRoutes reads into the cache the tables this reconcile needs, and
// returns those it listed when it listed only some (nil otherwise):
//   - full: every table, at once (kernel-filtered by protocol);
//   - every (the cache was emptied): the tables known to hold, or meant
//     to hold, the reconciler's routes, and the named ones;
//   - else the named tables (events, dirty) and those of desired routes
//     the cache lacks, looked for among the routes not the same as in
//     the last plan when it is trusted (lastplan.go): the others' tables
//     are cached or named.
func (r *Reconciler) listRoutes(d Desired, full, every, trust bool) (map[tableKey]bool, error) {
	c := &r.cache
	switch {
	case full:
		clear(c.namedTables)
		for _, f := range Families {
			if err := r.listEvery(f.AF()); err != nil {
				return nil, err
			}
		}
		r.learn(d)
		for _, f := range Families {
			c.listedAll(f.AF(), r.known)
		}
		return nil, nil
	case every:
		for _, t := range r.tables(d) {
			for _, f := range Families {
				if err := r.listInto(tableKey{f.AF(), t}); err != nil {
					return nil, err
				}
			}
		}
		r.learn(d)
		c.forget(r.known)
		return nil, nil
	}
	if r.known == nil {
		r.known = make(map[int]bool)
	}
	var listed map[tableKey]bool
	need := func(k tableKey) {
		if listed == nil {
			listed = make(map[tableKey]bool)
		}
		listed[k] = true
	}
	for k := range c.namedTables {
		need(k)
	}
	for j, rt := range d.Routes {
		if trust && r.last.sameRoute[j] {
			continue
		}
		r.known[rt.Table] = true
		if k := (tableKey{rt.Family.AF(), rt.Table}); c.tables[k] == nil {
			need(k)
		}
	}
	for k := range listed {
		if err := r.listInto(k); err != nil {
			return listed, err
		}
		if len(c.tables[k]) > 0 {
			r.known[k.table] = true
		}
	}
	return listed, nil
}

// tables returns the tables to list routes of for d after the cache was
// emptied: those known, those of d, and the named ones.
func (r *Reconciler) tables(d Desired) []int {
	set := maps.Clone(r.known)
	if set == nil {
		set = make(map[int]bool)
	}
	for _, rt := range d.Routes {
		set[rt.Table] = true
	}
	for k := range r.cache.namedTables {
		set[k.table] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// learn remembers the tables the cache found routes in, and those d
// wants routes in, as the tables to list next time the cache is emptied.
func (r *Reconciler) learn(d Desired) {
	r.known = make(map[int]bool)
	for k, routes := range r.cache.tables {
		if len(routes) > 0 {
			r.known[k.table] = true
		}
	}
	for _, rt := range d.Routes {
		r.known[rt.Table] = true
	}
	r.listedFor, r.needRescan = r.Protocol, false
}

// listInto lists table k into the cache.
func (r *Reconciler) listInto(k tableKey) error {
	listed, err := r.listTable(k.family, k.table)
	if err != nil {
		return err
	}
	r.cache.enter(k, listed)
	delete(r.cache.namedTables, k)
	return nil
}

// listEvery lists the routes of family in every table into the cache.
func (r *Reconciler) listEvery(family int) error {
	listed, err := r.listTable(family, unix.RT_TABLE_UNSPEC)
	if err != nil {
		return err
	}
	for _, cr := range listed {
		k := tableKey{family, cr.rt.Table}
		r.cache.tables[k] = append(r.cache.tables[k], cr)
		r.cache.index(k, cr.rt)
	}
	return nil
}

// listTable lists the reconciler's routes of family in table t (0: every
// table) from the kernel. github.com/vishvananda/netlink does not decode
// RTA_NH_ID: there, routes through a nexthop object look like plain or
// multipath routes, so those are listed again through NH.
func (r *Reconciler) listTable(family, t int) (cachedTable, error) {
	fam, _ := familyOfAF(family)
	routes, err := r.K.RouteListFiltered(family,
		&netlink.Route{Table: t, Protocol: netlink.RouteProtocol(r.Protocol)},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("list %s routes of table %d: %w", fam, t, err)
	}
	routes = ofFamily(fam, routes)
	var viaNH map[routeID]Route
	if r.NH != nil {
		nhRoutes, err := nhidRoutes(r.NH, fam, r.Protocol, t)
		if err != nil {
			return nil, fmt.Errorf("list routes through nexthop objects in table %d: %w", t, err)
		}
		viaNH = make(map[routeID]Route, len(nhRoutes))
		for _, rt := range nhRoutes {
			viaNH[routeIDOf(rt)] = rt
		}
	}
	out := make(cachedTable, 0, len(routes))
	at := make(map[routeID]int, len(routes)) // the last of one identity wins
	for _, kr := range routes {
		rt, ok := fromKernelRoute(kr)
		if !ok {
			continue
		}
		id := routeIDOf(rt)
		if nr, ok := viaNH[id]; ok {
			rt = nr
		}
		cr := &cachedRoute{kr: kr, rt: rt, id: id}
		if i, ok := at[id]; ok {
			out[i] = cr
			continue
		}
		at[id] = len(out)
		out = append(out, cr)
	}
	return out, nil
}

// listRules reads the rules of family that carry the reconciler's
// protocol, in the kernel's order, into the cache, unless it holds them
// (the kernel cannot filter a rule dump). It says whether it listed them.
func (r *Reconciler) listRules(family int) (bool, error) {
	if _, ok := r.cache.rules[family]; ok && r.cache.on {
		return false, nil
	}
	all, err := r.K.RuleList(family)
	if err != nil {
		return false, fmt.Errorf("list rules of family %d: %w", family, err)
	}
	fam, _ := familyOfAF(family)
	out := []*cachedRule{}
	for _, kr := range rulesOfFamily(fam, all) {
		if int(kr.Protocol) == r.Protocol {
			out = append(out, newCachedRule(kr))
		}
	}
	r.cache.rules[family] = out
	return true, nil
}
