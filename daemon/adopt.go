package daemon

import (
	"slices"

	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
)

// Adoption makes a restart invisible on the wire. At start the daemon
// reads what an earlier run left in the kernel (netops.Held): the balance
// route's next hops, the fwmark rules of pinned connections and the
// nexthop objects. An uplink the balance route holds stays in the balance,
// and one with a fwmark rule keeps it, until its probes give their first
// verdict: it becomes active or degraded (then the usual rules apply), or
// down (carrier loss, link gone: at once), or down_after rounds in a row
// fail. So nothing changes in the kernel while the new run finds out what
// the old one knew, and a balance that still matches is never torn down.

// hold is what an uplink keeps of the earlier run until its first verdict.
type hold struct {
	balance bool // in the balance route
	pinned  bool // its fwmark rule
	fails   int  // failed probe rounds in a row while held
}

func (h hold) any() bool { return h.balance || h.pinned }

// readHeld reads what the kernel holds, once, before the first reconcile:
// IPv4's, and IPv6's when an uplink has IPv6.
func (d *Daemon) readHeld() {
	r := d.cfg.Routing
	h, err := d.rec.HoldsFor(netops.V4, r.BalanceTable, r.RulePriority)
	if err != nil {
		d.log.Warn("cannot read the routing state of an earlier run; starting from scratch", "err", err)
		return
	}
	d.held = &h
	if len(d.familyEntities(ipv6)) == 0 {
		return
	}
	h6, err := d.rec.HoldsFor(netops.V6, r.BalanceTable, r.RulePriority)
	if err != nil {
		d.log.Warn("cannot read the IPv6 routing state of an earlier run; starting IPv6 from scratch", "err", err)
		return
	}
	d.held6 = &h6
}

// adopt gives each uplink what the earlier run left, once its link is
// known (after the first dump), and keeps the nexthop slots the kernel
// holds.
func (d *Daemon) adopt() {
	h, h6 := d.held, d.held6
	d.held, d.held6 = nil, nil
	if h == nil {
		return
	}
	d.slots = d.adoptFamily(h, ipv4)
	if h6 != nil {
		// An uplink's slot is the same in both families: IPv6's objects
		// fill in the uplinks IPv4's had none for.
		for name, s := range d.adoptFamily(h6, ipv6) {
			if _, ok := d.slots[name]; !ok {
				d.slots[name] = s
			}
		}
	}
}

// adoptFamily gives the entities of family fam what h, the earlier run's
// routing of that family, holds for them, and returns the nexthop slots
// of its objects. Next hops are matched by (interface, gateway): fe80::1
// on two interfaces is two uplinks.
func (d *Daemon) adoptFamily(h *netops.Held, fam family) map[string]int {
	var ups []netops.Uplink
	for _, u := range d.familyEntities(fam) {
		if u.link == nil {
			continue
		}
		ups = append(ups, netops.Uplink{Name: u.cfg.Name, Gateway: u.gw, Index: u.link.Index})
		// In the balance or in a policy's group: the policies choose
		// their tiers from the uplinks held as they were.
		held := func(n netops.Nexthop) bool { return n.Index == u.link.Index && n.Gateway == u.gw }
		u.hold = hold{
			balance: slices.ContainsFunc(h.Balance, held) || slices.ContainsFunc(h.Policies, held),
			pinned:  slices.Contains(h.Pinned, u.cfg.Table),
		}
		// Only an uplink still waiting for its verdict is held; one in
		// carrier-only mode is already active.
		if u.m.State() != fsm.Probing {
			u.hold = hold{}
		}
		if u.hold.any() {
			d.log.Info("adopted from the kernel until the first probe verdict", "uplink", u.label(),
				"in_balance", u.hold.balance, "pinned", u.hold.pinned)
		}
	}
	// Uplinks the earlier run pinned count as pinned now: one that is
	// not usable any more (its carrier went while no uplinkd ran) loses
	// its rule in the first reconcile, and its connections are flushed.
	if d.pinOn() {
		pinned := make(map[string]uint32)
		for _, u := range d.familyEntities(fam) {
			if slices.Contains(h.Pinned, u.cfg.Table) {
				pinned[u.cfg.Name] = d.markOf(u.cfg.Name)
			}
		}
		if fam == ipv6 {
			d.pin.pinned6 = pinned
		} else {
			d.pin.pinned = pinned
		}
	}
	r := d.cfg.Routing
	return netops.AdoptSlots(h.Nexthops, netops.NexthopIDsFor(r.NexthopIDBase, fam), r.RouteProtocol, ups)
}

// release ends an uplink's hold.
func (u *uplink) release() { u.hold = hold{} }

// heldRound counts a probe round of a held uplink: down_after failed
// rounds in a row end the hold, as they would take an active uplink out.
func (d *Daemon) heldRound(u *uplink, good bool) {
	if !u.hold.any() {
		return
	}
	if good {
		u.hold.fails = 0
		return
	}
	u.hold.fails++
	if u.hold.fails >= d.cfg.Probe.DownAfter {
		d.log.Info("adopted uplink failed its probes, releasing it", "uplink", u.label(), "failed_rounds", u.hold.fails)
		u.release()
		d.needReconcile = true
	}
}

// slotOf returns the uplink's nexthop slot, assigning slots (stable by
// name, see netops.Slots) to uplinks that have none yet.
func (d *Daemon) slotOf(name string) int {
	if s, ok := d.slots[name]; ok {
		return s
	}
	names := make([]string, len(d.uplinks))
	for i, u := range d.uplinks {
		names[i] = u.cfg.Name
	}
	slots, err := netops.Slots(names, d.slots)
	if err != nil {
		// config allows no more uplinks than the layout has room for.
		d.log.Error("nexthop slots", "err", err)
		return 0
	}
	d.slots = slots
	return slots[name]
}

// Kept says whether Run returned on Options.Keep (SIGUSR2), leaving the
// routing in place.
func (d *Daemon) Kept() bool { return d.keep }
