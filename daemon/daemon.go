package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/hooks"
	"github.com/uplinkd/uplinkd/metrics"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/sdnotify"
	"github.com/uplinkd/uplinkd/status"
	"github.com/vishvananda/netlink"
)

// Options are the daemon's settings that do not come from the
// configuration file.
type Options struct {
	// ConfigPath is the file re-read on reload.
	ConfigPath string
	// Version is shown in status and metrics.
	Version string
	// LogLevel, if set, follows [log] level on reload.
	LogLevel *slog.LevelVar
	// Notify tells systemd about start-up, reloads and shutdown; nil
	// outside systemd.
	Notify *sdnotify.Notifier
	// Watchdog is systemd's watchdog timeout; the event loop pings at
	// half of it. 0: no watchdog.
	Watchdog time.Duration
	// Reload delivers SIGHUP: re-read the configuration.
	Reload <-chan os.Signal
	// EventBuffer, if set, is the event socket's receive buffer in bytes
	// instead of events' default (tests force overruns with a small one).
	EventBuffer int
	// Keep delivers SIGUSR2: exit and leave all routing in place (the
	// upgrade path); the next start adopts it.
	Keep <-chan os.Signal
}

// historyLen is how many transitions status keeps per uplink.
const historyLen = 10

// Daemon runs uplinkd for one configuration.
type Daemon struct {
	cfg  *config.Config
	log  *slog.Logger
	opts Options
	// Ready, if set, is called once after the first reconcile.
	Ready func()

	ready    bool // the first reconcile is done
	rec      *netops.Reconciler
	balancer atomic.Pointer[netops.Balancer] // chosen at startup
	ct       *netops.Conntrack               // nil: no conntrack socket
	// natAddrs holds the address of every uplink in the balance after the
	// last reconcile: when one leaves, entries translated to it go.
	natAddrs map[string]netip.Addr
	uplinks  []*uplink
	results  chan probe.Result
	gen      uint64
	// hub is the ICMP socket all probers share; nil before Run (probers
	// then open their own).
	hub *probe.Hub

	// held is what an earlier run left in the kernel, until adopt hands
	// it to the uplinks (see adopt.go).
	held *netops.Held
	// slots are the uplinks' nexthop slots, stable by name.
	slots map[string]int
	// keep: exit without removing anything (SIGUSR2).
	keep bool
	// pin is connection pinning; nil before Run.
	pin *pinning
	// policies is what each policy used at the last reconcile, by name.
	policies map[string]*policyState

	hooks    *hooks.Runner
	metrics  *metrics.Metrics
	requests chan status.Request
	waiters  status.Waiters

	// defaults are the foreign default routes through the links of the
	// uplinks that learn their gateway, by link index (gateway.go).
	defaults map[int][]events.DefaultRoute
	// names resolves probe targets given by name, off the loop;
	// resolved holds the address in use for each (names.go).
	names    *resolver
	resolved map[string]netip.Addr
	// resolvedGen counts the changes of resolved.
	resolvedGen uint64
	// renum: uplinks whose address changed since the last reconcile.
	renum map[string]bool
	// snap is the last dump of links and addresses.
	snap events.Snapshot

	// pending work of the current burst
	needDump      bool
	needRoutes    bool // re-read defaults (with the next dump)
	needEval      bool // re-evaluate the uplinks against snap
	needReconcile bool
	burstStart    time.Time
	retry         *time.Timer
	retryDelay    time.Duration
	// tick wakes the loop when a state machine's deadline (the end of a
	// flap hold) passes; tickAt is the deadline it is set for.
	tick      *time.Timer
	tickAt    time.Time
	fired     []hooks.Event  // transitions whose hooks are not queued yet
	reloading *pendingReload // applied, finished after the next settle

	// what status shows
	version   uint64 // of the snapshot; bumped when changed is set
	changed   bool
	started   time.Time
	loaded    time.Time
	reloads   uint64
	failed    uint64
	lastFail  string
	reconcile status.Reconcile
	netlink   status.Netlink

	// The kernel's state is read through these (events.Dump and
	// events.Subscribe); tests substitute failures.
	dump      func(context.Context) (events.Snapshot, error)
	subscribe func() (*events.Monitor, error)
	// netlinkDelay is the backoff of the retries after a netlink error.
	netlinkDelay time.Duration
	// mon is the current event subscription; filterKey describes the
	// filter it was given.
	mon       *events.Monitor
	filterKey string
}

// uplink is the loop's view of one configured uplink.
type uplink struct {
	cfg  config.Uplink
	m    *fsm.Uplink
	link *events.Link // nil: no interface with the configured name
	addr netip.Prefix // invalid: no IPv4 address
	// gw is the next hop in use: the configured one, the learned one (or
	// one held after its route went, until gwHold), invalid when unknown
	// or on a point-to-point link.
	gw     netip.Addr
	gwHold time.Time
	prober *probe.Prober
	key    string // what the running prober was started for
	// keyOf is what key was last made of, so that syncProber, which
	// runs for every uplink after every burst (probe results included),
	// formats a key only when something it depends on changed.
	keyOf   proberInputs
	keyDone bool      // keyOf is valid: key (or no prober) is what it gives
	started time.Time // when it was started
	gen     uint64
	inBal   bool    // in the balance at the last reconcile
	share   float64 // of the balance at the last reconcile
	history []fsm.Transition
	hold    hold   // what it keeps of an earlier run until its first verdict
	rounds  uint64 // probe rounds since the uplink was configured
	bad     uint64 // of which failed
	rtt     time.Duration
	// probe is the latest result of the running prober: plain values,
	// its statistics included.
	probe   probe.Result
	traffic probeTraffic // probes.go
}

