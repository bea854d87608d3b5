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
// and followed from then on (phys). A group moves when, after the listing
// (which reads what events named: a carrier loss makes the kernel drop the
// member from the group itself), the cache holds it where it is now with
// other members or weights than the plan's, and knows its other ID free
// or ours; otherwise it is made or replaced where it is, as before.
// Readers of the kernel find the balance group through the balance
// route's nhid (Holds does), not by its ID.

// altSwap is a group made anew at another ID in this reconcile.
type altSwap struct{ from, to uint32 }

// group is the plan's ID of the group: the lower of its two (IDs.Alt).
func (s altSwap) group() uint32 { return min(s.from, s.to) }

// physical returns d with each hash-threshold group, and the routes
// through it, at the ID where the group lives (phys; at a full listing,
// list says where). The copy, when one is needed, is in the reconciler's
// buffers (ownNH, ownRoutes), so d's slices are never changed.
func (r *Reconciler) physical(d Desired, full bool, list []NexthopObject) Desired {
	r.swaps = r.swaps[:0]
	r.ownNH, r.ownRoutes = false, false
	var ours map[uint32]bool // at a full listing: which of the groups' two IDs the kernel has, ours
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
		switch p, ok := r.phys[n.ID]; {
		case full && ours[n.Alt] && !ours[n.ID]:
			cur = n.Alt
		case ok && !full:
			cur = p
		}
		next[n.ID] = cur
		moved = moved || cur != n.ID
	}
	r.phys, r.physNext = next, r.phys
	if !moved {
		return d
	}
	d.Nexthops = r.ownNexthops(d.Nexthops)
	for i := range d.Nexthops {
		n := &d.Nexthops[i]
		if p, ok := next[n.ID]; ok && n.Alt != 0 && p != n.ID {
			n.ID, n.Alt = p, n.ID
		}
	}
	d.Routes = r.ownRouteCopy(d.Routes)
	for i := range d.Routes {
		rt := &d.Routes[i]
		if p, ok := next[rt.NHID]; ok && rt.NHID != 0 {
			rt.NHID = p
		}
	}
	return d
}

// moveGroups moves to its other ID each group of desired that the cache,
// read by now, holds with other members or weights than desired's, where
// the other ID is known free or ours (see the top of the file). It
// returns desired with the new IDs (a copy), and changes the last plan's
// copy to match.
func (r *Reconciler) moveGroups(desired []NexthopObject) []NexthopObject {
	c := &r.cache
	if !c.on {
		return desired
	}
	for j, n := range desired {
		if n.Alt == 0 {
			continue
		}
		k, ok := c.nexthops[n.ID]
		if !ok || k.ID != n.ID || k.Protocol != r.Protocol || k.Unknown || !k.IsGroup() || k.Type != n.Type || nexthopMatches(k, n) {
			continue
		}
		if o, ok := c.nexthops[n.Alt]; !ok || c.namedNH[n.Alt] || (o.ID != 0 && o.Protocol != r.Protocol) {
			continue
		}
		sw := altSwap{from: n.ID, to: n.Alt}
		r.swaps = append(r.swaps, sw)
		r.phys[sw.group()] = n.Alt
		desired = r.ownNexthops(desired)
		desired[j].ID, desired[j].Alt = n.Alt, n.ID
		// Not the same as in the last plan any more: made below.
		r.last.sameNH[j] = false
		if j < len(r.last.nexthops) && r.last.nexthops[j].ID == n.ID {
			r.last.nexthops[j].ID, r.last.nexthops[j].Alt = n.Alt, n.ID
		}
	}
	return desired
}

// moveRoutes moves the routes through the groups moved in this reconcile
// to their new IDs, in routes (a copy) and in the last plan's copy, where
// they are no longer the same as before.
func (r *Reconciler) moveRoutes(routes []Route) []Route {
	if len(r.swaps) == 0 {
		return routes
	}
	for j, rt := range routes {
		if rt.NHID == 0 {
			continue
		}
		for _, s := range r.swaps {
			if rt.NHID != s.from {
				continue
			}
			routes = r.ownRouteCopy(routes)
			routes[j].NHID = s.to
			if j < len(r.last.routes) {
				r.last.routes[j].NHID = s.to
				r.last.sameRoute[j] = false
			}
		}
	}
	return routes
}

// ownNexthops returns nexthops in the reconciler's buffer.
func (r *Reconciler) ownNexthops(nexthops []NexthopObject) []NexthopObject {
	if !r.ownNH {
		r.physNH = append(r.physNH[:0], nexthops...)
		r.ownNH = true
	}
	return r.physNH
}

// ownRouteCopy returns routes in the reconciler's buffer.
func (r *Reconciler) ownRouteCopy(routes []Route) []Route {
	if !r.ownRoutes {
		r.physRoutes = append(r.physRoutes[:0], routes...)
		r.ownRoutes = true
	}
	return r.physRoutes
}

// movedFrom returns the old copies of the groups moved in this reconcile
// that the cache holds, ours: they are stale once the routes moved.
func (r *Reconciler) movedFrom() []NexthopObject {
	var out []NexthopObject
	for _, s := range r.swaps {
		if k, ok := r.cache.nexthops[s.from]; ok && k.ID == s.from && k.Protocol == r.Protocol {
			out = append(out, k)
		}
	}
	return out
}

// keepInUse takes out of stale the groups a route may still use: when
// failed says a route write failed, every group (the kernel deletes the
// routes through a group with it; the next reconcile deletes it, once
// the routes are moved), and the old copy of a group moved in this
// reconcile whose new copy is not usable, which then stays where it was.
func (r *Reconciler) keepInUse(stale []NexthopObject, failed bool) []NexthopObject {
	if failed {
		stale = slices.DeleteFunc(stale, NexthopObject.IsGroup)
	}
	for _, s := range r.swaps {
		if !r.usable[s.to] {
			stale = slices.DeleteFunc(stale, func(n NexthopObject) bool { return n.ID == s.from })
			r.phys[s.group()] = s.from
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
