package scenario

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/bench/internal/monitor"
	"github.com/uplinkd/uplinkd/bench/internal/results"
	"github.com/uplinkd/uplinkd/bench/internal/tools"
	"github.com/uplinkd/uplinkd/bench/internal/traffic"
	"github.com/uplinkd/uplinkd/test/lab"
)

// Failover settings.
const (
	LANFlows     = 32                      // LAN UDP flows
	SendInterval = time.Millisecond        // per flow
	settle       = 1500 * time.Millisecond // hold after a change before the next step
	window       = 500 * time.Millisecond  // a steady period before the fault
	// pathSample is how many of a flow's last datagrams in a period decide
	// its path (their majority ISP): a count, not a time, so that a
	// scheduling stall of the sender on a busy machine cannot empty it.
	pathSample   = 100
	newConnEvery = 5 * time.Millisecond
	// phaseSpread is the range of the random waits before each fault and
	// before its repair: the seed's check period (5 s of sleep, about 2 s
	// of checking).
	phaseSpread = 7 * time.Second
	// NewConnTimeout bounds the wait for a new connection through the
	// returning uplink.
	NewConnTimeout = 10 * time.Second
	sinkPort       = 9000
	controlPort    = 5000
)

// FailoverConfig says what the failover scenarios run.
type FailoverConfig struct {
	Runs    int
	Uplinkd string            // binary
	Seed    map[string]string // mapped scripts (tools.MapSeed)
	Dir     string            // per-run files (logs, configurations)
	Log     *slog.Logger
	Faults  []Fault
	// Timeouts for a tool's response to a fault or repair.
	UplinkdTimeout, SeedTimeout time.Duration
}

// uplinkdConfig is the lab's recommended setup (test/rig_test.go's
// healthConfig): two probe targets, every other probe setting at its
// default, except flap damping, off so that repeated faults are not held.
const uplinkdConfig = `
[routing]
lan_interfaces = ["eth0"]

[probe]
targets = ["198.18.0.1", "198.18.0.2"]
flap_limit = 0
` + lab.UplinkConfig

// figures of one tool: by key, as the rows need them.
type figures map[string]*results.Figure

func (f figures) get(key string) *results.Figure {
	if f[key] == nil {
		f[key] = &results.Figure{}
	}
	return f[key]
}

