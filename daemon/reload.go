package daemon

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/config"
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
	d.names.set(cfg.Names()) // resolved again at once
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
func (d *Daemon) apply(cfg *config.Config) (changes []string) {
	old := d.cfg
	if from, to := old.Routing.RouteProtocol, cfg.Routing.RouteProtocol; from != to {
		if err := d.switchProtocol(to); err != nil {
			// Switching now would orphan what carries the old protocol:
			// keep it, and say so.
			d.log.Error("route_protocol not changed: removing the routing state of the old one failed; reload again",
				"from", from, "to", to, "err", err)
			c := *cfg
			c.Routing.RouteProtocol = from
			cfg = &c
			defer func() {
				changes = append(changes, fmt.Sprintf("routing.route_protocol: %d -> %d NOT applied: removing the routing state of protocol %d failed (%v); still %d, reload again", from, to, from, err, from))
			}()
		}
	}
	changes = describe(old, cfg)
	if d.hash != nil && (cfg.Routing.Hash != old.Routing.Hash || cfg.HasIPv6() != old.HasIPv6()) {
		if err := d.hash.apply(hashPolicy(cfg.Routing.Hash), cfg.HasIPv6()); err != nil {
			d.log.Error("set multipath hash policy", "err", err)
		}
		if w := d.hash.warn; w != nil {
			d.hash.warn = nil
			d.log.Warn("cannot keep the original multipath hash policy for after a crash", "err", w)
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
		// An uplink that gains or loses its IPv4 side starts afresh.
		if ok && u.cfg.Interface == c.Interface && u.cfg.HasIPv4() == c.HasIPv4() {
			delete(keep, c.Name)
			u.cfg = c
			next = append(next, u)
			continue
		}
		next = append(next, nil) // created below, once the old one is gone
	}
	for _, u := range keep {
		u.stopProber()
		if u.v6 != nil {
			u.v6.stopProber()
		}
		d.metrics.Forget(u.cfg.Name)
	}
	d.cfg = cfg
	for i, c := range cfg.Uplinks {
		if next[i] == nil {
			next[i] = d.newUplink(c, now)
		}
	}
	d.uplinks = next
	d.syncFamilies(now)
	for _, u := range d.entities() {
		u.m.SetParams(d.params(u))
	}
	d.hooks.SetMaxRunning(cfg.Hooks.MaxRunning)
	if d.opts.LogLevel != nil {
		d.opts.LogLevel.Set(cfg.Log.Level)
	}
	// Re-read links and addresses: the state machines of new uplinks
	// start from them, and probes follow their new settings.
	d.dumpAll()
	d.needReconcile, d.needRoutes = true, true
	return changes
}

// switchProtocol removes everything carrying the reconciler's protocol,
// then makes it use protocol. It does not switch when the removal failed.
func (d *Daemon) switchProtocol(protocol int) error {
	if d.rec == nil {
		return nil
	}
	res, err := d.rec.Cleanup()
	if err != nil {
		return err
	}
	d.log.Info("removed routing state of the old route_protocol", "protocol", d.cfg.Routing.RouteProtocol, "routes_rules_nexthops", res.Changes())
	d.rec.SetProtocol(protocol)
	return nil
}

// describe lists the differences between two configurations, one
// human-readable item per changed key, in file order; a key that needs a
// restart says so.
func describe(old, cfg *config.Config) []string {
	var out []string
	for _, k := range globalKeys {
		if c := describeKey(k.key, k.class, k.get(old), k.get(cfg)); c != "" {
			out = append(out, c)
		}
	}
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
		prefix := "uplink " + u.Name + ": "
		for _, k := range uplinkKeys {
			c := describeKey(prefix+k.key, k.class, k.get(o), k.get(u))
			switch {
			case c == "":
			case k.key == "interface":
				out = append(out, c+" (starts over in state down)")
			default:
				out = append(out, c)
			}
		}
	}
	for _, u := range old.Uplinks {
		if !slices.ContainsFunc(cfg.Uplinks, func(n config.Uplink) bool { return n.Name == u.Name }) {
			out = append(out, fmt.Sprintf("uplink %s: removed", u.Name))
		}
	}
	return append(out, describePolicies(old, cfg)...)
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
	if u.ProbeTargets == nil && u.ProbeTargetNames == nil {
		return "(those of [probe])"
	}
	return targetList(u.ProbeTargets, u.ProbeTargetNames)
}

// targetList shows a list of targets, then names.
func targetList(targets []config.Target, names []string) string {
	out := make([]string, 0, len(targets)+len(names))
	for _, t := range targets {
		out = append(out, t.String())
	}
	return "[" + strings.Join(append(out, names...), " ") + "]"
}
