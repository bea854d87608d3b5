package netops

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernel is the part of a netlink handle the reconciler uses.
// *netlink.Handle implements it; tests may substitute a fake.
type Kernel interface {
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	RuleList(family int) ([]netlink.Rule, error)
	RuleAdd(rule *netlink.Rule) error
	RuleDel(rule *netlink.Rule) error
}

// Reconciler makes the kernel match a Desired state. It owns exactly the
// routes, rules and nexthop objects that carry its route protocol.
type Reconciler struct {
	K Kernel
	// NH handles nexthop objects and the routes through them; nil when
	// the kernel has none (Desired.Nexthops must then be empty).
	NH       NexthopKernel
	Protocol int

	// Routes are listed table by table, the kernel filtering by table and
	// protocol (see Handle), so that a reconcile costs what uplinkd owns,
	// not what main holds. The tables listed are those of the desired
	// routes and those where routes of the protocol were last seen: lost
	// events cannot put routes of the protocol elsewhere. The first
	// listing, and the first after Rescan or a change of Protocol, covers
	// every table (still filtered by protocol in the kernel), to find what
	// an earlier run, configured with other tables, left anywhere.
	known      map[int]bool
	listedFor  int // the protocol the known tables are for; 0: none yet
	needRescan bool
	// Likewise, nexthop objects are fetched by ID, those desired and
	// those of the protocol last seen, except at a full listing.
	knownNH map[uint32]bool
	// cache keeps what was read and written, when enabled (cache.go).
	cache ownCache
	// last is the last plan (lastplan.go).
	last lastPlan
	// usable are the nexthop IDs that exist now (syncNexthops), kept
	// from one reconcile to the next only to be reused.
	usable map[uint32]bool
	// phys says at which of its two IDs each hash-threshold group is
	// (altgroup.go), by the plan's ID; physNext is the spare map for the
	// next reconcile. swaps are the groups this reconcile moves;
	// physNH and physRoutes hold the plan with the groups' IDs when
	// ownNH, ownRoutes.
	phys, physNext   map[uint32]uint32
	swaps            []altSwap
	physNH           []NexthopObject
	physRoutes       []Route
	ownNH, ownRoutes bool
}

// full says whether this reconcile lists everything (filtered by
// protocol) rather than what is known to be, or meant to be, ours.
func (r *Reconciler) full() bool { return r.needRescan || r.listedFor != r.Protocol }

// Rescan makes the next reconcile list routes of every table, not only
// the known ones.
func (r *Reconciler) Rescan() { r.needRescan = true }

// Result says what one reconcile did.
type Result struct {
	Added   []string // nexthops and routes replaced or rules added, in `ip` syntax
	Removed []string
	Took    time.Duration
}

// Changes is the number of kernel writes done.
func (r Result) Changes() int { return len(r.Added) + len(r.Removed) }

// Reconcile diffs d against the kernel and applies the difference, make
// before break: nexthop objects first (single next hops, then the groups
// that use them), then new and changed routes, then missing rules, then
// stale rules, routes, groups and single next hops. Objects that are
// already gone are not an error. On error the returned Result still lists
// what was done; a later call finishes the job. Reconcile keeps a copy of
// d's slices (not of the objects' own slices and pointers, which the
// caller must leave as they are).
func (r *Reconciler) Reconcile(d Desired) (res Result, err error) {
	start := time.Now()
	defer func() {
		res.Took = time.Since(start)
		r.last.valid = err == nil && r.cache.on
	}()

	full := r.full()
	if full || !r.cache.on {
		r.cache.reset()
	}
	every := r.cache.everything
	trust := r.cache.on && r.last.valid && !every
	// A full listing of the nexthop objects comes first: it says where
	// the hash-threshold groups are.
	var listed *nhListing
	if full && r.NH != nil {
		listed = &nhListing{}
		listed.objs, listed.err = r.NH.NexthopList()
	}
	d = r.physical(d, full, listed.list())
	r.last.diff(d)

	// Rules that only go, before anything is read or written (see
	// removeFirst); the rest is make before break.
	var errs []error
	if trust {
		errs = r.removeFirst(d.Rules, &res)
	}

	// Nexthops first: deleting a group to create it anew takes the routes
	// through it along, and the route listing below must see that.
	staleNH, nhErrs := r.syncNexthops(d.Nexthops, full, every, trust, listed, &res)
	errs = append(errs, nhErrs...)
	d.Routes = r.moveRoutes(d.Routes)

	tables, err := r.listRoutes(d, full, every, trust)
	if err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	before := len(errs)
	errs = r.replaceRoutes(d.Routes, trust, tables, &res, errs)
	staleNH = r.keepInUse(staleNH, len(errs) > before)

	var rulesListed []int
	for _, f := range Families {
		read, err := r.listRules(f.AF())
		if err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		if read {
			rulesListed = append(rulesListed, f.AF())
		}
	}
	// Everything known was listed: from now on, what is dirty is named.
	r.cache.everything = false
	trustRules := func(family int) bool { return trust && !slices.Contains(rulesListed, family) }
	staleRules, haveRules := r.staleRules(d.Rules, trustRules, 0)
	errs = r.addRules(d.Rules, trustRules, haveRules, &res, errs)
	errs = r.deleteRules(staleRules, &res, errs)
	errs = r.deleteRoutes(r.staleRoutes(d.Routes, trust, tables), &res, errs)
	// Groups before the single next hops they use.
	for _, n := range staleNH {
		err := r.NH.NexthopDel(n.ID)
		if err != nil && !gone(err) {
			r.cache.dirtyNexthop(n.ID)
			errs = append(errs, fmt.Errorf("delete nexthop %s: %w", n, err))
			continue
		}
		if err == nil {
			r.cache.wroteNexthopID(n.ID, true)
		}
		r.cache.deletedNexthop(n.ID)
		res.Removed = append(res.Removed, "nexthop "+n.String())
	}
	return res, errors.Join(errs...)
}

