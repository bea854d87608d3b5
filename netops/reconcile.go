package netops

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
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
// routes, rules and nexthop objects that carry its route protocol.
type Reconciler struct {
	K Kernel
	// NH handles nexthop objects and the routes through them; nil when
	// the kernel has none (Desired.Nexthops must then be empty).
	NH       NexthopKernel
	Protocol int

	// Routes are listed table by table, the kernel filtering by table and
	// protocol (see Handle), so that a reconcile costs what uplinkd owns,
	// not what main holds. The tables listed are those of the desired
	// routes and those where routes of the protocol were last seen: lost
	// events cannot put routes of the protocol elsewhere. The first
	// listing, and the first after Rescan or a change of Protocol, covers
	// every table (still filtered by protocol in the kernel), to find what
	// an earlier run, configured with other tables, left anywhere.
	known      map[int]bool
	listedFor  int // the protocol the known tables are for; 0: none yet
	needRescan bool
	// Likewise, nexthop objects are fetched by ID, those desired and
	// those of the protocol last seen, except at a full listing.
	knownNH map[uint32]bool
	// cache keeps what was read and written, when enabled (cache.go).
	cache ownCache
}

// full says whether this reconcile lists everything (filtered by
// protocol) rather than what is known to be, or meant to be, ours.
func (r *Reconciler) full() bool { return r.needRescan || r.listedFor != r.Protocol }

// Rescan makes the next reconcile list routes of every table, not only
// the known ones.
func (r *Reconciler) Rescan() { r.needRescan = true }

