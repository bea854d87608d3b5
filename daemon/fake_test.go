package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/probe"
)

// fakeNet is the kernel of the loop tests. It holds the links and
// addresses the test sets and the routing state the loop installed: the
// last plan Reconcile was given, as the real reconciler leaves the kernel,
// with what an earlier run left (HoldsFor reads it like netops does). It
// records every call in order, and delivers the events the test sends
// through the subscriptions the loop makes. It is safe for concurrent use.
type fakeNet struct {
	mu   sync.Mutex
	snap events.Snapshot
	// installed is the routing state in the "kernel".
	installed netops.Desired
	protocol  int
	// dumpErrs are returned by the next dumps, one each.
	dumpErrs []error
	// subErrs are returned by the next subscriptions, one each.
	subErrs []error
	// gate, when set, holds every dump until it is closed; entered gets
	// a value as a dump starts waiting.
	gate    chan struct{}
	entered chan struct{}
	// onDump, when set, is called (under mu, on the loop's goroutine)
	// as every dump starts: it may read the loop's state.
	onDump func()
	// stateFile, when set, gets the installed balance route after every
	// reconcile, for hook programs to read.
	stateFile string
	// slow is how long a reconcile takes: a slow kernel.
	slow time.Duration
	// balanceTable is the table HoldsFor and balance read.
	balanceTable int

	calls      []string // "dump", "dump failed", "reconcile", "cleanup", "holds", "subscribe"...
	dumps      int      // successful
	dumpTimes  []time.Time
	reconciles []netops.Desired
	cleanups   int
	sub        *fakeSub // the live subscription
	subs       int      // successful
	subTimes   []time.Time
}

func newFakeNet(balanceTable int) *fakeNet {
	return &fakeNet{balanceTable: balanceTable, protocol: 201}
}

func (k *fakeNet) kernel(p *fakeProbers) *Kernel {
	return &Kernel{State: k, Events: k, Routing: k, Probers: p}
}

func (k *fakeNet) record(c string) { k.calls = append(k.calls, c) }

func (k *fakeNet) Dump(ctx context.Context) (events.Snapshot, error) {
	snap, gate, entered, err := k.dump()
	if gate != nil {
		// The dump is read; the loop waits for the test.
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return events.Snapshot{}, ctx.Err()
		}
	}
	return snap, err
}

// dump reads the state as a dump starts.
func (k *fakeNet) dump() (events.Snapshot, chan struct{}, chan struct{}, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dumpTimes = append(k.dumpTimes, time.Now())
	if k.onDump != nil {
		k.onDump()
	}
	if len(k.dumpErrs) > 0 {
		err := k.dumpErrs[0]
		k.dumpErrs = k.dumpErrs[1:]
		k.record("dump failed")
		return events.Snapshot{}, k.gate, k.entered, err
	}
	k.dumps++
	k.record("dump")
	return events.Snapshot{Links: slices.Clone(k.snap.Links), Addrs: slices.Clone(k.snap.Addrs)}, k.gate, k.entered, nil
}

func (k *fakeNet) DefaultRoutes(context.Context, int) ([]events.DefaultRoute, error) { return nil, nil }