// removeFirst deletes at once the rules the last plan had and this one
// has not, of each family whose cached rules are clean, when the plan
// adds or changes none of that family: a failover (the fwmark rule of
// connections pinned to an uplink that lost its carrier or its probes),
// whose one write should not wait for the nexthop objects and tables to
// be read again. What those rules matched falls to the rules below them,
// as it does when the reconcile is done: nothing the reconcile writes
// meanwhile is a place they sent it to, so the order changes nothing but
// when. A plan that also adds or changes rules of the family removes them
// after the rest, make before break.
func (r *Reconciler) removeFirst(rules []Rule, res *Result) []error {
	var errs []error
	for _, f := range Families {
		fam := f.AF()
		if _, clean := r.cache.rules[fam]; !clean || !r.onlyRemoves(rules, fam) {
			continue
		}
		stale, _ := r.staleRules(rules, func(family int) bool { return family == fam }, fam)
		errs = r.deleteRules(stale, res, errs)
	}
	return errs
}

// onlyRemoves says whether every rule of family fam in rules is the same
// as in the last plan, and the last plan had some other: the plan only
// removes rules of the family.
func (r *Reconciler) onlyRemoves(rules []Rule, fam int) bool {
	for j, ru := range rules {
		if ru.Family.AF() == fam && !r.last.sameRule[j] {
			return false
		}
	}
	return slices.ContainsFunc(r.last.removedRules, func(ru Rule) bool { return ru.Family.AF() == fam })
}

// replaceRoutes creates or replaces the desired routes the kernel lacks
// or has otherwise. With trust, a route the same as in the last plan in a
// table not listed again is in the kernel (lastplan.go).
func (r *Reconciler) replaceRoutes(routes []Route, trust bool, listed map[tableKey]bool, res *Result, errs []error) []error {
	for j, rt := range routes {
		k := tableKey{rt.Family.AF(), rt.Table}
		if trust && r.last.sameRoute[j] && !listed[k] {
			continue
		}
		if routeMatches(r.cache.route(k, routeIDOf(rt)), rt) {
			continue
		}
		var err error
		switch {
		case rt.NHID == 0:
			err = r.K.RouteReplace(toKernelRoute(rt))
		case !r.usable[rt.NHID]:
			err = fmt.Errorf("nexthop %d is not available", rt.NHID)
		default:
			err = r.NH.NHIDRouteReplace(rt)
		}
		if err != nil {
			r.cache.dirtyTable(k.family, k.table)
			errs = append(errs, fmt.Errorf("replace route %s: %w", rt, err))
			continue
		}
		r.cache.wroteRoute(k.family, rt)
		res.Added = append(res.Added, "route "+rt.String())
	}
	return errs
}

// staleRoute is a route to delete, as the cache has it.
type staleRoute struct {
	k  tableKey
	id routeID
	cr *cachedRoute
}

// staleRoutes returns the routes of the protocol the kernel has and the
// plan does not: in the tables listed again, or all with no trust, every
// one the plan lacks; in the others, those of the last plan's removed
// routes they hold (lastplan.go).
func (r *Reconciler) staleRoutes(routes []Route, trust bool, listed map[tableKey]bool) []staleRoute {
	want := newWanted(routes, routeIDOf, func(rt Route, id routeID) bool { return rt.Table == id.table })
	var stale []staleRoute
	whole := func(k tableKey) {
		for _, cr := range r.cache.tables[k] {
			if !want.has(cr.id) {
				stale = append(stale, staleRoute{k, cr.id, cr})
			}
		}
	}
	if !trust {
		for k := range r.cache.tables {
			whole(k)
		}
		return stale
	}
	for k := range listed {
		whole(k)
	}
	for _, rt := range r.last.removedRoutes {
		k, id := tableKey{rt.Family.AF(), rt.Table}, routeIDOf(rt)
		if cr := r.cache.route(k, id); cr != nil && !listed[k] && !want.has(id) &&
			!slices.ContainsFunc(stale, func(s staleRoute) bool { return s.k == k && s.id == id }) {
			stale = append(stale, staleRoute{k, id, cr})
		}
	}
	return stale
}

