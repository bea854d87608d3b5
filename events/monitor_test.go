package events

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/test/testutil"
	"github.com/vishvananda/netns"
)

// waitLimit bounds how long a test waits for an expected event. It is a
// failure deadline, not a performance assertion.
const waitLimit = 10 * time.Second

// watcher runs a Monitor for the test and hands out its events in order.
type watcher struct {
	events chan Event
}

// watch runs m until the test ends and checks that Run then returns nil.
func watch(t *testing.T, m *Monitor) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{events: make(chan Event, 64)}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, w.events) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(waitLimit):
			t.Fatal("Run did not return after cancel")
		}
	})
	return w
}

// waitFor returns the first event equal to want and every event skipped
// before it. It fails t if want does not arrive.
func (w *watcher) waitFor(t *testing.T, want Event) (skipped []Event) {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case ev := <-w.events:
			if cmp.Equal(want, ev, cmpOpts) {
				return skipped
			}
			skipped = append(skipped, ev)
		case <-timeout:
			t.Fatalf("no %T%+v; got instead:\n%s", want, want, describe(skipped))
		}
	}
}

// waitMatch returns the first event for which match is true.
func (w *watcher) waitMatch(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(waitLimit)
	var skipped []Event
	for {
		select {
		case ev := <-w.events:
			if match(ev) {
				return ev
			}
			skipped = append(skipped, ev)
		case <-timeout:
			t.Fatalf("no %s; got instead:\n%s", what, describe(skipped))
		}
	}
}

func describe(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "\t%T%+v\n", ev, ev)
	}
	return b.String()
}

// subscribeIn subscribes from a thread switched into ns, as the daemon
// does when it is started inside its namespace.
func subscribeIn(t *testing.T, ns netns.NsHandle) *Monitor {
	t.Helper()
	var m *Monitor
	if err := inNS(ns, func() (err error) {
		m, err = Subscribe()
		return err
	}); err != nil {
		t.Fatalf("Subscribe in namespace: %v", err)
	}
	return m
}

