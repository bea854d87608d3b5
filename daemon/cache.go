package daemon

import (
	"net/netip"

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

// EchoTaker is a RouterCache that can tell the echoes of its own writes
// (netops.Reconciler.RuleEcho, NexthopEcho): those events need neither
// an invalidation nor a reconcile.
type EchoTaker interface {
	RuleEcho(family, priority, table, protocol int, deleted bool) bool
	NexthopEcho(id uint32, deleted bool) bool
}

// echo says whether ev is the echo of the router's own write (and takes
// it); false when the router cannot tell.
func (d *Daemon) echo(ev events.Event) bool {
	et, ok := d.rec.(EchoTaker)
	if !ok {
		return false
	}
	switch e := ev.(type) {
	case events.RuleEvent:
		return et.RuleEcho(afOf(e.Family), e.Priority, e.Table, e.Protocol, e.Deleted)
	case events.NexthopEvent:
		return e.ID > 0 && et.NexthopEcho(uint32(e.ID), e.Deleted)
	}
	return false
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
