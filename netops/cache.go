package netops

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The reconciler's cache of its own kernel objects (EnableCache).
//
// Without it every reconcile lists every table uplinkd uses, its rules and
// its nexthop objects: with 256 uplinks, some 800 netlink round trips for
// one carrier change. With it, a reconcile reads only what may have
// changed since the last one: the kernel objects the reconciler last read
// or wrote are kept per (family, table), per family's rules and per
// nexthop ID, and an entry is dropped (made dirty) when
//
//   - the caller reports a kernel event about it (InvalidateTable,
//     InvalidateRules, InvalidateNexthop), including the echoes of the
//     reconciler's own writes, which arrive after the reconcile that made
//     them: they cost one listing of what they name at the next reconcile,
//     never a wrong cache;
//   - the caller reports a link or address event (InvalidateLink,
//     InvalidateAddr): the kernel deletes routes and nexthop objects
//     without any notification when their link goes down or loses carrier
//     (nexthop objects, a group they leave empty and the routes through
//     it), or when the preferred source address of a route is removed, so
//     the tables routed over that link or from that address, the link's
//     nexthop objects and every group are read again;
//   - a nexthop object read again is gone: the tables with routes through
//     it are read again in the same reconcile;
//   - events were lost or the subscription was made again (Invalidate);
//   - a write failed, or deleted a nexthop object (which takes the routes
//     through it along).
//
// A dirty entry is listed again, kernel-filtered (one table of one
// protocol, one nexthop by ID); what the reconciler writes successfully is
// entered as written, in the form a listing would give. Only the caller
// sees the events, so the cache is only correct if every event about
// routes, rules, nexthop objects, links and addresses reaches the
// Invalidate methods; without EnableCache the reconciler reads
// everything, as tests and one-shot callers want.

// tableKey names one routing table of one address family.
type tableKey struct{ family, table int }

// cachedRoute is one of the reconciler's routes as the kernel has it.
type cachedRoute struct {
	kr  netlink.Route // what a deletion needs: family, table, destination, protocol, scope, type
	rt  Route         // normalised (fromKernelRoute), for matching links and nexthop objects
	str string        // rt.String(), compared with the desired route's
}

// cachedRule is one of the reconciler's rules as the kernel has it.
type cachedRule struct {
	kr  netlink.Rule
	str string
}

// ownCache holds what the reconciler knows is in the kernel. A table,
// rule set or nexthop ID missing from its maps is dirty.
type ownCache struct {
	on     bool
	tables map[tableKey]map[string]*cachedRoute // by Route.Key
	rules  map[int][]cachedRule                 // by family: the reconciler's rules
	// nexthops are the objects with the IDs of interest (those of the
	// reconciler's protocol, the desired ones, those named by events);
	// the zero NexthopObject (ID 0) records that there is none.
	nexthops map[uint32]NexthopObject
	// named are tables and nexthop IDs that events reported for the
	// reconciler's protocol: listed next time even if the reconciler has
	// never seen them (someone else created them with its protocol).
	namedTables map[tableKey]bool
	namedNH     map[uint32]bool
}

// reset empties the cache: everything is dirty.
func (c *ownCache) reset() {
	c.tables = make(map[tableKey]map[string]*cachedRoute)
	c.rules = make(map[int][]cachedRule)
	c.nexthops = make(map[uint32]NexthopObject)
	if c.namedTables == nil {
		c.namedTables = make(map[tableKey]bool)
		c.namedNH = make(map[uint32]bool)
	}
}

// EnableCache makes the reconciler keep what it read and wrote, and read
// again only what the Invalidate methods made dirty (see cache.go). The
// caller must report every kernel event about routes, rules, nexthop
// objects, links and addresses from now on.
func (r *Reconciler) EnableCache() {
	r.cache.on = true
	r.cache.reset()
}

