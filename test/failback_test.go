package test

import (
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// failbackCase is an outage of isp2 and its repair.
type failbackCase struct {
	name string
	// outage: how long the blackhole lasts from its start (at least until
	// isp2 has left the balance); 0 for a carrier loss.
	outage time.Duration
}

func failbackCases() []failbackCase {
	cases := []failbackCase{{"carrier loss", 0}, {"1s blackhole", time.Second}, {"10s blackhole", 10 * time.Second}}
	if longTests() {
		cases = append(cases, failbackCase{"60s blackhole", 60 * time.Second})
	}
	return cases
}

// failbackBudget is up_after × interval + 0.3 s with the default probes
// (2 × 500ms): the time within which new connections must use a repaired
// uplink.
const failbackBudget = 2*500*time.Millisecond + 300*time.Millisecond

// failbackSlack is what a busy machine running the race detector may add
// to failbackBudget. It is far below the 9 s that an uplink judged on its
// outage's losses sat out (issue 9, item 2), which the test must catch.
const failbackSlack = 3 * time.Second

// Issue 9, acceptance "failback": isp2 returns after a carrier loss and
// after blackholes of 1 s and 10 s (60 s with UPLINKD_LONG=1). 1024 new
// connections opened once isp2 is back split 1:3 (± 5 points), and none
// of the connections established at the repair moves, loses a UDP
// sequence number or sees a TCP reset. isp2 must be back within the budget
// plus a busy machine's slack: an uplink judged on the outage's losses
// (degraded for about 9 s after a long outage) fails.
func TestFailback(t *testing.T) {
	for _, b := range pinnedBalancers {
		t.Run(balancerName(b), func(t *testing.T) {
			limit := 4 * time.Minute
			if longTests() {
				limit = 6 * time.Minute
			}
			r := newNATRig(t, flapOff(coreConfig(b)), lab.Options{}, limit)
			r.start()
			r.waitBoth()
			for _, c := range failbackCases() {
				r.failback(c)
			}
		})
	}
}

func (r *rig) failback(c failbackCase) {
	t := r.t
	t.Helper()
	what := balancerName(r.balancer) + ", " + c.name
	f := r.startFlows(lab.FlowOptions{Interval: 200 * time.Millisecond})
	defer f.close()

	mark := r.mark()
	start := time.Now()
	if c.outage == 0 {
		if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
			t.Fatal(err)
		}
		r.waitTransition(mark, "isp2", "down", 10*time.Second)
		// Every UDP flow runs on isp1 before the repair.
		deadline := time.Now().Add(10 * time.Second)
		for f.Snapshot().Uplinks("udp")["isp1"] < 128 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: UDP flows not all on isp1 10s after the carrier loss: %v", what, f.Snapshot().Uplinks("udp"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	} else {
		if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
			t.Fatal(err)
		}
		r.waitTransition(mark, "isp2", "(probing|down)", 15*time.Second)
		if d := time.Until(start.Add(c.outage)); d > 0 {
			time.Sleep(d)
		}
	}
	r.waitOnly("eth1")
	before := f.Snapshot()
	kept := established(before, lab.ISP1)
	mark = r.mark()
	repair := time.Now()
	if c.outage == 0 {
		if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := r.lab.Blackhole(r.ctx, lab.ISP2, false); err != nil {
			t.Fatal(err)
		}
	}
	back := logTime(t, r.waitTransition(mark, "isp2", "active", 30*time.Second)).Sub(repair)
	if back > failbackBudget+failbackSlack {
		t.Errorf("%s: isp2 active %v after the repair, want within %v (+%v slack)", what, back.Round(time.Millisecond), failbackBudget, failbackSlack)
	}
	r.waitBoth()
	inBalance := time.Since(repair)
	if d := time.Until(repair.Add(failbackBudget)); d > 0 {
		time.Sleep(d)
	}
	opened := time.Since(repair)
	split := f.open(512, 512)
	t.Logf("FIGURE failback %s (outage %v): repair -> isp2 active %v (budget up_after×interval+0.3s = %v), balance route seen by the test %v; new flows opened at +%v: %v",
		what, repair.Sub(start).Round(time.Millisecond), back.Round(time.Millisecond), failbackBudget,
		inBalance.Round(time.Millisecond), opened.Round(time.Millisecond), split)
	checkSplit(t, what+": 1024 new flows after the repair", split, map[string]int{lab.ISP1: 1, lab.ISP2: 3}, 5)
	after := f.Snapshot()
	checkKept(t, what+": connections established at the repair", kept, repair, before, after)
	if len(kept) < 32 {
		t.Errorf("%s: only %d connections established on isp1 at the repair: %s", what, len(kept), before.Summary())
	}
	t.Logf("%s: %d connections established at the repair; after: %s", what, len(kept), after.Summary())
}
