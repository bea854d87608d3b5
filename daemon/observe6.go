package daemon

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
)

// The IPv6 entity's address: its IPv6 source (source6).
//
// source6 = ADDR: that address, wherever it is on the router: on the
// uplink's interface it has the prefix of its on-link subnet; on another
// interface (a LAN address of the delegated prefix) it is a /128, with no
// connected route. auto: the interface's global address that is neither
// temporary, deprecated, tentative nor refused by duplicate address
// detection (the lowest, so the choice is stable); failing that (an ISP
// that delegates a prefix and leaves the WAN link-local only), the lowest
// such address of lan_prefix6 on any interface, as a /128. A tentative
// address is not a source yet: the entity is down until its DAD is done.

// select6 picks the IPv6 source of u (an IPv6 entity) whose link is index.
func (u *uplink) select6(addrs []events.Addr, index int) netip.Prefix {
	if src := u.cfg.Source6; src.IsValid() {
		for _, a := range addrs {
			if a.Prefix.Addr() != src || a.Flags&(events.AddrTentative|events.AddrDADFailed) != 0 {
				continue
			}
			if a.Index == index {
				return a.Prefix
			}
			return netip.PrefixFrom(src, 128)
		}
		return netip.Prefix{}
	}
	var best netip.Prefix
	for _, a := range addrs {
		if a.Index == index && a.Stable() && (!best.IsValid() || a.Prefix.Addr().Less(best.Addr())) {
			best = a.Prefix
		}
	}
	if best.IsValid() || !u.cfg.LANPrefix6.IsValid() {
		return best
	}
	for _, a := range addrs {
		if a.Stable() && u.cfg.LANPrefix6.Contains(a.Prefix.Addr()) && (!best.IsValid() || a.Prefix.Addr().Less(best.Addr())) {
			best = netip.PrefixFrom(a.Prefix.Addr(), 128)
		}
	}
	return best
}

// noSource6 says why an IPv6 entity whose link is up has no source.
func (u *uplink) noSource6() string {
	ifn := u.cfg.Interface
	switch {
	case u.cfg.Source6.IsValid():
		return fmt.Sprintf("source6 %s is not on this router (or its duplicate address detection is not done)", u.cfg.Source6)
	case u.cfg.LANPrefix6.IsValid():
		return fmt.Sprintf("%s has no stable global IPv6 address, and no address of lan_prefix6 %s is on the router", ifn, u.cfg.LANPrefix6)
	}
	return fmt.Sprintf("%s has no stable global IPv6 address (not temporary, deprecated or tentative)", ifn)
}

// checkAcceptRA warns once per uplink learning its IPv6 gateway from
// router advertisements on an interface that ignores them: with
// forwarding on, the kernel accepts RAs only with accept_ra = 2.
func (d *Daemon) checkAcceptRA(u *uplink) {
	if u.raWarned || u.gwMode() != config.GatewayAuto || d.sysctl == nil {
		return
	}
	u.raWarned = true
	conf := "net/ipv6/conf/" + u.cfg.Interface + "/"
	ra, err := d.sysctl(conf + "accept_ra")
	if err != nil {
		u.raWarned = false // the interface may not exist yet
		return
	}
	fwd, err := d.sysctl(conf + "forwarding")
	if err != nil {
		u.raWarned = false
		return
	}
	if ra == "0" || ra != "2" && fwd != "0" {
		d.log.Warn(fmt.Sprintf("gateway6 = \"auto\", but the kernel ignores router advertisements on %s (accept_ra %s, forwarding %s); "+
			"set net.ipv6.conf.%s.accept_ra = 2", u.cfg.Interface, ra, fwd, u.cfg.Interface), "uplink", u.cfg.Name)
	}
}

// readSysctl reads a sysctl of the daemon's network namespace, such as
// "net/ipv6/conf/eth1/accept_ra".
func readSysctl(name string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