func (k *fakeNet) Reconcile(d netops.Desired) (netops.Result, error) {
	k.mu.Lock()
	slow := k.slow
	k.mu.Unlock()
	time.Sleep(slow)
	k.mu.Lock()
	defer k.mu.Unlock()
	var res netops.Result
	have, want := k.objects(k.installed), k.objects(d)
	for s := range want {
		if !have[s] {
			res.Added = append(res.Added, s)
		}
	}
	for s := range have {
		if !want[s] {
			res.Removed = append(res.Removed, s)
		}
	}
	k.installed = clone(d)
	k.reconciles = append(k.reconciles, clone(d))
	k.record("reconcile")
	if k.stateFile != "" {
		if err := os.WriteFile(k.stateFile, []byte(k.balanceLocked()+"\n"), 0o644); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (k *fakeNet) Cleanup() (netops.Result, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	res := netops.Result{Removed: slices.Collect(maps.Keys(k.objects(k.installed)))}
	k.installed = netops.Desired{}
	k.cleanups++
	k.record("cleanup")
	return res, nil
}

// HoldsFor reads the balance route and fwmark rules of family f as
// netops.Reconciler does.
func (k *fakeNet) HoldsFor(f netops.Family, balance, _ int) (netops.Held, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.record("holds")
	var h netops.Held
	for _, rt := range k.installed.Routes {
		if !sameFamily(rt.Family, f) || rt.Table != balance || rt.Dst.Bits() != 0 || rt.Type != netops.Unicast {
			continue
		}
		switch {
		case len(rt.Nexthops) > 0:
			h.Balance = slices.Clone(rt.Nexthops)
		case rt.Index > 0:
			h.Balance = []netops.Nexthop{{Gateway: rt.Gateway, Index: rt.Index, Weight: 1}}
		}
	}
	for _, ru := range k.installed.Rules {
		if ru.Mask != 0 && sameFamily(ru.Family, f) {
			h.Pinned = append(h.Pinned, ru.Table)
		}
	}
	return h, nil
}

// sameFamily compares families, the zero value being V4.
func sameFamily(a, b netops.Family) bool { return (a == netops.V6) == (b == netops.V6) }

func (k *fakeNet) SetProtocol(p int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.protocol = p
}

func (k *fakeNet) Nexthops() netops.NexthopKernel { return nil }

func (k *fakeNet) objects(d netops.Desired) map[string]bool {
	out := make(map[string]bool)
	for _, r := range d.Routes {
		out["route "+r.String()] = true
	}
	for _, r := range d.Rules {
		out["rule "+r.String()] = true
	}
	return out
}

func clone(d netops.Desired) netops.Desired {
	out := netops.Desired{Routes: slices.Clone(d.Routes), Rules: slices.Clone(d.Rules), Nexthops: slices.Clone(d.Nexthops)}
	for i := range out.Routes {
		out.Routes[i].Nexthops = slices.Clone(out.Routes[i].Nexthops)
	}
	return out
}

// balance is the installed balance route's next hops, "ifindex:weight"
// sorted, or "ifindex" for a single path; "" without one.
func (k *fakeNet) balance() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.balanceLocked()
}

func (k *fakeNet) balanceLocked() string { return balanceOf(k.installed, k.balanceTable) }

func balanceOf(d netops.Desired, table int) string {
	var hops []string
	for _, rt := range d.Routes {
		if rt.Table != table || rt.Dst.Bits() != 0 || rt.Type != netops.Unicast {
			continue
		}
		if len(rt.Nexthops) == 0 && rt.Index > 0 {
			hops = append(hops, fmt.Sprint(rt.Index)) // a single path has no weight
		}
		for _, h := range rt.Nexthops {
			hops = append(hops, fmt.Sprintf("%d:%d", h.Index, h.Weight))
		}
	}
	slices.Sort(hops)
	return strings.Join(hops, " ")
}

// counts returns the successful dumps, reconciles and cleanups so far.
func (k *fakeNet) counts() (dumps, reconciles, cleanups int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dumps, len(k.reconciles), k.cleanups
}

// setLink changes link index in the snapshot the next dumps return.
func (k *fakeNet) setLink(index int, f func(*events.Link)) {
	k.change(func(s *events.Snapshot) {
		for i := range s.Links {
			if s.Links[i].Index == index {
				f(&s.Links[i])
			}
		}
	})
}

// change changes the links and addresses the next dumps return.
func (k *fakeNet) change(f func(*events.Snapshot)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f(&k.snap)
}

// Subscribe fails with the next of subErrs, else makes the live
// subscription.
func (k *fakeNet) Subscribe() (Subscription, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.subTimes = append(k.subTimes, time.Now())
	if len(k.subErrs) > 0 {
		err := k.subErrs[0]
		k.subErrs = k.subErrs[1:]
		k.record("subscribe failed")
		return nil, err
	}
	k.subs++
	k.record("subscribe")
	k.sub = &fakeSub{in: make(chan events.Event), fail: make(chan error, 1)}
	return k.sub, nil
}

// live returns the subscription the loop runs, waiting for it.
func (k *fakeNet) live(t *testing.T) *fakeSub {
	t.Helper()
	var s *fakeSub
	waitFor(t, "a subscription", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		s = k.sub
		return s != nil && s.running.Load()
	})
	return s
}

