package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/vishvananda/netlink"
)

// Daemon runs uplinkd for one configuration.
type Daemon struct {
	cfg *config.Config
	log *slog.Logger
	// Ready, if set, is called once after the first reconcile.
	Ready func()

	rec     *netops.Reconciler
	uplinks []*uplink
	results chan probe.Result
	gen     uint64

	// pending work of the current burst
	needDump      bool
	needReconcile bool
	burstStart    time.Time
	retry         *time.Timer
	retryDelay    time.Duration
}

// uplink is the loop's view of one configured uplink.
type uplink struct {
	cfg    config.Uplink
	m      *fsm.Uplink
	link   *events.Link // nil: no interface with the configured name
	addr   netip.Prefix // invalid: no IPv4 address
	prober *probe.Prober
	key    string // what the running prober was started for
	gen    uint64
}

// New returns a daemon for cfg logging to log.
func New(cfg *config.Config, log *slog.Logger) *Daemon {
	d := &Daemon{cfg: cfg, log: log, results: make(chan probe.Result, 64), retry: time.NewTimer(time.Hour)}
	d.retry.Stop()
	now := time.Now()
	for _, u := range cfg.Uplinks {
		d.uplinks = append(d.uplinks, &uplink{cfg: u, m: fsm.New(u.Name, d.fsmParams(u), now)})
	}
	return d
}

func (d *Daemon) fsmParams(u config.Uplink) fsm.Params {
	return fsm.Params{
		Probed:    len(d.cfg.TargetsFor(u)) > 0,
		UpAfter:   d.cfg.Probe.UpAfter,
		DownAfter: d.cfg.Probe.DownAfter,
	}
}

