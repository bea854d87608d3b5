package netops

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// syncNexthops creates and replaces the desired nexthop objects, single
// next hops before groups. It returns the objects of the reconciler's
// protocol that are no longer desired, groups first, for deletion once no
// route uses them, and records in r.usable the IDs that exist now, for
// the routes through them. An object with a desired ID that belongs to
// another protocol is left alone and reported. With trust (lastplan.go),
// an object the same as in the last plan and not read again is in the
// kernel.
func (r *Reconciler) syncNexthops(desired []NexthopObject, full, every, trust bool, listed *nhListing, res *Result) (stale []NexthopObject, errs []error) {
	if r.usable == nil {
		r.usable = make(map[uint32]bool)
	}
	clear(r.usable)
	usable := r.usable
	if r.NH == nil {
		if len(desired) > 0 {
			errs = append(errs, errors.New("nexthop objects wanted, but the reconciler has no nexthop connection"))
		}
		return nil, errs
	}
	fetched, err := r.listNexthops(desired, full, every, trust, listed)
	if err != nil {
		if len(desired) == 0 && unsupported(err) {
			return nil, nil // a kernel without nexthop objects has none of ours
		}
		return nil, []error{fmt.Errorf("list nexthops: %w", err)}
	}
	desired = r.moveGroups(desired)
	for _, groups := range []bool{false, true} {
		for j, n := range desired {
			if n.IsGroup() != groups {
				continue
			}
			if trust && r.last.sameNH[j] && !fetched[n.ID] {
				usable[n.ID] = true
				continue
			}
			if err := r.syncNexthop(n, res); err != nil {
				errs = append(errs, err)
				continue
			}
			usable[n.ID] = true
		}
	}

	want := newWanted(desired, nexthopID, nil)
	isStale := func(k NexthopObject) bool { return k.ID != 0 && k.Protocol == r.Protocol && !want.has(k.ID) }
	if trust {
		for id := range fetched {
			if k := r.cache.nexthops[id]; isStale(k) {
				stale = append(stale, k)
			}
		}
		for _, n := range r.last.removedNH {
			if k := r.cache.nexthops[n.ID]; !fetched[n.ID] && isStale(k) {
				stale = append(stale, k)
			}
		}
	} else {
		for _, k := range r.cache.nexthops {
			if isStale(k) {
				stale = append(stale, k)
			}
		}
	}
	for _, k := range r.movedFrom() {
		if isStale(k) {
			stale = append(stale, k)
		}
	}
	slices.SortFunc(stale, func(a, b NexthopObject) int {
		return cmp.Or(cmp.Compare(btoi(b.IsGroup()), btoi(a.IsGroup())), cmp.Compare(a.ID, b.ID))
	})
	stale = slices.CompactFunc(stale, func(a, b NexthopObject) bool { return a.ID == b.ID })
	return stale, errs
}

// syncNexthop makes the kernel's object n.ID, as the cache has it, the
// desired n.
func (r *Reconciler) syncNexthop(n NexthopObject, res *Result) error {
	usable := r.usable
	k, exists := r.cache.nexthops[n.ID]
	exists = exists && k.ID != 0
	if exists && k.Protocol != r.Protocol {
		return fmt.Errorf("nexthop id %d belongs to protocol %d, not %d: left alone (choose another nexthop_id_base)", n.ID, k.Protocol, r.Protocol)
	}
	if n.IsGroup() {
		// Members that could not be created are left out this time:
		// the group still serves the others.
		unusable := func(m GroupMember) bool { return !usable[m.ID] }
		if slices.ContainsFunc(n.Members, unusable) {
			n.Members = slices.DeleteFunc(slices.Clone(n.Members), unusable)
		}
		if len(n.Members) == 0 {
			return fmt.Errorf("nexthop group %d: none of its members is available", n.ID)
		}
	}
	if exists && k.Type == GroupResilient && n.Type == GroupResilient && k.Buckets > n.Buckets {
		// Bucket counts are powers of two, so a group with more buckets
		// than planned still meets the accuracy bound (see Buckets).
		// Keeping it lets a weight change on reload move buckets in place
		// instead of re-creating the group, which would rehash every flow
		// and drop the route for a moment.
		n.Buckets = k.Buckets
	}
	if exists && nexthopMatches(k, n) {
		return nil
	}
	if exists && !replaceable(k, n) {
		// The kernel cannot change a group's type or bucket count in
		// place: delete it (routes through it go too, and are added
		// again below) and create it anew.
		err := r.NH.NexthopDel(k.ID)
		if err != nil && !gone(err) {
			r.cache.dirtyNexthop(k.ID)
			return fmt.Errorf("delete nexthop %s: %w", k, err)
		}
		if err == nil {
			r.cache.wroteNexthopID(k.ID, true)
		}
		r.cache.deletedNexthop(k.ID)
		res.Removed = append(res.Removed, "nexthop "+k.String())
		exists = false
	}
	if err := r.NH.NexthopAdd(n, exists); err != nil {
		r.cache.dirtyNexthop(n.ID)
		return fmt.Errorf("add nexthop %s: %w", n, err)
	}
	r.cache.wroteNexthop(n)
	r.cache.wroteNexthopID(n.ID, false)
	res.Added = append(res.Added, "nexthop "+n.String())
	return nil
}

