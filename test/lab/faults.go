package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// RouterLink returns the router's current interface towards isp (ISP1 or
// ISP2): "eth1" or "eth2" unless RenameRouterLink changed it.
func (l *Lab) RouterLink(isp string) (string, error) {
	u, err := l.uplink(isp)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return u.link, nil
}

// RouterAddr returns the router's current address towards isp.
func (l *Lab) RouterAddr(isp string) (netip.Prefix, error) {
	u, err := l.uplink(isp)
	if err != nil {
		return netip.Prefix{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return u.addr, nil
}

func (l *Lab) uplink(name string) (*uplink, error) {
	if _, err := l.lookupISP(name); err != nil {
		return nil, err
	}
	return l.uplinks[name], nil // the map itself is never modified after New
}

// CarrierDown sets the ISP's access interface down, as if the ISP's end of
// the cable were pulled: the router's link stays administratively up but
// loses its carrier (LOWER_UP).
func (l *Lab) CarrierDown(ctx context.Context, isp string) error {
	return l.setISPLink(ctx, isp, "down")
}

// CarrierUp undoes CarrierDown. In a dual-stack lab the ISP's link-local
// gateway address and its route to the delegated prefix, which the kernel
// removed with the link, come back too.
func (l *Lab) CarrierUp(ctx context.Context, isp string) error {
	if err := l.setISPLink(ctx, isp, "up"); err != nil {
		return err
	}
	return l.restoreISPSide6(ctx, isp)
}

func (l *Lab) setISPLink(ctx context.Context, isp, state string) error {
	if _, err := l.lookupISP(isp); err != nil {
		return err
	}
	_, err := l.IP(ctx, isp, "link", "set", ispDownLink, state)
	return err
}

// Blackhole makes isp drop everything to the IPv4 Internet targets
// (BlackholePrefix) while its gateway keeps answering ARP: an upstream
// failure that only probes beyond the gateway can see. It is idempotent.
// IPv6 is left alone: see BlackholeFamilies.
func (l *Lab) Blackhole(ctx context.Context, isp string, on bool) error {
	return l.BlackholeFamilies(ctx, isp, true, false, on)
}

// Blackhole6 is Blackhole for IPv6 only: isp drops everything to the IPv6
// targets (BlackholePrefix6) while its gateway keeps answering neighbour
// solicitations and its IPv4 keeps working.
func (l *Lab) Blackhole6(ctx context.Context, isp string, on bool) error {
	return l.BlackholeFamilies(ctx, isp, false, true, on)
}

// BlackholeFamilies sets (on) or clears the blackhole of isp for IPv4, IPv6
// or both. It is idempotent.
func (l *Lab) BlackholeFamilies(ctx context.Context, isp string, v4, v6, on bool) error {
	if _, err := l.lookupISP(isp); err != nil {
		return err
	}
	var prefixes []string
	if v4 {
		prefixes = append(prefixes, BlackholePrefix.String())
	}
	if v6 {
		prefixes = append(prefixes, BlackholePrefix6.String())
	}
	for _, p := range prefixes {
		if on {
			if _, err := l.IP(ctx, isp, "route", "replace", "blackhole", p); err != nil {
				return err
			}
			continue
		}
		_, err := l.IP(ctx, isp, "route", "del", "blackhole", p)
		if err != nil && !strings.Contains(err.Error(), "No such process") { // else already off
			return err
		}
	}
	return nil
}

// DeleteRouterLink deletes the router's interface towards isp (and with it
// the ISP's end of the pair), like unplugging a USB modem. The kernel
// removes every route through it, including the admin's default for isp1.
func (l *Lab) DeleteRouterLink(ctx context.Context, isp string) error {
	link, err := l.RouterLink(isp)
	if err != nil {
		return err
	}
	_, err = l.IP(ctx, Router, "link", "del", link)
	return err
}

// RecreateRouterLink re-creates the pair that DeleteRouterLink removed,
// with its original name ("eth1"/"eth2"), the router's current address for
// isp and the ISP's gateway address. The new interface has a new ifindex.
// For isp1 the admin's default route is restored too, as the router's
// network configuration would do when the interface comes back.
func (l *Lab) RecreateRouterLink(ctx context.Context, isp string) error {
	i, err := l.lookupISP(isp)
	if err != nil {
		return err
	}
	addr, err := l.RouterAddr(isp)
	if err != nil {
		return err
	}
	if _, err := l.IP(ctx, Router, l.vethArgs(i.routerLink, ispDownLink, isp)...); err != nil {
		return err
	}
	l.mu.Lock()
	l.uplinks[isp].link = i.routerLink
	l.mu.Unlock()
	routerKV, ispKV := linkSysctls(Router, []string{i.routerLink}), linkSysctls(isp, []string{ispDownLink})
	if l.opts.IPv6 {
		routerKV = append(routerKV, linkSysctls6(Router, []string{i.routerLink})...)
		ispKV = append(ispKV, linkSysctls6(isp, []string{ispDownLink})...)
	}
	if err := l.sysctl(ctx, Router, routerKV...); err != nil {
		return err
	}
	if err := l.sysctl(ctx, isp, ispKV...); err != nil {
		return err
	}
	err = l.runSteps(ctx, []step{
		{isp, []string{"addr", "add", i.gateway.String(), "dev", ispDownLink}},
		{isp, []string{"link", "set", ispDownLink, "up"}},
		// The ISP's route back to the LAN went away with its interface.
		{isp, []string{"route", "replace", LANPrefix.String(), "via", addr.Addr().String()}},
		{Router, []string{"addr", "add", addr.String(), "dev", i.routerLink}},
		{Router, []string{"link", "set", i.routerLink, "up"}},
	})
	if err != nil {
		return err
	}
	if err := l.restoreISPSide6(ctx, isp); err != nil {
		return err
	}
	if err := l.restoreRouterSide6(ctx, isp, i.routerLink); err != nil {
		return err
	}
	return l.restoreAdminDefault(ctx, isp)
}

// RenameRouterLink renames a router interface (down, rename, up: the
// kernel refuses to rename a running interface). Going down removes the
// routes through it; for isp1's link the admin's default is restored on the
// new name.
func (l *Lab) RenameRouterLink(ctx context.Context, from, to string) error {
	err := l.runSteps(ctx, []step{
		{Router, []string{"link", "set", "dev", from, "down"}},
		{Router, []string{"link", "set", "dev", from, "name", to}},
		{Router, []string{"link", "set", "dev", to, "up"}},
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	var renamed string
	for name, u := range l.uplinks {
		if u.link == from {
			u.link, renamed = to, name
		}
	}
	l.mu.Unlock()
	if renamed == "" {
		return nil
	}
	// Per-interface sysctls follow the interface to its new name; going
	// down removed its IPv6 link-local address.
	if err := l.restoreRouterSide6(ctx, renamed, to); err != nil {
		return err
	}
	return l.restoreAdminDefault(ctx, renamed)
}

// Readdress changes the router's address towards isp to newRouterAddr, as
// a new DHCP lease would: the new address is added before the old one is
// deleted, so the interface is never without an address (the router
// promotes secondaries) and routes through it that do not use the old
// address as source survive. The ISP keeps its gateway address, so
// newRouterAddr belongs in the same subnet (203.0.113.3/24 for isp2).
func (l *Lab) Readdress(ctx context.Context, isp string, newRouterAddr netip.Prefix) error {
	u, err := l.uplink(isp)
	if err != nil {
		return err
	}
	l.mu.Lock()
	link, old := u.link, u.addr
	l.mu.Unlock()
	if newRouterAddr == old {
		return nil
	}
	if !newRouterAddr.Addr().Is4() {
		return fmt.Errorf("lab: Readdress %s: %s is not IPv4", isp, newRouterAddr)
	}
	err = l.runSteps(ctx, []step{
		{Router, []string{"addr", "add", newRouterAddr.String(), "dev", link}},
		{Router, []string{"addr", "del", old.String(), "dev", link}},
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	u.addr = newRouterAddr
	l.mu.Unlock()
	// The ISP routes the LAN back to the router's address.
	_, err = l.IP(ctx, isp, "route", "replace", LANPrefix.String(), "via", newRouterAddr.Addr().String())
	return err
}

// restoreAdminDefault puts the admin's default route back on isp1's link.
func (l *Lab) restoreAdminDefault(ctx context.Context, isp string) error {
	if isp != ISP1 {
		return nil
	}
	link, err := l.RouterLink(isp)
	if err != nil {
		return err
	}
	_, err = l.IP(ctx, Router, adminDefault(link)...)
	return err
}