// Invalidate makes the next reconcile read everything of the reconciler's
// again (still filtered by table and protocol): events were lost.
func (r *Reconciler) Invalidate() {
	if r == nil || !r.cache.on {
		return
	}
	r.cache.reset()
}

// InvalidateTable reports an event about a route in table of family
// (unix.AF_INET or AF_INET6; 0: of any family): one of the reconciler's
// protocol, or any route in a table the reconciler uses (a foreign route
// can replace one of its own).
func (r *Reconciler) InvalidateTable(family, table int) {
	if r == nil || !r.cache.on {
		return
	}
	for _, f := range afs(family) {
		k := tableKey{f, table}
		delete(r.cache.tables, k)
		r.cache.namedTables[k] = true
	}
}

// InvalidateRules reports an event about a rule of family (0: of any
// family).
func (r *Reconciler) InvalidateRules(family int) {
	if r == nil || !r.cache.on {
		return
	}
	for _, f := range afs(family) {
		delete(r.cache.rules, f)
	}
}

// afs returns family, or every family's address family number for 0.
func afs(family int) []int {
	if family != 0 {
		return []int{family}
	}
	out := make([]int, len(Families))
	for i, f := range Families {
		out[i] = f.AF()
	}
	return out
}

// InvalidateNexthop reports an event about the nexthop object id. The
// routes through it may be gone too: the kernel deletes them silently
// with it.
func (r *Reconciler) InvalidateNexthop(id uint32) {
	if r == nil || !r.cache.on {
		return
	}
	delete(r.cache.nexthops, id)
	r.cache.namedNH[id] = true
	r.cache.dropTables(func(rt Route) bool { return rt.NHID == id })
}

// InvalidateLink reports an event about the link with index ifindex (up,
// down, carrier, rename, deletion). The kernel deletes nexthop objects on
// a link that goes down or loses carrier, updates the groups that use them
// and deletes a group left empty with the routes through it, and deletes
// the routes through a link that goes down, all without notifications:
// the tables with routes through the link, the link's nexthop objects and
// every group are read again, and the tables with routes through a
// nexthop object found gone then (listedNexthops).
func (r *Reconciler) InvalidateLink(ifindex int) {
	if r == nil || !r.cache.on {
		return
	}
	for id, n := range r.cache.nexthops {
		if n.IsGroup() || n.Index == ifindex {
			delete(r.cache.nexthops, id)
		}
	}
	r.cache.dropTables(func(rt Route) bool { return routesVia(rt, ifindex) })
}

// InvalidateAddr reports an IPv4 or IPv6 address added to or removed from
// the link with index ifindex. Removing it deletes, silently, the routes
// through the link and those, in any table, with the address as their
// preferred source.
func (r *Reconciler) InvalidateAddr(ifindex int, addr netip.Addr) {
	if r == nil || !r.cache.on {
		return
	}
	r.InvalidateLink(ifindex)
	r.cache.dropTables(func(rt Route) bool { return addr.IsValid() && rt.Src == addr })
}

// routesVia says whether rt leaves through the link ifindex.
func routesVia(rt Route, ifindex int) bool {
	return rt.Index == ifindex || slices.ContainsFunc(rt.Nexthops, func(h Nexthop) bool { return h.Index == ifindex })
}

// dropTables makes dirty every cached table holding a route that match
// accepts.
func (c *ownCache) dropTables(match func(Route) bool) {
	for k, routes := range c.tables {
		for _, cr := range routes {
			if match(cr.rt) {
				delete(c.tables, k)
				break
			}
		}
	}
}