// listNexthops reads into the cache the nexthop objects to diff desired
// against, and returns the IDs it read when it read only some (nil
// otherwise): every object at a full listing (listed, read already);
// after the cache was emptied
// those with the desired IDs and the IDs of the protocol seen before
// (fetched one by one, so that foreign objects, a routing daemon's
// thousands, cost nothing); else the named IDs (events, dirty) and the
// desired ones the cache lacks (with trust, among the objects not the
// same as in the last plan: the others are cached or named), and the
// groups' alternate IDs it lacks (altgroup.go). It
// remembers the IDs of the protocol it found, and the desired ones, for
// next time.
func (r *Reconciler) listNexthops(desired []NexthopObject, full, every, trust bool, listed *nhListing) (map[uint32]bool, error) {
	c := &r.cache
	if full {
		list, err := listed.objs, listed.err
		if err != nil {
			return nil, err
		}
		c.listedNexthops(list, append(desiredIDs(desired), altIDs(desired)...), true, r.Protocol)
		r.knowNexthops(list, desired, true, nil)
		return nil, nil
	}
	var ids []uint32
	if every {
		set := maps.Clone(r.knownNH)
		if set == nil {
			set = make(map[uint32]bool)
		}
		for _, n := range desired {
			set[n.ID] = true
			if n.Alt != 0 {
				set[n.Alt] = true
			}
		}
		maps.Copy(set, c.namedNH)
		_, ids = c.cachedNexthops(slices.Sorted(maps.Keys(set)))
	} else {
		for id := range c.namedNH {
			ids = append(ids, id)
		}
		for j, n := range desired {
			if trust && r.last.sameNH[j] {
				continue
			}
			if _, ok := c.nexthops[n.ID]; !ok && !c.namedNH[n.ID] {
				ids = append(ids, n.ID)
			}
		}
		for _, id := range altIDs(desired) {
			if _, ok := c.nexthops[id]; !ok && !c.namedNH[id] {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	var got []NexthopObject
	for _, id := range ids {
		n, ok, err := r.NH.NexthopGet(id)
		if err != nil {
			return nil, fmt.Errorf("get nexthop %d: %w", id, err)
		}
		if ok {
			got = append(got, n)
		}
	}
	c.listedNexthops(got, ids, false, r.Protocol)
	if every {
		r.knowNexthops(got, desired, true, nil)
		return nil, nil
	}
	r.knowNexthops(got, desired, false, r.sameNHIf(trust))
	var fetched map[uint32]bool
	if len(ids) > 0 {
		fetched = make(map[uint32]bool, len(ids))
		for _, id := range ids {
			fetched[id] = true
		}
	}
	return fetched, nil
}

// knowNexthops remembers the IDs of the protocol in list, and the desired
// ones, as those to fetch next time the cache is emptied: only those
// (afresh), or those too. Desired objects the same as in the last plan
// (same, when not nil) are known already.
func (r *Reconciler) knowNexthops(list, desired []NexthopObject, afresh bool, same []bool) {
	if afresh || r.knownNH == nil {
		r.knownNH = make(map[uint32]bool)
		same = nil
	}
	for _, n := range list {
		if n.Protocol == r.Protocol {
			r.knownNH[n.ID] = true
		}
	}
	for j, n := range desired {
		if same == nil || !same[j] {
			r.knownNH[n.ID] = true
		}
	}
}

// sameNHIf returns the last plan's same flags of the nexthop objects with
// trust, else nil.
func (r *Reconciler) sameNHIf(trust bool) []bool {
	if trust {
		return r.last.sameNH
	}
	return nil
}

// nhListing is a full listing of the nexthop objects, read before the
// reconcile needs it (altgroup.go).
type nhListing struct {
	objs []NexthopObject
	err  error
}

// list returns the objects listed, none when l is nil.
func (l *nhListing) list() []NexthopObject {
	if l == nil {
		return nil
	}
	return l.objs
}

func desiredIDs(desired []NexthopObject) []uint32 {
	ids := make([]uint32, len(desired))
	for i, n := range desired {
		ids[i] = n.ID
	}
	return ids
}
