package netops

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
)

// The uplinks' own rules and routes, made in the order Plan returns them
// as far as cheap keys tell it (see order.go), and Plan's working memory.

// planner is what Plan makes the uplinks' rules and routes with: it keeps
// their sort keys (see sortRoutes) as it adds them.
type planner struct {
	s   Settings
	fam Family
	d   *Desired
	// ruleKeys and routeKeys are the keys of the rules and routes added
	// so far.
	ruleKeys, routeKeys []sortKey
	tables              []uint64 // tableSortKey of each uplink
	proto               uint64   // decKey of the route protocol, or noKey
}

// rule adds r, whose table's tableSortKey is table.
func (p *planner) rule(r Rule, table uint64) {
	tp := noKey
	if table != noKey && p.proto != noKey {
		tp = table*protoRadix + p.proto
	}
	p.d.Rules = append(p.d.Rules, r)
	i := len(p.d.Rules) - 1
	p.ruleKeys = append(p.ruleKeys, ruleKeyWith(&p.d.Rules[i], p.fam, tp, i))
}

// route adds r, whose table's tableSortKey is table.
func (p *planner) route(r Route, table uint64) {
	p.d.Routes = append(p.d.Routes, r)
	i := len(p.d.Routes) - 1
	p.routeKeys = append(p.routeKeys, routeKeyWith(&p.d.Routes[i], table, i))
}

// sourceRules adds the source rules of u: from its address, and in IPv6
// from its delegated prefix. table is the tableSortKey of u's table.
func (p *planner) sourceRules(u *Uplink, table uint64) {
	s := p.s
	lan := p.fam == V6 && u.LANPrefix.IsValid()
	if lan {
		p.rule(Rule{
			Priority: s.RulePriority + prioSource, Src: u.LANPrefix.Masked(),
			Table: u.Table, SuppressPrefixlen: -1, Protocol: s.RouteProtocol,
		}, table)
	}
	if u.Index <= 0 || !u.Addr.IsValid() {
		return
	}
	src := u.Addr.Addr()
	if srcRule := netip.PrefixFrom(src, src.BitLen()); !lan || srcRule != u.LANPrefix.Masked() {
		p.rule(Rule{
			Priority: s.RulePriority + prioSource, Src: srcRule,
			Table: u.Table, SuppressPrefixlen: -1, Protocol: s.RouteProtocol,
		}, table)
	}
}

// uplinkRoutes adds the routes of u's table: the connected one and the
// default one, in IPv4 the default one first (its key is lower). table
// is the tableSortKey of u's table.
func (p *planner) uplinkRoutes(u *Uplink, table uint64) {
	s, fam := p.s, p.fam
	dflt := fam.DefaultDst()
	lan := fam == V6 && u.LANPrefix.IsValid()
	// The sources of a delegated prefix must never fall through to
	// another uplink's table: while this one cannot route, its table
	// answers them unreachable.
	unreachable := func() {
		p.route(Route{Table: u.Table, Dst: dflt, Type: Unreachable, Protocol: s.RouteProtocol}, table)
	}
	if u.Index <= 0 || !u.Addr.IsValid() {
		if lan {
			unreachable()
		}
		return
	}
	src := u.Addr.Addr()
	connected := fam == V4 || u.Addr.Bits() != 128
	dfltFirst := fam == V4 && u.Addr.Bits() > 0
	if connected && !dfltFirst {
		p.route(Route{Table: u.Table, Dst: u.Addr.Masked(), Index: u.Index, Src: src, Link: fam == V4, Protocol: s.RouteProtocol}, table)
	}
	if lan && !u.Carrier {
		unreachable()
	} else {
		// Without a gateway (a point-to-point link) the default
		// route is `default dev IF`, scope link as ip(8) makes it.
		p.route(Route{Table: u.Table, Dst: dflt, Gateway: u.Gateway, Index: u.Index, Src: src,
			OnLink: onLink(*u), Link: scopeLink(fam, u.Gateway), Protocol: s.RouteProtocol}, table)
	}
	if connected && dfltFirst {
		p.route(Route{Table: u.Table, Dst: u.Addr.Masked(), Index: u.Index, Src: src, Link: fam == V4, Protocol: s.RouteProtocol}, table)
	}
}

// sourceKey is the sort key of u's IPv4 source rule, from its address
// (the prefix length is always 32); 0 in IPv6, which keeps slot order.
func sourceKey(fam Family, u *Uplink) uint64 {
	if fam != V4 || !u.Addr.Addr().Is4() {
		return 0
	}
	return prefix4Key(u.Addr.Addr().As4(), 32) / bitsRadix
}

// orderBuf is orderUplinks' memory, reused by calls whose results are
// no longer needed.
type orderBuf struct {
	packed []uint64
	out    []int
}

// grow returns s resliced to n elements, reallocated if it is too small.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// orderUplinks returns slots (positions of uplinks) stably ordered by key:
// slots itself when it is, else buf.out (valid until buf is used again).
func orderUplinks(slots []int, key func(i int) uint64, buf *orderBuf) []int {
	// Key and place packed in one number, sorted without a comparison
	// function: this runs four times per plan.
	const placeBits = 16
	buf.packed = grow(buf.packed, len(slots))
	packed := buf.packed
	sorted, fits := true, len(slots) < 1<<placeBits
	for p, i := range slots {
		k := key(i)
		fits = fits && k < 1<<(64-placeBits)
		packed[p] = k<<placeBits | uint64(p)
		sorted = sorted && (p == 0 || packed[p-1]>>placeBits <= k)
	}
	if sorted {
		return slots
	}
	if !fits {
		type keyed struct{ key, place uint64 }
		k := make([]keyed, len(slots))
		for p, i := range slots {
			k[p] = keyed{key(i), uint64(p)}
		}
		slices.SortFunc(k, func(a, b keyed) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.place, b.place)) })
		for p := range k {
			packed[p] = k[p].place
		}
	} else {
		slices.Sort(packed)
		for p := range packed {
			packed[p] &= 1<<placeBits - 1
		}
	}
	buf.out = grow(buf.out, len(slots))
	for p := range packed {
		buf.out[p] = slots[packed[p]]
	}
	return buf.out
}

// scratch is Plan's working memory, none of which its result holds:
// pooled, as a plan of 256 uplinks is made at every reconcile and this
// was a fifth of its garbage.
type scratch struct {
	ruleKeys, routeKeys []sortKey
	tables              []uint64
	idx                 []int
	slots, order        orderBuf
	inDefault           []bool
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// bySlot returns the indexes of uplinks in slot order.
func bySlot(uplinks []Uplink) []int {
	var idx []int
	var buf orderBuf
	return bySlotIn(uplinks, &idx, &buf)
}

// bySlotIn is bySlot with its memory: the result is *idx or buf.out.
func bySlotIn(uplinks []Uplink, idx *[]int, buf *orderBuf) []int {
	*idx = grow(*idx, len(uplinks))
	small := true // every slot in [0, 2^40): orderUplinks' fast way
	for i := range *idx {
		(*idx)[i] = i
		small = small && uplinks[i].Slot >= 0 && uplinks[i].Slot < 1<<40
	}
	if small {
		return orderUplinks(*idx, func(i int) uint64 { return uint64(uplinks[i].Slot) }, buf)
	}
	slices.SortStableFunc(*idx, func(a, b int) int { return cmp.Compare(uplinks[a].Slot, uplinks[b].Slot) })
	return *idx
}
