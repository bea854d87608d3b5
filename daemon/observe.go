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
// routes the loop keeps) to the uplinks only touches (nil: every one) and
// reports whether anything that matters for routing changed.
func (d *Daemon) observe(snap events.Snapshot, only *touchedLinks) bool {
	d.snap = snap
	now := time.Now()
	changed := false
	idx := indexSnapshot(snap, only == nil)
	for _, u := range d.uplinks {
		if only.has(u) && !u.cfg.HasIPv4() {
			// The anchor of an uplink with IPv6 only is no entity, but
			// pinning (marks by interface, src_valid_mark) and the
			// event filter read every uplink's link.
			u.link = keepLink(u.link, idx.link(u.cfg.Interface))
		}
	}
	for _, u := range d.entities() {
		if !only.has(u) {
			continue
		}
		link := idx.link(u.cfg.Interface)
		wasUsable, _ := u.usability()
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
				addr = u.selectAddr(idx.addrs(link.Index), link.Index, gw)
			}
		}
		if !sameLink(u.link, link) || addr != u.addr {
			changed = true
		}
		u.link, u.addr = keepLink(u.link, link), addr
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
	ok, c := u.usability()
	// The reason is formatted again only when what it says changed: the
	// loop asks for every uplink's at every dump, hundreds at each event.
	key := reasonKey{code: c, ifn: u.cfg.Interface, addr: u.addr, gw: u.gw, cfgAddr: u.cfg.Address}
	if c != noSource6 && u.reason.text != "" && u.reason.key == key {
		return ok, u.reason.text
	}
	text := u.reasonText(c)
	u.reason.key, u.reason.text = key, text
	if c == noSource6 {
		u.reason.text = "" // it depends on more than the key holds
	}
	return ok, text
}

// reasonCode is why an uplink's link is usable or not (see usable).
type reasonCode int

const (
	noInterface reasonCode = iota
	adminDown
	noCarrier
	noSource6
	noAddrInConfigured
	noAddr
	usablePointToPoint
	noGateway6
	noGateway
	usableAutoGateway
	usableLink
)

// reasonKey is what the text of a reason is made of.
type reasonKey struct {
	code          reasonCode
	ifn           string
	addr, cfgAddr netip.Prefix
	gw            netip.Addr
}

// usability is usable without the text.
func (u *uplink) usability() (bool, reasonCode) {
	switch {
	case u.link == nil:
		return false, noInterface
	case !u.link.AdminUp:
		return false, adminDown
	case !u.link.Carrier:
		return false, noCarrier
	case u.fam == ipv6 && !u.addr.IsValid():
		return false, noSource6
	case !u.addr.IsValid() && u.cfg.Address.IsValid():
		return false, noAddrInConfigured
	case !u.addr.IsValid():
		return false, noAddr
	case u.pointToPoint():
		return true, usablePointToPoint
	case u.fam == ipv6 && u.gwMode() == config.GatewayAuto && !u.gw.IsValid():
		return false, noGateway6
	case u.gwMode() == config.GatewayAuto && !u.gw.IsValid():
		return false, noGateway
	case u.gwMode() == config.GatewayAuto:
		return true, usableAutoGateway
	}
	return true, usableLink
}

// reasonText says what c means for u.
func (u *uplink) reasonText(c reasonCode) string {
	ifn := u.cfg.Interface
	switch c {
	case noInterface:
		return fmt.Sprintf("interface %s does not exist", ifn)
	case adminDown:
		return fmt.Sprintf("%s is administratively down", ifn)
	case noCarrier:
		return fmt.Sprintf("no carrier on %s", ifn)
	case noSource6:
		return u.noSource6()
	case noAddrInConfigured:
		return fmt.Sprintf("%s has no IPv4 address in %s", ifn, u.cfg.Address)
	case noAddr:
		return fmt.Sprintf("%s has no IPv4 address", ifn)
	case usablePointToPoint:
		return fmt.Sprintf("%s up with carrier and address %s, point-to-point", ifn, u.addr)
	case noGateway6:
		return fmt.Sprintf("no IPv6 gateway known: no router advertisement's default route through %s (gateway6 = \"auto\")", ifn)
	case noGateway:
		return fmt.Sprintf("no gateway known: no default route through %s in any table (gateway = \"auto\")", ifn)
	case usableAutoGateway:
		return fmt.Sprintf("%s up with carrier, address %s and gateway %s", ifn, u.addr, u.gw)
	}
	return fmt.Sprintf("%s up with carrier and address %s", ifn, u.addr)
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

// keepLink returns old when it is the same as l, else a copy of l: the
// uplink's link must not alias the snapshot, and hundreds of uplinks
// need not be copied at every event.
func keepLink(old, l *events.Link) *events.Link {
	switch {
	case l == nil:
		return nil
	case sameLink(old, l):
		return old
	}
	c := *l
	return &c
}

// snapIndex finds links by name and addresses by link in a snapshot: by
// maps when every uplink is evaluated (hundreds of uplinks must not search
// every link and address each), by a scan when a few are.
type snapIndex struct {
	snap    *events.Snapshot
	byName  map[string]*events.Link
	byIndex map[int][]events.Addr
}

func indexSnapshot(snap events.Snapshot, maps bool) snapIndex {
	x := snapIndex{snap: &snap}
	if !maps {
		return x
	}
	x.byName = make(map[string]*events.Link, len(snap.Links))
	for i := range snap.Links {
		if _, dup := x.byName[snap.Links[i].Name]; !dup {
			x.byName[snap.Links[i].Name] = &snap.Links[i]
		}
	}
	x.byIndex = make(map[int][]events.Addr, len(snap.Links))
	for _, a := range snap.Addrs {
		x.byIndex[a.Index] = append(x.byIndex[a.Index], a)
	}
	return x
}

// link returns the first link named name, nil when there is none.
func (x snapIndex) link(name string) *events.Link {
	if x.byName != nil {
		return x.byName[name]
	}
	for i := range x.snap.Links {
		if x.snap.Links[i].Name == name {
			return &x.snap.Links[i]
		}
	}
	return nil
}

// addrs returns the addresses on the link index, in their order.
func (x snapIndex) addrs(index int) []events.Addr {
	if x.byIndex != nil {
		return x.byIndex[index]
	}
	var out []events.Addr
	for _, a := range x.snap.Addrs {
		if a.Index == index {
			out = append(out, a)
		}
	}
	return out
}
