package netops

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernel is the part of a netlink handle the reconciler uses.
// *netlink.Handle implements it; tests may substitute a fake.
type Kernel interface {
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	RuleList(family int) ([]netlink.Rule, error)
	RuleAdd(rule *netlink.Rule) error
	RuleDel(rule *netlink.Rule) error
}

// Reconciler makes the kernel match a Desired state. It owns exactly the
// routes and rules that carry its route protocol.
type Reconciler struct {
	K        Kernel
	Protocol int
}

// Result says what one reconcile did.
type Result struct {
	Added   []string // routes replaced or rules added, in `ip` syntax
	Removed []string
	Took    time.Duration
}

// Changes is the number of kernel writes done.
func (r Result) Changes() int { return len(r.Added) + len(r.Removed) }

// Reconcile diffs d against the kernel and applies the difference: new and
// changed routes first (make before break), then missing rules, then stale
// rules and routes. Objects that are already gone are not an error. On error
// the returned Result still lists what was done; a later call finishes the
// job.
func (r *Reconciler) Reconcile(d Desired) (res Result, err error) {
	start := time.Now()
	defer func() { res.Took = time.Since(start) }()

	routes, err := r.K.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: netlink.RouteProtocol(r.Protocol)},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return res, fmt.Errorf("list routes: %w", err)
	}
	have := make(map[string]netlink.Route, len(routes))
	haveStr := make(map[string]string, len(routes))
	for _, kr := range routes {
		rt, ok := fromKernelRoute(kr)
		if !ok {
			continue
		}
		have[rt.Key()] = kr
		haveStr[rt.Key()] = rt.String()
	}
	want := make(map[string]bool, len(d.Routes))
	var errs []error
	for _, rt := range d.Routes {
		want[rt.Key()] = true
		if haveStr[rt.Key()] == rt.String() {
			continue
		}
		if err := r.K.RouteReplace(toKernelRoute(rt)); err != nil {
			errs = append(errs, fmt.Errorf("replace route %s: %w", rt, err))
			continue
		}
		res.Added = append(res.Added, "route "+rt.String())
	}

	rules, err := r.K.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return res, errors.Join(append(errs, fmt.Errorf("list rules: %w", err))...)
	}
	seen := make(map[string]int)
	var stale []netlink.Rule
	wantRule := make(map[string]bool, len(d.Rules))
	for _, ru := range d.Rules {
		wantRule[ru.String()] = true
	}
	for _, kr := range rules {
		if int(kr.Protocol) != r.Protocol {
			continue
		}
		s := fromKernelRule(kr).String()
		seen[s]++
		if !wantRule[s] || seen[s] > 1 {
			stale = append(stale, kr)
		}
	}
	for _, ru := range d.Rules {
		if seen[ru.String()] > 0 {
			continue
		}
		if err := r.K.RuleAdd(toKernelRule(ru)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add rule %s: %w", ru, err))
			continue
		}
		res.Added = append(res.Added, "rule "+ru.String())
	}
	for _, kr := range stale {
		if err := r.K.RuleDel(&kr); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("delete rule %s: %w", fromKernelRule(kr), err))
			continue
		}
		res.Removed = append(res.Removed, "rule "+fromKernelRule(kr).String())
	}
	for key, kr := range have {
		if want[key] {
			continue
		}
		// The kernel matches scope and type on delete, so pass the listed ones.
		del := &netlink.Route{Family: netlink.FAMILY_V4, Table: kr.Table, Dst: kr.Dst, Protocol: kr.Protocol, Scope: kr.Scope, Type: kr.Type}
		if err := r.K.RouteDel(del); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", haveStr[key], err))
			continue
		}
		res.Removed = append(res.Removed, "route "+haveStr[key])
	}
	return res, errors.Join(errs...)
}

// Cleanup removes every route and rule carrying the reconciler's protocol.
func (r *Reconciler) Cleanup() (Result, error) { return r.Reconcile(Desired{}) }

func gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}

func toKernelRoute(rt Route) *netlink.Route {
	kr := &netlink.Route{
		Family:   netlink.FAMILY_V4,
		Table:    rt.Table,
		Dst:      ipNet(rt.Dst),
		Protocol: netlink.RouteProtocol(rt.Protocol),
		Type:     unix.RTN_UNICAST,
		Scope:    netlink.SCOPE_UNIVERSE,
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
	kr.Family = netlink.FAMILY_V4
	kr.Priority = ru.Priority
	kr.Table = ru.Table
	kr.IifName = ru.IifName
	kr.SuppressPrefixlen = ru.SuppressPrefixlen
	kr.Protocol = uint8(ru.Protocol)
	if ru.Src.IsValid() {
		kr.Src = ipNet(ru.Src)
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
	if p, ok := prefixOf(kr.Src); ok && p.Bits() > 0 {
		ru.Src = p
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
