package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// receiveBuffer is the socket receive buffer the Monitor asks for. Bursts
// (an interface flap takes its addresses and every route through it along)
// must fit while the consumer is busy; an overrun costs a full re-read.
const receiveBuffer = 8 << 20

// Monitor is a subscription to rtnetlink notifications. Create it with
// Subscribe, then call Run once.
type Monitor struct {
	conn      *netlink.Conn
	closeOnce sync.Once
	closeErr  error

	filter filterState
	// read counts the messages received, passed those handed to the
	// consumer.
	read, passed atomic.Uint64
}

// SetFilter narrows the events Run delivers to those f says matter. Route
// notifications of other tables and protocols are dropped by the kernel
// (a socket filter), before they take buffer space; the rest are checked
// by Run. It may be called at any time, from any goroutine; a later call
// replaces the filter.
func (m *Monitor) SetFilter(f Filter) error {
	prog, err := routeFilter(f.Protocol, f.Tables)
	if err != nil {
		return err
	}
	if err := m.conn.SetBPF(prog); err != nil {
		return fmt.Errorf("attach socket filter: %w", err)
	}
	m.filter.set(f)
	return nil
}

// Counts returns how many messages Run has received from the kernel and
// how many events it has delivered.
func (m *Monitor) Counts() (read, delivered uint64) { return m.read.Load(), m.passed.Load() }

// Subscribe opens a netlink socket in the calling thread's network namespace
// and joins the link, address, route and rule groups of IPv4 and IPv6, the
// nexthop group and the neighbour (ARP and NDP) group
// before it returns: every change made after Subscribe returns is reported
// by Run, even if Run starts later (up to the receive buffer).
func Subscribe() (*Monitor, error) {
	return subscribe(0, receiveBuffer)
}

// SubscribeBuffer is Subscribe with a receive buffer of n bytes instead of
// the default 8 MiB: tests use a small one to force overruns.
func SubscribeBuffer(n int) (*Monitor, error) {
	return subscribe(0, n)
}

// SubscribeAt is Subscribe for the network namespace ns instead of the
// calling thread's. The socket stays in ns for its whole life.
func SubscribeAt(ns netns.NsHandle) (*Monitor, error) {
	if ns <= 0 {
		return nil, errors.New("subscribe to rtnetlink: invalid network namespace handle")
	}
	return subscribe(int(ns), receiveBuffer)
}

// subscribe opens the event socket in the namespace nsFD (0: the calling
// thread's) with a receive buffer of rcvbuf bytes.
func subscribe(nsFD, rcvbuf int) (*Monitor, error) {
	// netlink.Config.NetNS creates the socket on a locked OS thread inside
	// nsFD and restores the thread (or lets it die) afterwards.
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, fmt.Errorf("subscribe to rtnetlink: dial: %w", err)
	}
	m := &Monitor{conn: c}
	if err := m.setup(rcvbuf); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("subscribe to rtnetlink: %w", err)
	}
	return m, nil
}

func (m *Monitor) setup(rcvbuf int) error {
	// NETLINK_NO_ENOBUFS stays off on purpose: an overrun must be reported
	// so the consumer can re-read what was lost.
	if err := setReadBuffer(m.conn, rcvbuf); err != nil {
		return err
	}
	groups := []struct {
		id       uint32
		name     string
		optional bool
	}{
		{unix.RTNLGRP_LINK, "link", false},
		{unix.RTNLGRP_IPV4_IFADDR, "ipv4-ifaddr", false},
		{unix.RTNLGRP_IPV4_ROUTE, "ipv4-route", false},
		{unix.RTNLGRP_IPV4_RULE, "ipv4-rule", false},
		// The IPv6 groups exist even when IPv6 is disabled (nothing is
		// ever sent on them then).
		{unix.RTNLGRP_IPV6_IFADDR, "ipv6-ifaddr", false},
		{unix.RTNLGRP_IPV6_ROUTE, "ipv6-route", false},
		{unix.RTNLGRP_IPV6_RULE, "ipv6-rule", false},
		// Nexthop objects arrived in Linux 5.3; older kernels reject the
		// group with EINVAL and simply have no nexthops to report.
		{unix.RTNLGRP_NEXTHOP, "nexthop", true},
		// Neighbour entries: a gateway that stops answering ARP or NDP.
		{unix.RTNLGRP_NEIGH, "neigh", false},
	}
	for _, g := range groups {
		err := m.conn.JoinGroup(g.id)
		if err != nil && !(g.optional && errors.Is(err, unix.EINVAL)) {
			return fmt.Errorf("join group %s: %w", g.name, err)
		}
	}
	return nil
}

// setReadBuffer sets the socket receive buffer to n bytes. SO_RCVBUFFORCE
// (CAP_NET_ADMIN, which the daemon has anyway) is not capped by
// net.core.rmem_max, whose default of 208 KiB is far too small for a burst;
// without the capability the capped SO_RCVBUF is the best we can do.
func setReadBuffer(c *netlink.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	if serr == nil {
		return nil
	}
	if err := c.SetReadBuffer(n); err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	return nil
}

// Run reads notifications and sends them to out until ctx is done, then
// closes the socket and returns nil. Sends block, so a slow consumer fills
// the socket buffer; when it overruns, the kernel drops notifications and
// Run sends ResyncEvent and carries on. Any other receive error ends Run
// with that error. Run must be called at most once.
func (m *Monitor) Run(ctx context.Context, out chan<- Event) error {
	defer m.Close()

	// Receive blocks in the runtime poller; a read deadline in the past is
	// the way to wake it without racing Close against a pending read.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			_ = m.conn.SetReadDeadline(time.Unix(1, 0))
		case <-stop:
		}
	})
	defer wg.Wait()
	defer close(stop)

	for {
		msgs, err := m.conn.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.EINTR) {
				continue // nothing was lost
			}
			if errors.Is(err, unix.ENOBUFS) {
				// The kernel clears the error with this report; the
				// socket keeps working and later messages are intact.
				if !send(ctx, out, ResyncEvent{Reason: "netlink receive buffer overrun (ENOBUFS)", Overrun: true}) {
					return nil
				}
				continue
			}
			return fmt.Errorf("receive rtnetlink events: %w", err)
		}
		m.read.Add(uint64(len(msgs)))
		for _, msg := range msgs {
			ev, err := parseMessage(msg)
			if err != nil {
				ev = ResyncEvent{Reason: fmt.Sprintf("undecodable rtnetlink message type %d: %v", msg.Header.Type, err)}
			}
			if ev == nil || !m.filter.pass(ev) {
				continue
			}
			m.passed.Add(1)
			if !send(ctx, out, ev) {
				return nil
			}
		}
	}
}

// send delivers ev unless ctx is done first.
func send(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close closes the socket. Run does this itself; Close is for a Monitor
// whose Run is never called (for example when a start-up step after
// Subscribe failed). Close is safe to call more than once.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.conn.Close() })
	return m.closeErr
}