// RunFailover runs every fault Runs times under uplinkd, then under the
// seed, each in a lab of its own, adds the rows to res and returns the
// blackhole timelines of the first run.
func RunFailover(ctx context.Context, cfg FailoverConfig, res *results.Results) ([]results.Timeline, error) {
	var timelines []results.Timeline
	all := map[string]figures{}
	for _, name := range []string{"uplinkd", "seed"} {
		figs, tl, err := runTool(ctx, cfg, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		all[name] = figs
		if tl != nil {
			timelines = append(timelines, *tl)
		}
	}
	addFailoverRows(cfg, res, all["uplinkd"], all["seed"])
	return timelines, nil
}

func randomPrefix(p string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return p + hex.EncodeToString(b)
}

// session is one tool in one lab with the traffic running.
type session struct {
	cfg     FailoverConfig
	lab     *lab.Lab
	tool    tools.Tool
	mon     *monitor.Monitor
	sink    *traffic.Sink
	isp2    string // the Internet namespace's interface towards ISP2
	timeout time.Duration
}

func runTool(ctx context.Context, cfg FailoverConfig, name string) (figures, *results.Timeline, error) {
	dir := filepath.Join(cfg.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	l, err := lab.New(ctx, randomPrefix("bf"))
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	s := &session{cfg: cfg, lab: l, isp2: lab.ISP2}
	switch name {
	case "uplinkd":
		s.tool = &tools.Uplinkd{Bin: cfg.Uplinkd, Lab: l, Dir: dir, Config: uplinkdConfig}
		s.timeout = cfg.UplinkdTimeout
	default:
		s.tool = &tools.Seed{Lab: l, Dir: dir, Scripts: cfg.Seed}
		s.timeout = cfg.SeedTimeout
	}
	target := netip.AddrPortFrom(lab.Target1, sinkPort)
	s.sink, err = traffic.ListenSink(l.NS(lab.Inet), target)
	if err != nil {
		return nil, nil, err
	}
	defer s.sink.Close()
	s.mon, err = monitor.Start(l.NS(lab.Router))
	if err != nil {
		return nil, nil, err
	}
	defer s.mon.Close()
	if err := s.tool.Start(ctx); err != nil {
		return nil, nil, err
	}
	defer s.tool.Stop()

	figs := figures{}
	var tl *results.Timeline
	cycle := 0
	for _, f := range cfg.Faults {
		h, err := handleIn(l.NS(lab.ISP2))
		if err != nil {
			return nil, nil, err
		}
		for run := range cfg.Runs {
			cfg.Log.Info("failover", "tool", name, "fault", f.Key, "run", run+1, "of", cfg.Runs)
			if cycle > 0 {
				// A clean start for every run: uplinkd's probe window
				// would otherwise carry the last run's losses into this one.
				if err := s.tool.Reset(ctx); err != nil {
					h.Close()
					return nil, nil, err
				}
			}
			t, err := s.cycle(ctx, f, h, figs, cycle, f.Key == "blackhole" && run == 0)
			cycle++
			if err != nil {
				h.Close()
				return nil, nil, fmt.Errorf("%s run %d: %w", f.Name, run+1, err)
			}
			if t != nil {
				t.Tool = name
				tl = t
			}
		}
		h.Close()
	}
	return figs, tl, nil
}

// balanceChange reports whether e is a routing change some program asked
// for (the kernel's own have port 0), other than a host route: the seed
// adds and removes one to its test address while ISP2 is out.
func balanceChange(e monitor.Event) bool {
	return e.Routing() && e.PID != 0 && !(e.Kind() == "route" && e.DstLen == 32)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cycle injects one fault and repairs it, and records the run's figures.
func (s *session) cycle(ctx context.Context, f Fault, nh *netlink.Handle, figs figures, cycle int, keepTimeline bool) (*results.Timeline, error) {
	bctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	err := s.tool.WaitBalanced(bctx)
	cancel()
	if err != nil {
		return nil, err
	}
	// A fault comes at any moment of a tool's cycle (the seed checks every
	// 5 s plus its ping's time): without a random wait, the runs would be
	// phase-locked to the seed's loop.
	sleep(ctx, mrand.N(phaseSpread))
	// Fresh flows every run, started on the balance as the tool made it:
	// new connections, not flows pinned by earlier runs.
	var eps []traffic.Endpoint
	for i := range LANFlows {
		src := lab.HostAddr
		if i%2 == 1 {
			src = lab.HostAddr2
		}
		eps = append(eps, traffic.Endpoint{NS: s.lab.NS(lab.Host), From: netip.AddrPortFrom(src, uint16(10000+cycle*LANFlows+i/2))})
	}
	control := traffic.Endpoint{NS: s.lab.NS(lab.Router), From: netip.AddrPortFrom(lab.ISP1RouterAddr.Addr(), uint16(controlPort+cycle))}
	sender, err := traffic.StartSender(eps, control, netip.AddrPortFrom(lab.Target1, sinkPort), SendInterval)
	if err != nil {
		return nil, err
	}
	defer sender.Stop()
	if _, err := s.sink.Take(); err != nil {
		return nil, err
	}
	sleep(ctx, window+700*time.Millisecond) // a steady "before" period
	var mark int64
	up, isUplinkd := s.tool.(*tools.Uplinkd)
	if isUplinkd {
		mark = up.LogMark()
	}
	key := f.Key

	match, err := s.failoverMatch(f, lab.ISP2)
	if err != nil {
		return nil, err
	}
	if f.Key == "carrier" {
		kernel := 0.0
		if match != nil {
			kernel = 1
		}
		figs.get(key + "/kernel").Add(kernel)
	}
	t0 := time.Now()
	if err := f.Inject(nh); err != nil {
		return nil, fmt.Errorf("inject: %w", err)
	}
	ev, err := s.first(ctx, t0, match)
	tRouteDone := time.Now()
	if err == nil {
		figs.get(key + "/route").Add(ms(ev.At.Sub(t0)))
		last := s.settled(ctx, ev, match)
		figs.get(key + "/settled").Add(ms(last.At.Sub(t0)))
		tRouteDone = last.At
		if isUplinkd {
			if d, ok := up.SinceEvent(mark); ok {
				figs.get(key + "/log").Add(ms(d))
			}
		}
	} else if errors.Is(err, context.DeadlineExceeded) {
		figs.get(key + "/route").Miss(ms(s.timeout))
		figs.get(key + "/settled").Miss(ms(s.timeout))
	} else {
		return nil, err
	}
	// Outages last a random time too: a fixed hold would phase-lock the
	// repair to the seed's loop as well.
	sleep(ctx, time.Until(tRouteDone.Add(settle+mrand.N(phaseSpread))))

	tRepair := time.Now()
	if err := f.Repair(nh); err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	nc := traffic.StartNewConns(s.lab.NS(lab.Host), lab.HostAddr, 40000, 20000, netip.AddrPortFrom(lab.Target1, sinkPort), newConnEvery)
	rev, err := s.first(ctx, tRepair, nil)
	tBack := time.Now()
	if err == nil {
		figs.get(key + "/rroute").Add(ms(rev.At.Sub(tRepair)))
		last := s.settled(ctx, rev, nil)
		figs.get(key + "/rsettled").Add(ms(last.At.Sub(tRepair)))
		tBack = last.At
	} else if errors.Is(err, context.DeadlineExceeded) {
		figs.get(key + "/rroute").Miss(ms(s.timeout))
		figs.get(key + "/rsettled").Miss(ms(s.timeout))
	} else {
		_ = nc.Stop()
		return nil, err
	}
	wctx, cancel := context.WithDeadline(ctx, tBack.Add(NewConnTimeout))
	ncErr := s.sink.WaitNewConn(wctx, s.isp2, tRepair)
	cancel()
	sleep(ctx, settle)
	tEnd := time.Now()
	if err := nc.Stop(); err != nil {
		return nil, err
	}
	// Let the sink read what was sent before tEnd: on a busy machine its
	// goroutine may lag.
	sleep(ctx, 200*time.Millisecond)
	capt, err := s.sink.Take()
	if err != nil {
		return nil, err
	}
	if d, ok := capt.FirstNewConn(s.isp2, tRepair); ok && ncErr == nil {
		figs.get(key + "/newconn").Add(ms(d))
	} else {
		figs.get(key + "/newconn").Miss(ms(tBack.Add(NewConnTimeout).Sub(tRepair)))
	}

	// Data plane.
	var gap, rgap time.Duration
	moved, ideal, stuck, rmoved := 0, 0, 0, 0
	for i := range LANFlows {
		fl := uint16(i)
		gap = max(gap, capt.MaxGap(traffic.LAN, fl, t0, tRepair))
		rgap = max(rgap, capt.MaxGap(traffic.LAN, fl, tRepair, tEnd))
		before := capt.Path(traffic.LAN, fl, t0.Add(-window), t0, pathSample)
		during := capt.Path(traffic.LAN, fl, tRouteDone, tRepair, pathSample)
		after := capt.Path(traffic.LAN, fl, tBack, tEnd, pathSample)
		if before == s.isp2 {
			ideal++
		}
		switch {
		case during == "":
			stuck++
		case during != before:
			moved++
		}
		if during != "" && after != "" && after != during {
			rmoved++
		}
	}
	figs.get(key + "/gap").Add(ms(gap))
	figs.get(key + "/control").Add(ms(capt.MaxGap(traffic.Control, 0, t0, tEnd)))
	figs.get(key + "/moved").Add(float64(moved))
	figs.get(key + "/ideal").Add(float64(ideal))
	figs.get(key + "/off").Add(float64(abs(moved-ideal) + stuck))
	figs.get(key + "/stuck").Add(float64(stuck))
	figs.get(key + "/rmoved").Add(float64(rmoved))
	figs.get(key + "/rgap").Add(ms(rgap))
	if !keepTimeline {
		return nil, nil
	}
	from := t0.Add(-time.Second)
	return &results.Timeline{Start: -1, Bin: 0.01, Repair: tRepair.Sub(t0).Seconds(),
		Counts: capt.Bins(from, tEnd, 10*time.Millisecond)}, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// first waits for the first balance change at or after t, or the first
// event also accepts.
func (s *session) first(ctx context.Context, t time.Time, also func(monitor.Event) bool) (monitor.Event, error) {
	ctx, cancel := context.WithDeadline(ctx, t.Add(s.timeout))
	defer cancel()
	return s.mon.First(ctx, t, func(e monitor.Event) bool { return balanceChange(e) || also != nil && also(e) })
}

// quiet is how long no routing change must come for a tool's burst of
// changes to count as finished.
const quiet = 300 * time.Millisecond

// settled returns the last change of the burst that began with first.
func (s *session) settled(ctx context.Context, first monitor.Event, also func(monitor.Event) bool) monitor.Event {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.mon.Settled(ctx, first, func(e monitor.Event) bool { return balanceChange(e) || also != nil && also(e) }, quiet)
}

// failoverMatch returns, for a carrier loss of isp's router link that
// carries nexthop objects, a match for the link message: the kernel
// deletes those nexthops (and so the uplink's share of a nexthop group)
// with the carrier, before it sends the link message, and announces
// nothing else. For other faults it returns nil.
func (s *session) failoverMatch(f Fault, isp string) (func(monitor.Event) bool, error) {
	if f.Key != "carrier" {
		return nil, nil
	}
	link, err := s.lab.RouterLink(isp)
	if err != nil {
		return nil, err
	}
	return carrierMatch(s.lab.NS(lab.Router), link)
}

// carrierMatch is failoverMatch for the interface link of namespace ns.
func carrierMatch(ns, link string) (func(monitor.Event) bool, error) {
	h, err := handleIn(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	l, err := h.LinkByName(link)
	if err != nil {
		return nil, err
	}
	n, err := monitor.NexthopsOn(ns, l.Attrs().Index)
	if err != nil || n == 0 {
		return nil, err
	}
	return func(e monitor.Event) bool { return monitor.CarrierLost(e, link) }, nil
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
