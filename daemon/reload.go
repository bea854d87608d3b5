package daemon

import (
	"fmt"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/status"
)

// pendingReload is a reload applied to the loop's state whose routing
// change is made by the next settle.
type pendingReload struct {
	reply   chan<- status.Reply // nil for SIGHUP
	changes []string
	start   time.Time
}

// reload re-reads the configuration file. A file that does not load
// leaves everything as it is; otherwise only what changed is applied.
// reply, when not nil, gets the result once the routing matches the new
// configuration.
func (d *Daemon) reload(reply chan<- status.Reply) {
	start := time.Now()
	d.burstStart = start
	d.notify(d.opts.Notify.Reloading())
	d.changed = true
	cfg, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		d.failed++
		d.lastFail = err.Error()
		d.metrics.Reload(false)
		d.log.Error("reload refused; the running configuration stays in force", "config", d.opts.ConfigPath, "err", err)
		d.notify(d.opts.Notify.Ready(d.summary() + "; last reload refused"))
		if reply != nil {
			reply <- status.Reply{Reload: &status.ReloadResult{Error: err.Error()}}
		}
		return
	}
	changes := d.apply(cfg)
	d.reloads++
	d.lastFail = ""
	d.loaded = start
	d.metrics.Reload(true)
	d.reloading = &pendingReload{reply: reply, changes: changes, start: start}
}

// finishReload reports a reload once settle has made the routing change.
func (d *Daemon) finishReload() {
	r := d.reloading
	if r == nil {
		return
	}
	d.reloading = nil
	for _, c := range r.changes {
		d.log.Info("reload", "change", c)
	}
	d.log.Info("configuration reloaded", "config", d.opts.ConfigPath, "changes", len(r.changes),
		"took", time.Since(r.start).Round(time.Microsecond))
	d.notify(d.opts.Notify.Ready(d.summary()))
	if r.reply != nil {
		r.reply <- status.Reply{Reload: &status.ReloadResult{OK: true, Changes: r.changes}}
	}
}

// apply makes cfg the configuration in force and returns what changed.
// Uplinks are matched by name: one whose interface is unchanged keeps its
// state machine, history and probes (restarted only when what they probe
// changed), so its routes and flows stay; one whose interface changed
// starts over, as a new uplink does.
func (d *Daemon) apply(cfg *config.Config) []string {
	old := d.cfg
	changes := describe(old, cfg)
	if cfg.Routing.RouteProtocol != old.Routing.RouteProtocol {
		// The reconciler knows its objects by their protocol: remove
		// those of the old one before switching.
		if res, err := d.rec.Cleanup(); err != nil {
			d.log.Error("remove routing state of the old route_protocol", "err", err)
		} else {
			d.log.Info("removed routing state of the old route_protocol", "routes_and_rules", res.Changes())
		}
		d.rec.Protocol = cfg.Routing.RouteProtocol
	}
	if cfg.Routing.Hash != old.Routing.Hash {
		if _, err := netops.SetMultipathHash(hashPolicy(cfg.Routing.Hash)); err != nil {
			d.log.Error("set multipath hash policy", "err", err)
		}
	}

	now := time.Now()
	keep := make(map[string]*uplink, len(d.uplinks))
	for _, u := range d.uplinks {
		keep[u.cfg.Name] = u
	}
	next := make([]*uplink, 0, len(cfg.Uplinks))
	for _, c := range cfg.Uplinks {
		u, ok := keep[c.Name]
		if ok && u.cfg.Interface == c.Interface {
			delete(keep, c.Name)
			u.cfg = c
			next = append(next, u)
			continue
		}
		next = append(next, nil) // created below, once the old one is gone
	}
	for _, u := range keep {
		u.stopProber()
		d.metrics.Forget(u.cfg.Name)
	}
	d.cfg = cfg
	for i, c := range cfg.Uplinks {
		if next[i] == nil {
			next[i] = d.newUplink(c, now)
		}
	}
	d.uplinks = next
	for _, u := range d.uplinks {
		u.m.SetParams(d.fsmParams(u.cfg))
	}
	d.hooks.SetMaxRunning(cfg.Hooks.MaxRunning)
	if d.opts.LogLevel != nil {
		d.opts.LogLevel.Set(cfg.Log.Level)
	}
	// Re-read links and addresses: the state machines of new uplinks
	// start from them, and probes follow their new settings.
	d.needDump, d.needReconcile, d.needRoutes = true, true, true
	return changes
}

