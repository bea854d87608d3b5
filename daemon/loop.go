package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/netops"
)

// watch keeps an event subscription and the routing converged until ctx is
// done. No error ends it: a subscription that fails or dies is made again
// after a backoff, while what is installed stays as it is.
func (d *Daemon) watch(ctx context.Context) {
	for {
		err := d.monitor(ctx)
		if ctx.Err() != nil || d.keep {
			return
		}
		// The subscription failed or died: what is installed stays as it
		// is while uplinkd subscribes again (and then re-reads
		// everything), after a backoff.
		d.netlinkError("netlink event subscription", err)
		d.netlink.Resubscribes++
		d.metrics.Resubscribe()
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.netlinkDelay):
		}
	}
}

// monitor runs one event subscription: subscribe first, then dump, so no
// change falls between the two. It returns nil when ctx is done, and why
// the subscription could not be made or broke otherwise (the caller
// subscribes again). A failed dump does not end it: settle retries.
func (d *Daemon) monitor(ctx context.Context) error {
	mon, err := d.kern.Events.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	d.mon, d.filterSet = mon, nil
	d.backoff = false // a new subscription reads everything at once
	defer func() { d.mon = nil }()
	mctx, cancel := context.WithCancel(ctx)
	evs := make(chan events.Event, 512)
	done := make(chan error, 1)
	go func() { done <- mon.Run(mctx, evs) }()
	defer func() {
		cancel()
		<-done
	}()

	var watchdog <-chan time.Time
	if d.opts.Watchdog > 0 {
		t := time.NewTicker(d.opts.Watchdog / 2)
		defer t.Stop()
		watchdog = t.C
	}

	d.dumpAll()
	d.needReconcile, d.needRoutes = true, true
	// Events may have been missed since the last subscription.
	d.cache().Invalidate()
	d.pinRecheck()
	d.burstStart = time.Now()
	d.settle(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			done <- nil // let the deferred wait return
			if err == nil {
				err = errors.New("event socket closed")
			}
			return err
		case ev := <-evs:
			d.burstStart = time.Now()
			d.note(ev)
			d.drain(evs)
		case r := <-d.results:
			d.burstStart = time.Now()
			d.probeResult(r)
			d.drainResults()
		case <-d.retry.C:
			d.log.Info("retrying")
			d.needReconcile, d.backoff = true, false
			d.burstStart = time.Now()
		case <-d.tick.C:
			d.tickAt = time.Time{}
			d.burstStart = time.Now()
			d.deadlines()
		case req := <-d.requests:
			d.request(req)
		case <-d.opts.Reload:
			d.reload(nil)
		case res := <-d.names.out:
			d.burstStart = time.Now()
			d.namesResolved(res)
		case <-d.pinWatch():
			d.burstStart = time.Now()
			d.tableChanged()
		case <-d.opts.Keep:
			d.keep = true
			d.log.Info("SIGUSR2: exiting, leaving routing in place for the next start")
			return nil
		case <-watchdog:
			// From the loop itself: a wedged loop stops the pings and
			// systemd restarts it.
			d.notify(d.opts.Notify.Watchdog())
		}
		d.settle(ctx)
	}
}

// notify logs a failed sd_notify; systemd is told nothing more then.
func (d *Daemon) notify(err error) {
	if err != nil {
		d.log.Warn("notify systemd", "err", err)
	}
}

// drain takes every event already queued, so a burst (an interface deleted
// with its addresses and routes) is handled with one dump and one reconcile.
func (d *Daemon) drain(evs <-chan events.Event) {
	for {
		select {
		case ev := <-evs:
			d.note(ev)
		default:
			return
		}
	}
}

// drainResults takes every probe result already queued, so that results
// that arrive together (hundreds of uplinks proven at start, or while a
// reconcile ran) make one reconcile rather than one each.
func (d *Daemon) drainResults() {
	for {
		select {
		case r := <-d.results:
			d.probeResult(r)
		default:
			return
		}
	}
}

// note records what an event means for the loop's pending work.
func (d *Daemon) note(ev events.Event) {
	// Every event about routing objects also tells the reconciler what
	// to read again, including the echoes of its own writes (see
	// netops.Reconciler.EnableCache).
	switch e := ev.(type) {
	case events.LinkEvent:
		// The kernel deletes nexthop objects (and a group left empty,
		// and the routes through it) without a notification when their
		// link loses carrier or goes down, even for a flap too short to
		// change the link's state in the dump: check them. Not when the
		// link comes back (linkReturns).
		returns := d.linkReturns(e)
		if d.linkUnwatched(e) {
			// Its address events were filtered out: read it.
			d.needDump = true
		}
		d.linkChanged(e)
		d.needReconcile = true
		d.needRoutes = d.needRoutes || d.autoUplinks()
		if !returns {
			d.cache().InvalidateLink(e.Link.Index)
		}
		d.pinRecheckLink(e.Link.Index)
	case events.AddrEvent:
		d.linkChanged(e)
		d.needRoutes = d.needRoutes || d.autoUplinks()
		d.cache().InvalidateAddr(e.Addr.Index, e.Addr.Prefix.Addr())
	case events.NexthopEvent:
		if e.Protocol == d.cfg.Routing.RouteProtocol || netops.NexthopIDs(d.cfg.Routing.NexthopIDBase).Contains(uint32(e.ID)) {
			if d.echo(e) {
				break // what the reconciler wrote, as it wrote it
			}
			d.needReconcile = true
			d.cache().InvalidateNexthop(uint32(e.ID))
		}
	case events.RouteEvent:
		if d.ours(e.Table, e.Protocol) {
			d.needReconcile = true
			d.cache().InvalidateTable(afOf(e.Family), e.Table)
		} else if e.Default && d.routeEvent(e) {
			d.needEval = true
		}
	case events.RuleEvent:
		r := d.cfg.Routing
		if e.Protocol == r.RouteProtocol || (e.Priority >= r.RulePriority && e.Priority < r.RulePriority+config.RulePriorityRange) {
			if d.echo(e) {
				break
			}
			d.needReconcile = true
			d.cache().InvalidateRules(afOf(e.Family))
		}
	case events.NeighEvent:
		d.neighbour(e)
	case events.ResyncEvent:
		d.log.Warn("netlink events lost, resyncing", "reason", e.Reason)
		d.dumpAll()
		d.needReconcile, d.needRoutes = true, true
		d.cache().Invalidate()
		d.pinRecheck()
		d.netlink.Resyncs++
		if e.Overrun {
			d.netlink.Overruns++
		}
		d.metrics.Resync(e.Overrun)
		d.changed = true
	}
}

