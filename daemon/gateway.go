package daemon

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/netops"
)

// Gateways learned from the kernel (gateway = "auto") and point-to-point
// links (gateway = "none", or an interface flagged POINTOPOINT).
//
// The loop keeps the default routes through the links of "auto" uplinks,
// in every table but uplinkd's own, whoever installed them: read at start,
// after a resync and after a link or address change of such a link (the
// kernel removes IPv4 routes without a notification when their address or
// link goes), and kept current by route events in between. An uplink's
// gateway is that of the route with the lowest metric (then main first,
// then the lowest table). uplinkd never changes those routes.

// autoUplinks says whether any uplink learns its gateway, of either
// family.
func (d *Daemon) autoUplinks() bool {
	return slices.ContainsFunc(d.uplinks, learns)
}

// learns says whether u learns a gateway of either family.
func learns(u *uplink) bool {
	return u.cfg.GatewayMode == config.GatewayAuto || u.cfg.IPv6 && u.cfg.Gateway6Mode == config.GatewayAuto
}

// readRoutes lists the default routes through the links (as snap has
// them) of the uplinks that learn their gateway.
func (d *Daemon) readRoutes(ctx context.Context, snap events.Snapshot) error {
	next := make(map[int][]events.DefaultRoute)
	for _, u := range d.uplinks {
		if !learns(u) {
			continue
		}
		i := slices.IndexFunc(snap.Links, func(l events.Link) bool { return l.Name == u.cfg.Interface })
		if i < 0 {
			continue
		}
		idx := snap.Links[i].Index
		if _, done := next[idx]; done {
			continue
		}
		rs, err := d.kern.State.DefaultRoutes(ctx, idx)
		if err != nil {
			return fmt.Errorf("read the default routes through %s: %w", u.cfg.Interface, err)
		}
		next[idx] = rs
	}
	d.defaults = next
	return nil
}

// routeEvent applies a foreign default route's event to the routes the
// loop keeps, and says whether an uplink's gateway may have changed.
func (d *Daemon) routeEvent(e events.RouteEvent) bool {
	r := e.Route
	same := func(o events.DefaultRoute) bool {
		return o.Family == r.Family && o.Table == r.Table && o.TOS == r.TOS && o.Metric == r.Metric
	}
	changed := false
	if e.Replace && !e.Deleted {
		// The replaced route, the first with the same key on any link,
		// is not reported deleted.
		for idx, others := range d.defaults {
			if i := slices.IndexFunc(others, same); i >= 0 {
				d.defaults[idx] = slices.Delete(others, i, i+1)
				changed = true
				break
			}
		}
	}
	rs, ok := d.defaults[r.Index]
	if !ok || r.Index == 0 {
		return changed // not through the link of an "auto" uplink
	}
	switch {
	case e.Deleted:
		// The exact route if listed, else the first with its key.
		i := slices.Index(rs, r)
		if i < 0 {
			i = slices.IndexFunc(rs, same)
		}
		if i < 0 {
			return false
		}
		rs = slices.Delete(rs, i, i+1)
	default:
		if slices.Contains(rs, r) {
			return changed
		}
		rs = append(rs, r)
	}
	d.defaults[r.Index] = rs
	return true
}

// learned returns the gateway of family fam of the preferred foreign
// default route through link index, or an invalid address when there is
// none. IPv6's are those the kernel installs from router advertisements
// (proto ra), or any other foreign one.
func (d *Daemon) learned(index int, fam family) netip.Addr {
	var best *events.DefaultRoute
	for i, r := range d.defaults[index] {
		if !r.Gateway.IsValid() || netops.FamilyOf(r.Gateway) != fam || d.ours(r.Table, r.Protocol) {
			continue
		}
		if best == nil || better(r, *best) {
			best = &d.defaults[index][i]
		}
	}
	if best == nil {
		return netip.Addr{}
	}
	return best.Gateway
}

// better orders default routes as the kernel would prefer them within a
// table (lowest metric), main before other tables, then deterministically.
func better(a, b events.DefaultRoute) bool {
	main := func(r events.DefaultRoute) int {
		if r.Table == 254 {
			return 0
		}
		return 1
	}
	return cmp.Or(cmp.Compare(a.Metric, b.Metric), cmp.Compare(main(a), main(b)), cmp.Compare(a.Table, b.Table),
		a.Gateway.Compare(b.Gateway)) < 0
}