// describe lists the differences between two configurations, one
// human-readable item per changed setting, in file order.
func describe(old, cfg *config.Config) []string {
	var out []string
	note := func(suffix, key string, a, b any) {
		if as, bs := fmt.Sprint(a), fmt.Sprint(b); as != bs {
			out = append(out, fmt.Sprintf("%s: %s -> %s%s", key, as, bs, suffix))
		}
	}
	chg := func(key string, a, b any) { note("", key, a, b) }
	restart := func(key string, a, b any) { note(" (takes effect on restart)", key, a, b) }
	or, nr := old.Routing, cfg.Routing
	chg("routing.lan_interfaces", or.LANInterfaces, nr.LANInterfaces)
	chg("routing.balance_table", or.BalanceTable, nr.BalanceTable)
	chg("routing.rule_priority", or.RulePriority, nr.RulePriority)
	chg("routing.route_protocol", or.RouteProtocol, nr.RouteProtocol)
	chg("routing.hash", or.Hash, nr.Hash)
	op, np := old.Probe, cfg.Probe
	chg("probe.targets", op.Targets, np.Targets)
	chg("probe.gateway", op.Gateway, np.Gateway)
	chg("probe.interval", op.Interval, np.Interval)
	chg("probe.timeout", op.Timeout, np.Timeout)
	chg("probe.down_after", op.DownAfter, np.DownAfter)
	chg("probe.up_after", op.UpAfter, np.UpAfter)
	chg("probe.reliability", op.Reliability, np.Reliability)
	chg("probe.window", op.Window, np.Window)
	chg("probe.degraded_loss", op.DegradedLoss, np.DegradedLoss)
	chg("probe.recover_loss", op.RecoverLoss, np.RecoverLoss)
	chg("probe.degraded_rtt", op.DegradedRTT, np.DegradedRTT)
	chg("probe.recover_rtt", op.RecoverRTT, np.RecoverRTT)
	chg("probe.degraded_policy", op.DegradedPolicy, np.DegradedPolicy)
	chg("probe.flap_limit", op.FlapLimit, np.FlapLimit)
	chg("probe.flap_window", op.FlapWindow, np.FlapWindow)
	chg("probe.flap_hold", op.FlapHold, np.FlapHold)
	chg("probe.flap_hold_max", op.FlapHoldMax, np.FlapHoldMax)
	oh, nh := old.Hooks, cfg.Hooks
	chg("hooks.on_transition", oh.OnTransition, nh.OnTransition)
	chg("hooks.on_down", oh.OnDown, nh.OnDown)
	chg("hooks.on_probing", oh.OnProbing, nh.OnProbing)
	chg("hooks.on_degraded", oh.OnDegraded, nh.OnDegraded)
	chg("hooks.on_active", oh.OnActive, nh.OnActive)
	chg("hooks.timeout", oh.Timeout, nh.Timeout)
	chg("hooks.max_running", oh.MaxRunning, nh.MaxRunning)
	restart("status.socket", old.Status.Socket, cfg.Status.Socket)
	restart("metrics.listen", quote(old.Metrics.Listen), quote(cfg.Metrics.Listen))
	chg("log.level", old.Log.Level, cfg.Log.Level)
	restart("log.format", old.Log.Format, cfg.Log.Format)

	oldUp := make(map[string]config.Uplink)
	for _, u := range old.Uplinks {
		oldUp[u.Name] = u
	}
	for _, u := range cfg.Uplinks {
		o, ok := oldUp[u.Name]
		if !ok {
			out = append(out, fmt.Sprintf("uplink %s: added", u.Name))
			continue
		}
		key := "uplink " + u.Name + ": "
		if o.Interface != u.Interface {
			out = append(out, fmt.Sprintf("%sinterface: %s -> %s (starts over in state down)", key, o.Interface, u.Interface))
		}
		chg(key+"gateway", gatewayKey(o), gatewayKey(u))
		chg(key+"gateway_hold", o.GatewayHold, u.GatewayHold)
		chg(key+"address", addressKey(o), addressKey(u))
		chg(key+"weight", o.Weight, u.Weight)
		chg(key+"table", o.Table, u.Table)
		chg(key+"probe_targets", targets(o), targets(u))
		chg(key+"probe_gateway", gateway(o), gateway(u))
	}
	for _, u := range old.Uplinks {
		if !slices.ContainsFunc(cfg.Uplinks, func(n config.Uplink) bool { return n.Name == u.Name }) {
			out = append(out, fmt.Sprintf("uplink %s: removed", u.Name))
		}
	}
	return out
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// gateway describes an uplink's own gateway probing setting.
func gateway(u config.Uplink) string {
	if u.ProbeGateway == nil {
		return "(that of [probe])"
	}
	return fmt.Sprint(*u.ProbeGateway)
}

// targets describes an uplink's own probe targets.
func targets(u config.Uplink) string {
	if u.ProbeTargets == nil {
		return "(those of [probe])"
	}
	return fmt.Sprint(u.ProbeTargets)
}
