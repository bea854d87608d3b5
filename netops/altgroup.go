package netops

import "slices"

// A hash-threshold group (NexthopObject.Alt set) lives at one of two IDs,
// its own or its alternate (IDs.Alt), and is never replaced in place.
// When its members change, the reconciler makes it anew at the other ID,
// replaces the routes through it (the balance or policy table's default
// route), then deletes it at the old one: make before break, as ever.
//
// Why. The kernel's in-place replace of a group (replace_nexthop_grp)
// waits for an RCU grace period, and then notifies the change to every
// IPv4 route of every table (fib_info_notify_update walks them all).
// Measured on the development VM: about 280 µs to replace a group of 120
// members in place, against about 15 µs to create or delete one; with a
// million foreign routes in main, the walk alone took 55 ms. Creating a
// group, replacing one route and deleting a group that no route uses do
// neither. A resilient group keeps the replace in place: its buckets, and
// with them the flows' next hops, live in the group.
//
// Which of the two IDs a group is at is learned from the kernel at a full
// listing (the alternate, when only it exists: a restart keeps it there),
// and followed from then on (phys). A group moves only when the cache
// knows, clean, the object where it is now and the other ID, so a move is
// always a plain create, replace and delete; otherwise it is replaced in
// place, as before. Readers of the kernel find the balance group through
// the balance route's nhid (Holds does), not by its ID.

// altSwap is a group made anew at another ID in this reconcile.
type altSwap struct {
	group    uint32 // the plan's ID of the group
	from, to uint32
}

// physical returns d with each hash-threshold group, and the routes
// through it, at the ID where the group lives; a group whose members
// change moves to its other ID (recorded in r.swaps). At a full listing,
// list is what the kernel has. The copy, when one is needed, is in the
// reconciler's buffers, so d's slices are never changed.
func (r *Reconciler) physical(d Desired, full bool, list []NexthopObject) Desired {
	r.swaps = r.swaps[:0]
	var ours map[uint32]bool // at a full listing: the IDs of the groups' two that exist, ours
	if full {
		for _, n := range d.Nexthops {
			if n.Alt != 0 {
				if ours == nil {
					ours = make(map[uint32]bool)
				}
				ours[n.ID], ours[n.Alt] = false, false
			}
		}
		for _, k := range list {
			if _, ok := ours[k.ID]; ok && k.Protocol == r.Protocol && k.IsGroup() {
				ours[k.ID] = true
			}
		}
	}
	next := r.physNext
	if next == nil {
		next = make(map[uint32]uint32)
	}
	clear(next)
	moved := false
	for _, n := range d.Nexthops {
		if n.Alt == 0 {
			continue
		}
		cur := n.ID
		if p, ok := r.phys[n.ID]; ok && !full {
			cur = p
		}
		if full && ours[n.Alt] && !ours[n.ID] {
			cur = n.Alt
		}
		if !full {
			if to := r.moveTo(n, cur); to != 0 {
				r.swaps = append(r.swaps, altSwap{group: n.ID, from: cur, to: to})
				cur = to
			}
		}
		next[n.ID] = cur
		moved = moved || cur != n.ID
	}
	r.phys, r.physNext = next, r.phys
	if !moved {
		return d
	}
	r.physNH = append(r.physNH[:0], d.Nexthops...)
	for i := range r.physNH {
		n := &r.physNH[i]
		if p, ok := next[n.ID]; ok && n.Alt != 0 && p != n.ID {
			n.ID, n.Alt = p, n.ID
		}
	}
	r.physRoutes = append(r.physRoutes[:0], d.Routes...)
	for i := range r.physRoutes {
		rt := &r.physRoutes[i]
		if p, ok := next[rt.NHID]; ok && rt.NHID != 0 {
			rt.NHID = p
		}
	}
	d.Nexthops, d.Routes = r.physNH, r.physRoutes
	return d
}

// moveTo returns the ID group n moves to from cur, where it is now, or 0
// when it stays: it moves when the cache holds it there, clean, with other
// members (or weights) than n's, and knows its other ID free or ours.
func (r *Reconciler) moveTo(n NexthopObject, cur uint32) uint32 {
	c := &r.cache
	if !c.on || c.namedNH[cur] {
		return 0
	}
	k, ok := c.nexthops[cur]
	if !ok || k.ID != cur || k.Protocol != r.Protocol || k.Unknown || !k.IsGroup() || k.Type != n.Type {
		return 0
	}
	other := n.Alt
	if cur == n.Alt {
		other = n.ID
	}
	want := n
	want.ID = cur
	if nexthopMatches(k, want) {
		return 0
	}
	if o, ok := c.nexthops[other]; !ok || c.namedNH[other] || (o.ID != 0 && o.Protocol != r.Protocol) {
		return 0
	}
	return other
}

// keepMoved takes out of stale the groups moved in this reconcile whose
// new copy is not usable, or when failed says a route write failed: some
// route may still go through the old copy, and deleting it would take the
// route along. A group whose new copy is missing stays where it was.
func (r *Reconciler) keepMoved(stale []NexthopObject, failed bool) []NexthopObject {
	for _, s := range r.swaps {
		if r.usable[s.to] && !failed {
			continue
		}
		stale = slices.DeleteFunc(stale, func(n NexthopObject) bool { return n.ID == s.from })
		if !r.usable[s.to] {
			r.phys[s.group] = s.from
		}
	}
	return stale
}

// altIDs returns the alternate IDs of desired's groups: the listing reads
// them too, so that the cache knows whether they are free.
func altIDs(desired []NexthopObject) []uint32 {
	var ids []uint32
	for _, n := range desired {
		if n.Alt != 0 {
			ids = append(ids, n.Alt)
		}
	}
	return ids
}