// New returns a daemon for cfg logging to log.
func New(cfg *config.Config, log *slog.Logger, opts Options) *Daemon {
	d := &Daemon{
		cfg: cfg, log: log, opts: opts,
		results:  make(chan probe.Result, 64),
		names:    newResolver(),
		resolved: make(map[string]netip.Addr),
		requests: make(chan status.Request),
		retry:    time.NewTimer(time.Hour),
		tick:     time.NewTimer(time.Hour),
		version:  1, // a status request After 0 is answered at once
		started:  time.Now(),
		loaded:   time.Now(),
		policies: make(map[string]*policyState),

		dump:      events.Dump,
		subscribe: events.Subscribe,
	}
	if opts.EventBuffer > 0 {
		d.subscribe = func() (*events.Monitor, error) { return events.SubscribeBuffer(opts.EventBuffer) }
	}
	d.retry.Stop()
	d.tick.Stop()
	d.hooks = hooks.New(log, cfg.Hooks.MaxRunning, hooks.DefaultQueue)
	d.metrics = metrics.New(func() (uint64, uint64, uint64, uint64) {
		s := d.hooks.Stats()
		return s.Started, s.Failed, s.TimedOut, s.Dropped
	})
	for _, u := range cfg.Uplinks {
		d.uplinks = append(d.uplinks, d.newUplink(u, d.started))
	}
	return d
}

func (d *Daemon) newUplink(c config.Uplink, now time.Time) *uplink {
	u := &uplink{cfg: c, m: fsm.New(c.Name, d.fsmParams(c), now)}
	d.metrics.State(c.Name, string(fsm.Down))
	d.metrics.Balance(c.Name, false, 0)
	return u
}

func (d *Daemon) fsmParams(u config.Uplink) fsm.Params {
	p := d.cfg.Probe
	return fsm.Params{
		Probed:       len(d.cfg.TargetsResolved(u, u.Gateway, d.resolve)) > 0 || (u.GatewayMode == config.GatewayAuto && d.cfg.ProbesGateway(u)),
		UpAfter:      p.UpAfter,
		DownAfter:    p.DownAfter,
		DegradedLoss: p.DegradedLoss / 100,
		RecoverLoss:  p.RecoverLoss / 100,
		DegradedRTT:  p.DegradedRTT,
		RecoverRTT:   p.RecoverRTT,
		FlapLimit:    p.FlapLimit,
		FlapWindow:   p.FlapWindow,
		FlapHold:     p.FlapHold,
		FlapHoldMax:  p.FlapHoldMax,
	}
}

// Run serves the status socket (and the metrics endpoint), subscribes to
// kernel events, converges the routing state and keeps it converged until
// ctx is cancelled. Then it stops the probes and the servers, removes every
// route and rule it installed, restores the multipath hash policy, lets
// running hooks finish and returns nil. Only start-up errors (the status
// socket, the metrics endpoint, a balancer the configuration demands but
// the kernel lacks, the hash policy) end it, before anything is
// installed; later netlink errors are retried while the routing stays as
// installed.
func (d *Daemon) Run(ctx context.Context) (err error) {
	// The socket first: it refuses to start a second uplinkd, which must
	// not touch the first one's routes.
	srv, err := status.Listen(d.cfg.Status.Socket, d.requests, d.log)
	if err != nil {
		return err
	}
	var msrv *metrics.Server
	if addr := d.cfg.Metrics.Listen; addr != "" {
		if msrv, err = d.metrics.Listen(addr, d.log); err != nil {
			srv.Close()
			return err
		}
		d.log.Info("serving metrics", "addr", msrv.Addr().String())
	}
	svcCtx, stopSvcs := context.WithCancel(context.Background())
	var svcs sync.WaitGroup
	svcs.Go(func() { srv.Serve(svcCtx) })
	if msrv != nil {
		svcs.Go(func() {
			if err := msrv.Serve(svcCtx); err != nil {
				d.log.Error("metrics endpoint stopped", "err", err)
			}
		})
	}
	hookCtx, stopHooks := context.WithCancel(context.Background())
	var runner sync.WaitGroup
	runner.Go(func() { d.hooks.Run(hookCtx) })
	// The resolver stops with the hooks' context, after the loop.
	d.names.set(d.cfg.Names())
	runner.Go(func() { d.names.run(hookCtx) })
	// Hooks may still be running when the routes are gone: they are
	// given their timeout, last.
	defer func() {
		stopHooks()
		runner.Wait()
	}()
	stopServices := sync.OnceFunc(func() {
		stopSvcs()
		svcs.Wait()
	})
	defer stopServices()

	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink handle: %w", err)
	}
	defer h.Close()
	kh, err := netops.NewHandle(h, 0)
	if err != nil {
		return err
	}
	defer kh.Close()
	d.rec = &netops.Reconciler{K: kh, Protocol: d.cfg.Routing.RouteProtocol}
	nh, err := netops.DialNexthops(0)
	if err != nil {
		d.log.Warn("no rtnetlink socket for nexthop objects", "err", err)
	} else {
		defer nh.Close()
		d.rec.NH = nh
	}
	// One ICMP socket for every prober, closed after shutdown has stopped
	// them.
	if hub, herr := probe.NewHub(); herr != nil {
		d.log.Warn("no shared ICMP socket; every prober opens its own", "err", herr)
	} else {
		d.hub = hub
		defer hub.Close()
	}
	d.openPinning()
	defer d.closePinning()
	d.metrics.Pinning(d.pinOn())
	bal, err := d.chooseBalancer()
	if err != nil {
		return err
	}
	d.balancer.Store(&bal)
	d.metrics.Info(d.opts.Version, bal.String())
	// Opened whatever flush_conntrack says: a reload may turn it on, and
	// flushLeavers reads the setting of the configuration in force.
	if d.ct, err = netops.DialConntrack(0); err != nil {
		d.log.Warn("cannot flush conntrack entries of uplinks that leave the balance", "err", err)
	} else {
		defer d.ct.Close()
	}

	hs, err := setHash(d.cfg.Routing.StateDir, hashPolicy(d.cfg.Routing.Hash))
	if err != nil {
		return err
	}
	if hs.warn != nil {
		d.log.Warn("cannot keep the original multipath hash policy for after a crash", "err", hs.warn)
	}
	defer func() {
		if d.keep {
			return
		}
		if herr := hs.restore(); herr != nil {
			err = errors.Join(err, herr)
		}
	}()
	d.readHeld()

	d.warnSingleTarget()
	for _, w := range d.cfg.Warnings() {
		d.log.Warn("configuration: " + w)
	}
	defer d.shutdown(stopServices)
	d.watch(ctx)
	return nil
}

