package netops

import "time"

// Echoes of the reconciler's own writes (EnableCache).
//
// Every rule and nexthop object the reconciler adds, replaces or deletes
// comes back as a kernel event after the reconcile that wrote it. The
// cache already holds what was written, so such an echo needs neither a
// listing (a rule dump is never filtered by the kernel: all of the
// kernel's rules) nor another reconcile. A write that succeeded is
// recorded by what its event says (family, priority, table and protocol of
// a rule; the ID of a nexthop object; added or deleted), and RuleEcho and
// NexthopEcho take one matching record per event. An event no record
// matches is someone else's: the caller invalidates what it names as
// before. Someone else's event that matches a record still leaves the
// reconciler's own echo unmatched, which then invalidates: either way one
// of the two events makes the entry dirty. A record whose echo never came
// (events lost: Invalidate drops them all) expires after echoTTL, so it
// cannot take someone else's event much later.
const echoTTL = 2 * time.Second

// echoKey is what the event of one write says about it.
type echoKey struct {
	rule                    bool
	family, priority, table int
	protocol                int
	id                      uint32
	deleted                 bool
}

type echoes struct {
	pending map[echoKey][]time.Time // the times of the writes not yet echoed, oldest first
}

func (e *echoes) reset() { e.pending = nil }

// wrote records a successful write.
func (e *echoes) wrote(k echoKey, now time.Time) {
	if e.pending == nil {
		e.pending = make(map[echoKey][]time.Time)
	}
	e.pending[k] = append(e.pending[k], now)
}

// take consumes the oldest unexpired record of k.
func (e *echoes) take(k echoKey, now time.Time) bool {
	ts := e.pending[k]
	for len(ts) > 0 && now.Sub(ts[0]) > echoTTL {
		ts = ts[1:]
	}
	if len(ts) == 0 {
		delete(e.pending, k)
		return false
	}
	if len(ts) == 1 {
		delete(e.pending, k)
	} else {
		e.pending[k] = ts[1:]
	}
	return true
}

// wroteRule records a rule added or deleted.
func (c *ownCache) wroteRule(family int, ru Rule, deleted bool) {
	if c.on {
		c.echo.wrote(echoKey{rule: true, family: family, priority: ru.Priority, table: ru.Table, protocol: ru.Protocol, deleted: deleted}, time.Now())
	}
}

// wroteNexthopID records a nexthop object created, replaced or deleted.
func (c *ownCache) wroteNexthopID(id uint32, deleted bool) {
	if c.on {
		c.echo.wrote(echoKey{id: id, deleted: deleted}, time.Now())
	}
}

// RuleEcho says whether a rule event (family unix.AF_INET or AF_INET6) is
// the echo of one of the reconciler's own writes, and takes it: then the
// caller need not invalidate the rules, nor reconcile for it.
func (r *Reconciler) RuleEcho(family, priority, table, protocol int, deleted bool) bool {
	if r == nil || !r.cache.on {
		return false
	}
	return r.cache.echo.take(echoKey{rule: true, family: family, priority: priority, table: table, protocol: protocol, deleted: deleted}, time.Now())
}

// NexthopEcho is RuleEcho for an event about the nexthop object id.
func (r *Reconciler) NexthopEcho(id uint32, deleted bool) bool {
	if r == nil || !r.cache.on {
		return false
	}
	return r.cache.echo.take(echoKey{id: id, deleted: deleted}, time.Now())
}
