package config

import "net/netip"

// IPv6 keys: [probe] targets6, and [[uplink]] gateway6, source6 and
// lan_prefix6. An uplink has an IPv6 side when gateway6 is set; that side
// has its own address (source6), gateway, health and routes.

// DefaultTargets6 are the IPv6 probe targets when the file has no
// probe.targets6: two anycast resolvers of different operators.
var DefaultTargets6 = []Target{
	{Method: MethodICMP, Addr: netip.MustParseAddr("2606:4700:4700::1111")},
	{Method: MethodICMP, Addr: netip.MustParseAddr("2001:4860:4860::8888")},
}

// Targets6For returns the IPv6 probe targets of u: none when u has no
// IPv6, else those of [probe] targets6. Empty: carrier-only mode.
func (c *Config) Targets6For(u Uplink) []Target {
	if !u.IPv6 {
		return nil
	}
	return c.Probe.Targets6
}

// HasIPv6 says whether some uplink has IPv6 (gateway6).
func (c *Config) HasIPv6() bool {
	for _, u := range c.Uplinks {
		if u.IPv6 {
			return true
		}
	}
	return false
}

// targets6 returns probe.targets6: the defaults when absent, empty (not
// nil) when set to [].
func (v *validator) targets6(path string, o opt[[]string]) []Target {
	if !o.set {
		return append([]Target(nil), DefaultTargets6...)
	}
	ts, _ := v.targetList(path, o, 6)
	if ts == nil {
		ts = []Target{}
	}
	return ts
}

// ipv6Target parses the address of an IPv6 probe target: a unicast
// address beyond the link (no zone, not link-local).
func (v *validator) ipv6Target(path, s string) netip.Addr {
	a, ok := v.ipv6(path, s, "IPv4 targets go in probe.targets")
	switch {
	case !ok:
		return netip.Addr{}
	case a.Zone() != "" || a.IsLinkLocalUnicast():
		v.errorf(path, "%q is link-local: a probe target must be beyond the ISP's router (its link-local address is on the link only)", s)
		return netip.Addr{}
	}
	return a
}

// ipv6 parses a unicast IPv6 address (a zone is left for the caller to
// judge); hint4 says where an IPv4 address belongs.
func (v *validator) ipv6(path, s, hint4 string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		v.errorf(path, "%q is not an IPv6 address; write it as such as 2001:db8::1", s)
		return netip.Addr{}, false
	case a.Is4() || a.Is4In6():
		v.errorf(path, "%q is an IPv4 address, not IPv6; %s", s, hint4)
		return netip.Addr{}, false
	case a.IsUnspecified():
		v.errorf(path, "%v is the unspecified address", a)
		return netip.Addr{}, false
	case a.IsMulticast():
		v.errorf(path, "%v is a multicast address", a)
		return netip.Addr{}, false
	case a.IsLoopback():
		v.errorf(path, "%v is the loopback address", a)
		return netip.Addr{}, false
	}
	return a, true
}

// ipv6Keys validates gateway6, source6 and lan_prefix6 of the uplink at
// path, whose interface is out.Interface.
func (v *validator) ipv6Keys(path string, r *rawUplink, out *Uplink) {
	if r.Gateway6.set {
		out.IPv6 = true
		if s, ok := v.str(path+".gateway6", r.Gateway6, ""); ok {
			out.Gateway6Mode, out.Gateway6 = v.gateway6(path+".gateway6", s, out.Interface)
		}
	}
	if r.Source6.set {
		if s, ok := v.str(path+".source6", r.Source6, ""); ok && s != "auto" {
			out.Source6 = v.source6(path+".source6", s)
		}
	}
	if r.LANPrefix6.set {
		if s, ok := v.str(path+".lan_prefix6", r.LANPrefix6, ""); ok {
			out.LANPrefix6 = v.lanPrefix6(path+".lan_prefix6", s)
		}
	}
	if !r.Gateway6.set {
		for _, k := range []string{"source6", "lan_prefix6"} {
			if k == "source6" && r.Source6.set || k == "lan_prefix6" && r.LANPrefix6.set {
				v.errorf(path+"."+k, `only an uplink with gateway6 has IPv6; add gateway6 = "auto" (router advertisements) or the ISP router's address`)
			}
		}
	}
}

