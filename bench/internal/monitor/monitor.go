package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Monitor records the routing messages of one namespace. Its methods may
// be called from several goroutines.
type Monitor struct {
	conn *netlink.Conn
	done chan struct{} // closed when the receive loop has returned

	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every append
	err     error         // why the receive loop stopped
}

// Start opens the monitor in the namespace named ns (as `ip netns` names
// it). Close stops it.
func Start(ns string) (*Monitor, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("monitor: namespace %s: %w", ns, err)
	}
	defer h.Close()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(h)})
	if err != nil {
		return nil, fmt.Errorf("monitor: dial rtnetlink in %s: %w", ns, err)
	}
	for _, g := range []uint32{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_NEXTHOP} {
		if err := c.JoinGroup(g); err != nil {
			c.Close()
			return nil, fmt.Errorf("monitor: join group %d in %s: %w", g, ns, err)
		}
	}
	// Storms of route messages must not overflow it while a scenario runs.
	_ = c.SetReadBuffer(32 << 20)
	m := &Monitor{conn: c, done: make(chan struct{}), changed: make(chan struct{})}
	go m.loop()
	return m, nil
}

func (m *Monitor) loop() {
	defer close(m.done)
	for {
		msgs, err := m.conn.Receive()
		at := time.Now()
		if err != nil {
			var oe *netlink.OpError
			if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOBUFS) {
				m.append([]Event{{At: at, Overrun: true}})
				continue
			}
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			return
		}
		evs := make([]Event, 0, len(msgs))
		for _, msg := range msgs {
			if ev, ok := Parse(msg); ok {
				ev.At = at
				evs = append(evs, ev)
			}
		}
		m.append(evs)
	}
}

func (m *Monitor) append(evs []Event) {
	if len(evs) == 0 {
		return
	}
	m.mu.Lock()
	m.events = append(m.events, evs...)
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// Close stops the monitor and waits for its goroutine.
func (m *Monitor) Close() error {
	err := m.conn.Close()
	<-m.done
	return err
}

// Reset forgets the events recorded so far.
func (m *Monitor) Reset() {
	m.mu.Lock()
	m.events = nil
	m.mu.Unlock()
}

// Since returns the events stamped at or after t, in order.
func (m *Monitor) Since(t time.Time) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, e := range m.events {
		if !e.At.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// First waits for the first event stamped at or after t that match
// accepts, until ctx is done.
func (m *Monitor) First(ctx context.Context, t time.Time, match func(Event) bool) (Event, error) {
	seen := 0
	for {
		m.mu.Lock()
		evs, changed, lerr := m.events, m.changed, m.err
		m.mu.Unlock()
		for ; seen < len(evs); seen++ {
			if e := evs[seen]; !e.At.Before(t) && match(e) {
				return e, nil
			}
		}
		if lerr != nil {
			return Event{}, fmt.Errorf("monitor stopped: %w", lerr)
		}
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-changed:
		}
	}
}

// Settled waits, after first (a matching event), until no matching event
// has come for quiet, and returns the last matching one: the end of the
// burst of changes a tool made. It gives up at ctx's end and returns the
// last match so far.
func (m *Monitor) Settled(ctx context.Context, first Event, match func(Event) bool, quiet time.Duration) Event {
	last := first
	for {
		wait, cancel := context.WithDeadline(ctx, last.At.Add(quiet))
		e, err := m.First(wait, last.At.Add(1), func(e Event) bool { return match(e) && e.At.After(last.At) })
		cancel()
		if err != nil {
			return last
		}
		last = e
	}
}
