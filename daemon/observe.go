package daemon

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
)

// observe applies a snapshot of links and addresses (and the default
// routes the loop keeps) to every uplink and reports whether anything that
// matters for routing changed.
func (d *Daemon) observe(snap events.Snapshot) bool {
	d.snap = snap
	now := time.Now()
	changed := false
	// By name and by link: hundreds of uplinks must not search every link
	// and address each.
	links := make(map[string]*events.Link, len(snap.Links))
	for i := range snap.Links {
		if _, dup := links[snap.Links[i].Name]; !dup {
			links[snap.Links[i].Name] = &snap.Links[i]
		}
	}
	addrs := make(map[int][]events.Addr, len(snap.Links))
	for _, a := range snap.Addrs {
		addrs[a.Index] = append(addrs[a.Index], a)
	}
	for _, u := range d.entities() {
		link := links[u.cfg.Interface]
		wasUsable, _ := u.usable()
		oldAddr, oldGw := u.addr, u.gw
		var addr netip.Prefix
		var learned netip.Addr
		if link != nil {
			learned = d.learned(link.Index, u.fam)
			gw := learned
			if !gw.IsValid() {
				gw = u.gw
			}
			if u.gwMode() == config.GatewayStatic {
				gw = u.gwStatic()
			}
			if u.fam == ipv6 {
				addr = u.select6(snap.Addrs, link.Index) // source6 may be on another link
				d.checkAcceptRA(u)
			} else {
				addr = u.selectAddr(addrs[link.Index], link.Index, gw)
			}
		}
		if !sameLink(u.link, link) || addr != u.addr {
			changed = true
		}
		u.link, u.addr = cloneLink(link), addr
		gw, hold := u.nextGateway(learned, addr, now)
		if hold != u.gwHold && !hold.IsZero() && u.gwHold.IsZero() {
			d.log.Info("default route gone; keeping its gateway for gateway_hold", "uplink", u.label(),
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
			d.log.Info("uplink renumbered", "uplink", u.label(), "change", what)
			d.renumbered(u)
			tr, ok = u.m.Renumbered(what, now)
		case wasUsable && oldGw != gw:
			// Same address: its connections and probes' verdict hold.
			what := renumbering(u.cfg.Interface, oldAddr, addr, oldGw, gw)
			d.log.Info("uplink gateway changed", "uplink", u.label(), "change", what)
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
	case u.fam == ipv6 && !u.addr.IsValid():
		return false, u.noSource6()
	case !u.addr.IsValid() && u.cfg.Address.IsValid():
		return false, fmt.Sprintf("%s has no IPv4 address in %s", ifn, u.cfg.Address)
	case !u.addr.IsValid():
		return false, fmt.Sprintf("%s has no IPv4 address", ifn)
	case u.pointToPoint():
		return true, fmt.Sprintf("%s up with carrier and address %s, point-to-point", ifn, u.addr)
	case u.fam == ipv6 && u.gwMode() == config.GatewayAuto && !u.gw.IsValid():
		return false, fmt.Sprintf("no IPv6 gateway known: no router advertisement's default route through %s (gateway6 = \"auto\")", ifn)
	case u.gwMode() == config.GatewayAuto && !u.gw.IsValid():
		return false, fmt.Sprintf("no gateway known: no default route through %s in any table (gateway = \"auto\")", ifn)
	case u.gwMode() == config.GatewayAuto:
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