// watch keeps an event subscription and the routing converged until ctx is
// done. No error ends it: a subscription that fails or dies is made again
// after a backoff, while what is installed stays as it is.
func (d *Daemon) watch(ctx context.Context) {
	for {
		err := d.monitor(ctx)
		if ctx.Err() != nil || d.keep {
			return
		}
		// The subscription failed or died: what is installed stays as it
		// is while uplinkd subscribes again (and then re-reads
		// everything), after a backoff.
		d.netlinkError("netlink event subscription", err)
		d.netlink.Resubscribes++
		d.metrics.Resubscribe()
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.netlinkDelay):
		}
	}
}

// warnSingleTarget warns about uplinks probed at one Internet target:
// random loss on it alone fails rounds, so false failovers are far more
// likely than with two targets (see docs/health.md, "False alarms").
func (d *Daemon) warnSingleTarget() {
	p := d.cfg.Probe
	// With one target a silence needs six echoes in a row lost (p^6
	// after a reply), failed rounds down_after (p^down_after).
	rounds := float64(time.Hour / p.Interval)
	perHour := rounds*math.Pow(0.05, 6) + rounds*math.Pow(0.05, float64(p.DownAfter))
	for _, u := range d.uplinks {
		if t := d.cfg.TargetsFor(u.cfg); len(t) == 1 && t[0].Addr != u.cfg.Gateway {
			d.log.Warn("one probe target: random loss on it alone can take the uplink out of the balance; configure two or more",
				"uplink", u.cfg.Name, "false_failovers_per_hour_at_5pct_loss", fmt.Sprintf("%.2g", perHour))
		}
	}
}

func hashPolicy(hash string) netops.Hash {
	switch hash {
	case "l3":
		return netops.HashHosts
	case "source":
		return netops.HashSources
	}
	return netops.HashFlows
}

// monitor runs one event subscription: subscribe first, then dump, so no
// change falls between the two. It returns nil when ctx is done, and why
// the subscription could not be made or broke otherwise (the caller
// subscribes again). A failed dump does not end it: settle retries.
func (d *Daemon) monitor(ctx context.Context) error {
	mon, err := d.subscribe()
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	d.mon, d.filterKey = mon, ""
	defer func() { d.mon = nil }()
	mctx, cancel := context.WithCancel(ctx)
	evs := make(chan events.Event, 512)
	done := make(chan error, 1)
	go func() { done <- mon.Run(mctx, evs) }()
	defer func() {
		cancel()
		<-done
	}()

	var watchdog <-chan time.Time
	if d.opts.Watchdog > 0 {
		t := time.NewTicker(d.opts.Watchdog / 2)
		defer t.Stop()
		watchdog = t.C
	}

	d.needDump, d.needReconcile, d.needRoutes = true, true, true
	d.burstStart = time.Now()
	d.settle(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			done <- nil // let the deferred wait return
			if err == nil {
				err = errors.New("event socket closed")
			}
			return err
		case ev := <-evs:
			d.burstStart = time.Now()
			d.note(ev)
			d.drain(evs)
		case r := <-d.results:
			d.burstStart = time.Now()
			d.probeResult(r)
			d.drainResults()
		case <-d.retry.C:
			d.log.Info("retrying")
			d.needReconcile = true
			d.burstStart = time.Now()
		case <-d.tick.C:
			d.tickAt = time.Time{}
			d.burstStart = time.Now()
			d.deadlines()
		case req := <-d.requests:
			d.request(req)
		case <-d.opts.Reload:
			d.reload(nil)
		case res := <-d.names.out:
			d.burstStart = time.Now()
			d.namesResolved(res)
		case <-d.pinWatch():
			d.burstStart = time.Now()
			d.tableChanged()
		case <-d.opts.Keep:
			d.keep = true
			d.log.Info("SIGUSR2: exiting, leaving routing in place for the next start")
			return nil
		case <-watchdog:
			// From the loop itself: a wedged loop stops the pings and
			// systemd restarts it.
			d.notify(d.opts.Notify.Watchdog())
		}
		d.settle(ctx)
	}
}

