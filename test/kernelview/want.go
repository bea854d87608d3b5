package kernelview

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Uplink is one configured uplink with the health state uplinkd must have
// given it.
type Uplink struct {
	Name    string
	Dev     string // the configured interface name
	Gateway netip.Addr
	Table   int
	Weight  int
	// State is down, probing, degraded or active.
	State string
}

// Want is what uplinkd's configuration requires, with its defaults where
// the tests leave them (a hash-threshold nexthop group, pinning on).
type Want struct {
	RulePriority  int      // P: uplinkd owns [P, P+100)
	Protocol      int      // route protocol of everything uplinkd installs
	BalanceTable  int      // the default policy's table
	LANInterfaces []string // the default policy's iif rules, plus lo
	MarkMask      uint32   // mask of the fwmark rules
	GroupID       uint32   // the balance group's nexthop ID
	// AltGroupID is the balance group's alternate ID: uplinkd makes a
	// hash-threshold group anew there, rather than replacing it in
	// place, so it is at either (zero: at GroupID only).
	AltGroupID uint32
	NFTable    string // uplinkd's inet nftables table
	Uplinks    []Uplink
}

// groupID returns GroupID for the balance group's alternate ID, else id.
func (w Want) groupID(id uint32) uint32 {
	if w.AltGroupID != 0 && id == w.AltGroupID {
		return w.GroupID
	}
	return id
}

// usable says u carries connections pinned to it.
func usable(u Uplink) bool { return u.State == "active" || u.State == "degraded" }

// inBalance returns the uplinks that carry new balanced connections: the
// active ones or, with none active, the degraded ones (the default
// degraded_policy, standby).
func (w Want) inBalance() []Uplink {
	var active, degraded []Uplink
	for _, u := range w.Uplinks {
		switch u.State {
		case "active":
			active = append(active, u)
		case "degraded":
			degraded = append(degraded, u)
		}
	}
	if len(active) > 0 {
		return active
	}
	return degraded
}

// routed says the kernel lets uplinkd route through u's interface and
// returns the address its table and source rule use: the interface
// exists under its configured name, is administratively up and has an
// IPv4 address (the first, the primary).
func routed(v *View, u Uplink) (netip.Prefix, bool) {
	l, ok := v.Links[u.Dev]
	if !ok || !l.AdminUp || len(l.Addrs) == 0 {
		return netip.Prefix{}, false
	}
	return l.Addrs[0], true
}

// Diff lists every difference between v and what w requires, empty when
// the kernel is exactly right. Objects are compared as multisets, so a
// duplicate is a difference too.
func Diff(w Want, v *View) []string {
	var out []string
	proto := strconv.Itoa(w.Protocol)
	out = append(out, diffRules(w, v, proto)...)
	out = append(out, diffRoutes(w, v, proto)...)
	out = append(out, diffNexthops(w, v, proto)...)
	if !slices.Contains(v.NFTables, w.NFTable) {
		out = append(out, "missing: nftables table inet "+w.NFTable)
	}
	return out
}

// diffRules compares uplinkd's rules. The fwmark rules are compared by
// table and mask; their marks must be distinct, non-zero and inside the
// mask (which uplink gets which mark is uplinkd's choice).
func diffRules(w Want, v *View, proto string) []string {
	P := w.RulePriority
	want := []string{fmt.Sprintf("%d: from all lookup main suppress_prefixlength 0", P)}
	for _, u := range w.Uplinks {
		addr, ok := routed(v, u)
		if !ok {
			continue
		}
		want = append(want, fmt.Sprintf("%d: from %s lookup %d", P+1, addr.Addr(), u.Table))
		if usable(u) {
			want = append(want, fmt.Sprintf("%d: fwmark/%#x lookup %d", P+2, w.MarkMask, u.Table))
		}
	}
	for _, iif := range append(slices.Clone(w.LANInterfaces), "lo") {
		want = append(want, fmt.Sprintf("%d: from all iif %s lookup %d", P+99, iif, w.BalanceTable))
	}
	var have []string
	marks := map[uint64]string{}
	var out []string
	for _, r := range v.Rules {
		if r.Protocol != proto && (r.Priority < P || r.Priority >= P+100) {
			continue
		}
		if r.Protocol != proto {
			out = append(out, "foreign rule in uplinkd's priorities: "+r.String())
			continue
		}
		if r.Fwmark == "" {
			have = append(have, strings.TrimSuffix(r.String(), " proto "+proto))
			continue
		}
		mask, _ := strconv.ParseUint(r.Fwmask, 0, 32)
		have = append(have, fmt.Sprintf("%d: fwmark/%#x lookup %s", r.Priority, mask, r.Table))
		m, err := strconv.ParseUint(r.Fwmark, 0, 32)
		switch {
		case err != nil || m == 0 || m&^mask != 0:
			out = append(out, "bad mark: "+r.String())
		case marks[m] != "":
			out = append(out, fmt.Sprintf("mark %#x twice: %s and %s", m, marks[m], r.String()))
		default:
			marks[m] = r.String()
		}
	}
	return append(out, diffStrings("rule", want, have)...)
}

