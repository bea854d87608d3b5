package daemon

import (
	"context"

	"github.com/uplinkd/uplinkd/events"
)

// The links and addresses the loop knows (d.snap) are read from the kernel
// at start, after lost events, on a new subscription and on reload; in
// between, the link and address events themselves keep them: each carries
// the whole link or address as the kernel has it now, in order, so a
// carrier change costs no kernel read at all (with hundreds of uplinks
// the read was a tenth of the way from the event to the routes).
// TestSnapshotFollowsEvents (events) shows that a dump with the kernel's
// events applied is what a new dump reads.

// dumpAll makes the next settle read every link and address.
func (d *Daemon) dumpAll() { d.needDump, d.linkEvs = true, nil }

// linkChanged queues a link or address event for the next settle, unless
// that settle reads everything anyway.
func (d *Daemon) linkChanged(ev events.Event) {
	if !d.needDump {
		d.linkEvs = append(d.linkEvs, ev)
	}
}

// linkReturns says whether ev shows a link up, with carrier, that was
// known down or without carrier before it: its event then changes nothing
// of uplinkd's routing in the kernel, and the cache of it need not be read
// again. The kernel deletes nexthop objects and routes through a link
// only when it goes down or loses carrier, in the same notifier call that
// sends the event (which may already show the link up again, if its
// carrier came back meanwhile: so only a change seen from down to up
// counts). Before that event was known, uplinkd had nothing on the link:
// the kernel refuses nexthop objects on a link without carrier, and the
// plan of a link down has none. An event that is not such a return
// (a link up that was up: perhaps a flap too short to see) invalidates
// as before.
func (d *Daemon) linkReturns(ev events.LinkEvent) bool {
	if ev.Deleted || !ev.Link.AdminUp || !ev.Link.Carrier || d.needDump {
		return false
	}
	for i := len(d.linkEvs) - 1; i >= 0; i-- {
		if e, ok := d.linkEvs[i].(events.LinkEvent); ok && e.Link.Index == ev.Link.Index {
			return !e.Deleted && (!e.Link.AdminUp || !e.Link.Carrier)
		}
	}
	for _, l := range d.snap.Links {
		if l.Index == ev.Link.Index {
			return !l.AdminUp || !l.Carrier
		}
	}
	return false // a new link: nothing of uplinkd's on it either, but say so only when known
}

// linkUnwatched says whether ev shows an uplink's interface on a link
// that is no uplink's yet: one created or renamed to that name. The event
// filter let its address events through only while the link was an
// uplink's (by index), so the addresses the loop knows of it may be
// stale (an address changed while it had another name): it must be read.
func (d *Daemon) linkUnwatched(ev events.LinkEvent) bool {
	if ev.Deleted {
		return false
	}
	named := false
	for _, u := range d.uplinks {
		if u.link != nil && u.link.Index == ev.Link.Index {
			return false
		}
		named = named || u.cfg.Interface == ev.Link.Name
	}
	return named
}

// needLinks says whether the links and addresses must be read or updated
// before the uplinks are evaluated.
func (d *Daemon) needLinks() bool { return d.needDump || len(d.linkEvs) > 0 }

// readLinks returns the links and addresses: read from the kernel when
// everything must be, else the last ones with the queued events applied.
func (d *Daemon) readLinks(ctx context.Context) (events.Snapshot, error) {
	if d.needDump {
		return d.kern.State.Dump(ctx)
	}
	snap := d.snap
	if d.needRoutes {
		// A failed read of the default routes retries all of this
		// with d.snap as it was.
		snap = snap.Clone()
	}
	snap.Apply(d.linkEvs)
	return snap, nil
}

// touchedLinks names what the queued link and address events are about:
// the uplinks on the links they name are evaluated again, the others are
// as they were and are not even looked at (hundreds of uplinks need not
// be, at every carrier change).
type touchedLinks struct {
	indexes map[int]bool
	names   map[string]bool
	addrs   bool // some address changed
	// set is the uplinks (anchors and entities) to evaluate: see resolve.
	set map[*uplink]bool
}

// touched returns what the queued events touch, or nil when every uplink
// must be evaluated: everything is read again, or the default routes are
// (a learned gateway may change with them), or something else changed.
func (d *Daemon) touched() *touchedLinks {
	if d.needDump || d.needRoutes || d.needEval {
		return nil
	}
	t := &touchedLinks{indexes: make(map[int]bool), names: make(map[string]bool)}
	for _, ev := range d.linkEvs {
		switch e := ev.(type) {
		case events.LinkEvent:
			t.indexes[e.Link.Index] = true
			t.names[e.Link.Name] = true
		case events.AddrEvent:
			t.indexes[e.Addr.Index] = true
			t.addrs = true
		}
	}
	t.namesIn(d.snap) // before the events: a link renamed or deleted
	return t
}

// namesIn adds the names the touched links have in snap.
func (t *touchedLinks) namesIn(snap events.Snapshot) {
	for _, l := range snap.Links {
		if t.indexes[l.Index] {
			t.names[l.Name] = true
		}
	}
}

// resolve finds the uplinks to evaluate: those whose interface is a
// touched link's name, before the events (touched reads those) or after
// them (a link made), and, when some address changed, the IPv6 sides
// whose source may be on any link (source6, lan_prefix6).
func (t *touchedLinks) resolve(d *Daemon, after events.Snapshot) {
	if t == nil {
		return
	}
	t.namesIn(after)
	t.set = make(map[*uplink]bool)
	for name := range t.names {
		for _, u := range d.byIface[name] {
			t.set[u] = true
			if u.v6 != nil {
				t.set[u.v6] = true
			}
		}
	}
	if t.addrs {
		for _, u := range d.sourceAnywhere {
			t.set[u] = true
		}
	}
}

// has says whether u (an anchor or an entity) must be evaluated again.
func (t *touchedLinks) has(u *uplink) bool { return t == nil || t.set[u] }