// pointToPoint says whether u's routes are `dev IF`, without a gateway.
func (u *uplink) pointToPoint() bool {
	return u.gwMode() == config.GatewayNone || (u.link != nil && u.link.PointToPoint)
}

// nexthop is u's gateway in routes: the configured one (also before the
// first observation), the learned one, or none on a point-to-point link.
func (u *uplink) nexthop() netip.Addr {
	switch {
	case u.pointToPoint():
		return netip.Addr{}
	case u.gwMode() == config.GatewayStatic:
		return u.gwStatic()
	}
	return u.gw
}

// nextGateway returns u's gateway given its link and the learned one, and
// until when a learned gateway whose route went is still held. A learned
// gateway outlives its route by gateway_hold while carrier and address
// remain: some clients delete the route and add it back on every renewal.
func (u *uplink) nextGateway(learned netip.Addr, addr netip.Prefix, now time.Time) (netip.Addr, time.Time) {
	switch {
	case u.pointToPoint():
		return netip.Addr{}, time.Time{}
	case u.gwMode() == config.GatewayStatic:
		return u.gwStatic(), time.Time{}
	case learned.IsValid():
		return learned, time.Time{}
	case !u.gw.IsValid() || u.cfg.GatewayHold <= 0 || u.link == nil || !u.link.Carrier || !addr.IsValid():
		return netip.Addr{}, time.Time{}
	case u.gwHold.IsZero():
		return u.gw, now.Add(u.cfg.GatewayHold)
	case now.Before(u.gwHold):
		return u.gw, u.gwHold
	}
	return netip.Addr{}, time.Time{}
}

// selectAddr picks u's address among those on link index: within the
// configured address or prefix, if any, then as pickAddr does.
func (u *uplink) selectAddr(addrs []events.Addr, index int, gw netip.Addr) netip.Prefix {
	if sel := u.cfg.Address; sel.IsValid() {
		addrs = slices.DeleteFunc(slices.Clone(addrs), func(a events.Addr) bool { return !sel.Contains(a.Prefix.Addr()) })
	}
	return pickAddr(addrs, index, gw)
}

// renumbering describes what changed between u's old and new address and
// gateway while its link stayed usable; "" when nothing did.
func renumbering(ifn string, oldAddr, newAddr netip.Prefix, oldGw, newGw netip.Addr) string {
	var what []string
	if oldAddr.Addr() != newAddr.Addr() {
		what = append(what, fmt.Sprintf("address on %s changed from %s to %s", ifn, oldAddr.Addr(), newAddr.Addr()))
	}
	if oldGw != newGw {
		what = append(what, fmt.Sprintf("gateway changed from %s to %s", gwText(oldGw), gwText(newGw)))
	}
	return joinAnd(what)
}

func gwText(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return s[0] + ", " + s[1]
}

// gatewayStatus is what status shows as u's gateway.
func (u *uplink) gatewayStatus() string {
	switch {
	case u.pointToPoint():
		return "none (point-to-point)"
	case u.gwMode() == config.GatewayAuto && !u.gw.IsValid():
		return "auto (none known)"
	case u.gwMode() == config.GatewayAuto && !u.gwHold.IsZero():
		return u.gw.String() + " (auto, held: route gone)"
	case u.gwMode() == config.GatewayAuto:
		return u.gw.String() + " (auto)"
	}
	return u.gwStatic().String()
}

// renumbered marks u's connections for a flush by mark after the next
// reconcile: they were translated to its old address. A probed uplink
// leaves its pin anyway (it goes back to probing); one in carrier-only
// mode keeps it, and is flushed all the same. Without pinning,
// flushLeavers flushes the old address.
func (d *Daemon) renumbered(u *uplink) {
	if d.renum == nil {
		d.renum = make(map[string]bool)
	}
	d.renum[u.label()] = true
}

// gatewayKey and addressKey show an uplink's gateway and address keys as
// the file has them, for the description of a reload.
// An uplink with IPv6 only has "(none)".
func gatewayKey(u config.Uplink) string {
	if u.IPv6Only {
		return "(none)"
	}
	if u.GatewayMode == config.GatewayStatic {
		return u.Gateway.String()
	}
	return u.GatewayMode.String()
}

func addressKey(u config.Uplink) string {
	if !u.Address.IsValid() {
		return "(any)"
	}
	return u.Address.String()
}