// diffRoutes compares the routes carrying uplinkd's protocol, in every
// table: each uplink table's default and connected routes, and the balance
// route through the group.
func diffRoutes(w Want, v *View, proto string) []string {
	var want []string
	for _, u := range w.Uplinks {
		addr, ok := routed(v, u)
		if !ok {
			continue
		}
		want = append(want,
			fmt.Sprintf("table %d default via %s dev %s src %s", u.Table, u.Gateway, u.Dev, addr.Addr()),
			fmt.Sprintf("table %d %s dev %s scope link src %s", u.Table, addr.Masked(), u.Dev, addr.Addr()))
	}
	if len(w.inBalance()) > 0 {
		want = append(want, fmt.Sprintf("table %d default nhid %d", w.BalanceTable, w.GroupID))
	}
	var have []string
	for _, r := range v.Routes {
		if r.Protocol != proto {
			continue
		}
		if r.NHID != 0 {
			have = append(have, fmt.Sprintf("table %s %s nhid %d", r.Table, r.Dst, w.groupID(r.NHID)))
			continue
		}
		have = append(have, strings.TrimSuffix(r.String(), " proto "+proto))
	}
	var out []string
	// Nothing else may be in the balance table: main's default is the
	// fallback only through an empty balance table.
	for _, r := range v.Routes {
		if r.Table == strconv.Itoa(w.BalanceTable) && r.Protocol != proto {
			out = append(out, "foreign route in the balance table: "+r.String())
		}
	}
	return append(out, diffStrings("route", want, have)...)
}

// diffNexthops compares the nexthop objects carrying uplinkd's protocol:
// one per uplink whose interface is routed and has carrier (the kernel
// refuses others), and the group of the uplinks in the balance with their
// weights.
func diffNexthops(w Want, v *View, proto string) []string {
	var want []string
	byDev := map[string]Uplink{}
	for _, u := range w.Uplinks {
		byDev[u.Dev] = u
		if _, ok := routed(v, u); ok && v.Links[u.Dev].Carrier {
			want = append(want, fmt.Sprintf("via %s dev %s", u.Gateway, u.Dev))
		}
	}
	var members []string
	for _, u := range w.inBalance() {
		members = append(members, fmt.Sprintf("%s/%d", u.Dev, u.Weight))
	}
	if len(members) > 0 {
		slices.Sort(members)
		want = append(want, fmt.Sprintf("group %d %s", w.GroupID, strings.Join(members, " ")))
	}
	objs := map[uint32]Nexthop{}
	for _, n := range v.Nexthops {
		objs[n.ID] = n
	}
	var have, out []string
	for _, n := range v.Nexthops {
		if n.Protocol != proto {
			continue
		}
		if len(n.Group) == 0 {
			have = append(have, fmt.Sprintf("via %s dev %s", n.Gateway, n.Dev))
			continue
		}
		var ms []string
		for _, m := range n.Group {
			o, ok := objs[m.ID]
			if !ok {
				out = append(out, fmt.Sprintf("group %d: member %d does not exist", n.ID, m.ID))
				continue
			}
			ms = append(ms, fmt.Sprintf("%s/%d", o.Dev, max(m.Weight, 1)))
		}
		slices.Sort(ms)
		have = append(have, fmt.Sprintf("group %d %s", w.groupID(n.ID), strings.Join(ms, " ")))
		if n.Type != "" && n.Type != "mpath" {
			out = append(out, fmt.Sprintf("group %d is %s, want a hash-threshold group", n.ID, n.Type))
		}
	}
	return append(out, diffStrings("nexthop", want, have)...)
}

// diffStrings compares two multisets of descriptions.
func diffStrings(what string, want, have []string) []string {
	count := map[string]int{}
	for _, s := range want {
		count[s]++
	}
	for _, s := range have {
		count[s]--
	}
	var out []string
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch n := count[k]; {
		case n > 0:
			out = append(out, fmt.Sprintf("missing %s: %s", what, k))
		case n < 0 && slices.Contains(want, k):
			out = append(out, fmt.Sprintf("duplicate %s (%d extra): %s", what, -n, k))
		case n < 0:
			out = append(out, fmt.Sprintf("unexpected %s: %s", what, k))
		}
	}
	return out
}