// Run subscribes to kernel events, converges the routing state and keeps it
// converged until ctx is cancelled. Then it stops the probes, removes every
// route and rule it installed, restores the multipath hash policy and
// returns nil. Errors it cannot recover from are returned after the same
// cleanup.
func (d *Daemon) Run(ctx context.Context) (err error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink handle: %w", err)
	}
	defer h.Close()
	d.rec = &netops.Reconciler{K: h, Protocol: d.cfg.Routing.RouteProtocol}

	policy := netops.HashL4
	if d.cfg.Routing.Hash == "l3" {
		policy = netops.HashL3
	}
	prevHash, err := netops.SetMultipathHash(policy)
	if err != nil {
		return err
	}
	defer func() {
		if _, herr := netops.SetMultipathHash(prevHash); herr != nil {
			err = errors.Join(err, herr)
		}
	}()

	defer d.shutdown()

	for {
		if err := d.monitor(ctx); err != nil || ctx.Err() != nil {
			return err
		}
		// The event socket failed: subscribe again and resync.
		d.log.Warn("netlink event monitor stopped, resubscribing")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// monitor runs one event subscription: subscribe first, then dump, so no
// change falls between the two. It returns nil when ctx is done or the
// subscription broke (the caller resubscribes), an error when the kernel
// state cannot be read at all.
func (d *Daemon) monitor(ctx context.Context) error {
	mon, err := events.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribe to netlink events: %w", err)
	}
	mctx, cancel := context.WithCancel(ctx)
	evs := make(chan events.Event, 512)
	done := make(chan error, 1)
	go func() { done <- mon.Run(mctx, evs) }()
	defer func() {
		cancel()
		<-done
	}()

	d.needDump, d.needReconcile = true, true
	d.burstStart = time.Now()
	if err := d.settle(ctx); err != nil {
		return err
	}
	if d.Ready != nil {
		d.Ready()
		d.Ready = nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			if err != nil {
				d.log.Error("netlink event socket failed", "err", err)
			}
			done <- nil // let the deferred wait return
			return nil
		case ev := <-evs:
			d.burstStart = time.Now()
			d.note(ev)
			d.drain(evs)
		case r := <-d.results:
			d.burstStart = time.Now()
			d.probeResult(r)
		case <-d.retry.C:
			d.log.Info("retrying reconcile")
			d.needReconcile = true
			d.burstStart = time.Now()
		}
		if err := d.settle(ctx); err != nil {
			return err
		}
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

// note records what an event means for the loop's pending work.
func (d *Daemon) note(ev events.Event) {
	switch e := ev.(type) {
	case events.LinkEvent, events.AddrEvent:
		d.needDump = true
	case events.RouteEvent:
		if d.ours(e.Table, e.Protocol) {
			d.needReconcile = true
		}
	case events.RuleEvent:
		r := d.cfg.Routing
		if e.Protocol == r.RouteProtocol || (e.Priority >= r.RulePriority && e.Priority < r.RulePriority+config.RulePriorityRange) {
			d.needReconcile = true
		}
	case events.ResyncEvent:
		d.log.Warn("netlink events lost, resyncing", "reason", e.Reason)
		d.needDump, d.needReconcile = true, true
	}
}

func (d *Daemon) ours(table, protocol int) bool {
	if protocol == d.cfg.Routing.RouteProtocol || table == d.cfg.Routing.BalanceTable {
		return true
	}
	return slices.ContainsFunc(d.uplinks, func(u *uplink) bool { return u.cfg.Table == table })
}

// settle does the pending work: re-read links and addresses, run the state
// machines, (re)start probes, then plan and reconcile.
func (d *Daemon) settle(ctx context.Context) error {
	if d.needDump {
		d.needDump = false
		snap, err := events.Dump(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read links and addresses: %w", err)
		}
		if d.observe(snap) {
			d.needReconcile = true
		}
	}
	if d.needReconcile {
		d.needReconcile = false
		d.reconcile()
	}
	return nil
}

// observe applies a snapshot of links and addresses to every uplink and
// reports whether anything that matters for routing changed.
func (d *Daemon) observe(snap events.Snapshot) bool {
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
		var addr netip.Prefix
		if link != nil {
			addr = pickAddr(snap.Addrs, link.Index, u.cfg.Gateway)
		}
		if !sameLink(u.link, link) || addr != u.addr {
			changed = true
		}
		u.link, u.addr = cloneLink(link), addr

		usable, why := u.usable()
		var tr fsm.Transition
		var ok bool
		if usable {
			tr, ok = u.m.LinkUp(why, now)
		} else {
			tr, ok = u.m.LinkDown(why, now)
		}
		if ok {
			d.transition(tr)
			changed = true
		}
		d.syncProber(u)
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
	case !u.addr.IsValid():
		return false, fmt.Sprintf("%s has no IPv4 address", ifn)
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
// the interface or address it is bound to changes.
func (d *Daemon) syncProber(u *uplink) {
	targets := d.cfg.TargetsFor(u.cfg)
	key := ""
	if ok, _ := u.usable(); ok && len(targets) > 0 && u.m.State() != fsm.Down {
		key = fmt.Sprintf("%s#%d %s", u.cfg.Interface, u.link.Index, u.addr.Addr())
	}
	if key == u.key {
		return
	}
	if u.prober != nil {
		u.prober.Stop()
		u.prober = nil
	}
	u.key = ""
	if key == "" {
		return
	}
	d.gen++
	p, err := probe.Start(probe.Config{
		Uplink:    u.cfg.Name,
		Interface: u.cfg.Interface,
		Source:    u.addr.Addr(),
		Targets:   targets,
		Interval:  d.cfg.Probe.Interval,
		Timeout:   d.cfg.Probe.Timeout,
		Gen:       d.gen,
	}, d.results)
	if err != nil {
		d.log.Error("start probes", "uplink", u.cfg.Name, "err", err)
		d.armRetry()
		return
	}
	u.prober, u.key, u.gen = p, key, d.gen
}

func (d *Daemon) probeResult(r probe.Result) {
	for _, u := range d.uplinks {
		if u.cfg.Name != r.Uplink || u.gen != r.Gen || u.prober == nil {
			continue
		}
		if r.Err != nil {
			d.log.Debug("probe round failed", "uplink", u.cfg.Name, "round", r.Round, "err", r.Err)
		}
		if tr, ok := u.m.ProbeRound(r.Good, time.Now()); ok {
			d.transition(tr)
			d.needReconcile = true
		}
	}
}

func (d *Daemon) transition(tr fsm.Transition) {
	d.log.Info("transition", "uplink", tr.Uplink, "from", string(tr.From), "to", string(tr.To), "reason", tr.Reason)
}

// inputs describes the uplinks for netops.Plan. Degraded uplinks carry
// traffic only while no uplink is active.
func (d *Daemon) inputs() []netops.Uplink {
	anyActive := slices.ContainsFunc(d.uplinks, func(u *uplink) bool { return u.m.State() == fsm.Active })
	out := make([]netops.Uplink, 0, len(d.uplinks))
	for _, u := range d.uplinks {
		in := netops.Uplink{
			Name: u.cfg.Name, Table: u.cfg.Table, Weight: u.cfg.Weight, Gateway: u.cfg.Gateway,
		}
		// The kernel refuses routes through an administratively down
		// link; without carrier it keeps them flagged linkdown.
		if u.link != nil && u.link.AdminUp {
			in.Index = u.link.Index
			in.Addr = u.addr
		}
		switch u.m.State() {
		case fsm.Active:
			in.InBalance = true
		case fsm.Degraded:
			in.InBalance = !anyActive
		}
		out = append(out, in)
	}
	return out
}

func (d *Daemon) settings() netops.Settings {
	r := d.cfg.Routing
	return netops.Settings{
		LANInterfaces: r.LANInterfaces,
		BalanceTable:  r.BalanceTable,
		RulePriority:  r.RulePriority,
		RouteProtocol: r.RouteProtocol,
	}
}

func (d *Daemon) reconcile() {
	res, err := d.rec.Reconcile(netops.Plan(d.settings(), d.inputs()))
	if res.Changes() > 0 {
		d.log.Info("routing updated", "changes", res.Changes(), "reconcile", res.Took.Round(time.Microsecond),
			"since_event", time.Since(d.burstStart).Round(time.Microsecond), "added", res.Added, "removed", res.Removed)
	}
	if err != nil {
		d.log.Warn("reconcile incomplete, will retry", "err", err)
		d.armRetry()
		return
	}
	d.retryDelay = 0
}

func (d *Daemon) armRetry() {
	d.retryDelay = min(max(2*d.retryDelay, 100*time.Millisecond), 5*time.Second)
	d.retry.Reset(d.retryDelay)
}

// shutdown stops the probes and removes everything uplinkd installed.
func (d *Daemon) shutdown() {
	for _, u := range d.uplinks {
		if u.prober != nil {
			u.prober.Stop()
			u.prober = nil
		}
	}
	d.retry.Stop()
	if d.rec == nil {
		return
	}
	res, err := d.rec.Cleanup()
	if err != nil {
		d.log.Error("removing routing state", "err", err)
		return
	}
	d.log.Info("stopped; removed routing state", "routes_and_rules", res.Changes())
}
