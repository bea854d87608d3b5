package daemon

import (
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
)

// Families. Every configured uplink is an IPv4 entity (an *uplink in
// Daemon.uplinks); one with gateway6 has an IPv6 entity too (its v6), with
// its own state machine, address, gateway, prober, history, hooks, status
// entry and metrics. Both observe the same link, so carrier, admin and
// link events reach both on the event itself; each family's probes and
// neighbour failures reach its own entity only. The connection mark is the
// uplink's (shared); the routes, rules and the balance are per family.
//
// An uplink with IPv6 only (gateway6 without gateway) keeps its IPv4
// entity in Daemon.uplinks as the anchor of its IPv6 one, of its mark, slot
// and pinning, but that entity is no entity of the loop: it is left out of
// entities() and familyEntities(ipv4), so it has no state machine that
// runs, no prober, routes, rules, status entry, metrics or hooks.

// family is an entity's address family; the zero value means IPv4.
type family = netops.Family

// The families.
const (
	ipv4 = netops.V4
	ipv6 = netops.V6
)

// newUplink6 is the IPv6 entity of the uplink configured as c.
func (d *Daemon) newUplink6(c config.Uplink, now time.Time) *uplink {
	u := &uplink{cfg: c, fam: ipv6, m: fsm.New(c.Name, d.fsmParams6(c), now)}
	d.metrics.State(c.Name, ipv6.String(), string(fsm.Down))
	d.metrics.Balance(c.Name, ipv6.String(), false, 0)
	return u
}

// fsmParams6 are the state machine's parameters of u's IPv6 entity: those
// of IPv4, probed when it has IPv6 targets.
func (d *Daemon) fsmParams6(u config.Uplink) fsm.Params {
	p := d.fsmParams(u)
	p.Probed = len(d.cfg.Targets6For(u)) > 0
	return p
}

// params are the state machine's parameters of entity u.
func (d *Daemon) params(u *uplink) fsm.Params {
	if u.fam == ipv6 {
		return d.fsmParams6(u.cfg)
	}
	return d.fsmParams(u.cfg)
}

// syncFamilies gives each IPv4 entity the IPv6 entity its configuration
// asks for (made, kept or dropped) and lists every entity in d.all: each
// IPv4 one followed by its IPv6 one.
func (d *Daemon) syncFamilies(now time.Time) {
	d.all = d.all[:0]
	d.byIface = make(map[string][]*uplink, len(d.uplinks))
	d.sourceAnywhere = nil
	for _, u := range d.uplinks {
		d.byIface[u.cfg.Interface] = append(d.byIface[u.cfg.Interface], u)
		switch {
		case u.cfg.IPv6 && u.v6 == nil:
			u.v6 = d.newUplink6(u.cfg, now)
		case !u.cfg.IPv6 && u.v6 != nil:
			u.v6.stopProber()
			d.metrics.ForgetFamily(u.cfg.Name, ipv6.String())
			u.v6 = nil
		case u.v6 != nil:
			u.v6.cfg = u.cfg
		}
		if u.cfg.HasIPv4() {
			d.all = append(d.all, u)
		}
		if u.v6 != nil {
			d.all = append(d.all, u.v6)
			if u.cfg.Source6.IsValid() || u.cfg.LANPrefix6.IsValid() {
				d.sourceAnywhere = append(d.sourceAnywhere, u.v6)
			}
		}
	}
}

// entities are every (uplink, family) entity, IPv4 ones first within an
// uplink; an uplink with IPv6 only has its IPv6 one alone.
func (d *Daemon) entities() []*uplink { return d.all }

// primary is the entity that speaks for the uplink in counts of active
// uplinks: its IPv4 one, or its IPv6 one when it has IPv6 only.
func (u *uplink) primary() *uplink {
	if !u.cfg.HasIPv4() && u.v6 != nil {
		return u.v6
	}
	return u
}

// only4 keeps the IPv4 inputs (as inputs makes them, one per uplink) of
// the uplinks that have IPv4, for everything but pinning, which marks
// the connections of every uplink.
func (d *Daemon) only4(all []netops.Uplink) []netops.Uplink {
	if !slices.ContainsFunc(d.uplinks, func(u *uplink) bool { return !u.cfg.HasIPv4() }) {
		return all // the same slice: nobody writes into inputs
	}
	out := make([]netops.Uplink, 0, len(all))
	for i, u := range d.uplinks {
		if u.cfg.HasIPv4() {
			out = append(out, all[i])
		}
	}
	return out
}

// gwMode is where the entity's gateway comes from.
func (u *uplink) gwMode() config.GatewayMode {
	if u.fam == ipv6 {
		return u.cfg.Gateway6Mode
	}
	return u.cfg.GatewayMode
}

// gwStatic is the entity's configured gateway (invalid unless static).
func (u *uplink) gwStatic() netip.Addr {
	if u.fam == ipv6 {
		return u.cfg.Gateway6
	}
	return u.cfg.Gateway
}

// label names the entity in logs: the uplink's name, with "/ipv6" for an
// IPv6 entity, so IPv4-only logs read as before.
func (u *uplink) label() string {
	if u.fam == ipv6 {
		return u.cfg.Name + "/ipv6"
	}
	return u.cfg.Name
}

// activeEntities counts the entities (uplink families) in state active,
// for status; with IPv4 only, active().
func (d *Daemon) activeEntities() int {
	n := 0
	for _, u := range d.entities() {
		if u.m.State() == fsm.Active {
			n++
		}
	}
	return n
}

// familyEntities are the entities of family fam, in configuration order.
func (d *Daemon) familyEntities(fam family) []*uplink {
	var out []*uplink
	if fam != ipv6 {
		for _, u := range d.uplinks {
			if u.cfg.HasIPv4() {
				out = append(out, u)
			}
		}
		return out
	}
	for _, u := range d.uplinks {
		if u.v6 != nil {
			out = append(out, u.v6)
		}
	}
	return out
}

// inputs6 describes the IPv6 entities for netops.Plan of IPv6: the same
// names, tables, slots and marks as IPv4's, with their own address,
// gateway and state, and the delegated LAN prefix.
func (d *Daemon) inputs6() []netops.Uplink {
	var out []netops.Uplink
	for _, u := range d.uplinks {
		if u.v6 == nil {
			continue
		}
		in := d.input(u.v6)
		in.LANPrefix = u.cfg.LANPrefix6
		out = append(out, in)
	}
	return out
}
