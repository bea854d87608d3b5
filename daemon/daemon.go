package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
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
	// Kernel is what the loop reads and writes; nil: Run dials the real
	// kernel of the calling thread's network namespace (see Kernel).
	Kernel *Kernel
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

	ready bool // the first reconcile is done
	// kern is the kernel the loop works with; nil before Run unless
	// Options gave one (kernel.go). rec and ct are its Routing and
	// Conntrack.
	kern     *Kernel
	rec      Router
	balancer atomic.Pointer[netops.Balancer] // chosen at startup
	ct       NATFlusher                      // nil: no conntrack socket
	// natAddrs holds the address of every uplink in the balance after the
	// last reconcile: when one leaves, entries translated to it go.
	natAddrs map[string]netip.Addr
	// natAddrs6: the IPv6 addresses of the IPv6 entities in the balance.
	natAddrs6 map[string]netip.Addr
	uplinks   []*uplink
	// all are the entities: each uplink's IPv4 one, then its IPv6 one
	// when it has gateway6 (family.go).
	all []*uplink
	// byIface are the uplinks by interface name, and sourceAnywhere the
	// IPv6 entities whose source may be on any link: what link and
	// address events touch (linkstate.go).
	byIface        map[string][]*uplink
	sourceAnywhere []*uplink
	results        chan probe.Result
	gen            uint64

	// held is what an earlier run left in the kernel, until adopt hands
	// it to the uplinks (see adopt.go).
	held *netops.Held
	// hash sets and restores the multipath hash policies; nil when the
	// loop leaves them alone (hashOn).
	hash *hashState
	// held6 is IPv6's, read when an uplink has IPv6.
	held6 *netops.Held
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
	// sysctl reads a sysctl ("net/ipv6/conf/eth1/accept_ra"); nil: the
	// accept_ra check is skipped.
	sysctl func(name string) (string, error)
	// names resolves probe targets given by name, off the loop;
	// resolved holds the address in use for each (names.go).
	names    *resolver
	resolved map[string]netip.Addr
	// resolvedGen counts the changes of resolved.
	resolvedGen uint64
	// renum: uplinks whose address changed since the last reconcile.
	renum map[string]bool
	// snap is the links and addresses as last observed (linkstate.go).
	snap events.Snapshot

	// pending work of the current burst
	needDump bool // read every link and address from the kernel
	// linkEvs are the link and address events since snap was observed,
	// to apply to it (unless a dump reads everything anyway).
	linkEvs       []events.Event
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

	// netlinkDelay is the backoff of the retries after a netlink error.
	netlinkDelay time.Duration
	// backoff: a read of the kernel's state failed; the next one waits
	// for the retry timer, whatever else wakes the loop meanwhile.
	backoff bool
	// mon is the current event subscription; filterSet is the filter it
	// was given (nil: none yet).
	mon       Subscription
	filterSet *events.Filter
	filterCfg *config.Config // the configuration filterSet was made of
}

// uplink is the loop's view of one configured uplink.
type uplink struct {
	cfg  config.Uplink
	m    *fsm.Uplink
	link *events.Link // nil: no interface with the configured name
	addr netip.Prefix // invalid: no IPv4 address
	// reason is the last text of usable, and what it was made of.
	reason struct {
		key  reasonKey
		text string
	}
	// gw is the next hop in use: the configured one, the learned one (or
	// one held after its route went, until gwHold), invalid when unknown
	// or on a point-to-point link.
	gw     netip.Addr
	gwHold time.Time
	prober Prober
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

	// fam is the entity's family; v6 is the IPv6 entity of an IPv4 one
	// (nil without gateway6). See family.go.
	fam family
	v6  *uplink
	// raWarned: the accept_ra warning was logged (observe6.go).
	raWarned bool
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
		sysctl:   readSysctl,
	}
	if opts.Kernel != nil {
		d.use(opts.Kernel)
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
	d.syncFamilies(d.started)
	return d
}

func (d *Daemon) newUplink(c config.Uplink, now time.Time) *uplink {
	u := &uplink{cfg: c, fam: ipv4, m: fsm.New(c.Name, d.fsmParams(c), now)}
	if c.HasIPv4() {
		d.metrics.State(c.Name, ipv4.String(), string(fsm.Down))
		d.metrics.Balance(c.Name, ipv4.String(), false, 0)
	}
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

	if d.kern == nil {
		k, err := dialKernel(d.log, d.cfg.Routing.RouteProtocol, d.opts.EventBuffer)
		if err != nil {
			return err
		}
		// After shutdown, which stops the probers and removes the routing.
		defer k.close()
		d.use(k)
	}
	if err := d.kern.complete(); err != nil {
		return err
	}
	if d.kern.Pinning {
		d.openPinning()
		defer d.closePinning()
	} else {
		d.pin = &pinning{off: "no nftables in the kernel the daemon was given"}
	}
	d.metrics.Pinning(d.pinOn())
	bal, err := d.chooseBalancer()
	if err != nil {
		return err
	}
	d.balancer.Store(&bal)
	d.metrics.Info(d.opts.Version, bal.String())

	if d.hashOn() {
		hs, err := setHash(d.cfg.Routing.StateDir, hashPolicy(d.cfg.Routing.Hash), d.cfg.HasIPv6())
		if err != nil {
			return err
		}
		d.hash = hs
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
	}
	d.readHeld()

	d.warnSingleTarget()
	for _, w := range d.cfg.Warnings() {
		d.log.Warn("configuration: " + w)
	}
	defer d.shutdown(stopServices)
	d.watch(ctx)
	return nil
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

func (d *Daemon) armRetry() {
	d.retryDelay = min(max(2*d.retryDelay, 100*time.Millisecond), 5*time.Second)
	d.retry.Reset(d.retryDelay)
}

// active counts the uplinks in state active: in IPv4, or in IPv6 for an
// uplink with IPv6 only.
func (d *Daemon) active() int {
	n := 0
	for _, u := range d.uplinks {
		if u.primary().m.State() == fsm.Active {
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
	for _, u := range d.entities() {
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