// listRoutes returns the reconciler's routes of family in tables (0: every
// table), keyed by Route.Key: from the cache for clean tables, listed in
// the kernel (and entered in the cache) for the others.
func (r *Reconciler) listRoutes(family int, tables []int) (map[string]*cachedRoute, error) {
	out := make(map[string]*cachedRoute, 2*len(tables)) // an uplink table holds two
	for _, t := range tables {
		k := tableKey{family, t}
		if routes, ok := r.cache.tables[k]; ok && r.cache.on && t != unix.RT_TABLE_UNSPEC {
			maps.Copy(out, routes)
			continue
		}
		listed, err := r.listTable(family, t)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, listed)
		if !r.cache.on {
			continue
		}
		delete(r.cache.namedTables, k)
		if t != unix.RT_TABLE_UNSPEC {
			r.cache.tables[k] = listed
			continue
		}
		// Every table at once: each one listed is clean, and so is
		// every other one (empty), but only those that hold routes, or
		// will, are kept (see learn).
		clear(r.cache.namedTables)
		for key, cr := range listed {
			tk := tableKey{family, cr.rt.Table}
			if r.cache.tables[tk] == nil {
				r.cache.tables[tk] = make(map[string]*cachedRoute)
			}
			r.cache.tables[tk][key] = cr
		}
	}
	return out, nil
}

// listTable lists the reconciler's routes of family in table t (0: every
// table) from the kernel. github.com/vishvananda/netlink does not decode
// RTA_NH_ID: there, routes through a nexthop object look like plain or
// multipath routes, so those are listed again through NH.
func (r *Reconciler) listTable(family, t int) (map[string]*cachedRoute, error) {
	fam, _ := familyOfAF(family)
	routes, err := r.K.RouteListFiltered(family,
		&netlink.Route{Table: t, Protocol: netlink.RouteProtocol(r.Protocol)},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("list %s routes of table %d: %w", fam, t, err)
	}
	routes = ofFamily(fam, routes)
	viaNH := make(map[string]Route)
	if r.NH != nil {
		nhRoutes, err := nhidRoutes(r.NH, fam, r.Protocol, t)
		if err != nil {
			return nil, fmt.Errorf("list routes through nexthop objects in table %d: %w", t, err)
		}
		for _, rt := range nhRoutes {
			viaNH[rt.Key()] = rt
		}
	}
	out := make(map[string]*cachedRoute, len(routes))
	for _, kr := range routes {
		rt, ok := fromKernelRoute(kr)
		if !ok {
			continue
		}
		if nr, ok := viaNH[rt.Key()]; ok {
			rt = nr
		}
		out[rt.Key()] = &cachedRoute{kr: kr, rt: rt, str: rt.String()}
	}
	return out, nil
}

// listedAll records, after a listing of every table, that the tables
// uplinkd uses and that held none of its routes are empty.
func (c *ownCache) listedAll(family int, tables map[int]bool) {
	if !c.on {
		return
	}
	for t := range tables {
		if k := (tableKey{family, t}); c.tables[k] == nil {
			c.tables[k] = make(map[string]*cachedRoute)
		}
	}
}

// forget drops the tables that are not in known: events about them are no
// longer reported (the loop filters by the tables in use), so what the
// cache holds of them would go stale.
func (c *ownCache) forget(known map[int]bool) {
	for k := range c.tables {
		if !known[k.table] {
			delete(c.tables, k)
		}
	}
}

// wroteRoute enters rt, just replaced in the kernel, in the cache.
func (c *ownCache) wroteRoute(family int, rt Route) {
	if !c.on {
		return
	}
	k := tableKey{family, rt.Table}
	if c.tables[k] == nil {
		// Not listed: nothing is known of the rest of the table.
		return
	}
	c.tables[k][rt.Key()] = &cachedRoute{kr: *toKernelRoute(rt), rt: rt, str: rt.String()}
}

// deletedRoute removes the route with key from table's cache.
func (c *ownCache) deletedRoute(family, table int, key string) {
	if routes := c.tables[tableKey{family, table}]; routes != nil {
		delete(routes, key)
	}
}

// dirtyTable makes table dirty after a failed write.
func (c *ownCache) dirtyTable(family, table int) { delete(c.tables, tableKey{family, table}) }

