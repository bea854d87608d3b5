package netops

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// RouteType is the kind of a route (RTN_*).
type RouteType uint8

// Route types uplinkd installs.
const (
	Unicast     RouteType = 0 // a path; written as RTN_UNICAST
	Blackhole   RouteType = unix.RTN_BLACKHOLE
	Unreachable RouteType = unix.RTN_UNREACHABLE
)

func (t RouteType) String() string {
	switch t {
	case Unicast, unix.RTN_UNICAST:
		return "unicast"
	case Blackhole:
		return "blackhole"
	case Unreachable:
		return "unreachable"
	case unix.RTN_LOCAL:
		return "local"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	case unix.RTN_THROW:
		return "throw"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// LastResort is what a policy does with new connections when none of its
// tiers has a usable uplink.
type LastResort uint8

const (
	// ResortMain looks them up in main: main's default route. For the
	// default policy its table stays empty and its traffic falls through
	// to main, as uplinkd always did; any other policy's rules become
	// `lookup main`.
	ResortMain LastResort = iota
	// ResortDefault hands them to the default policy: the policy's rules
	// look up whatever the default policy uses now.
	ResortDefault
	// ResortUnreachable answers them with ICMP unreachable (an unreachable
	// route in the policy's table): fail closed, visibly.
	ResortUnreachable
	// ResortBlackhole drops them silently (a blackhole route).
	ResortBlackhole
)

func (l LastResort) String() string {
	switch l {
	case ResortMain:
		return "main"
	case ResortDefault:
		return "default"
	case ResortUnreachable:
		return "unreachable"
	case ResortBlackhole:
		return "blackhole"
	}
	return fmt.Sprintf("last_resort(%d)", uint8(l))
}

// DefaultPolicy is the name of the policy of traffic no rule matches.
const DefaultPolicy = "default"

// Policy is where a class of new connections goes: the uplinks of its
// first tier with a usable member, balanced by weight, else its last
// resort.
type Policy struct {
	Name string
	// Table is the policy's routing table; the default policy's is
	// Settings.BalanceTable whatever this says.
	Table int
	// Tiers are uplink names, best tier first.
	Tiers      [][]string
	LastResort LastResort
	// KeepDegraded: degraded uplinks count as usable like active ones
	// ("keep"); otherwise a degraded uplink is used only when no tier
	// has an active one ("standby").
	KeepDegraded bool
}

// PolicyRule sends the new connections its selectors match to a policy.
// Every from × to pair is one kernel rule; an empty list matches all.
type PolicyRule struct {
	From, To []netip.Prefix
	// IifName is the input interface; "lo" for the router's own traffic.
	IifName string
	IPProto int
	Sport   *Range
	Dport   *Range
	// Mark and Mask select by firewall mark; Mask 0: any.
	Mark, Mask uint32
	// UID selects the router's own processes by uid; the rule is then
	// installed as `iif lo uidrange A-B`, because the kernel looks up
	// forwarded packets as uid 0.
	UID    *Range
	Policy string
}

// Choice is the state of one policy after Choose.
type Choice struct {
	Policy string
	Table  int
	// Tier is the tier in use, from 1; 0 when the last resort is in
	// effect.
	Tier int
	// Members are the uplinks of the tier in use that carry new
	// connections, in slot order, with their weights.
	Members []Member
	// LastResort is the policy's last resort (in effect when Tier is 0).
	LastResort LastResort
}

// Member is one uplink of a policy's balance.
type Member struct {
	Name   string
	Weight int
}

// policies returns the policies in effect: the default policy first (the
// configured one named DefaultPolicy, or the built-in one: every uplink in
// one tier, by the uplinks' weights), then the others in their order.
// builtin says the default policy is the built-in one.
func (s Settings) policies() (out []Policy, builtin bool) {
	def := Policy{Name: DefaultPolicy, LastResort: ResortMain, KeepDegraded: s.KeepDegraded}
	out = make([]Policy, 1, 1+len(s.Policies))
	out[0], builtin = def, true
	for _, p := range s.Policies {
		if p.Name == DefaultPolicy {
			out[0], builtin = p, false
			continue
		}
		out = append(out, p)
	}
	if builtin {
		// One tier of every uplink: choose takes them by position, with
		// no need of their names.
		out[0].Tiers = [][]string{nil}
	}
	out[0].Table = s.BalanceTable
	return out, builtin
}

// Choose returns what every policy uses now, the default policy first.
func Choose(s Settings, uplinks []Uplink) []Choice {
	c, _ := choose(s, uplinks)
	return c
}

// ChooseAt is Choose that also returns, for every choice, the positions
// in uplinks of its members, in the order of Choice.Members: callers that
// hold something per uplink need not look members up by name.
func ChooseAt(s Settings, uplinks []Uplink) ([]Choice, [][]int) { return choose(s, uplinks) }

// routable says whether u can be a member of a balance: Plan gives it a
// default route only with an interface and an address, and a nexthop
// object only with carrier.
func routable(s Settings, u *Uplink) bool {
	return u.Index > 0 && u.Addr.IsValid() && (s.Balancer == Multipath || u.Carrier)
}

// choose returns what every policy uses now, the default policy first,
// and for each the positions in uplinks of its members (in the order of
// Choice.Members).
func choose(s Settings, uplinks []Uplink) ([]Choice, [][]int) {
	return chooseBySlot(s, uplinks, bySlot(uplinks))
}

// chooseBySlot is choose with the positions of uplinks in slot order
// (bySlot's).
func chooseBySlot(s Settings, uplinks []Uplink, slots []int) ([]Choice, [][]int) {
	pols, builtin := s.policies()
	out := make([]Choice, len(pols))
	picked := make([][]int, len(pols))
	// Tiers name uplinks; the built-in default policy's one tier is
	// every uplink, which needs no look-up: taken in slot order, its
	// members need no sorting either. A plan of 256 uplinks is made at
	// every reconcile.
	var byName map[string]int
	if !builtin || len(pols) > 1 { // tiers of names
		byName = make(map[string]int, len(uplinks))
		for i, u := range uplinks {
			byName[u.Name] = i
		}
	}
	for i, p := range pols {
		if i == 0 && builtin {
			out[i], picked[i] = choose1(s, p, uplinks, len(uplinks), func(_ []string, j int) (int, bool) { return slots[j], true })
			continue
		}
		out[i], picked[i] = choose1(s, p, uplinks, -1, func(tier []string, j int) (int, bool) { k, ok := byName[tier[j]]; return k, ok })
	}
	return out, picked
}

// choose1 chooses the members of policy p; at(tier, j) is the position in
// uplinks of the tier's j-th uplink, of size names (-1: as many as it has).
func choose1(s Settings, p Policy, uplinks []Uplink, size int, at func(tier []string, j int) (int, bool)) (Choice, []int) {
	c := Choice{Policy: p.Name, Table: p.Table, LastResort: p.LastResort}
	var m []int
	pick := func(tier []string, keep bool) []int {
		n := size
		if n < 0 {
			n = len(tier)
		}
		if m == nil {
			m = make([]int, 0, n)
		}
		m = m[:0]
		for j := range n {
			i, ok := at(tier, j)
			if !ok || !routable(s, &uplinks[i]) {
				continue
			}
			u := &uplinks[i]
			if keep && (u.InBalance || p.KeepDegraded && u.Degraded) || !keep && u.Degraded {
				m = append(m, i)
			}
		}
		return m
	}
	// Active uplinks (degraded ones too with KeepDegraded) of the first
	// tier that has one; else degraded ones of the first that has one.
	for _, active := range []bool{true, false} {
		for t, tier := range p.Tiers {
			if m := pick(tier, active); len(m) > 0 {
				c.Tier = t + 1
				// In slot order (bySlot's).
				if !slices.IsSortedFunc(m, func(a, b int) int { return cmp.Compare(uplinks[a].Slot, uplinks[b].Slot) }) {
					slices.SortStableFunc(m, func(a, b int) int { return cmp.Compare(uplinks[a].Slot, uplinks[b].Slot) })
				}
				c.Members = make([]Member, len(m))
				for k, j := range m {
					c.Members[k] = Member{Name: uplinks[j].Name, Weight: uplinks[j].Weight}
				}
				return c, m
			}
		}
		if p.KeepDegraded {
			break
		}
	}
	return c, nil
}

// ruleTarget is the table a policy's rules look up now: its own, main
// for last resort main, or the default policy's for last resort default.
func ruleTarget(c, def Choice) int {
	if c.Tier > 0 {
		return c.Table
	}
	switch c.LastResort {
	case ResortMain:
		return mainTable
	case ResortDefault:
		if def.Tier == 0 && def.LastResort == ResortMain {
			return mainTable
		}
		return def.Table
	}
	return c.Table
}

// Target names what a policy's new connections use now, for status and
// explain: "uplinks" when a tier is in use, else its last resort.
func (c Choice) Target() string {
	if c.Tier > 0 {
		return "uplinks"
	}
	return "last resort " + c.LastResort.String()
}

// policyRules returns the kernel rules of the configured rules, one
// priority each in file order, from PrioPolicyFirst.
func policyRules(s Settings, rules []PolicyRule, tables map[string]int) []Rule {
	var out []Rule
	for i, pr := range rules {
		table, ok := tables[pr.Policy]
		if !ok || i > PrioPolicyLast-PrioPolicyFirst {
			continue // config rejects both
		}
		base := Rule{
			Priority: s.RulePriority + PrioPolicyFirst + i, IifName: pr.IifName, Table: table,
			SuppressPrefixlen: -1, Protocol: s.RouteProtocol, IPProto: pr.IPProto,
			Sport: pr.Sport, Dport: pr.Dport, UID: pr.UID,
		}
		if pr.Mask != 0 {
			base.Mark, base.Mask = pr.Mark&pr.Mask, pr.Mask
		}
		if pr.UID != nil {
			base.IifName = "lo"
		}
		froms := pr.From
		if len(froms) == 0 {
			froms = []netip.Prefix{{}}
		}
		tos := pr.To
		if len(tos) == 0 {
			tos = []netip.Prefix{{}}
		}
		for _, f := range froms {
			for _, t := range tos {
				// A selector of the other family has no kernel rule in
				// this one; a rule without address selectors is in both.
				if f.IsValid() && FamilyOf(f.Addr()) != s.Family.norm() || t.IsValid() && FamilyOf(t.Addr()) != s.Family.norm() {
					continue
				}
				r := base
				if f.IsValid() && f.Bits() > 0 {
					r.Src = f.Masked()
				}
				if t.IsValid() && t.Bits() > 0 {
					r.Dst = t.Masked()
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// MaxPolicyRules is how many [[rule]]s the priority layout has room for.
const MaxPolicyRules = PrioPolicyLast - PrioPolicyFirst + 1

// lastResortRoute is the route of a policy whose last resort is in effect
// and is a route: unreachable or blackhole.
func lastResortRoute(s Settings, c Choice) *Route {
	if c.Tier > 0 {
		return nil
	}
	var t RouteType
	switch c.LastResort {
	case ResortUnreachable:
		t = Unreachable
	case ResortBlackhole:
		t = Blackhole
	default:
		return nil
	}
	return &Route{Table: c.Table, Dst: s.Family.DefaultDst(), Type: t, Protocol: s.RouteProtocol}
}

// planPolicies adds the tables of the policies other than the default one
// and the rules of Settings.Rules. Every such policy's table holds one
// route: through its own hash-threshold group of the tier's uplinks (the
// group balancers; the uplinks' nexthop objects are shared by all
// policies), a multipath route (Multipath), or its last resort.
func (d *Desired) planPolicies(s Settings, uplinks []Uplink, choices []Choice, picked [][]int) {
	ids := NexthopIDsFor(s.NexthopIDBase, s.Family)
	tables := map[string]int{choices[0].Policy: choices[0].Table}
	for i, c := range choices[1:] {
		tables[c.Policy] = ruleTarget(c, choices[0])
		if lr := lastResortRoute(s, c); lr != nil {
			d.Routes = append(d.Routes, *lr)
			continue
		}
		if c.Tier == 0 || i >= MaxPolicies {
			continue
		}
		route := Route{Table: c.Table, Dst: s.Family.DefaultDst(), Protocol: s.RouteProtocol}
		if s.Balancer == Multipath {
			for _, j := range picked[i+1] {
				u := &uplinks[j]
				route.Nexthops = append(route.Nexthops, Nexthop{Gateway: u.Gateway, Index: u.Index, Weight: u.Weight})
			}
			if len(route.Nexthops) == 1 {
				h := route.Nexthops[0]
				route.Nexthops, route.Gateway, route.Index = nil, h.Gateway, h.Index
				route.OnLink = onLinkOf(uplinks, h.Index)
			}
		} else {
			g := NexthopObject{ID: ids.Policy(i), Type: GroupMultipath, Protocol: s.RouteProtocol, Alt: ids.Alt(ids.Policy(i))}
			g.Members = make([]GroupMember, len(c.Members))
			for k, j := range picked[i+1] {
				g.Members[k] = GroupMember{ID: ids.Uplink(uplinks[j].Slot), Weight: c.Members[k].Weight}
			}
			d.Nexthops = append(d.Nexthops, g)
			route.NHID = g.ID
		}
		d.Routes = append(d.Routes, route)
	}
	d.Rules = append(d.Rules, policyRules(s, s.Rules, tables)...)
}