// fakeSub delivers the events the test sends, in order, until the test
// breaks it.
type fakeSub struct {
	in        chan events.Event
	fail      chan error
	running   atomic.Bool
	delivered atomic.Int64
	mu        sync.Mutex
	filters   []events.Filter
}

func (s *fakeSub) Run(ctx context.Context, out chan<- events.Event) error {
	s.running.Store(true)
	defer s.running.Store(false)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.fail:
			return err
		case ev := <-s.in:
			select {
			case out <- ev:
				s.delivered.Add(1)
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// filter is the last filter the loop set.
func (s *fakeSub) filter() events.Filter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.filters) == 0 {
		return events.Filter{}
	}
	return s.filters[len(s.filters)-1]
}

func (s *fakeSub) SetFilter(f events.Filter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = append(s.filters, f)
	return nil
}

// send hands ev to the loop's subscription.
func (s *fakeSub) send(t *testing.T, evs ...events.Event) {
	t.Helper()
	for _, ev := range evs {
		select {
		case s.in <- ev:
		case <-time.After(5 * time.Second):
			t.Fatalf("the subscription does not take event %+v", ev)
		}
	}
}

// fakeProbers starts fakeProbers; the test makes them report rounds.
type fakeProbers struct {
	mu      sync.Mutex
	running map[string]*fakeProber // by uplink
}

func newFakeProbers() *fakeProbers { return &fakeProbers{running: make(map[string]*fakeProber)} }

func (f *fakeProbers) Start(cfg probe.Config, out chan<- probe.Result) (Prober, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cfg.Uplink == "" || !cfg.Source.IsValid() || len(cfg.Targets) == 0 {
		return nil, errors.New("fake prober: incomplete configuration")
	}
	p := &fakeProber{f: f, cfg: cfg, out: out}
	f.running[cfg.Uplink] = p
	return p, nil
}

// prober returns the running prober of uplink, waiting for it.
func (f *fakeProbers) prober(t *testing.T, uplink string) *fakeProber {
	t.Helper()
	var p *fakeProber
	waitFor(t, "a prober of "+uplink, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		p = f.running[uplink]
		return p != nil
	})
	return p
}

type fakeProber struct {
	f     *fakeProbers
	cfg   probe.Config
	out   chan<- probe.Result
	round uint64
}

func (p *fakeProber) Stop() {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	if p.f.running[p.cfg.Uplink] == p {
		delete(p.f.running, p.cfg.Uplink)
	}
}

// rounds reports n rounds, good or failed, as the prober would.
func (p *fakeProber) rounds(t *testing.T, n int, good bool) {
	t.Helper()
	for range n {
		p.round++
		r := probe.Result{Uplink: p.cfg.Uplink, Gen: p.cfg.Gen, Round: p.round, Good: good, Sent: 2 * p.round}
		if good {
			r.Replies, r.RTT = len(p.cfg.Targets), 5*time.Millisecond
		} else {
			r.Err = errors.New("no reply")
		}
		select {
		case p.out <- r:
		case <-time.After(5 * time.Second):
			t.Fatalf("the loop does not take probe results of %s", p.cfg.Uplink)
		}
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline: the machine is shared and noisy.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// prefix parses p.
func prefix(p string) netip.Prefix { return netip.MustParsePrefix(p) }