func TestMonitorNamespace(t *testing.T) {
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")
	b, _ := newNS(t, id, "b")

	m := subscribeIn(t, ha)
	// As root, SO_RCVBUFFORCE gets past net.core.rmem_max (the kernel
	// reports double the requested size).
	if n, err := m.conn.ReadBuffer(); err != nil || n < receiveBuffer {
		t.Errorf("receive buffer = %d, %v; want at least %d", n, err, receiveBuffer)
	}
	// Subscribe has joined the groups: a change before Run starts is kept.
	ip(t, "-n", a, "link", "add", "eth2", "type", "veth", "peer", "name", "up0", "netns", b)
	w := watch(t, m)

	ev := w.waitMatch(t, "LinkEvent for eth2", func(ev Event) bool {
		le, ok := ev.(LinkEvent)
		return ok && le.Link.Name == "eth2"
	}).(LinkEvent)
	idx := ev.Link.Index
	if diff := cmp.Diff(LinkEvent{Link: Link{Index: idx, Name: "eth2"}}, ev); diff != "" || idx <= 0 {
		t.Fatalf("new veth (-want +got):\n%s (index %d)", diff, idx)
	}
	link := func(name string, up, carrier bool) LinkEvent {
		return LinkEvent{Link: Link{Index: idx, Name: name, AdminUp: up, Carrier: carrier}}
	}

	ip(t, "-n", b, "link", "set", "up0", "up")
	ip(t, "-n", a, "link", "set", "eth2", "up")
	w.waitFor(t, link("eth2", true, true))

	// Carrier loss: the peer goes down, eth2 stays admin up.
	ip(t, "-n", b, "link", "set", "up0", "down")
	w.waitFor(t, link("eth2", true, false))
	ip(t, "-n", b, "link", "set", "up0", "up")
	w.waitFor(t, link("eth2", true, true))

	addr := Addr{Index: idx, Prefix: netip.MustParsePrefix("203.0.113.2/24"), Flags: AddrPermanent}
	ip(t, "-n", a, "addr", "add", "203.0.113.2/24", "dev", "eth2")
	w.waitFor(t, AddrEvent{Addr: addr})

	t.Run("Dump", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		var snap Snapshot
		if err := inNS(ha, func() (err error) {
			snap, err = Dump(ctx)
			return err
		}); err != nil {
			t.Fatalf("Dump: %v", err)
		}
		if !slices.Contains(snap.Links, link("eth2", true, true).Link) {
			t.Errorf("Dump links = %+v, want eth2 up with carrier at index %d", snap.Links, idx)
		}
		if !slices.ContainsFunc(snap.Links, func(l Link) bool { return l.Name == "lo" }) {
			t.Errorf("Dump links = %+v, want lo too", snap.Links)
		}
		// IPv4 first; eth2 also has its IPv6 link-local address.
		if diff := cmp.Diff([]Addr{addr}, snap.Addrs[:min(1, len(snap.Addrs))], cmpOpts); diff != "" {
			t.Errorf("Dump addrs (-want +got):\n%s", diff)
		}
		if !slices.ContainsFunc(snap.Addrs, func(a Addr) bool { return a.Index == idx && a.Scope == ScopeLink && a.Family() == V6 }) {
			t.Errorf("Dump addrs = %+v, want eth2's link-local address too", snap.Addrs)
		}

		at, err := DumpAt(ctx, ha)
		if err != nil {
			t.Fatalf("DumpAt: %v", err)
		}
		if diff := cmp.Diff(snap, at, cmpOpts); diff != "" {
			t.Errorf("DumpAt differs from Dump inside the namespace (-Dump +DumpAt):\n%s", diff)
		}
	})

	route := []string{"198.51.100.0/24", "via", "203.0.113.1", "table", "200", "proto", "201"}
	ip(t, append([]string{"-n", a, "route", "add"}, route...)...)
	w.waitFor(t, RouteEvent{Family: V4, Table: 200, Protocol: 201})
	ip(t, append([]string{"-n", a, "route", "del"}, route...)...)
	w.waitFor(t, RouteEvent{Family: V4, Table: 200, Protocol: 201, Deleted: true})

	ip(t, "-n", a, "rule", "add", "priority", "10000", "from", "203.0.113.2", "lookup", "200", "proto", "201")
	w.waitFor(t, RuleEvent{Family: V4, Priority: 10000, Table: 200, Protocol: 201})
	ip(t, "-n", a, "rule", "del", "priority", "10000")
	w.waitFor(t, RuleEvent{Family: V4, Priority: 10000, Table: 200, Protocol: 201, Deleted: true})

	ip(t, "-n", a, "nexthop", "add", "id", "42", "via", "203.0.113.1", "dev", "eth2", "proto", "201")
	w.waitFor(t, NexthopEvent{ID: 42, Protocol: 201})
	ip(t, "-n", a, "nexthop", "del", "id", "42")
	w.waitFor(t, NexthopEvent{ID: 42, Protocol: 201, Deleted: true})

	ip(t, "-n", a, "addr", "del", "203.0.113.2/24", "dev", "eth2")
	w.waitFor(t, AddrEvent{Addr: addr, Deleted: true})

	ip(t, "-n", a, "link", "set", "eth2", "down")
	w.waitFor(t, link("eth2", false, false))
	ip(t, "-n", a, "link", "set", "eth2", "name", "wan0")
	w.waitFor(t, link("wan0", false, false))

	// Joining and leaving a bridge makes the kernel send AF_BRIDGE
	// RTM_NEWLINK/RTM_DELLINK for the port; neither is a link event.
	ip(t, "-n", a, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", a, "link", "set", "wan0", "master", "br0")
	ip(t, "-n", a, "link", "set", "wan0", "nomaster")
	ip(t, "-n", a, "link", "del", "wan0")
	deleted := LinkEvent{Link: Link{Index: idx, Name: "wan0"}, Deleted: true}
	for _, ev := range w.waitFor(t, deleted) {
		if le, ok := ev.(LinkEvent); ok && le.Deleted {
			t.Errorf("link deleted early: %+v", le)
		}
	}
}

