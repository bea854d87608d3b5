package netops

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/events"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestEchoesTakeOnePerWrite(t *testing.T) {
	var e echoes
	t0 := time.Unix(1000, 0)
	k := echoKey{rule: true, family: unix.AF_INET, priority: 10001, table: 1000, protocol: 201}
	e.wrote(k, t0)
	e.wrote(k, t0)
	del := k
	del.deleted = true
	if e.take(del, t0) {
		t.Error("a deletion's event taken as the echo of an addition")
	}
	for i := range 2 {
		if !e.take(k, t0) {
			t.Errorf("write %d of 2 not echoed", i+1)
		}
	}
	if e.take(k, t0) {
		t.Error("a third event taken as an echo of two writes")
	}
	e.wrote(k, t0)
	if e.take(k, t0.Add(echoTTL+time.Millisecond)) {
		t.Error("a record older than echoTTL taken")
	}
	e.wrote(echoKey{id: 7}, t0)
	e.reset()
	if e.take(echoKey{id: 7}, t0) {
		t.Error("a record taken after reset")
	}
}

// The kernel's events about the reconciler's own writes are taken as
// echoes, one for one, and someone else's event about a rule or nexthop
// object like the reconciler's is not.
func TestReconcilerEchoesKernel(t *testing.T) {
	ns, h, nh := carrierNS(t)
	u1, u2 := inNS(t, h, withCarrier(isp1(true)), withCarrier(isp2(true)))
	s := resilient
	s.Balancer = HashThreshold
	r := &Reconciler{K: h, NH: nh, Protocol: 201}
	r.EnableCache()

	handle, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer handle.Close()
	mon, err := events.SubscribeAt(handle)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	evs := make(chan events.Event, 4096)
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx, evs) }()
	defer func() {
		cancel()
		<-done
	}()

	// echoes reads rule and nexthop events until n have come, and says
	// how many of them were echoes.
	echoes := func(what string, n int) (taken int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for seen := 0; seen < n; {
			select {
			case ev := <-evs:
				switch e := ev.(type) {
				case events.RuleEvent:
					seen++
					fam := unix.AF_INET
					if e.Family == events.V6 {
						fam = unix.AF_INET6
					}
					if r.RuleEcho(fam, e.Priority, e.Table, e.Protocol, e.Deleted) {
						taken++
					}
				case events.NexthopEvent:
					seen++
					if r.NexthopEcho(uint32(e.ID), e.Deleted) {
						taken++
					}
				}
			case <-deadline:
				t.Fatalf("%s: %d rule and nexthop events seen before the deadline, want %d", what, seen, n)
			}
		}
		return taken
	}

	both := Plan(s, []Uplink{u1, u2})
	res, err := r.Reconcile(both)
	if err != nil {
		t.Fatal(err)
	}
	writes := len(both.Rules) + len(both.Nexthops)
	if got := echoes("first reconcile", writes); got != writes {
		t.Errorf("first reconcile: %d of its %d rule and nexthop writes' events taken as echoes (%v)", got, writes, res)
	}

	// Without u2: its nexthop object and source rule go, the group is
	// replaced.
	one := Plan(s, []Uplink{u1})
	res, err = r.Reconcile(one)
	if err != nil {
		t.Fatal(err)
	}
	var ruleNH int
	for _, c := range append(res.Added, res.Removed...) {
		if c[:4] == "rule" || c[:7] == "nexthop" {
			ruleNH++
		}
	}
	if ruleNH < 3 {
		t.Fatalf("without u2: %d rule and nexthop changes, want at least 3: %v", ruleNH, res)
	}
	if got := echoes("without u2", ruleNH); got != ruleNH {
		t.Errorf("without u2: %d of %d events taken as echoes (%v)", got, ruleNH, res)
	}

	// Someone else's rule and nexthop object, like the reconciler's.
	ipOut(t, ns, "rule", "add", "from", "192.0.2.99", "lookup", strconv.Itoa(u1.Table),
		"pref", strconv.Itoa(s.RulePriority+prioSource), "protocol", "201")
	ipOut(t, ns, "nexthop", "add", "id", "2010000100", "blackhole", "proto", "201")
	if got := echoes("foreign", 2); got != 0 {
		t.Errorf("%d of someone else's events taken as echoes", got)
	}
}