// notify logs a failed sd_notify; systemd is told nothing more then.
func (d *Daemon) notify(err error) {
	if err != nil {
		d.log.Warn("notify systemd", "err", err)
	}
}

// drain takes every event already queued, so a burst (an interface deleted
// with its addresses and routes) is handled with one dump and one reconcile.
func (d *Daemon) drain(evs <-chan events.Event) {
	for {
		select {
		case ev := <-evs:
			d.note(ev)
		default:
			return
		}
	}
}

// drainResults takes every probe result already queued, so that results
// that arrive together (hundreds of uplinks proven at start, or while a
// reconcile ran) make one reconcile rather than one each.
func (d *Daemon) drainResults() {
	for {
		select {
		case r := <-d.results:
			d.probeResult(r)
		default:
			return
		}
	}
}

// note records what an event means for the loop's pending work.
func (d *Daemon) note(ev events.Event) {
	switch e := ev.(type) {
	case events.LinkEvent:
		// The kernel deletes nexthop objects (and a group left empty,
		// and the routes through it) without a notification when their
		// link loses carrier or goes down, even for a flap too short to
		// change the link's state in the dump: check them.
		d.needDump, d.needReconcile = true, true
		d.needRoutes = d.needRoutes || d.autoUplinks()
	case events.AddrEvent:
		d.needDump = true
		d.needRoutes = d.needRoutes || d.autoUplinks()
	case events.NexthopEvent:
		if e.Protocol == d.cfg.Routing.RouteProtocol || netops.NexthopIDs(d.cfg.Routing.NexthopIDBase).Contains(uint32(e.ID)) {
			d.needReconcile = true
		}
	case events.RouteEvent:
		if d.ours(e.Table, e.Protocol) {
			d.needReconcile = true
		} else if e.Default && d.routeEvent(e) {
			d.needEval = true
		}
	case events.RuleEvent:
		r := d.cfg.Routing
		if e.Protocol == r.RouteProtocol || (e.Priority >= r.RulePriority && e.Priority < r.RulePriority+config.RulePriorityRange) {
			d.needReconcile = true
		}
	case events.NeighEvent:
		d.neighbour(e)
	case events.ResyncEvent:
		d.log.Warn("netlink events lost, resyncing", "reason", e.Reason)
		d.needDump, d.needReconcile, d.needRoutes = true, true, true
		d.netlink.Resyncs++
		if e.Overrun {
			d.netlink.Overruns++
		}
		d.metrics.Resync(e.Overrun)
		d.changed = true
	}
}

// neighbour takes an uplink whose gateway stopped answering ARP out of the
// balance at once, before its probe rounds run out.
func (d *Daemon) neighbour(e events.NeighEvent) {
	if e.Deleted || e.State&events.NeighFailed == 0 {
		return
	}
	for _, u := range d.uplinks {
		if u.link == nil || u.link.Index != e.Index || !u.gw.IsValid() || u.gw != e.Addr {
			continue
		}
		reason := fmt.Sprintf("gateway %s does not answer ARP on %s", e.Addr, u.cfg.Interface)
		if tr, ok := u.m.GatewayFailed(reason, time.Now()); ok {
			d.transition(u, tr)
			d.needReconcile = true
		}
	}
}

func (d *Daemon) ours(table, protocol int) bool {
	if protocol == d.cfg.Routing.RouteProtocol || table == d.cfg.Routing.BalanceTable {
		return true
	}
	return slices.ContainsFunc(d.uplinks, func(u *uplink) bool { return u.cfg.Table == table }) ||
		slices.ContainsFunc(d.cfg.Policies, func(p config.Policy) bool { return p.Table == table })
}

