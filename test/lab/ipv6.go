package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The IPv6 side of a dual-stack lab (Options.IPv6). Every address is added
// with nodad and DAD is off on every interface, so nothing is ever
// tentative and tests do not wait. keep_addr_on_down keeps global addresses
// across a link going down (CarrierDown, RenameRouterLink); link-local
// addresses are not kept by the kernel, so the fault helpers add them back.
// The ISPs' access links and the router's uplinks generate no link-local
// address of their own (addr_gen_mode 1): fe80::1 on the ISP side and
// fe80::2 on the router side are the only ones, so router advertisements
// come from fe80::1.

// sysctls6 returns the IPv6 settings for namespace ns with the given
// interfaces.
func sysctls6(ns string, links []string) []string {
	s := []string{
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
		"net.ipv6.conf.all.keep_addr_on_down=1",
		"net.ipv6.conf.default.keep_addr_on_down=1",
	}
	switch ns {
	case Router, ISP1, ISP2, ISP3:
		s = append(s, "net.ipv6.conf.all.forwarding=1")
	}
	return append(s, linkSysctls6(ns, links)...)
}

// linkSysctls6 returns the per-interface IPv6 settings. The router accepts
// router advertisements on its uplinks although it forwards (accept_ra 2).
func linkSysctls6(ns string, links []string) []string {
	var s []string
	for _, l := range links {
		s = append(s, "net.ipv6.conf."+l+".accept_dad=0", "net.ipv6.conf."+l+".keep_addr_on_down=1")
		switch {
		case ns == Router && l != RouterLANLink:
			s = append(s, "net.ipv6.conf."+l+".addr_gen_mode=1", "net.ipv6.conf."+l+".accept_ra=2")
		case ns != Router && l == ispDownLink:
			s = append(s, "net.ipv6.conf."+l+".addr_gen_mode=1")
		}
	}
	return s
}

func ll64(a netip.Addr) string { return netip.PrefixFrom(a, 64).String() }

// addrSteps6 adds the IPv6 addresses (links still down).
func (l *Lab) addrSteps6(add func(ns string, args ...string)) {
	for _, i := range l.isps {
		p := l.plan6(i.name)
		add(Router, "addr", "add", ll64(RouterLinkLocal6), "dev", i.routerLink, "nodad")
		if p.routerAddr.IsValid() {
			add(Router, "addr", "add", p.routerAddr.String(), "dev", i.routerLink, "nodad")
		}
		add(Router, "addr", "add", netip.PrefixFrom(p.routerLAN, 64).String(), "dev", RouterLANLink, "nodad")
		add(Host, "addr", "add", netip.PrefixFrom(p.host, 64).String(), "dev", HostLink, "nodad")
		add(i.name, "addr", "add", ll64(Gateway6), "dev", ispDownLink, "nodad")
		if p.ispAddr.IsValid() {
			add(i.name, "addr", "add", p.ispAddr.String(), "dev", ispDownLink, "nodad")
		}
		add(i.name, "addr", "add", p.upAddr.String(), "dev", ispUpLink, "nodad")
		add(Inet, "addr", "add", p.inetAddr.String(), "dev", i.name, "nodad")
	}
	for _, t := range []netip.Addr{Target6_1, Target6_2, Target6_3} {
		add(Inet, "addr", "add", netip.PrefixFrom(t, 128).String(), "dev", "lo", "nodad")
	}
}

// routeSteps6 adds the IPv6 routes (links up): the host's default through
// the router, each ISP's default to the Internet and its delegated prefix
// to the router's link-local address, the Internet's routes back to each
// ISP's prefixes (so unlike IPv4, IPv6 replies come back through the ISP
// whose prefix they are addressed to), and the administrator's default in
// the router's main table (via fe80::1 on isp1's link).
func (l *Lab) routeSteps6(add func(ns string, args ...string)) {
	add(Host, "route", "add", "default", "via", RouterLANAddr6ISP1.String(), "dev", HostLink)
	for _, i := range l.isps {
		p := l.plan6(i.name)
		add(i.name, "route", "add", "default", "via", p.inetAddr.Addr().String(), "dev", ispUpLink)
		add(i.name, ispDelegatedRoute(p)...)
		add(Inet, "route", "add", p.delegated.String(), "via", p.upAddr.Addr().String())
		if p.ispAddr.IsValid() {
			add(Inet, "route", "add", p.ispAddr.Masked().String(), "via", p.upAddr.Addr().String())
		}
	}
	add(Router, adminDefault6(l.isps[0].routerLink)...)
}