// gateway6 parses gateway6: "auto", or an address, link-local ones with
// or without the zone, which must then be the uplink's interface.
func (v *validator) gateway6(path, s, ifname string) (GatewayMode, netip.Addr) {
	if s == "auto" {
		return GatewayAuto, netip.Addr{}
	}
	if s == "none" {
		v.errorf(path, `"none": leave gateway6 out for an uplink without IPv6; write "auto" or an address`)
		return GatewayStatic, netip.Addr{}
	}
	a, ok := v.ipv6(path, s, "the IPv4 gateway is gateway")
	if !ok {
		return GatewayStatic, netip.Addr{}
	}
	if zone := a.Zone(); zone != "" {
		switch {
		case !a.IsLinkLocalUnicast():
			v.errorf(path, "%q: only a link-local address has a zone", s)
			return GatewayStatic, netip.Addr{}
		case ifname != "" && zone != ifname:
			v.errorf(path, "%q: the zone %q is not the uplink's interface %s; write %s or %s%%%s",
				s, zone, ifname, a.WithZone(""), a.WithZone(""), ifname)
			return GatewayStatic, netip.Addr{}
		}
	}
	return GatewayStatic, a.WithZone("")
}

// source6 parses an explicit source6: a global (or unique local) unicast
// address the router has or will have.
func (v *validator) source6(path, s string) netip.Addr {
	a, ok := v.ipv6(path, s, "the uplink's IPv4 address follows address")
	switch {
	case !ok:
		return netip.Addr{}
	case a.Zone() != "" || a.IsLinkLocalUnicast():
		v.errorf(path, "%q is link-local: packets from it cannot leave the link; write a global address, or \"auto\"", s)
		return netip.Addr{}
	}
	return a
}

// lanPrefix6 parses lan_prefix6: the IPv6 prefix the ISP delegated.
func (v *validator) lanPrefix6(path, s string) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		v.errorf(path, "%q is not an IPv6 prefix; write it as such as 2001:db8:100::/56", s)
		return netip.Prefix{}
	case p.Addr().Is4() || p.Addr().Is4In6():
		v.errorf(path, "%q is IPv4; lan_prefix6 is the IPv6 prefix the ISP delegated", s)
		return netip.Prefix{}
	case p.Bits() == 0:
		v.errorf(path, "%q is every IPv6 address; write the prefix the ISP delegated", s)
		return netip.Prefix{}
	case p != p.Masked():
		v.errorf(path, "%q has host bits set; write the prefix %s", s, p.Masked())
		return netip.Prefix{}
	case p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() || p.Addr().IsLoopback():
		v.errorf(path, "%q is not a prefix of global unicast addresses", s)
		return netip.Prefix{}
	}
	return p
}

// crossCheck6 finds IPv6 problems between uplinks: overlapping
// lan_prefix6, and probe.reliability against probe.targets6.
func (v *validator) crossCheck6(cfg *Config, raw *rawConfig) {
	for i, a := range cfg.Uplinks {
		if !a.LANPrefix6.IsValid() {
			continue
		}
		for j, b := range cfg.Uplinks[:i] {
			if b.LANPrefix6.IsValid() && a.LANPrefix6.Overlaps(b.LANPrefix6) {
				v.errorf(indexPath("uplink", i)+".lan_prefix6", "%s overlaps %s of uplink %s (uplink[%d], line %d): a source must belong to one uplink",
					a.LANPrefix6, b.LANPrefix6, b.Name, j, v.pos.line(indexPath("uplink", j)+".lan_prefix6"))
			}
		}
	}
	n := cfg.Probe.Reliability
	if n <= 1 || raw.Probe.Reliability.bad != "" {
		return
	}
	any6 := false
	for _, u := range cfg.Uplinks {
		any6 = any6 || u.IPv6
	}
	if k := roundTargets(cfg.Probe.Targets6); any6 && k > 0 && k < n {
		v.errorf(setOr("probe.targets6", raw.Probe.Targets6.set, "probe.reliability"),
			"%d targets must answer (probe.reliability), but probe.targets6 has %s", n, targetCount(k))
	}
}
