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
