package test

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/uplinkd/uplinkd/status"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestFiguresFlows measures the flows table of docs/flows.md with real connections
// (256 TCP and UDP, masquerade, two uplinks at 1:3): for each balancer, how
// many established connections move or break when isp2 fails (its own, and
// isp1's) and when it returns, and how long after the repair new
// connections first use it (a batch of 8 new UDP flows every 250 ms). It
// prints figures and asserts only that the faults happened; run it with
// `make figures`.
func TestFiguresFlows(t *testing.T) {
	if os.Getenv("UPLINKD_FIGURES") != "1" {
		t.Skip("figures: run with UPLINKD_FIGURES=1 (make figures)")
	}
	host, _ := os.Hostname()
	fmt.Printf("uplinkd flows figures (%s, %d CPUs, kernel %s, load %s; lab of veth namespaces, masquerade; 128 TCP + 128 UDP connections from 2 LAN addresses, weights 1:3; isp2 fails and returns)\n",
		host, numCPU(), kernel(), loadavg())
	for _, c := range []struct{ name, config string }{
		{"auto (hash-threshold, pinned)", coreConfig("")},
		{"multipath, pinned", coreConfig("multipath")},
		{"resilient, pinned", coreConfig("resilient")},
		{"resilient, pinning off (no nf_tables)", strings.Replace(coreConfig("resilient"), "[routing]\n", "[routing]\nmark_mask = 0\n", 1)},
		{"multipath, pinning off", strings.Replace(coreConfig("multipath"), "[routing]\n", "[routing]\nmark_mask = 0\n", 1)},
	} {
		r := newNATRig(t, flapOff(c.config), lab.Options{}, 5*time.Minute)
		r.start()
		r.waitBoth()
		r.waitSettled()
		for _, fc := range []failbackCase{{"carrier loss", 0}, {"10s blackhole", 10 * time.Second}} {
			fmt.Printf("  %-38s %-14s %s\n", c.name, fc.name, r.flowFigures(fc))
		}
		r.stop(syscall.SIGTERM)
	}
}

// flowFigures fails isp2 as c says, repairs it, and describes what the
// connections saw.
func (r *rig) flowFigures(c failbackCase) string {
	t := r.t
	f := r.startFlows(lab.FlowOptions{Interval: 100 * time.Millisecond})
	defer f.close()
	time.Sleep(500 * time.Millisecond)
	before := f.Snapshot()
	onISP1, onISP2 := established(before, lab.ISP1), established(before, lab.ISP2)
	mark := r.mark()
	start := time.Now()
	if c.outage == 0 {
		if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
			t.Fatal(err)
		}
	} else if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "(probing|down)", 15*time.Second)
	time.Sleep(max(time.Until(start.Add(c.outage)), 2*time.Second))
	during := f.Snapshot()
	mark = r.mark()
	repair := time.Now()
	if c.outage == 0 {
		if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
			t.Fatal(err)
		}
	} else if err := r.lab.Blackhole(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	// New connections: a batch every 250 ms until one uses isp2.
	used := time.Duration(-1)
	for time.Since(repair) < 30*time.Second {
		at := time.Since(repair)
		ids, err := f.Add(r.ctx, 0, 8)
		if err != nil {
			t.Fatal(err)
		}
		if firstUplinks(f.waitEchoed(ids, 10*time.Second))[lab.ISP2] > 0 {
			used = at
			break
		}
		time.Sleep(max(time.Until(repair.Add(at+250*time.Millisecond)), 0))
	}
	r.waitTransition(mark, "isp2", "active", 30*time.Second)
	time.Sleep(2 * time.Second)
	after := f.Snapshot()
	disturbed := func(ids []uint32, from, to lab.FlowSnapshot, since time.Time) int {
		prev := map[uint32]lab.FlowStat{}
		for _, fs := range from.Only(ids).Flows {
			prev[fs.Flow] = fs
		}
		n := 0
		for _, fs := range to.Only(ids).Flows {
			p := prev[fs.Flow]
			moved := false
			for i, ch := range fs.Changes {
				moved = moved || (i > 0 && ch.At.After(since))
			}
			if moved || fs.Resets > p.Resets || fs.Reconnects > p.Reconnects {
				n++
			}
		}
		return n
	}
	kept := established(during)
	firstUse := "not within 30s"
	if used >= 0 {
		firstUse = used.Round(10 * time.Millisecond).String()
	}
	return fmt.Sprintf("failover: isp2's moved or reset %3d of %3d, isp1's %d of %d; return: established moved or reset %3d of %3d; new flows use isp2 %s after the repair",
		disturbed(onISP2, before, during, start), len(onISP2), disturbed(onISP1, before, during, start), len(onISP1),
		disturbed(kept, during, after, repair), len(kept), firstUse)
}