// deleteRoutes deletes the stale routes.
func (r *Reconciler) deleteRoutes(stale []staleRoute, res *Result, errs []error) []error {
	for _, s := range stale {
		// The kernel matches scope and type on delete, so pass the listed ones.
		kr := s.cr.kr
		del := &netlink.Route{Family: s.k.family, Table: kr.Table, Dst: kr.Dst, Protocol: kr.Protocol, Scope: kr.Scope, Type: kr.Type}
		if err := r.K.RouteDel(del); err != nil && !gone(err) {
			r.cache.dirtyTable(s.k.family, s.k.table)
			errs = append(errs, fmt.Errorf("delete route %s: %w", s.cr.rt, err))
			continue
		}
		r.cache.deletedRoute(s.k.family, s.k.table, s.id)
		res.Removed = append(res.Removed, "route "+s.cr.rt.String())
	}
	return errs
}

// staleRules returns the rules of the protocol the kernel has and the plan
// does not, and the duplicates, in the kernel's order: of a family whose
// rules are not trusted, every one; of a trusted family (lastplan.go),
// those of the last plan's removed rules it holds. It also returns the
// rules the untrusted families hold, by identity. With only, only that
// family's (an address family number; 0: every family).
func (r *Reconciler) staleRules(rules []Rule, trusted func(family int) bool, only int) (stale []*cachedRule, seen map[ruleID]int) {
	want := newWanted(rules, ruleIDOf, maybeRule)
	for _, f := range Families {
		fam := f.AF()
		if only != 0 && fam != only {
			continue
		}
		if trusted(fam) {
			var removed []ruleID
			for _, ru := range r.last.removedRules {
				if id := ruleIDOf(ru); ru.Family.AF() == fam && !want.has(id) {
					removed = append(removed, id)
				}
			}
			if len(removed) == 0 {
				continue
			}
			for _, kr := range r.cache.rules[fam] {
				if slices.Contains(removed, kr.id) {
					stale = append(stale, kr)
				}
			}
			continue
		}
		if seen == nil {
			seen = make(map[ruleID]int)
		}
		for _, kr := range r.cache.rules[fam] {
			seen[kr.id]++
			if !want.has(kr.id) || seen[kr.id] > 1 {
				stale = append(stale, kr)
			}
		}
	}
	return stale, seen
}

// addRules adds the desired rules the kernel lacks: those of a family
// not trusted that it does not hold (have), those of a trusted family
// (lastplan.go) that are not the same as in the last plan and that its
// cache lacks.
func (r *Reconciler) addRules(rules []Rule, trusted func(family int) bool, have map[ruleID]int, res *Result, errs []error) []error {
	for j, ru := range rules {
		fam := ru.Family.AF()
		switch {
		case !trusted(fam):
			if have[ruleIDOf(ru)] > 0 {
				continue
			}
		case r.last.sameRule[j] || r.cache.hasRule(fam, ruleIDOf(ru)):
			continue
		}
		err := r.K.RuleAdd(toKernelRule(ru))
		switch {
		case errors.Is(err, unix.EEXIST):
			r.cache.dirtyRules(fam) // the cache did not know it
		case err != nil:
			r.cache.dirtyRules(fam)
			errs = append(errs, fmt.Errorf("add rule %s: %w", ru, err))
			continue
		default:
			r.cache.addedRule(fam, ru)
			r.cache.wroteRule(fam, ru, false)
		}
		res.Added = append(res.Added, "rule "+ru.String())
	}
	return errs
}

// deleteRules deletes the stale rules.
func (r *Reconciler) deleteRules(stale []*cachedRule, res *Result, errs []error) []error {
	for _, kr := range stale {
		fam := kr.ru.Family.AF()
		err := r.K.RuleDel(&kr.kr)
		if err != nil && !gone(err) {
			r.cache.dirtyRules(fam)
			errs = append(errs, fmt.Errorf("delete rule %s: %w", kr.ru, err))
			continue
		}
		if err == nil {
			r.cache.wroteRule(fam, Rule{Priority: kr.kr.Priority, Table: kr.kr.Table, Protocol: int(kr.kr.Protocol)}, true)
		}
		r.cache.deletedRule(fam, kr)
		res.Removed = append(res.Removed, "rule "+kr.ru.String())
	}
	return errs
}

// Cleanup removes every route, rule and nexthop object carrying the
// reconciler's protocol.
func (r *Reconciler) Cleanup() (Result, error) {
	r.Invalidate() // what is removed is read, not remembered
	return r.Reconcile(Desired{})
}

// replaceable says whether the kernel can turn have into want in place.
func replaceable(have, want NexthopObject) bool {
	switch {
	case have.Unknown || have.IsGroup() != want.IsGroup():
		return false
	case !want.IsGroup():
		return true
	}
	return have.Type == want.Type && (want.Type != GroupResilient || have.Buckets == want.Buckets)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// unsupported says whether err means the kernel lacks a feature.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT)
}

func gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}
