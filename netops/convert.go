package netops

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"slices"
)

// Conversions between the plan's objects and vishvananda/netlink's.

// ofFamily returns the routes of family f among those listed for it (a
// listing may hold others: a fake kernel, a kernel that does not filter).
func ofFamily(f Family, rs []netlink.Route) []netlink.Route {
	return slices.DeleteFunc(rs, func(kr netlink.Route) bool {
		fam, ok := familyOfAF(kr.Family)
		if !ok {
			fam = V4
			if kr.Dst != nil && kr.Dst.IP.To4() == nil {
				fam = V6
			}
		}
		return fam != f
	})
}

// rulesOfFamily returns the rules of family f among those listed for it.
func rulesOfFamily(f Family, rs []netlink.Rule) []netlink.Rule {
	return slices.DeleteFunc(rs, func(kr netlink.Rule) bool {
		fam, ok := familyOfAF(kr.Family)
		if !ok {
			fam = fromKernelRule(kr).Family.norm() // from its selectors; none: IPv4
		}
		return fam != f
	})
}

func toKernelRoute(rt Route) *netlink.Route {
	kr := &netlink.Route{
		Family:   rt.Family.AF(),
		Table:    rt.Table,
		Dst:      ipNet(rt.Dst),
		Protocol: netlink.RouteProtocol(rt.Protocol),
		Type:     unix.RTN_UNICAST,
		Scope:    netlink.SCOPE_UNIVERSE,
	}
	if rt.Type != Unicast {
		kr.Type = int(rt.Type)
		return kr
	}
	if rt.Src.IsValid() {
		kr.Src = rt.Src.AsSlice()
	}
	if rt.Link {
		kr.Scope = netlink.SCOPE_LINK
	}
	if len(rt.Nexthops) > 0 {
		for _, h := range rt.Nexthops {
			kr.MultiPath = append(kr.MultiPath, &netlink.NexthopInfo{
				LinkIndex: h.Index, Gw: h.Gateway.AsSlice(), Hops: h.Weight - 1,
			})
		}
		return kr
	}
	kr.LinkIndex = rt.Index
	if rt.Gateway.IsValid() {
		kr.Gw = rt.Gateway.AsSlice()
	}
	if rt.OnLink {
		kr.Flags = int(netlink.FLAG_ONLINK)
	}
	return kr
}

// fromKernelRoute normalises a listed route to the fields uplinkd sets, so
// that kernel-side flags (linkdown, dead) do not look like drift.
func fromKernelRoute(kr netlink.Route) (Route, bool) {
	dst, ok := prefixOf(kr.Dst)
	if !ok {
		return Route{}, false
	}
	rt := Route{
		Table:    kr.Table,
		Dst:      dst,
		Index:    kr.LinkIndex,
		Protocol: int(kr.Protocol),
		Link:     kr.Scope == netlink.SCOPE_LINK,
		OnLink:   kr.Flags&int(netlink.FLAG_ONLINK) != 0,
	}
	if FamilyOf(dst.Addr()) == V6 {
		rt.Family = V6 // IPv4's stays zero, as Plan leaves it
	}
	if kr.Type != unix.RTN_UNICAST && kr.Type != 0 {
		rt.Type = RouteType(kr.Type)
		rt.Index = 0
		return rt, true
	}
	rt.Gateway, _ = addrOf(kr.Gw)
	rt.Src, _ = addrOf(kr.Src)
	for _, h := range kr.MultiPath {
		gw, _ := addrOf(h.Gw)
		rt.Nexthops = append(rt.Nexthops, Nexthop{Gateway: gw, Index: h.LinkIndex, Weight: h.Hops + 1})
	}
	return rt, true
}

func toKernelRule(ru Rule) *netlink.Rule {
	kr := netlink.NewRule()
	kr.Family = ru.Family.AF()
	kr.Priority = ru.Priority
	kr.Table = ru.Table
	kr.IifName = ru.IifName
	kr.SuppressPrefixlen = ru.SuppressPrefixlen
	kr.Protocol = uint8(ru.Protocol)
	if ru.Mask != 0 {
		kr.Mark = ru.Mark
		mask := ru.Mask
		kr.Mask = &mask
	}
	if ru.Src.IsValid() {
		kr.Src = ipNet(ru.Src)
	}
	if ru.Dst.IsValid() {
		kr.Dst = ipNet(ru.Dst)
	}
	kr.IPProto = ru.IPProto
	if ru.Sport != nil {
		kr.Sport = netlink.NewRulePortRange(uint16(ru.Sport.Start), uint16(ru.Sport.End))
	}
	if ru.Dport != nil {
		kr.Dport = netlink.NewRulePortRange(uint16(ru.Dport.Start), uint16(ru.Dport.End))
	}
	if ru.UID != nil {
		kr.UIDRange = netlink.NewRuleUIDRange(ru.UID.Start, ru.UID.End)
	}
	return kr
}

func fromKernelRule(kr netlink.Rule) Rule {
	ru := Rule{
		Priority:          kr.Priority,
		IifName:           kr.IifName,
		Table:             kr.Table,
		SuppressPrefixlen: kr.SuppressPrefixlen,
		Protocol:          int(kr.Protocol),
	}
	if kr.Mark != 0 || kr.Mask != nil {
		ru.Mark = kr.Mark
		ru.Mask = 0xffffffff
		if kr.Mask != nil {
			ru.Mask = *kr.Mask
		}
	}
	if p, ok := prefixOf(kr.Src); ok && p.Bits() > 0 {
		ru.Src = p
	}
	if p, ok := prefixOf(kr.Dst); ok && p.Bits() > 0 {
		ru.Dst = p
	}
	if kr.Family == unix.AF_INET6 || ru.Src.Addr().Is6() || ru.Dst.Addr().Is6() {
		ru.Family = V6 // IPv4's stays zero, as Plan leaves it
	}
	ru.IPProto = kr.IPProto
	if r := kr.Sport; r != nil {
		ru.Sport = &Range{uint32(r.Start), uint32(r.End)}
	}
	if r := kr.Dport; r != nil {
		ru.Dport = &Range{uint32(r.Start), uint32(r.End)}
	}
	if r := kr.UIDRange; r != nil {
		ru.UID = &Range{r.Start, r.End}
	}
	return ru
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := addrOf(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits).Masked(), true
}

func addrOf(ip net.IP) (netip.Addr, bool) {
	if ip == nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
