package test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestFigures measures the failover figures of the core issue in the lab,
// with the multipath balancer:
// carrier-loss event to balance route updated, blackhole detection with the
// default probe settings, and the outage a LAN UDP flow sees in each case.
// It prints figures and asserts only behaviour; run it with `make figures`.
func TestFigures(t *testing.T) {
	if os.Getenv("UPLINKD_FIGURES") != "1" {
		t.Skip("figures: run with UPLINKD_FIGURES=1 (make figures)")
	}
	const runs = 10
	// Damping off: ten carrier losses in a row are ten flaps.
	r := newRig(t, strings.Replace(coreConfig("multipath"), "[probe]\n", "[probe]\nflap_limit = 0\n", 1))
	r.start()
	r.waitBoth()
	w := watchRouter(t, r)

	var carrier, carrierGap, blackhole, blackholeGap []time.Duration
	for i := 0; i < runs; i++ {
		flow := r.startFlow(t, i)
		w.drain()
		if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
			t.Fatal(err)
		}
		ev := w.waitLink(t, "eth2", false)
		upd := w.waitBalance(t, func(rt netlink.Route) bool { return len(rt.MultiPath) == 0 })
		carrier = append(carrier, upd.Sub(ev))
		time.Sleep(200 * time.Millisecond)
		carrierGap = append(carrierGap, flow.stop(t))
		if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
			t.Fatal(err)
		}
		r.waitBoth()
	}
	for i := 0; i < runs; i++ {
		flow := r.startFlow(t, 100+i)
		w.drain()
		start := time.Now()
		if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
			t.Fatal(err)
		}
		upd := w.waitBalance(t, func(rt netlink.Route) bool { return len(rt.MultiPath) == 0 })
		blackhole = append(blackhole, upd.Sub(start))
		time.Sleep(200 * time.Millisecond)
		blackholeGap = append(blackholeGap, flow.stop(t))
		if err := r.lab.Blackhole(r.ctx, lab.ISP2, false); err != nil {
			t.Fatal(err)
		}
		r.waitBoth()
	}
	host, _ := os.Hostname()
	fmt.Printf("uplinkd failover figures (%d runs each; %s, %d CPUs, kernel %s, load %s; lab of veth namespaces; two probe targets, default probe settings, damping off)\n",
		runs, host, numCPU(), kernel(), loadavg())
	report("carrier-loss event -> balance route updated", carrier)
	report("LAN UDP flow outage on carrier loss (1 ms packets)", carrierGap)
	report("blackhole start -> balance route updated", blackhole)
	report("LAN UDP flow outage on upstream blackhole", blackholeGap)
	r.stop(syscall.SIGTERM)
}

func report(what string, d []time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	fmt.Printf("  %-52s median %9v  mean %9v  min %9v  max %9v\n", what,
		s[len(s)/2].Round(time.Microsecond), (sum / time.Duration(len(s))).Round(time.Microsecond),
		s[0].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
}

// loadavg is the 1-minute load average: other work on the machine.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func numCPU() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return 0
	}
	return set.Count()
}

func kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// routerWatch receives the router namespace's link and route events in the
// test process; a goroutine per stream stamps each on arrival, so a reader
// that falls behind does not distort the figures.
type routerWatch struct {
	links  chan stamped[netlink.LinkUpdate]
	routes chan stamped[netlink.RouteUpdate]
}

type stamped[T any] struct {
	at time.Time
	u  T
}

func stamp[T any](in <-chan T, out chan<- stamped[T]) {
	for u := range in {
		out <- stamped[T]{time.Now(), u}
	}
	close(out)
}

func watchRouter(t *testing.T, r *rig) *routerWatch {
	t.Helper()
	ns, err := netns.GetFromName(r.lab.NS(lab.Router))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	done := make(chan struct{})
	links, routes := make(chan netlink.LinkUpdate, 1024), make(chan netlink.RouteUpdate, 1024)
	w := &routerWatch{links: make(chan stamped[netlink.LinkUpdate], 1024), routes: make(chan stamped[netlink.RouteUpdate], 1024)}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	go stamp(links, w.links)
	go stamp(routes, w.routes)
	t.Cleanup(func() {
		close(done)
		for range w.links {
		}
		for range w.routes {
		}
	})
	return w
}

func (w *routerWatch) drain() {
	for {
		select {
		case <-w.links:
		case <-w.routes:
		default:
			return
		}
	}
}

func (w *routerWatch) waitLink(t *testing.T, name string, carrier bool) time.Time {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case s := <-w.links:
			if s.u.Link.Attrs().Name == name && (s.u.IfInfomsg.Flags&unix.IFF_LOWER_UP != 0) == carrier {
				return s.at
			}
		case <-timeout:
			t.Fatalf("no link event for %s carrier=%v", name, carrier)
		}
	}
}

func (w *routerWatch) waitBalance(t *testing.T, match func(netlink.Route) bool) time.Time {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-w.routes:
			if s.u.Type == unix.RTM_NEWROUTE && s.u.Route.Table == 250 && match(s.u.Route) {
				return s.at
			}
		case <-timeout:
			t.Fatal("no balance route update")
		}
	}
}

// flow is one LAN UDP flow, from a source port that hashes to eth2, sending
// a datagram every millisecond to Target1 through the router.
type flow struct {
	sink, send interface{ Signal(os.Signal) error }
	sinkDone   chan error
	sendDone   chan error
	report     string
}

