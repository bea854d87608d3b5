package daemon

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/hooks"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/status"
)

// transition records tr everywhere it is shown; its hooks are queued once
// the routing change it causes is made.
func (d *Daemon) transition(u *uplink, tr fsm.Transition) {
	d.log.Info("transition", "uplink", u.label(), "from", string(tr.From), "to", string(tr.To), "reason", tr.Reason)
	if tr.To != fsm.Probing {
		u.release() // a verdict: the usual rules apply from now on
	}
	d.metrics.Transition(tr.Uplink, u.fam.String(), string(tr.From), string(tr.To))
	if len(u.history) == historyLen {
		u.history = slices.Delete(u.history, 0, 1)
	}
	u.history = append(u.history, tr)
	d.fired = append(d.fired, hooks.Event{
		Uplink: tr.Uplink, Interface: u.cfg.Interface, Family: u.fam.String(), From: string(tr.From), To: string(tr.To),
		Reason: tr.Reason, Time: tr.At,
	})
	d.changed = true
}

// inputs describes the uplinks for netops.Plan (IPv4), one per uplink,
// those with IPv6 only included (pinning needs their marks; only4 leaves
// them out of the rest). Whether degraded uplinks carry traffic is the
// policies' choice (degraded_policy).
func (d *Daemon) inputs() []netops.Uplink {
	out := make([]netops.Uplink, 0, len(d.uplinks))
	for _, u := range d.uplinks {
		out = append(out, d.input(u))
	}
	return out
}

// input describes entity u for netops.Plan of its family.
func (d *Daemon) input(u *uplink) netops.Uplink {
	in := netops.Uplink{
		Name: u.cfg.Name, Table: u.cfg.Table, Weight: u.cfg.Weight, Gateway: u.nexthop(),
		Slot: d.slotOf(u.cfg.Name), Mark: d.markOfConfigured(u.cfg.Name),
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
	return in
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
	all, in6 := d.inputs(), d.inputs6()
	in := d.only4(all)
	s := d.settings()
	var perr error
	first := d.pinsFirst(all)
	if first {
		perr = d.applyPins(all)
	}
	res, err := d.rec.Reconcile(netops.PlanAll(s, in, in6))
	sinceEvent := time.Since(d.burstStart)
	if !first {
		perr = d.applyPins(all)
	}
	err = errors.Join(perr, err)
	// What the policies use now, chosen once per family for everything
	// that records it.
	c4, c6 := d.choose(s, in, ipv4), d.choose(s, in6, ipv6)
	d.recordBalance(c4)
	d.recordBalance(c6)
	d.notePolicies(c4)
	if len(in6) > 0 {
		d.notePolicies(c6)
	} else {
		d.forgetPolicies(ipv6, nil)
	}
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
		d.flushUnpinned(in, ipv4)
		d.flushUnpinned(in6, ipv6)
	} else {
		d.flushLeavers(c4)
		d.flushLeavers(c6)
	}
	d.renum = nil
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

// chosen is what the policies of one family use, from that family's
// inputs (in[i] is familyEntities(fam)[i]'s).
type chosen struct {
	fam     family
	in      []netops.Uplink
	choices []netops.Choice
	// used[i]: some policy uses in[i] for new connections; inDefault[i]:
	// the default policy does.
	used, inDefault []bool
}

// choose chooses what the policies of family fam use, with settings s
// (whatever their Family) and that family's inputs.
func (d *Daemon) choose(s netops.Settings, in []netops.Uplink, fam family) *chosen {
	s.Family = fam
	choices, at := netops.ChooseAt(s, in)
	c := &chosen{fam: fam, in: in, choices: choices, used: make([]bool, len(in)), inDefault: make([]bool, len(in))}
	for k, members := range at {
		for _, i := range members {
			c.used[i] = true
			if k == 0 {
				c.inDefault[i] = true
			}
		}
	}
	return c
}

// flushLeavers deletes the conntrack entries translated to the address of
// every uplink that left the balance since the last reconcile. It runs
// after the routing change, so that the next packet of such a connection
// gets a new entry on its new path.
func (d *Daemon) flushLeavers(c *chosen) {
	fam := c.fam
	nat := &d.natAddrs
	if fam == ipv6 {
		nat = &d.natAddrs6
	}
	if *nat != nil {
		// Nobody left when every uplink in use has the address it had:
		// the common reconcile, checked without building anything.
		same, n := true, 0
		for i := range c.in {
			if u := &c.in[i]; c.used[i] && u.Addr.IsValid() {
				n++
				if a, ok := (*nat)[u.Name]; !ok || a != u.Addr.Addr() {
					same = false
					break
				}
			}
		}
		if same && n == len(*nat) {
			return
		}
	}
	now := make(map[string]netip.Addr)
	for i := range c.in {
		if u := &c.in[i]; c.used[i] && u.Addr.IsValid() {
			now[u.Name] = u.Addr.Addr()
		}
	}
	prev := *nat
	*nat = now
	// The setting in force now: a reload to flush_conntrack = false stops
	// the flushes at once.
	if d.ct == nil || !d.cfg.Routing.FlushConntrack {
		return
	}
	for name, addr := range left(prev, now) {
		start := time.Now()
		n, err := d.ct.FlushNAT(addr)
		if err != nil {
			d.log.Warn("flushing conntrack entries", "uplink", name, "address", addr, "deleted", n, "err", err, "family", fam.String())
			continue
		}
		d.log.Info("conntrack entries flushed", "uplink", name, "address", addr, "deleted", n,
			"took", time.Since(start).Round(time.Microsecond), "family", fam.String())
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
func (d *Daemon) recordBalance(c *chosen) {
	ents := d.familyEntities(c.fam)
	if len(ents) == 0 {
		return
	}
	total := 0
	for _, m := range c.choices[0].Members {
		total += m.Weight
	}
	split := d.bucketShares(c.fam)
	for i, u := range ents {
		inBal := c.used[i]
		share := 0.0
		switch {
		case split != nil:
			share = split[u.cfg.Name]
		case c.inDefault[i]:
			share = float64(u.cfg.Weight) / float64(total)
		}
		if inBal != u.inBal || share != u.share {
			u.inBal, u.share = inBal, share
			d.changed = true
		}
		d.metrics.Balance(u.cfg.Name, c.fam.String(), inBal, share)
	}
}