// settle does the pending work: re-read links and addresses, run the state
// machines, (re)start probes, then plan and reconcile. Then it queues the
// hooks of the transitions, answers reloads waiting for the result and
// wakes status watchers when anything changed. When links and addresses
// cannot be read, nothing is planned from stale observations: what is
// installed stays as it is and the read is retried with backoff.
func (d *Daemon) settle(ctx context.Context) {
	if d.needDump {
		d.updateFilter()
		snap, err := d.dump(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			d.netlinkError("read links and addresses", err)
			d.retry.Reset(d.netlinkDelay)
			d.publish()
			return
		}
		if d.needRoutes {
			// The default routes through the links the dump found, as
			// a read of the same state: retried with it.
			err := d.readRoutes(ctx, snap)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				d.netlinkError("read default routes", err)
				d.retry.Reset(d.netlinkDelay)
				d.publish()
				return
			}
			d.needRoutes = false
		}
		d.needDump = false
		d.netlinkOK()
		d.netlink.Dumps++
		d.metrics.Dump()
		d.needEval = false
		if d.observe(snap) {
			d.needReconcile = true
		}
		d.adopt()
		// Now with the indexes the dump found.
		d.updateFilter()
	}
	if d.needEval {
		d.needEval = false
		if d.observe(d.snap) {
			d.needReconcile = true
		}
	}
	if d.needReconcile {
		d.needReconcile = false
		d.doReconcile()
	}
	// Probes start once the uplink's own table and rule are in place, so
	// their first round does not fail for want of a route.
	for _, u := range d.uplinks {
		d.syncProber(u)
	}
	d.armTick()
	d.runHooks()
	d.finishReload()
	d.publish()
	if !d.ready && d.reconcile.Runs > 0 {
		// Ready once the kernel was read and reconciled, not before.
		d.ready = true
		d.notify(d.opts.Notify.Ready(d.summary()))
		if d.Ready != nil {
			d.Ready()
		}
	}
}

// publish wakes status watchers when anything changed.
func (d *Daemon) publish() {
	if d.changed {
		d.changed = false
		d.version++
		if d.waiters.Len() > 0 {
			d.waiters.Release(d.snapshot())
		}
	}
}

// deadlines lets the state machines whose deadline has passed act on it.
func (d *Daemon) deadlines() {
	now := time.Now()
	for _, u := range d.uplinks {
		if tr, ok := u.m.Tick(now); ok {
			d.transition(u, tr)
			d.needReconcile = true
		}
		if !u.gwHold.IsZero() && !now.Before(u.gwHold) {
			d.needEval = true // a held gateway expires
		}
	}
}

