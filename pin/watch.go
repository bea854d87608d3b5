package pin

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// Watch reports changes to the table made by anyone else: a `flush
// ruleset` (an nftables.conf reload), a firewall manager or container
// runtime deleting or editing the table, one of its chains, rules or map
// elements. It listens to nftables' netlink events (NFNLGRP_NFTABLES);
// after each transaction that touched the table (or that it cannot rule
// out: map element events do not name their table) it reads the table and
// compares it with what Apply last wrote, so Apply's own writes are not
// reported; one foreign state is reported once, however many events show
// it. On a difference it sends on changed without blocking (give it a
// buffer of 1: one pending signal is enough, the receiver re-applies).
// Before the first Apply and after Remove nothing is reported.
//
// Watch blocks until ctx is done and then returns nil. When the event
// socket fails (ENOBUFS after a burst) it subscribes again, compares once
// more, and carries on.
func (t *Table) Watch(ctx context.Context, changed chan<- struct{}) error {
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := t.watch(ctx, changed)
		if ctx.Err() != nil {
			return nil
		}
		t.log.Warn("nftables event subscription failed; subscribing again", "err", err)
		if time.Since(start) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// watch runs one subscription until ctx is done or the subscription fails.
func (t *Table) watch(ctx context.Context, changed chan<- struct{}) error {
	// A lasting connection that this function closes itself: the monitor
	// does not close its socket when it fails (ENOBUFS), only when it is
	// closed first.
	c, err := nftables.New(
		nftables.AsLasting(),
		nftables.WithNetNSFd(t.cfg.NetNS),
		nftables.WithSockOptions(func(c *netlink.Conn) error { return c.SetReadBuffer(1 << 20) }),
	)
	if err != nil {
		return fmt.Errorf("nftables event socket: %w", err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(16))
	events, err := c.AddGenerationalMonitor(mon)
	if err != nil {
		_ = c.CloseLasting()
		return fmt.Errorf("subscribe to nftables events: %w", err)
	}
	defer func() {
		// Closing the socket ends the monitor's goroutine, which closes
		// events once any event it is sending has been received.
		_ = c.CloseLasting()
		_ = mon.Close()
		for range events {
		}
	}()
	t.mu.Lock()
	t.watching++
	t.verified = false // events before the subscription were not seen
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.watching--
		t.verified = false
		t.mu.Unlock()
	}()
	// Subscribed first, then compared: a change made before the
	// subscription is not missed.
	t.check(changed)
	for {
		var ev *nftables.MonitorEvents
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ev, ok = <-events:
		}
		// One check for a burst: take the transactions already queued.
		relevant := false
		for {
			if !ok {
				t.check(changed)
				return errors.New("nftables event stream closed")
			}
			if ev.GeneratedBy != nil && ev.GeneratedBy.Type == nftables.MonitorEventTypeOOB {
				t.check(changed)
				return fmt.Errorf("nftables events: %w", ev.GeneratedBy.Error)
			}
			relevant = relevant || concernsTable(ev.Changes)
			select {
			case ev, ok = <-events:
				continue
			default:
			}
			break
		}
		if relevant {
			t.check(changed)
		}
	}
}

// concernsTable reports whether a transaction's changes may have touched
// uplinkd's table.
func concernsTable(changes []*nftables.MonitorEvent) bool {
	ours := func(tb *nftables.Table) bool {
		return tb == nil || (tb.Name == TableName && tb.Family == nftables.TableFamilyINet)
	}
	for _, ch := range changes {
		if ch.Error != nil {
			return true // not parsed: cannot rule it out
		}
		switch d := ch.Data.(type) {
		case *nftables.Table:
			if ours(d) {
				return true
			}
		case *nftables.Chain:
			if ours(d.Table) {
				return true
			}
		case *nftables.Rule:
			if ours(d.Table) {
				return true
			}
		case *nftables.Set:
			if ours(d.Table) {
				return true
			}
		case []nftables.SetElement:
			return true // element events do not say which table
		}
	}
	return false
}

// check compares the installed table with the one Apply wrote and signals
// a difference.
func (t *Table) check(changed chan<- struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.want == nil {
		return
	}
	cur, err := t.readLocked(t.want.chainNames())
	if err == nil && cur != nil && reflect.DeepEqual(*cur, *t.want) {
		t.verified = true
		return
	}
	t.verified = false
	if err == nil && t.reportedGen == t.gen && reflect.DeepEqual(cur, t.reportedView) {
		return // reported already: a later event of the same change
	}
	switch {
	case err != nil:
		t.log.Warn("cannot read the pin table after a change", "err", err)
	case cur == nil:
		t.log.Warn("nftables table was deleted by someone else", "table", "inet "+TableName)
	default:
		t.log.Warn("nftables table was changed by someone else", "table", "inet "+TableName)
	}
	t.reportedGen, t.reportedView = t.gen, cur
	select {
	case changed <- struct{}{}:
	default:
	}
}
