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

// needLinks says whether the links and addresses must be read or updated
// before the uplinks are evaluated.
func (d *Daemon) needLinks() bool { return d.needDump || len(d.linkEvs) > 0 }

// readLinks returns the links and addresses: read from the kernel when
// everything must be, else the last ones with the queued events applied.
func (d *Daemon) readLinks(ctx context.Context) (events.Snapshot, error) {
	if !d.needDump {
		return d.snap.Apply(d.linkEvs), nil
	}
	return d.kern.State.Dump(ctx)
}

// touchedLinks names what the queued link and address events are about:
// the uplinks whose links they name are evaluated again, the others are
// as they were (hundreds of uplinks need not be, at every carrier change).
type touchedLinks struct {
	indexes map[int]bool
	names   map[string]bool
	addrs   bool // some address changed
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
	return t
}

// has says whether entity u must be evaluated again: its link (by the
// index it had, or by name) is touched, or it is an IPv6 side whose
// source may be on another link and some address changed.
func (t *touchedLinks) has(u *uplink) bool {
	switch {
	case t == nil, t.names[u.cfg.Interface]:
		return true
	case u.link != nil && t.indexes[u.link.Index]:
		return true
	}
	return t.addrs && u.fam == ipv6 && (u.cfg.Source6.IsValid() || u.cfg.LANPrefix6.IsValid())
}