// tables returns the tables to list routes of for d; 0 means every table.
func (r *Reconciler) tables(d Desired, full bool) []int {
	if full {
		return []int{unix.RT_TABLE_UNSPEC}
	}
	set := maps.Clone(r.known)
	if set == nil {
		set = make(map[int]bool)
	}
	for _, rt := range d.Routes {
		set[rt.Table] = true
	}
	for k := range r.cache.namedTables {
		set[k.table] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// learn remembers the tables listing found routes in, and those d wants
// routes in, as the tables to list next time.
func (r *Reconciler) learn(d Desired, seen []int) {
	r.known = make(map[int]bool)
	for _, t := range seen {
		r.known[t] = true
	}
	for _, rt := range d.Routes {
		r.known[rt.Table] = true
	}
	r.listedFor, r.needRescan = r.Protocol, false
}

// Result says what one reconcile did.
type Result struct {
	Added   []string // nexthops and routes replaced or rules added, in `ip` syntax
	Removed []string
	Took    time.Duration
}

// Changes is the number of kernel writes done.
func (r Result) Changes() int { return len(r.Added) + len(r.Removed) }

// Reconcile diffs d against the kernel and applies the difference, make
// before break: nexthop objects first (single next hops, then the groups
// that use them), then new and changed routes, then missing rules, then
// stale rules, routes, groups and single next hops. Objects that are
// already gone are not an error. On error the returned Result still lists
// what was done; a later call finishes the job.
func (r *Reconciler) Reconcile(d Desired) (res Result, err error) {
	start := time.Now()
	defer func() { res.Took = time.Since(start) }()

	// Nexthops first: deleting a group to create it anew takes the routes
	// through it along, and the route listing below must see that.
	full := r.full()
	if full {
		r.cache.reset()
	}
	staleNH, usable, errs := r.syncNexthops(d.Nexthops, full, &res)

	tables := r.tables(d, full)
	have := make(map[string]*cachedRoute, len(d.Routes))
	for _, f := range Families {
		h, err := r.listRoutes(f.AF(), tables)
		if err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		maps.Copy(have, h) // keys differ: the destination says the family
	}
	seenTables := make([]int, 0, len(have))
	for _, cr := range have {
		seenTables = append(seenTables, cr.rt.Table)
	}
	r.learn(d, seenTables)
	r.cache.forget(r.known)
	if full {
		for _, f := range Families {
			r.cache.listedAll(f.AF(), r.known)
		}
	}
	want := make(map[string]bool, len(d.Routes))
	for _, rt := range d.Routes {
		want[rt.Key()] = true
		if h := have[rt.Key()]; h != nil && h.str == rt.String() {
			continue
		}
		var err error
		switch {
		case rt.NHID == 0:
			err = r.K.RouteReplace(toKernelRoute(rt))
		case !usable[rt.NHID]:
			err = fmt.Errorf("nexthop %d is not available", rt.NHID)
		default:
			err = r.NH.NHIDRouteReplace(rt)
		}
		if err != nil {
			r.cache.dirtyTable(rt.Family.AF(), rt.Table)
			errs = append(errs, fmt.Errorf("replace route %s: %w", rt, err))
			continue
		}
		r.cache.wroteRoute(rt.Family.AF(), rt)
		res.Added = append(res.Added, "route "+rt.String())
	}

	var rules []cachedRule
	for _, f := range Families {
		rs, err := r.listRules(f.AF())
		if err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		rules = append(rules, rs...)
	}
	seen := make(map[string]int)
	var stale []cachedRule
	wantRule := make(map[string]bool, len(d.Rules))
	for _, ru := range d.Rules {
		wantRule[ru.String()] = true
	}
	for _, kr := range rules {
		seen[kr.str]++
		if !wantRule[kr.str] || seen[kr.str] > 1 {
			stale = append(stale, kr)
		}
	}
	for _, ru := range d.Rules {
		if seen[ru.String()] > 0 {
			continue
		}
		err := r.K.RuleAdd(toKernelRule(ru))
		switch {
		case errors.Is(err, unix.EEXIST):
			r.cache.dirtyRules(ru.Family.AF()) // the cache did not know it
		case err != nil:
			r.cache.dirtyRules(ru.Family.AF())
			errs = append(errs, fmt.Errorf("add rule %s: %w", ru, err))
			continue
		default:
			r.cache.addedRule(ru.Family.AF(), ru)
		}
		res.Added = append(res.Added, "rule "+ru.String())
	}
	for _, kr := range stale {
		fam := fromKernelRule(kr.kr).Family.AF()
		if err := r.K.RuleDel(&kr.kr); err != nil && !gone(err) {
			r.cache.dirtyRules(fam)
			errs = append(errs, fmt.Errorf("delete rule %s: %w", kr.str, err))
			continue
		}
		r.cache.deletedRule(fam, kr)
		res.Removed = append(res.Removed, "rule "+kr.str)
	}
	for key, cr := range have {
		if want[key] {
			continue
		}
		// The kernel matches scope and type on delete, so pass the listed ones.
		kr, fam := cr.kr, cr.rt.Family.AF()
		del := &netlink.Route{Family: fam, Table: kr.Table, Dst: kr.Dst, Protocol: kr.Protocol, Scope: kr.Scope, Type: kr.Type}
		if err := r.K.RouteDel(del); err != nil && !gone(err) {
			r.cache.dirtyTable(fam, cr.rt.Table)
			errs = append(errs, fmt.Errorf("delete route %s: %w", cr.str, err))
			continue
		}
		r.cache.deletedRoute(fam, cr.rt.Table, key)
		res.Removed = append(res.Removed, "route "+cr.str)
	}
	// Groups before the single next hops they use.
	for _, n := range staleNH {
		if err := r.NH.NexthopDel(n.ID); err != nil && !gone(err) {
			r.cache.dirtyNexthop(n.ID)
			errs = append(errs, fmt.Errorf("delete nexthop %s: %w", n, err))
			continue
		}
		r.cache.deletedNexthop(n.ID)
		res.Removed = append(res.Removed, "nexthop "+n.String())
	}
	return res, errors.Join(errs...)
}

// Cleanup removes every route, rule and nexthop object carrying the
// reconciler's protocol.
func (r *Reconciler) Cleanup() (Result, error) {
	r.Invalidate() // what is removed is read, not remembered
	return r.Reconcile(Desired{})
}

// syncNexthops creates and replaces the desired nexthop objects. It
// returns the objects of the reconciler's protocol that are no longer
// desired, groups first, for deletion once no route uses them, and the IDs
// that exist now, for the routes through them. An object with a desired ID
// that belongs to another protocol is left alone and reported.
func (r *Reconciler) syncNexthops(desired []NexthopObject, full bool, res *Result) (stale []NexthopObject, usable map[uint32]bool, errs []error) {
	usable = make(map[uint32]bool)
	if r.NH == nil {
		if len(desired) > 0 {
			errs = append(errs, errors.New("nexthop objects wanted, but the reconciler has no nexthop connection"))
		}
		return nil, usable, errs
	}
	list, err := r.listNexthops(desired, full)
	if err != nil {
		if len(desired) == 0 && unsupported(err) {
			return nil, usable, nil // a kernel without nexthop objects has none of ours
		}
		return nil, usable, []error{fmt.Errorf("list nexthops: %w", err)}
	}
	have := make(map[uint32]NexthopObject, len(list))
	for _, n := range list {
		have[n.ID] = n
	}
	desired = slices.Clone(desired)
	slices.SortStableFunc(desired, func(a, b NexthopObject) int { return cmp.Compare(btoi(a.IsGroup()), btoi(b.IsGroup())) })
	want := make(map[uint32]bool, len(desired))
	for _, n := range desired {
		want[n.ID] = true
		k, exists := have[n.ID]
		if exists && k.Protocol != r.Protocol {
			errs = append(errs, fmt.Errorf("nexthop id %d belongs to protocol %d, not %d: left alone (choose another nexthop_id_base)", n.ID, k.Protocol, r.Protocol))
			continue
		}
		if n.IsGroup() {
			// Members that could not be created are left out this
			// time: the group still serves the others.
			n.Members = slices.DeleteFunc(slices.Clone(n.Members), func(m GroupMember) bool { return !usable[m.ID] })
			if len(n.Members) == 0 {
				errs = append(errs, fmt.Errorf("nexthop group %d: none of its members is available", n.ID))
				continue
			}
		}
		if exists && k.Type == GroupResilient && n.Type == GroupResilient && k.Buckets > n.Buckets {
			// Bucket counts are powers of two, so a group with more
			// buckets than planned still meets the accuracy bound (see
			// Buckets). Keeping it lets a weight change on reload move
			// buckets in place instead of re-creating the group, which
			// would rehash every flow and drop the route for a moment.
			n.Buckets = k.Buckets
		}
		if exists && k.String() == n.String() {
			usable[n.ID] = true
			continue
		}
		if exists && !replaceable(k, n) {
			// The kernel cannot change a group's type or bucket count in
			// place: delete it (routes through it go too, and are added
			// again below) and create it anew.
			if err := r.NH.NexthopDel(k.ID); err != nil && !gone(err) {
				r.cache.dirtyNexthop(k.ID)
				errs = append(errs, fmt.Errorf("delete nexthop %s: %w", k, err))
				continue
			}
			r.cache.deletedNexthop(k.ID)
			res.Removed = append(res.Removed, "nexthop "+k.String())
			exists = false
		}
		if err := r.NH.NexthopAdd(n, exists); err != nil {
			r.cache.dirtyNexthop(n.ID)
			errs = append(errs, fmt.Errorf("add nexthop %s: %w", n, err))
			continue
		}
		r.cache.wroteNexthop(n)
		res.Added = append(res.Added, "nexthop "+n.String())
		usable[n.ID] = true
	}
	for _, k := range list {
		if k.Protocol == r.Protocol && !want[k.ID] {
			stale = append(stale, k)
		}
	}
	slices.SortStableFunc(stale, func(a, b NexthopObject) int { return cmp.Compare(btoi(b.IsGroup()), btoi(a.IsGroup())) })
	return stale, usable, errs
}

// listNexthops returns the nexthop objects to diff desired against: every
// one at a full listing, else those with the desired IDs and the IDs of
// the protocol seen last time, fetched one by one, so that foreign objects
// (a routing daemon's thousands) cost nothing. It remembers the IDs of the
// protocol it found, and the desired ones, for next time.
func (r *Reconciler) listNexthops(desired []NexthopObject, full bool) ([]NexthopObject, error) {
	var list []NexthopObject
	if full {
		var err error
		if list, err = r.NH.NexthopList(); err != nil {
			return nil, err
		}
		r.cache.listedNexthops(list, desiredIDs(desired), true, r.Protocol)
	} else {
		ids := maps.Clone(r.knownNH)
		if ids == nil {
			ids = make(map[uint32]bool)
		}
		for _, n := range desired {
			ids[n.ID] = true
		}
		maps.Copy(ids, r.cache.namedNH)
		var fetch []uint32
		list, fetch = r.cache.cachedNexthops(slices.Sorted(maps.Keys(ids)))
		var got []NexthopObject
		for _, id := range fetch {
			n, ok, err := r.NH.NexthopGet(id)
			if err != nil {
				return nil, fmt.Errorf("get nexthop %d: %w", id, err)
			}
			if ok {
				got = append(got, n)
			}
		}
		r.cache.listedNexthops(got, fetch, false, r.Protocol)
		list = append(list, got...)
	}
	r.knownNH = make(map[uint32]bool)
	for _, n := range list {
		if n.Protocol == r.Protocol {
			r.knownNH[n.ID] = true
		}
	}
	for _, n := range desired {
		r.knownNH[n.ID] = true
	}
	return list, nil
}

func desiredIDs(desired []NexthopObject) []uint32 {
	ids := make([]uint32, len(desired))
	for i, n := range desired {
		ids[i] = n.ID
	}
	return ids
}

// replaceable says whether the kernel can turn have into want in place.
func replaceable(have, want NexthopObject) bool {
	switch {
	case have.Unknown || have.IsGroup() != want.IsGroup():
		return false
	case !want.IsGroup():
		return true
	}
	return have.Type == want.Type && (want.Type != GroupResilient || have.Buckets == want.Buckets)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// unsupported says whether err means the kernel lacks a feature.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT)
}

func gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}

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