func (r *rig) startFlow(t *testing.T, i int) *flow {
	t.Helper()
	sport := 0
	for p := 20000 + 100*i; p < 20000+100*i+100; p++ {
		dev, err := r.lab.RouteGet(r.ctx, lab.Target1, lab.HostAddr, "eth0", p, 9000)
		if err != nil {
			t.Fatal(err)
		}
		if dev == "eth2" {
			sport = p
			break
		}
	}
	if sport == 0 {
		t.Fatal("no source port hashes to eth2")
	}
	dir := t.TempDir()
	f := &flow{report: filepath.Join(dir, "sink.json"), sinkDone: make(chan error, 1), sendDone: make(chan error, 1)}
	tool := filepath.Join(binDir, "labtool")
	sinkLog := filepath.Join(dir, "sink.log")
	sink, err := r.lab.Start(r.ctx, lab.Inet, sinkLog, tool, "udpsink", "--listen", netip.AddrPortFrom(lab.Target1, 9000).String(), "--report", f.report)
	if err != nil {
		t.Fatal(err)
	}
	go func() { f.sinkDone <- sink.Wait() }()
	if err := lab.WaitLog(r.ctx, sinkLog, "listening"); err != nil {
		t.Fatal(err)
	}
	send, err := r.lab.Start(r.ctx, lab.Host, filepath.Join(dir, "send.log"), tool, "udpsend",
		"--to", netip.AddrPortFrom(lab.Target1, 9000).String(), "--sport", strconv.Itoa(sport), "--interval", "1ms", "--duration", "30s")
	if err != nil {
		t.Fatal(err)
	}
	go func() { f.sendDone <- send.Wait() }()
	f.sink, f.send = sink.Process, send.Process
	time.Sleep(100 * time.Millisecond)
	return f
}

// stop ends the flow and returns the longest gap between arrivals.
func (f *flow) stop(t *testing.T) time.Duration {
	t.Helper()
	_ = f.send.Signal(syscall.SIGTERM)
	<-f.sendDone
	time.Sleep(50 * time.Millisecond)
	_ = f.sink.Signal(syscall.SIGTERM)
	<-f.sinkDone
	rep, err := lab.ReadSinkReport(f.report)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Received == 0 {
		t.Fatal("flow received nothing")
	}
	return time.Duration(rep.MaxGapMS * float64(time.Millisecond))
}

// TestFiguresBalance measures, for each balancer, how 4096 LAN flows
// spread over the uplinks and how many of them move when an uplink fails
// and returns, with two uplinks (weights 1:3) and three (1:3:2), and the
// time uplinkd's reconciles took for these changes. It prints figures and
// asserts only that the faults happened; run it with `make figures`.
func TestFiguresBalance(t *testing.T) {
	if os.Getenv("UPLINKD_FIGURES") != "1" {
		t.Skip("figures: run with UPLINKD_FIGURES=1 (make figures)")
	}
	host, _ := os.Hostname()
	const idle = 5 * time.Second
	fmt.Printf("uplinkd balance figures (%s, %d CPUs, kernel %s; lab of veth namespaces; %d UDP flows from 2 LAN addresses, L4 hash; idle_timer %v)\n",
		host, numCPU(), kernel(), nFlows, idle)
	for _, balancer := range balancers {
		fmt.Printf("%s balancer\n", balancer)
		var times []time.Duration
		r := newRig(t, balanceConfigIdle(balancer, 2, idle.String(), ""))
		r.start()
		r.waitBoth()
		c := count(r.paths())
		line := fmt.Sprintf("  split, weights 1:3: eth1 %d (%.1f%%) eth2 %d (%.1f%%)", c["eth1"], 100*float64(c["eth1"])/nFlows,
			c["eth2"], 100*float64(c["eth2"])/nFlows)
		if balancer == "resilient" {
			line += fmt.Sprintf("; buckets %v", r.groupBuckets())
		}
		fmt.Println(line)
		for _, f := range faults {
			mark := r.mark()
			o := r.outage(f, lab.ISP2, []string{"eth1/1"}, []string{"eth1/1", "eth2/3"})
			times = append(times, r.reconcileTimes(mark)...)
			stayed := 0
			for i := range o.before {
				if o.before[i] == "eth1" && o.after[i] != "eth1" {
					stayed++
				}
			}
			fmt.Printf("  2 uplinks, isp2 %-9s fails: moved %-22s returns: moved at once %-18s after idle_timer %s (flows that stayed on eth1 moved: %d)\n",
				f.name, fmtMoves(moves(o.before, o.during))+";", fmtMoves(moves(o.during, o.returned))+",", fmtMoves(moves(o.during, o.after)), stayed)
		}
		r.stop(syscall.SIGTERM)

		r = newRigWith(t, balanceConfigIdle(balancer, 3, idle.String(), ""), lab.Options{ThirdISP: true}, 3*time.Minute)
		r.start()
		all := []string{"eth1/1", "eth2/3", "eth3/2"}
		r.waitMembers(all...)
		fmt.Printf("  split, weights 1:3:2: %v\n", count(r.paths()))
		for i, isp := range []string{lab.ISP1, lab.ISP2, lab.ISP3} {
			dev := strings.Split(all[i], "/")[0]
			mark := r.mark()
			o := r.outage(faults[1], isp, slices.Delete(slices.Clone(all), i, i+1), all)
			times = append(times, r.reconcileTimes(mark)...)
			failed, back := moves(o.before, o.during), moves(o.during, o.after)
			fmt.Printf("  3 uplinks, %s fails: %4d survivors' flows moved (%s); returns: moved at once %d, after idle_timer %d, %d of them between survivors (%s)\n",
				isp, total(failed)-movedFrom(failed, dev), fmtMoves(failed), total(moves(o.during, o.returned)), total(back),
				total(back)-movedTo(back, dev), fmtMoves(back))
		}
		r.stop(syscall.SIGTERM)
		if len(times) > 0 {
			report(fmt.Sprintf("reconcile per change (%d changes)", len(times)), times)
		}
	}
}
