package netops

import (
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
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
//     reconciler's own route writes, which arrive after the reconcile that
//     made them: they cost one listing of what they name at the next
//     reconcile, never a wrong cache. The echoes of its rule and nexthop
//     writes are told apart (RuleEcho, NexthopEcho, echo.go) and cost
//     nothing;
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
// A dirty table or nexthop ID is also named, so that the next reconcile
// lists exactly the named ones without looking for what is missing
// (after Invalidate, everything known is listed); the tables are indexed
// by the links and nexthop objects their routes use (byLink, byNH), so
// that a link or nexthop event does not look at every table. A dirty
// entry is listed again, kernel-filtered (one table of one protocol, one
// nexthop by ID); what the reconciler writes successfully is entered as
// written, in the form a listing would give. With the last plan
// (lastplan.go), the desired objects that did not change are not even
// looked up in the clean entries. Only the caller
// sees the events, so the cache is only correct if every event about
// routes, rules, nexthop objects, links and addresses reaches the
// Invalidate methods; without EnableCache the reconciler reads
// everything, as tests and one-shot callers want.

// tableKey names one routing table of one address family.
type tableKey struct{ family, table int }

// cachedRoute is one of the reconciler's routes as the kernel has it.
type cachedRoute struct {
	kr netlink.Route // what a deletion needs: family, table, destination, protocol, scope, type
	rt Route         // normalised (fromKernelRoute), compared with the desired route
	id routeID       // routeIDOf(rt)
}

// cachedTable is the reconciler's routes in one table: a handful, so a
// slice.
type cachedTable []*cachedRoute

// find returns the route id, or nil.
func (t cachedTable) find(id routeID) *cachedRoute {
	for _, cr := range t {
		if cr.id == id {
			return cr
		}
	}
	return nil
}

// set enters cr, in place of the route with its id.
func (t cachedTable) set(cr *cachedRoute) cachedTable {
	for i, x := range t {
		if x.id == cr.id {
			t[i] = cr
			return t
		}
	}
	return append(t, cr)
}

// cachedRule is one of the reconciler's rules as the kernel has it.
type cachedRule struct {
	kr netlink.Rule
	ru Rule // fromKernelRule(kr)
	id ruleID
}

// is says whether x has identity id, comparing the cheap fields first.
func (x *cachedRule) is(id ruleID) bool {
	return x.id.priority == id.priority && x.id.table == id.table && x.id == id
}

func newCachedRule(kr netlink.Rule) *cachedRule {
	ru := fromKernelRule(kr)
	return &cachedRule{kr: kr, ru: ru, id: ruleIDOf(ru)}
}

// ownCache holds what the reconciler knows is in the kernel. A table,
// rule set or nexthop ID missing from its maps is dirty. A table or
// nexthop ID made dirty is also named, so that the next reconcile lists
// it without looking for what is missing. With the cache off it holds
// what one reconcile listed, and is emptied at the next.
type ownCache struct {
	on     bool
	tables map[tableKey]cachedTable // a listed table is not nil, even if empty
	rules  map[int][]*cachedRule    // by family: the reconciler's rules
	// nexthops are the objects with the IDs of interest (those of the
	// reconciler's protocol, the desired ones, those named by events);
	// the zero NexthopObject (ID 0) records that there is none.
	nexthops map[uint32]NexthopObject
	// named are tables and nexthop IDs that events reported for the
	// reconciler's protocol: listed next time even if the reconciler has
	// never seen them (someone else created them with its protocol).
	namedTables map[tableKey]bool
	namedNH     map[uint32]bool
	// everything says the cache was emptied: the next reconcile lists
	// every table and nexthop object the reconciler knows of, not only
	// the named ones.
	everything bool
	// byLink and byNH index the cached tables by the links and nexthop
	// objects their routes use (or used: a hint, checked on use), for
	// the events that make them dirty.
	byLink map[int][]tableKey
	byNH   map[uint32][]tableKey
	// echo records the writes whose events are still to come (echo.go).
	echo echoes
}

// reset empties the cache: everything is dirty.
func (c *ownCache) reset() {
	c.everything = true
	c.tables = make(map[tableKey]cachedTable)
	c.byLink = make(map[int][]tableKey)
	c.byNH = make(map[uint32][]tableKey)
	c.rules = make(map[int][]*cachedRule)
	c.nexthops = make(map[uint32]NexthopObject)
	c.echo.reset()
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
	r.cache.dropVia(id)
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
			r.cache.namedNH[id] = true
		}
	}
	r.cache.dropIn(r.cache.byLink[ifindex], func(rt Route) bool { return routesVia(rt, ifindex) })
	delete(r.cache.byLink, ifindex) // its tables are dirty: listed again, they enter it anew
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
				c.dirtyTable(k.family, k.table)
				break
			}
		}
	}
}