// listRules returns the rules of family that carry the reconciler's
// protocol, in the kernel's order, from the cache or from the kernel
// (which cannot filter a rule dump).
func (r *Reconciler) listRules(family int) ([]cachedRule, error) {
	if rules, ok := r.cache.rules[family]; ok && r.cache.on {
		return rules, nil // the cache's own: only read (Reconcile appends it to its list)
	}
	all, err := r.K.RuleList(family)
	if err != nil {
		return nil, fmt.Errorf("list rules of family %d: %w", family, err)
	}
	fam, _ := familyOfAF(family)
	var out []cachedRule
	for _, kr := range rulesOfFamily(fam, all) {
		if int(kr.Protocol) == r.Protocol {
			out = append(out, cachedRule{kr: kr, str: fromKernelRule(kr).String()})
		}
	}
	if r.cache.on {
		r.cache.rules[family] = slices.Clone(out)
	}
	return out, nil
}

// addedRule enters ru, just added to the kernel, in the cache.
func (c *ownCache) addedRule(family int, ru Rule) {
	if rules, ok := c.rules[family]; ok {
		c.rules[family] = append(rules, cachedRule{kr: *toKernelRule(ru), str: ru.String()})
	}
}

// deletedRule removes one rule equal to kr from the cache.
func (c *ownCache) deletedRule(family int, kr cachedRule) {
	rules := c.rules[family]
	if i := slices.IndexFunc(rules, func(x cachedRule) bool { return x.str == kr.str }); i >= 0 {
		c.rules[family] = slices.Delete(rules, i, i+1)
	}
}

// dirtyRules makes the rules of family dirty after a failed write.
func (c *ownCache) dirtyRules(family int) { delete(c.rules, family) }

// cachedNexthops returns the cached objects among ids, and the IDs that
// must be fetched.
func (c *ownCache) cachedNexthops(ids []uint32) (have []NexthopObject, fetch []uint32) {
	for _, id := range ids {
		n, ok := c.nexthops[id]
		switch {
		case !c.on || !ok:
			fetch = append(fetch, id)
		case n.ID != 0:
			have = append(have, n)
		}
	}
	return have, fetch
}

// listedNexthops enters the objects a listing found among ids (all of
// them at a full listing, every ID then).
func (c *ownCache) listedNexthops(list []NexthopObject, ids []uint32, all bool, protocol int) {
	if !c.on {
		return
	}
	if all {
		c.nexthops = make(map[uint32]NexthopObject)
		clear(c.namedNH)
	}
	for _, id := range ids {
		c.nexthops[id] = NexthopObject{}
		delete(c.namedNH, id)
	}
	for _, n := range list {
		if all && n.Protocol != protocol && !slices.Contains(ids, n.ID) {
			continue // a foreign object: not of interest
		}
		c.nexthops[n.ID] = n
	}
	if all {
		return // the tables are listed afresh too
	}
	// The kernel deleted the routes through an object that is gone.
	for _, id := range ids {
		if c.nexthops[id].ID == 0 {
			c.dropTables(func(rt Route) bool { return rt.NHID == id })
		}
	}
}

// wroteNexthop enters n, just created or replaced, in the form a listing
// gives (timers in clock ticks).
func (c *ownCache) wroteNexthop(n NexthopObject) {
	if !c.on {
		return
	}
	b, err := marshalNexthop(n)
	if err == nil {
		n, err = parseNexthop(b)
	}
	if err != nil {
		delete(c.nexthops, n.ID)
		return
	}
	c.nexthops[n.ID] = n
}

// deletedNexthop records that id is gone, and with it the routes through
// it: their tables are read again.
func (c *ownCache) deletedNexthop(id uint32) {
	if !c.on {
		return
	}
	c.nexthops[id] = NexthopObject{}
	c.dropTables(func(rt Route) bool { return rt.NHID == id })
}

// dirtyNexthop makes id dirty after a failed write.
func (c *ownCache) dirtyNexthop(id uint32) {
	delete(c.nexthops, id)
	c.dropTables(func(rt Route) bool { return rt.NHID == id })
}
