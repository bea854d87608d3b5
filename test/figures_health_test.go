package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/ispemu"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/vishvananda/netlink"
)

// TestFiguresHealth measures the figures of the health issue with the
// default probe settings and two targets: blackhole detection and recovery
// (20 runs), probe traffic per uplink, and the transitions two minutes of
// 5% and 10% random loss cause. It prints figures and asserts only
// behaviour; run it with `make figures`.
func TestFiguresHealth(t *testing.T) {
	if os.Getenv("UPLINKD_FIGURES") != "1" {
		t.Skip("figures: run with UPLINKD_FIGURES=1 (make figures)")
	}
	const (
		runs    = 20
		traffic = 10 * time.Second
		soak    = 2 * time.Minute
	)
	// Damping off: twenty blackholes in a row are twenty flaps. Multipath,
	// so that the balance route itself changes when an uplink leaves.
	r := newRigFor(t, strings.Replace(coreConfig("multipath"), "[probe]\n", "[probe]\nflap_limit = 0\n", 1), 20*time.Minute)
	r.startEmu()
	r.start()
	r.waitBoth()
	w := watchRouter(t, r)
	host, _ := os.Hostname()
	load := loadavg()

	single := func(rt netlink.Route) bool { return len(rt.MultiPath) == 0 }
	both := func(rt netlink.Route) bool { return len(rt.MultiPath) == 2 }
	var detect, recovery []time.Duration
	for range runs {
		// A random point of the probe cycle (500ms). The statistics
		// restart after each outage, so the last one leaves no trace.
		time.Sleep(time.Second + time.Duration(rand.Int64N(int64(500*time.Millisecond))))
		w.drain()
		start := time.Now()
		r.setISP(lab.ISP2, "blackhole")
		detect = append(detect, w.waitBalance(t, single).Sub(start))
		// Let the rounds in flight fail too, then heal at a random
		// point of the probe cycle: detection happens at a fixed one.
		time.Sleep(600*time.Millisecond + time.Duration(rand.Int64N(int64(500*time.Millisecond))))
		w.drain()
		start = time.Now()
		r.setISP(lab.ISP2, "healthy")
		recovery = append(recovery, w.waitBalance(t, both).Sub(start))
		r.waitBoth()
	}

	stats := func() map[string]ispemu.Counters {
		st, err := r.emu.Stats(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	s0 := stats()
	time.Sleep(traffic)
	s1 := stats()

	mark := r.mark()
	r.setISP(lab.ISP1, "loss=5%")
	r.setISP(lab.ISP2, "loss=10%")
	time.Sleep(soak)
	s2 := stats()
	r.setISP(lab.ISP1, "healthy")
	r.setISP(lab.ISP2, "healthy")

	fmt.Printf("uplinkd health figures (%s, %d CPUs, kernel %s, load %s at start, %s at end; lab of veth namespaces;\n"+
		"  defaults: two targets, interval 500ms, timeout 430ms, down_after 4, up_after 2; multipath; damping off for the repeated blackholes)\n",
		host, numCPU(), kernel(), load, loadavg())
	report(fmt.Sprintf("blackhole -> out of the balance (%d runs)", runs), detect)
	report(fmt.Sprintf("healed -> back in the balance (%d runs)", runs), recovery)
	for _, isp := range []string{lab.ISP1, lab.ISP2} {
		n := s1[isp].Requests - s0[isp].Requests
		fmt.Printf("  probe traffic through %s: %.1f echo requests/s (%d in %v), at most %d in any second of the whole run\n",
			isp, float64(n)/traffic.Seconds(), n, traffic, s1[isp].Peak)
	}
	for _, c := range []struct{ isp, loss string }{{lab.ISP1, "5%"}, {lab.ISP2, "10%"}} {
		req := s2[c.isp].Requests - s1[c.isp].Requests
		drop := s2[c.isp].Dropped - s1[c.isp].Dropped
		trs := r.transitions(mark, c.isp)
		fmt.Printf("  %s loss on every target behind %s for %v: %d transitions (%.2f%% of %d probes dropped)\n",
			c.loss, c.isp, soak, len(trs), 100*float64(drop)/float64(req), req)
		for _, tr := range trs {
			fmt.Printf("    %s -> %s (%s)\n", tr.from, tr.to, tr.reason)
		}
	}
	r.waitBoth()
}