// dropIn makes dirty the tables among ks holding a route that match
// accepts.
func (c *ownCache) dropIn(ks []tableKey, match func(Route) bool) {
	for _, k := range ks {
		if slices.ContainsFunc(c.tables[k], func(cr *cachedRoute) bool { return match(cr.rt) }) {
			c.dirtyTable(k.family, k.table)
		}
	}
}

// dropVia makes dirty the tables with routes through the nexthop object
// id: the kernel deletes them with it.
func (c *ownCache) dropVia(id uint32) {
	c.dropIn(c.byNH[id], func(rt Route) bool { return rt.NHID == id })
	delete(c.byNH, id)
}

// enter makes t the cached table k.
func (c *ownCache) enter(k tableKey, t cachedTable) {
	c.tables[k] = t
	for _, cr := range t {
		c.index(k, cr.rt)
	}
}

// index enters table k in byLink and byNH for rt.
func (c *ownCache) index(k tableKey, rt Route) {
	add := func(ks []tableKey) []tableKey {
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
		return ks
	}
	if rt.NHID != 0 {
		c.byNH[rt.NHID] = add(c.byNH[rt.NHID])
	}
	if rt.Index != 0 {
		c.byLink[rt.Index] = add(c.byLink[rt.Index])
	}
	for _, h := range rt.Nexthops {
		c.byLink[h.Index] = add(c.byLink[h.Index])
	}
}

// route returns the cached route id of table k, or nil.
func (c *ownCache) route(k tableKey, id routeID) *cachedRoute { return c.tables[k].find(id) }

// listedAll records, after a listing of every table, that the tables
// uplinkd uses and that held none of its routes are empty.
func (c *ownCache) listedAll(family int, tables map[int]bool) {
	for t := range tables {
		if k := (tableKey{family, t}); c.tables[k] == nil {
			c.tables[k] = cachedTable{}
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
	c.tables[k] = c.tables[k].set(&cachedRoute{kr: *toKernelRoute(rt), rt: rt, id: routeIDOf(rt)})
	c.index(k, rt)
}

// deletedRoute removes the route id from table's cache.
func (c *ownCache) deletedRoute(family, table int, id routeID) {
	k := tableKey{family, table}
	if routes := c.tables[k]; routes != nil {
		c.tables[k] = slices.DeleteFunc(routes, func(cr *cachedRoute) bool { return cr.id == id })
	}
}

// dirtyTable makes table dirty (a failed write, an event).
func (c *ownCache) dirtyTable(family, table int) {
	k := tableKey{family, table}
	delete(c.tables, k)
	if c.namedTables != nil {
		c.namedTables[k] = true
	}
}

// addedRule enters ru, just added to the kernel, in the cache.
func (c *ownCache) addedRule(family int, ru Rule) {
	if rules, ok := c.rules[family]; ok {
		c.rules[family] = append(rules, newCachedRule(*toKernelRule(ru)))
	}
}

// deletedRule removes one rule with the identity of kr from the cache.
func (c *ownCache) deletedRule(family int, kr *cachedRule) {
	rules := c.rules[family]
	if i := slices.IndexFunc(rules, func(x *cachedRule) bool { return x.is(kr.id) }); i >= 0 {
		c.rules[family] = slices.Delete(rules, i, i+1)
	}
}

// hasRule says whether the cached rules of family have one with identity
// id.
func (c *ownCache) hasRule(family int, id ruleID) bool {
	return slices.ContainsFunc(c.rules[family], func(x *cachedRule) bool { return x.is(id) })
}

// dirtyRules makes the rules of family dirty after a failed write.
func (c *ownCache) dirtyRules(family int) { delete(c.rules, family) }