// A gateway that does not answer ARP: the kernel's neighbour entry becomes
// FAILED (the kernel does not announce the INCOMPLETE entry that precedes
// it), and REACHABLE once the gateway answers.
func TestMonitorNeighbour(t *testing.T) {
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")
	b, _ := newNS(t, id, "b")
	ip(t, "-n", a, "link", "add", "eth2", "type", "veth", "peer", "name", "up0", "netns", b)
	ip(t, "-n", a, "addr", "add", "203.0.113.2/24", "dev", "eth2")
	ip(t, "-n", a, "link", "set", "eth2", "up")
	ip(t, "-n", b, "link", "set", "up0", "up")
	// One ARP request, 100ms apart: FAILED within a fraction of a second.
	ip(t, "netns", "exec", a, "sysctl", "-qw", "net.ipv4.neigh.eth2.mcast_solicit=1", "net.ipv4.neigh.eth2.retrans_time_ms=100")
	m := subscribeIn(t, ha)
	w := watch(t, m)
	gw := netip.MustParseAddr("203.0.113.1")
	send := func() {
		t.Helper()
		sendUDP(t, ha, netip.AddrPortFrom(gw, 9))
	}
	send()
	ev := w.waitMatch(t, "NeighEvent FAILED", func(ev Event) bool {
		ne, ok := ev.(NeighEvent)
		return ok && ne.Addr == gw && ne.State == NeighFailed
	}).(NeighEvent)
	idx := ev.Index
	if idx <= 0 || ev.Deleted {
		t.Fatalf("neighbour event %+v", ev)
	}

	ip(t, "-n", b, "addr", "add", "203.0.113.1/24", "dev", "up0")
	send()
	w.waitFor(t, NeighEvent{Index: idx, Addr: gw, State: NeighReachable})
}

// TestMonitorResync overruns a deliberately tiny receive buffer and checks
// that Run reports ResyncEvent and keeps delivering events afterwards.
func TestMonitorResync(t *testing.T) {
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")

	m, err := subscribe(int(ha), 0) // the kernel rounds 0 up to its minimum
	if err != nil {
		t.Fatal(err)
	}
	// Each address adds an RTM_NEWADDR and a local route; far more than
	// the minimum buffer holds while nobody reads.
	var batch strings.Builder
	for i := range 200 {
		fmt.Fprintf(&batch, "address add 198.18.%d.%d/32 dev lo\n", i/250, i%250+1)
	}
	cmd := exec.Command("ip", "-n", a, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}

	w := watch(t, m)
	w.waitMatch(t, "ResyncEvent", func(ev Event) bool {
		r, ok := ev.(ResyncEvent)
		return ok && r.Overrun
	})

	// Give the socket room again so the next burst cannot overrun, then
	// show that the subscription survived.
	if err := setReadBuffer(m.conn, receiveBuffer); err != nil {
		t.Fatal(err)
	}
	ip(t, "-n", a, "rule", "add", "priority", "10005", "lookup", "200", "proto", "201")
	w.waitFor(t, RuleEvent{Family: V4, Priority: 10005, Table: 200, Protocol: 201})
}

// TestRunBlockedSend checks that Run returns nil when ctx ends while it is
// blocked handing an event to a consumer that does not read.
func TestRunBlockedSend(t *testing.T) {
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")

	m, err := SubscribeAt(ha)
	if err != nil {
		t.Fatal(err)
	}
	ip(t, "-n", a, "rule", "add", "priority", "10005", "lookup", "200")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, make(chan Event)) }()
	// No receiver: Run is now stuck in send, or about to be.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
}

// TestRunCancel checks that cancelling ctx wakes a Run blocked in Receive.
// It only listens in the test's own namespace, so it needs no privileges.
func TestRunCancel(t *testing.T) {
	m, err := Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, make(chan Event, 1024)) }()
	time.Sleep(50 * time.Millisecond) // let Run reach Receive; correctness does not depend on it
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close after Run: %v", err)
	}
}

func TestDumpCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dump(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Dump with cancelled context = %v, want context.Canceled", err)
	}
}

func TestClosedNamespaceHandle(t *testing.T) {
	if _, err := SubscribeAt(netns.None()); err == nil {
		t.Error("SubscribeAt(None) succeeded")
	}
	if _, err := DumpAt(context.Background(), netns.None()); err == nil {
		t.Error("DumpAt(None) succeeded")
	}
}
