package netops

// With the cache on (cache.go), the reconciler also keeps the plan it
// reconciled last, so that a reconcile costs what changed in the plan and
// what events made dirty, not the size of the plan: one carrier change of
// 256 uplinks changes two or three of some 1,500 objects.
//
// The invariant. When the last reconcile ended without error (valid),
// every clean cache entry (a table of one family, the rules of one
// family, a nexthop ID) holds what the kernel has, and that is objects of
// the last plan only: each was found equal to the plan or written, every
// other object of the protocol there was deleted, and what failed made
// its entry dirty (and the reconcile invalid). Events, link and address
// invalidation and the reconciler's own deletions make entries dirty; a
// dirty entry is listed again before it is used.
//
// So, at the next reconcile, when the last one was valid (trusted):
//   - an object equal to one of the last plan (same), whose entry was not
//     listed in this reconcile, is in the kernel: one comparison, no
//     lookup;
//   - any other desired object is diffed against the cache entry, as
//     without the last plan;
//   - an entry not listed in this reconcile holds nothing stale but the
//     last plan's objects that this plan no longer has (removed), and
//     those are deleted if the entry holds them;
//   - an entry listed in this reconcile is diffed whole: what it holds
//     that the plan does not have is stale.
//
// Otherwise (the first reconcile, a full listing, after Invalidate, with
// the cache off, after a reconcile that failed) every entry is diffed
// whole, listed or from the cache.

// lastPlan is the plan of the last reconcile.
type lastPlan struct {
	// valid says the last reconcile ended without error, with the cache
	// on: the invariant above holds.
	valid    bool
	routes   []Route
	rules    []Rule
	nexthops []NexthopObject

	// How this reconcile's plan differs from the last one (diff).
	sameRoute, sameRule, sameNH []bool
	removedRoutes               []Route
	removedRules                []Rule
	removedNH                   []NexthopObject
}

// diff compares d with the last plan, then keeps a copy of it as the last
// plan (the objects' own slices and pointers are shared, as Plan makes
// them anew every time).
func (p *lastPlan) diff(d Desired) {
	p.sameRoute, p.removedRoutes = align(p.routes, d.Routes, func(a, b *Route) bool { return sameRoute(*a, *b) }, p.sameRoute, p.removedRoutes)
	p.sameRule, p.removedRules = align(p.rules, d.Rules, func(a, b *Rule) bool { return sameRule(*a, *b) }, p.sameRule, p.removedRules)
	p.sameNH, p.removedNH = align(p.nexthops, d.Nexthops, func(a, b *NexthopObject) bool { return sameNexthop(*a, *b) }, p.sameNH, p.removedNH)
	p.routes = append(p.routes[:0], d.Routes...)
	p.rules = append(p.rules[:0], d.Rules...)
	p.nexthops = append(p.nexthops[:0], d.Nexthops...)
}

// lookahead is how far align looks for an object that moved: a plan
// changes in few places, and an uplink has a handful of objects.
const lookahead = 8

// align walks cur along old, as both are in the stable order of Plan,
// and says for each object of cur whether old has an equal one (same),
// and which objects of old were matched to none of cur (removed). An
// object that moved further than lookahead is neither same nor matched:
// it is diffed, and its old copy is among the removed, which are only
// deleted when the plan has no object of their identity.
func align[T any](old, cur []T, eq func(a, b *T) bool, same []bool, removed []T) ([]bool, []T) {
	same = append(same[:0], make([]bool, len(cur))...)
	removed = removed[:0]
	i := 0
	for j := range cur {
		if i < len(old) && eq(&old[i], &cur[j]) {
			same[j] = true
			i++
			continue
		}
		if k := indexAhead(old, i+1, &cur[j], eq); k >= 0 {
			// old[i:k] are gone.
			removed = append(removed, old[i:k]...)
			same[j] = true
			i = k + 1
			continue
		}
		if i < len(old) && indexAhead(cur, j+1, &old[i], eq) >= 0 {
			continue // cur[j] is new; old[i] comes later
		}
		if i < len(old) {
			removed = append(removed, old[i]) // changed: cur[j] replaces it
			i++
		}
	}
	return same, append(removed, old[i:]...)
}

// indexAhead returns the index of an element of s[from:from+lookahead]
// equal to x, or -1.
func indexAhead[T any](s []T, from int, x *T, eq func(a, b *T) bool) int {
	for k := from; k < len(s) && k < from+lookahead; k++ {
		if eq(&s[k], x) {
			return k
		}
	}
	return -1
}

// wanted answers whether a plan has an object of a given identity: by a
// linear search for the first few questions (one carrier change asks one
// or two), by a set built on the first question after those.
type wanted[T any, K comparable] struct {
	plan  []T
	id    func(T) K
	maybe func(T, K) bool // nil, or a cheap test false for objects without identity K
	asked int
	set   map[K]bool
}

func newWanted[T any, K comparable](plan []T, id func(T) K, maybe func(T, K) bool) *wanted[T, K] {
	return &wanted[T, K]{plan: plan, id: id, maybe: maybe}
}

func (w *wanted[T, K]) has(k K) bool {
	if w.set == nil && w.asked < 8 {
		w.asked++
		for _, x := range w.plan {
			if (w.maybe == nil || w.maybe(x, k)) && w.id(x) == k {
				return true
			}
		}
		return false
	}
	if w.set == nil {
		w.set = make(map[K]bool, len(w.plan))
		for _, x := range w.plan {
			w.set[w.id(x)] = true
		}
	}
	return w.set[k]
}

func nexthopID(n NexthopObject) uint32 { return n.ID }

// maybeRule is false for a rule that cannot have identity id.
func maybeRule(ru Rule, id ruleID) bool { return ru.Priority == id.priority && ru.Table == id.table }