// armTick sets the tick timer to the earliest deadline of any state
// machine: the loop owns every timer, no uplink runs one of its own.
func (d *Daemon) armTick() {
	var next time.Time
	for _, u := range d.uplinks {
		if t, ok := u.m.Deadline(); ok && (next.IsZero() || t.Before(next)) {
			next = t
		}
		if t := u.gwHold; !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if next.Equal(d.tickAt) {
		return
	}
	d.tick.Stop()
	d.tickAt = next
	if !next.IsZero() {
		d.tick.Reset(time.Until(next))
	}
}

// observe applies a snapshot of links and addresses (and the default
// routes the loop keeps) to every uplink and reports whether anything that
// matters for routing changed.
func (d *Daemon) observe(snap events.Snapshot) bool {
	d.snap = snap
	now := time.Now()
	changed := false
	for _, u := range d.uplinks {
		var link *events.Link
		for i := range snap.Links {
			if snap.Links[i].Name == u.cfg.Interface {
				link = &snap.Links[i]
				break
			}
		}
		wasUsable, _ := u.usable()
		oldAddr, oldGw := u.addr, u.gw
		var addr netip.Prefix
		var learned netip.Addr
		if link != nil {
			learned = d.learned(link.Index)
			gw := learned
			if !gw.IsValid() {
				gw = u.gw
			}
			if u.cfg.GatewayMode == config.GatewayStatic {
				gw = u.cfg.Gateway
			}
			addr = u.selectAddr(snap.Addrs, link.Index, gw)
		}
		if !sameLink(u.link, link) || addr != u.addr {
			changed = true
		}
		u.link, u.addr = cloneLink(link), addr
		gw, hold := u.nextGateway(learned, addr, now)
		if hold != u.gwHold && !hold.IsZero() && u.gwHold.IsZero() {
			d.log.Info("default route gone; keeping its gateway for gateway_hold", "uplink", u.cfg.Name,
				"gateway", gw, "hold", u.cfg.GatewayHold)
		}
		if gw != u.gw || hold != u.gwHold {
			d.changed = true
		}
		u.gw, u.gwHold = gw, hold
		if gw != oldGw {
			changed = true
		}

		usable, why := u.usable()
		var tr fsm.Transition
		var ok bool
		switch {
		case !usable:
			tr, ok = u.m.LinkDown(why, now)
		case wasUsable && oldAddr.Addr() != addr.Addr():
			what := renumbering(u.cfg.Interface, oldAddr, addr, oldGw, gw)
			d.log.Info("uplink renumbered", "uplink", u.cfg.Name, "change", what)
			d.renumbered(u)
			tr, ok = u.m.Renumbered(what, now)
		case wasUsable && oldGw != gw:
			// Same address: its connections and probes' verdict hold.
			what := renumbering(u.cfg.Interface, oldAddr, addr, oldGw, gw)
			d.log.Info("uplink gateway changed", "uplink", u.cfg.Name, "change", what)
			u.m.Explain(what)
			d.changed = true
		default:
			tr, ok = u.m.LinkUp(why, now)
		}
		if ok {
			d.transition(u, tr)
			changed = true
		}
	}
	if changed {
		d.changed = true
	}
	return changed
}

// usable says whether the uplink's link can carry traffic, and why not.
func (u *uplink) usable() (bool, string) {
	ifn := u.cfg.Interface
	switch {
	case u.link == nil:
		return false, fmt.Sprintf("interface %s does not exist", ifn)
	case !u.link.AdminUp:
		return false, fmt.Sprintf("%s is administratively down", ifn)
	case !u.link.Carrier:
		return false, fmt.Sprintf("no carrier on %s", ifn)
	case !u.addr.IsValid() && u.cfg.Address.IsValid():
		return false, fmt.Sprintf("%s has no IPv4 address in %s", ifn, u.cfg.Address)
	case !u.addr.IsValid():
		return false, fmt.Sprintf("%s has no IPv4 address", ifn)
	case u.pointToPoint():
		return true, fmt.Sprintf("%s up with carrier and address %s, point-to-point", ifn, u.addr)
	case u.cfg.GatewayMode == config.GatewayAuto && !u.gw.IsValid():
		return false, fmt.Sprintf("no gateway known: no default route through %s in any table (gateway = \"auto\")", ifn)
	case u.cfg.GatewayMode == config.GatewayAuto:
		return true, fmt.Sprintf("%s up with carrier, address %s and gateway %s", ifn, u.addr, u.gw)
	}
	return true, fmt.Sprintf("%s up with carrier and address %s", ifn, u.addr)
}

// pickAddr chooses the uplink's address on ifindex: the one whose prefix
// holds the gateway, else the lowest, so the choice is stable.
func pickAddr(addrs []events.Addr, index int, gw netip.Addr) netip.Prefix {
	var best netip.Prefix
	for _, a := range addrs {
		if a.Index != index || !a.Prefix.Addr().Is4() {
			continue
		}
		switch {
		case a.Prefix.Masked().Contains(gw) && (!best.IsValid() || !best.Masked().Contains(gw)):
			best = a.Prefix
		case !best.IsValid():
			best = a.Prefix
		case best.Masked().Contains(gw) == a.Prefix.Masked().Contains(gw) && a.Prefix.Addr().Less(best.Addr()):
			best = a.Prefix
		}
	}
	return best
}

func sameLink(a, b *events.Link) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func cloneLink(l *events.Link) *events.Link {
	if l == nil {
		return nil
	}
	c := *l
	return &c
}

// syncProber keeps one prober per usable, probed uplink, restarted whenever
// what it probes changes: the interface or address it is bound to, its
// targets, interval or timeout.
func (d *Daemon) syncProber(u *uplink) {
	in := proberInputs{cfg: d.cfg, names: d.resolvedGen, gw: u.gw, addr: u.addr, down: u.m.State() == fsm.Down,
		interval: d.probeInterval(u)}
	if u.link != nil {
		in.link, in.hasLink = *u.link, true
	}
	if u.keyDone && u.keyOf == in {
		return
	}
	u.keyOf, u.keyDone = in, false
	targets := d.targetsOf(u)
	key := ""
	if ok, _ := u.usable(); ok && len(targets) > 0 && u.m.State() != fsm.Down {
		p := d.cfg.Probe
		key = fmt.Sprintf("%s#%d %s %v every %v within %v, %d must answer, window %d fresh after %d, checks every %v within %v expecting %d",
			u.cfg.Interface, u.link.Index, u.addr.Addr(), targets, d.probeInterval(u), p.Timeout, d.reliabilityOf(targets), p.Window, p.DownAfter,
			p.CheckInterval, p.CheckTimeout, p.HTTPExpect)
	}
	if key == u.key {
		u.keyDone = true
		return
	}
	u.stopProber()
	if key == "" {
		u.keyOf, u.keyDone = in, true
		return
	}
	d.gen++
	p, err := probe.Start(probe.Config{
		Uplink:      u.cfg.Name,
		Interface:   u.cfg.Interface,
		Index:       u.link.Index,
		Hub:         d.hub,
		Source:      u.addr.Addr(),
		Targets:     probeTargets(targets),
		Interval:    d.probeInterval(u),
		Timeout:     d.cfg.Probe.Timeout,
		Reliability: d.reliabilityOf(targets),
		Window:      d.cfg.Probe.Window,
		// An outage long enough to take the uplink out of the balance
		// is not held against it when it comes back.
		FreshAfter:    d.cfg.Probe.DownAfter,
		CheckInterval: d.cfg.Probe.CheckInterval,
		CheckTimeout:  d.cfg.Probe.CheckTimeout,
		HTTPExpect:    d.cfg.Probe.HTTPExpect,
		Gen:           d.gen,
	}, d.results)
	if err != nil {
		d.log.Error("start probes", "uplink", u.cfg.Name, "err", err)
		d.armRetry()
		return
	}
	d.log.Debug("probes started", "uplink", u.cfg.Name, "probes", key)
	u.prober, u.key, u.gen, u.started = p, key, d.gen, time.Now()
	u.keyOf, u.keyDone = in, true
	u.probe = probe.Result{}
}

// proberInputs is everything a prober's key depends on: the configuration
// (replaced as a whole on reload, the uplink's own part included), the
// addresses of target names, the gateway in use, the interface, the
// address, whether the uplink is down and the interval (longer while it
// stands by).
type proberInputs struct {
	cfg      *config.Config
	interval time.Duration
	names    uint64 // Daemon.resolvedGen
	gw       netip.Addr
	link     events.Link
	hasLink  bool
	addr     netip.Prefix
	down     bool
}

func (u *uplink) stopProber() {
	if u.prober != nil {
		u.prober.Stop()
		u.prober = nil
	}
	u.key, u.started = "", time.Time{}
	u.keyDone = false
}

func (d *Daemon) probeResult(r probe.Result) {
	for _, u := range d.uplinks {
		if u.cfg.Name != r.Uplink || u.gen != r.Gen || u.prober == nil {
			continue
		}
		if r.Err != nil {
			d.log.Debug("probe round failed", "uplink", u.cfg.Name, "round", r.Round, "err", r.Err)
		}
		u.rounds++
		if r.Good {
			u.rtt = r.RTT
		} else {
			u.bad++
		}
		d.metrics.ProbeRound(u.cfg.Name, r.Good, r.RTT)
		d.observeProbes(u, r, time.Now())
		d.heldRound(u, r.Good)
		u.probe = r
		q := fsm.Quality{Known: r.Stats.Full, Probes: r.Stats.Probes, Loss: r.Stats.Loss, RTT: r.Stats.RTT}
		if !r.Good && r.Err != nil {
			q.Failure = failure(r.Err)
		}
		if r.Silent {
			reason := fmt.Sprintf("no reply for %v to %d probes", r.Silence.Round(time.Millisecond), r.Unanswered)
			if tr, ok := u.m.ProbesSilent(reason, time.Now()); ok {
				d.transition(u, tr)
				d.needReconcile = true
			}
		}
		if tr, ok := u.m.ProbeRound(r.Good, q, time.Now()); ok {
			d.transition(u, tr)
			d.needReconcile = true
		}
	}
}

// transition records tr everywhere it is shown; its hooks are queued once
// the routing change it causes is made.
func (d *Daemon) transition(u *uplink, tr fsm.Transition) {
	d.log.Info("transition", "uplink", tr.Uplink, "from", string(tr.From), "to", string(tr.To), "reason", tr.Reason)
	if tr.To != fsm.Probing {
		u.release() // a verdict: the usual rules apply from now on
	}
	d.metrics.Transition(tr.Uplink, string(tr.From), string(tr.To))
	if len(u.history) == historyLen {
		u.history = slices.Delete(u.history, 0, 1)
	}
	u.history = append(u.history, tr)
	d.fired = append(d.fired, hooks.Event{
		Uplink: tr.Uplink, Interface: u.cfg.Interface, From: string(tr.From), To: string(tr.To),
		Reason: tr.Reason, Time: tr.At,
	})
	d.changed = true
}

// inputs describes the uplinks for netops.Plan. Whether degraded uplinks
// carry traffic is the policies' choice (degraded_policy).
func (d *Daemon) inputs() []netops.Uplink {
	out := make([]netops.Uplink, 0, len(d.uplinks))
	for _, u := range d.uplinks {
		in := netops.Uplink{
			Name: u.cfg.Name, Table: u.cfg.Table, Weight: u.cfg.Weight, Gateway: u.nexthop(),
			Slot: d.slotOf(u.cfg.Name), Mark: d.markOf(u.cfg.Name),
		}
		// The kernel refuses routes through an administratively down
		// link; without carrier it keeps them flagged linkdown.
		// Nor is there a route without a gateway, unless the link is
		// point-to-point: an "auto" uplink waits for its gateway.
		if u.link != nil && u.link.AdminUp && (in.Gateway.IsValid() || u.pointToPoint()) {
			in.Index = u.link.Index
			in.Addr = u.addr
			in.Carrier = u.link.Carrier
		}
		switch u.m.State() {
		case fsm.Active:
			in.InBalance, in.Usable = true, true
		case fsm.Degraded:
			in.Degraded, in.Usable = true, true
		case fsm.Probing:
			// Adopted from an earlier run, until the first verdict.
			in.InBalance, in.Usable = u.hold.balance, u.hold.any()
		}
		out = append(out, in)
	}
	return out
}

func (d *Daemon) settings() netops.Settings {
	r := d.cfg.Routing
	var mask uint32
	if d.pinOn() {
		mask = d.pin.mask
	}
	pols, rules := policySettings(d.cfg)
	var bal netops.Balancer // chosen in Run
	if b := d.balancer.Load(); b != nil {
		bal = *b
	}
	return netops.Settings{
		MarkMask:      mask,
		LANInterfaces: r.LANInterfaces,
		BalanceTable:  r.BalanceTable,
		RulePriority:  r.RulePriority,
		RouteProtocol: r.RouteProtocol,

		Balancer:        bal,
		NexthopIDBase:   r.NexthopIDBase,
		IdleTimer:       r.IdleTimer,
		UnbalancedTimer: r.UnbalancedTimer,

		Policies:     pols,
		Rules:        rules,
		KeepDegraded: d.cfg.Probe.DegradedPolicy == config.DegradedKeep,
	}
}

func (d *Daemon) doReconcile() {
	in := d.inputs()
	var perr error
	first := d.pinsFirst(in)
	if first {
		perr = d.applyPins(in)
	}
	res, err := d.rec.Reconcile(netops.Plan(d.settings(), in))
	sinceEvent := time.Since(d.burstStart)
	if !first {
		perr = d.applyPins(in)
	}
	err = errors.Join(perr, err)
	d.recordBalance(in)
	d.notePolicies(in)
	rs := &d.reconcile
	rs.Runs++
	rs.Changes += uint64(res.Changes())
	rs.Last, rs.LastTook = time.Now(), status.Millis(res.Took)
	d.metrics.Reconcile(res.Took, res.Changes(), err)
	if res.Changes() > 0 {
		d.changed = true
		d.log.Info("routing updated", "changes", res.Changes(), "reconcile", res.Took.Round(time.Microsecond),
			"since_event", sinceEvent.Round(time.Microsecond), "added", res.Added, "removed", res.Removed)
	}
	if d.pinOn() {
		d.flushUnpinned(in)
	} else {
		d.flushLeavers(in)
		d.renum = nil
	}
	if err != nil {
		rs.Errors++
		rs.LastErr = err.Error()
		d.changed = true
		d.log.Warn("reconcile incomplete, will retry", "err", err)
		d.armRetry()
		return
	}
	d.retryDelay = 0
}

// flushLeavers deletes the conntrack entries translated to the address of
// every uplink that left the balance since the last reconcile. It runs
// after the routing change, so that the next packet of such a connection
// gets a new entry on its new path.
func (d *Daemon) flushLeavers(in []netops.Uplink) {
	now := make(map[string]netip.Addr)
	used := inUse(netops.Choose(d.settings(), in))
	for _, u := range in {
		if used[u.Name] && u.Addr.IsValid() {
			now[u.Name] = u.Addr.Addr()
		}
	}
	prev := d.natAddrs
	d.natAddrs = now
	// The setting in force now: a reload to flush_conntrack = false stops
	// the flushes at once.
	if d.ct == nil || !d.cfg.Routing.FlushConntrack {
		return
	}
	for name, addr := range left(prev, now) {
		start := time.Now()
		n, err := d.ct.FlushNAT(addr)
		if err != nil {
			d.log.Warn("flushing conntrack entries", "uplink", name, "address", addr, "deleted", n, "err", err)
			continue
		}
		d.log.Info("conntrack entries flushed", "uplink", name, "address", addr, "deleted", n,
			"took", time.Since(start).Round(time.Microsecond))
	}
}

// left returns the uplinks (with their addresses) of prev that are not in
// now with the same address: those whose translated connections go.
func left(prev, now map[string]netip.Addr) map[string]netip.Addr {
	out := make(map[string]netip.Addr)
	for name, addr := range prev {
		if a, ok := now[name]; !ok || a != addr {
			out[name] = addr
		}
	}
	return out
}

// recordBalance keeps which uplinks the balance route holds, and their
// shares, for status and metrics: by weight, or with the resilient
// balancer the kernel's real bucket split.
func (d *Daemon) recordBalance(in []netops.Uplink) {
	choices := netops.Choose(d.settings(), in)
	used := inUse(choices)
	total := 0
	for _, m := range choices[0].Members {
		total += m.Weight
	}
	split := d.bucketShares()
	for _, u := range d.uplinks {
		inBal := used[u.cfg.Name]
		share := 0.0
		switch {
		case split != nil:
			share = split[u.cfg.Name]
		case slices.ContainsFunc(choices[0].Members, func(m netops.Member) bool { return m.Name == u.cfg.Name }):
			share = float64(u.cfg.Weight) / float64(total)
		}
		if inBal != u.inBal || share != u.share {
			u.inBal, u.share = inBal, share
			d.changed = true
		}
		d.metrics.Balance(u.cfg.Name, inBal, share)
	}
}

func (d *Daemon) armRetry() {
	d.retryDelay = min(max(2*d.retryDelay, 100*time.Millisecond), 5*time.Second)
	d.retry.Reset(d.retryDelay)
}

// active counts the uplinks in state active.
func (d *Daemon) active() int {
	n := 0
	for _, u := range d.uplinks {
		if u.m.State() == fsm.Active {
			n++
		}
	}
	return n
}

// summary is the one-line status shown by `systemctl status`.
func (d *Daemon) summary() string {
	return fmt.Sprintf("%d of %d uplinks active", d.active(), len(d.uplinks))
}

// shutdown tells systemd, stops the status and metrics servers and the
// probes, and removes everything uplinkd installed.
func (d *Daemon) shutdown(stopServices func()) {
	d.notify(d.opts.Notify.Stopping())
	stopServices()
	for _, u := range d.uplinks {
		u.stopProber()
	}
	d.retry.Stop()
	d.tick.Stop()
	// Routes and rules first, then the table that marks connections.
	defer d.closePinning()
	if d.rec == nil {
		return
	}
	if d.keep {
		d.log.Info("stopped; routing and the nftables table left in place for the next start")
		return
	}
	res, err := d.rec.Cleanup()
	if err != nil {
		d.log.Error("removing routing state", "err", err)
		return
	}
	d.log.Info("stopped; removed routing state", "routes_rules_nexthops", res.Changes())
}