// neighbour takes an uplink family whose gateway stopped answering ARP
// (IPv4) or neighbour solicitations (IPv6) out of the balance at once,
// before its probe rounds run out. Gateways are keyed by (ifindex,
// address): fe80::1 of one interface is not that of another.
func (d *Daemon) neighbour(e events.NeighEvent) {
	if e.Deleted || e.State&events.NeighFailed == 0 {
		return
	}
	for _, u := range d.entities() {
		if u.link == nil || u.link.Index != e.Index || !u.gw.IsValid() || u.gw != e.Addr {
			continue
		}
		proto := "ARP"
		if u.fam == ipv6 {
			proto = "neighbour solicitations"
		}
		reason := fmt.Sprintf("gateway %s does not answer %s on %s", e.Addr, proto, u.cfg.Interface)
		if tr, ok := u.m.GatewayFailed(reason, time.Now()); ok {
			d.transition(u, tr)
			d.needReconcile = true
		}
	}
}

func (d *Daemon) ours(table, protocol int) bool {
	if protocol == d.cfg.Routing.RouteProtocol || table == d.cfg.Routing.BalanceTable {
		return true
	}
	return slices.ContainsFunc(d.uplinks, func(u *uplink) bool { return u.cfg.Table == table }) ||
		slices.ContainsFunc(d.cfg.Policies, func(p config.Policy) bool { return p.Table == table })
}

// settle does the pending work: re-read links and addresses, run the state
// machines, (re)start probes, then plan and reconcile. Then it queues the
// hooks of the transitions, answers reloads waiting for the result and
// wakes status watchers when anything changed. When links and addresses
// cannot be read, nothing is planned from stale observations: what is
// installed stays as it is and the read is retried with backoff.
func (d *Daemon) settle(ctx context.Context) {
	if d.needLinks() && d.backoff {
		// Status requests and probe results do not hasten the retry.
		d.publish()
		return
	}
	if d.needLinks() {
		if d.needDump {
			d.updateFilter()
		}
		only := d.touched()
		snap, err := d.readLinks(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			d.netlinkError("read links and addresses", err)
			d.retry.Reset(d.netlinkDelay)
			d.backoff = true
			d.publish()
			return
		}
		if d.needRoutes {
			// The default routes through the links the dump found, as
			// a read of the same state: retried with it.
			err := d.readRoutes(ctx, snap)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				d.netlinkError("read default routes", err)
				d.retry.Reset(d.netlinkDelay)
				d.backoff = true
				d.publish()
				return
			}
			d.needRoutes = false
		}
		if d.needDump {
			d.netlink.Dumps++
			d.metrics.Dump()
		}
		d.needDump, d.linkEvs = false, nil
		d.netlinkOK()
		d.needEval = false
		only.resolve(d, snap)
		if d.observe(snap, only) {
			d.needReconcile = true
		}
		d.adopt()
		// Now with the indexes the dump found.
		d.updateFilter()
	}
	if d.needEval {
		d.needEval = false
		if d.observe(d.snap, nil) {
			d.needReconcile = true
		}
	}
	if d.needReconcile {
		d.needReconcile = false
		d.doReconcile()
	}
	// Probes start once the uplink's own table and rule are in place, so
	// their first round does not fail for want of a route.
	for _, u := range d.entities() {
		d.syncProber(u)
	}
	d.armTick()
	d.runHooks()
	d.finishReload()
	d.publish()
	if !d.ready && d.reconcile.Runs > 0 {
		// Ready once the kernel was read and reconciled, not before.
		d.ready = true
		d.notify(d.opts.Notify.Ready(d.summary()))
		if d.Ready != nil {
			d.Ready()
		}
	}
}

// publish wakes status watchers when anything changed.
func (d *Daemon) publish() {
	if d.changed {
		d.changed = false
		d.version++
		if d.waiters.Len() > 0 {
			d.waiters.Release(d.snapshot())
		}
	}
}

// deadlines lets the state machines whose deadline has passed act on it.
func (d *Daemon) deadlines() {
	now := time.Now()
	for _, u := range d.entities() {
		if tr, ok := u.m.Tick(now); ok {
			d.transition(u, tr)
			d.needReconcile = true
		}
		if !u.gwHold.IsZero() && !now.Before(u.gwHold) {
			d.needEval = true // a held gateway expires
		}
	}
}

// armTick sets the tick timer to the earliest deadline of any state
// machine: the loop owns every timer, no uplink runs one of its own.
func (d *Daemon) armTick() {
	var next time.Time
	for _, u := range d.entities() {
		if t, ok := u.m.Deadline(); ok && (next.IsZero() || t.Before(next)) {
			next = t
		}
		if t := u.gwHold; !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if next.Equal(d.tickAt) {
		return
	}
	d.tick.Stop()
	d.tickAt = next
	if !next.IsZero() {
		d.tick.Reset(time.Until(next))
	}
}
