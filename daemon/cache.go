package daemon

import (
	"context"
	"maps"
	"net/netip"
	"slices"

	"github.com/uplinkd/uplinkd/events"
	"golang.org/x/sys/unix"
)

// RouterCache is what a Router that keeps a cache of its kernel objects
// (netops.Reconciler with EnableCache) must be told: every event about
// routes, rules, nexthop objects, links and addresses, and when events
// were lost. A Router without it reads everything at every reconcile.
type RouterCache interface {
	Invalidate()
	InvalidateTable(family, table int)
	InvalidateRules(family int)
	InvalidateNexthop(id uint32)
	InvalidateLink(ifindex int)
	InvalidateAddr(ifindex int, addr netip.Addr)
}

// LinkReader is a StateReader that can also read some links by index, and
// their addresses (events.DumpLinks): a burst of link events then costs
// what it names, not every link of the namespace. Without it every burst
// reads everything.
type LinkReader interface {
	DumpLinks(ctx context.Context, indexes []int) (events.Snapshot, error)
}

// afOf is the address family number of an event's family.
func afOf(f events.Family) int {
	if f == events.V6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// noCache is the RouterCache of a Router without a cache.
type noCache struct{}

func (noCache) Invalidate()                    {}
func (noCache) InvalidateTable(int, int)       {}
func (noCache) InvalidateRules(int)            {}
func (noCache) InvalidateNexthop(uint32)       {}
func (noCache) InvalidateLink(int)             {}
func (noCache) InvalidateAddr(int, netip.Addr) {}

// cache returns the router's cache, or one that does nothing.
func (d *Daemon) cache() RouterCache {
	if c, ok := d.rec.(RouterCache); ok {
		return c
	}
	return noCache{}
}

func (netlinkState) DumpLinks(ctx context.Context, indexes []int) (events.Snapshot, error) {
	return events.DumpLinks(ctx, indexes)
}

// dumpAll makes the next settle re-read every link and address.
func (d *Daemon) dumpAll() { d.needDump, d.dumpOnly = true, nil }

// dumpLink makes the next settle re-read link index and its addresses
// (and only the links named so far, unless everything is re-read anyway).
func (d *Daemon) dumpLink(index int) {
	switch {
	case !d.needDump:
		d.needDump, d.dumpOnly = true, map[int]bool{index: true}
	case d.dumpOnly != nil:
		d.dumpOnly[index] = true
	}
}

// readLinks reads links and addresses: those of dumpOnly, merged into the
// last snapshot, or all of them.
func (d *Daemon) readLinks(ctx context.Context) (events.Snapshot, error) {
	lr, ok := d.kern.State.(LinkReader)
	if !ok || d.dumpOnly == nil || len(d.snap.Links) == 0 {
		return d.kern.State.Dump(ctx)
	}
	indexes := slices.Sorted(maps.Keys(d.dumpOnly))
	fresh, err := lr.DumpLinks(ctx, indexes)
	if err != nil {
		return events.Snapshot{}, err
	}
	return d.snap.Merge(fresh, indexes), nil
}