// TestFiguresConntrack200k measures a carrier failover with 200k conntrack
// entries in the router (150k pinned to the failing uplink, 50k to the
// other): event to routes as uplinkd logs it ("since_event"), the flush by
// mark, and `uplinkd status` answering while it runs. It asserts that the
// entries of the failed uplink went, the others stayed, and status never
// failed; run it with `make figures`.
func TestFiguresConntrack200k(t *testing.T) {
	if os.Getenv("UPLINKD_FIGURES") != "1" {
		t.Skip("figures: run with UPLINKD_FIGURES=1 (make figures)")
	}
	r := newRigFor(t, flapOff(coreConfig("")), 5*time.Minute)
	r.start()
	r.waitBoth()
	marks := r.fwmarks()
	const total, failing = 200_000, 150_000
	ns, err := netns.GetFromName(r.lab.NS(lab.Router))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	created := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			c, err := conntrack.Dial(&netlink.Config{NetNS: int(ns)})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := w; i < total; i += 4 {
				mark := marks["200"]
				if i >= failing {
					mark = marks["100"]
				}
				src := netip.AddrFrom4([4]byte{192, 0, 2, byte(20 + i/4000)})
				f := conntrack.NewFlow(unix.IPPROTO_UDP, 0, src, lab.Target1, uint16(1024+i%4000), 53, 600, mark)
				if err := c.Create(f); err != nil {
					errs <- fmt.Errorf("create conntrack entry %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d conntrack entries in %v", total, time.Since(created).Round(time.Millisecond))

	// Ask for status without a pause from before the carrier loss until
	// the flush is logged.
	stop := make(chan struct{})
	type answer struct {
		at, took time.Duration
		err      error
	}
	var answers []answer
	t0 := time.Now()
	var asker sync.WaitGroup
	asker.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := time.Now()
			_, err := status.Get(r.ctx, r.socket)
			answers = append(answers, answer{s.Sub(t0), time.Since(s), err})
		}
	})
	mark := r.mark()
	down := time.Since(t0)
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	flushed := r.waitLog(mark, regexp.MustCompile(`msg="conntrack entries flushed" uplink=isp2 `), 30*time.Second)
	close(stop)
	asker.Wait()
	routes := r.waitLog(mark, regexp.MustCompile(`msg="routing updated"`), time.Second)
	since := regexp.MustCompile(`since_event=(\S+)`).FindStringSubmatch(routes)
	deleted := regexp.MustCompile(`deleted=(\d+)`).FindStringSubmatch(flushed)
	took := regexp.MustCompile(`took=(\S+)`).FindStringSubmatch(flushed)
	var during, failed int
	var slowest time.Duration
	for _, a := range answers {
		if a.err != nil {
			failed++
			t.Errorf("uplinkd status at +%v: %v", a.at-down, a.err)
		}
		if a.at >= down {
			during++
			slowest = max(slowest, a.took)
		}
	}
	fmt.Printf("uplinkd failover with %d conntrack entries (%s, %d CPUs, kernel %s, load %s): carrier event to routes (since_event) %s; flush by mark deleted %s in %s; uplinkd status answered %d times from the carrier loss to the flush's log line, slowest %v, %d failures\n",
		total, hostname(), numCPU(), kernel(), loadavg(), since[1], deleted[1], took[1], during, slowest.Round(time.Microsecond), failed)
	// The test's entries and the few real ones of isp2 (its probes).
	if n, _ := strconv.Atoi(deleted[1]); n < failing || n > failing+100 {
		t.Errorf("flush deleted %s entries, want the %d of isp2's mark", deleted[1], failing)
	}
	if during == 0 {
		t.Error("uplinkd status was not asked after the carrier loss")
	}
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// fwmarks returns uplinkd's fwmark rules' marks by table ("100").
func (r *rig) fwmarks() map[string]uint32 {
	r.t.Helper()
	out := map[string]uint32{}
	re := regexp.MustCompile(`fwmark (0x[0-9a-f]+)/0x[0-9a-f]+ lookup (\d+) proto 201`)
	for _, m := range re.FindAllStringSubmatch(r.ip(lab.Router, "rule"), -1) {
		v, err := strconv.ParseUint(m[1], 0, 32)
		if err != nil {
			r.t.Fatal(err)
		}
		out[m[2]] = uint32(v)
	}
	if len(out) != 2 {
		r.t.Fatalf("fwmark rules: %v", out)
	}
	return out
}