// waitReady6 waits until no IPv6 address of the lab is tentative. With
// DAD off and every link operationally up (waitLinksUp, ready.go), none
// should stay so for long: a tentative address ignores neighbour
// solicitations, and the first packets to it would wait a second for a
// retransmitted one.
func (l *Lab) waitReady6(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, ns := range l.namespaces {
		for {
			out, err := l.IP(ctx, ns, "-6", "addr", "show", "tentative")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) == "" {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("lab: IPv6 addresses of %s still tentative: %w\n%s", ns, ctx.Err(), out)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// ispDelegatedRoute routes the ISP's delegated prefix to the router.
func ispDelegatedRoute(p isp6) []string {
	return []string{"route", "replace", p.delegated.String(), "via", RouterLinkLocal6.String(), "dev", ispDownLink}
}

// adminDefault6 is the administrator's own IPv6 default route in the
// router's main table.
func adminDefault6(link string) []string {
	return []string{"route", "replace", "default", "via", Gateway6.String(), "dev", link}
}

// plan6 returns isp's IPv6 plan in this lab.
func (l *Lab) plan6(isp string) isp6 {
	p := plans6[isp]
	if isp == ISP2 && l.opts.PrefixOnlyISP2 {
		p.routerAddr, p.ispAddr = netip.Prefix{}, netip.Prefix{}
	}
	return p
}

// IPv6 reports whether the lab is dual-stack.
func (l *Lab) IPv6() bool { return l.opts.IPv6 }

// RouterAddr6 returns the router's global IPv6 address on isp's access
// link; ok is false when the lab has no IPv6 or isp's link has only its
// link-local address (Options.PrefixOnlyISP2).
func (l *Lab) RouterAddr6(isp string) (netip.Prefix, bool) {
	if !l.opts.IPv6 {
		return netip.Prefix{}, false
	}
	p := l.plan6(isp)
	return p.routerAddr, p.routerAddr.IsValid()
}

// LANPrefix6 returns the prefix isp delegates to the router.
func (l *Lab) LANPrefix6(isp string) (netip.Prefix, error) {
	if _, err := l.lookupISP(isp); err != nil {
		return netip.Prefix{}, err
	}
	return plans6[isp].delegated, nil
}

// HostAddr6 returns the LAN host's address from isp's delegated prefix.
func (l *Lab) HostAddr6(isp string) (netip.Addr, error) {
	if _, err := l.lookupISP(isp); err != nil {
		return netip.Addr{}, err
	}
	return plans6[isp].host, nil
}

// restoreISPSide6 puts back what the kernel removed when the ISP's access
// link went down or was re-created: its link-local gateway address (global
// addresses survive a down, not a re-creation) and its route to the
// delegated prefix.
func (l *Lab) restoreISPSide6(ctx context.Context, isp string) error {
	if !l.opts.IPv6 {
		return nil
	}
	p := l.plan6(isp)
	steps := []step{{isp, []string{"addr", "replace", ll64(Gateway6), "dev", ispDownLink, "nodad"}}}
	if p.ispAddr.IsValid() {
		steps = append(steps, step{isp, []string{"addr", "replace", p.ispAddr.String(), "dev", ispDownLink, "nodad"}})
	}
	steps = append(steps, step{isp, ispDelegatedRoute(p)})
	return l.runSteps(ctx, steps)
}

// restoreRouterSide6 does the same for the router's uplink (now named
// link): its link-local address, its global address and, for isp1, the
// admin's IPv6 default.
func (l *Lab) restoreRouterSide6(ctx context.Context, isp, link string) error {
	if !l.opts.IPv6 {
		return nil
	}
	p := l.plan6(isp)
	steps := []step{{Router, []string{"addr", "replace", ll64(RouterLinkLocal6), "dev", link, "nodad"}}}
	if p.routerAddr.IsValid() {
		steps = append(steps, step{Router, []string{"addr", "replace", p.routerAddr.String(), "dev", link, "nodad"}})
	}
	if isp == ISP1 {
		steps = append(steps, step{Router, adminDefault6(link)})
	}
	return l.runSteps(ctx, steps)
}
