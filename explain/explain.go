package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/status"
)

// Packet is the new connection to explain, as `uplinkd explain` got it.
type Packet struct {
	Dst netip.Addr
	Src netip.Addr // invalid: none given
	// Iif is the input interface; "" for the router's own traffic.
	Iif          string
	Proto        int
	Sport, Dport int
	Mark         uint32
	UID          uint32 // of the router's own traffic
}

// Input is what Explain works from.
type Input struct {
	Config *config.Config
	Packet Packet
	Answer netops.Answer
	// Links names the router's interfaces by index.
	Links map[int]string
	// Status is the running daemon's; nil when it does not run.
	Status *status.Snapshot
	// Pinned is the uplink a conntrack entry of the flow is pinned to;
	// "" when there is none (or it was not looked up).
	Pinned string
}

// Result is the explanation.
type Result struct {
	Lines []string
	// Via is "uplink NAME", "last resort KIND" or a description of a route
	// uplinkd does not own.
	Via string
	// Rule is the index of the first matching [[rule]], -1 for none (the
	// default policy).
	Rule   int
	Policy string
	// Disagree describes a disagreement between the configuration (and
	// the daemon's state) and the kernel; "" when they agree.
	Disagree string
}

// Explain explains in.
func Explain(in Input) Result {
	cfg, p, a := in.Config, in.Packet, in.Answer
	res := Result{Rule: -1, Policy: config.DefaultPolicy}
	add := func(format string, args ...any) { res.Lines = append(res.Lines, fmt.Sprintf(format, args...)) }

	add("kernel   %s", describeAnswer(a, in.Links))
	for i, r := range cfg.Rules {
		if matches(r, p) {
			res.Rule, res.Policy = i, r.Policy
			add("rule     rule[%d] (line %d: %s) -> policy %s", i, r.Line, describeRule(r), r.Policy)
			break
		}
	}
	if res.Rule < 0 {
		add("rule     no [[rule]] matches -> policy default")
	}
	pol, _ := cfg.PolicyNamed(res.Policy)
	fam := familyOf(p.Dst)
	st := policyState(in.Status, res.Policy, fam)
	// A policy chooses its tier per family: say which one's for IPv6.
	polName := pol.Name
	if fam == status.FamilyIPv6 {
		polName += " (IPv6)"
	}
	switch {
	case st == nil:
		add("policy   %s: tiers %s, last resort %s (uplinkd is not running: tier in use unknown)", polName, tiers(pol.Tiers), pol.LastResort)
	case st.Tier > 0:
		add("policy   %s: tier %d of %d in use (%s)", polName, st.Tier, len(pol.Tiers), members(st.Members))
	default:
		add("policy   %s: no tier has a usable uplink: last resort %s in effect", polName, pol.LastResort)
	}
	owner, lan := lanOwner(cfg, p.Src)
	if owner != nil {
		add("prefix   source %s is in lan_prefix6 %s of uplink %s: it leaves through %s only (table %d)", p.Src, lan, owner.Name, owner.Name, owner.Table)
	}

	byTable := make(map[int]string)
	byIface := make(map[string]string)
	for _, u := range cfg.Uplinks {
		byTable[u.Table] = u.Name
		byIface[u.Interface] = u.Name
	}
	polByTable := make(map[int]string)
	for _, q := range cfg.Policies {
		polByTable[q.Table] = q.Name
	}
	polByTable[cfg.Routing.BalanceTable] = config.DefaultPolicy
	uplinkOf := func() string {
		if name, ok := byIface[in.Links[a.Oif]]; ok {
			return name
		}
		return ""
	}

	switch {
	case owner != nil && (a.Err != nil || a.Type == netops.Unreachable):
		// Its IPv6 table holds unreachable default while it cannot route.
		res.Via = fmt.Sprintf("unreachable: uplink %s's IPv6 cannot carry its lan_prefix6 now, and those sources never leave through another ISP", owner.Name)
	case a.Err != nil:
		kind := "unreachable"
		if !a.Unreachable() {
			kind = "blackhole" // the kernel refuses an output lookup through a blackhole route
		}
		res.Via = "last resort " + kind
		if pol.LastResort != kind && !(pol.LastResort == config.ResortDefault && defaultResort(cfg) == kind) {
			res.Via = fmt.Sprintf("no route (%v)", a.Err)
		}
	case a.Type == netops.Unreachable || a.Type == netops.Blackhole:
		res.Via = "last resort " + a.Type.String()
	case byTable[a.Table] != "":
		res.Via = "uplink " + byTable[a.Table]
		why := "its fwmark rule: the connection is pinned to it"
		switch {
		case p.Src.IsValid() && slices.ContainsFunc(in.Status.GetUplinks(), func(u status.Uplink) bool {
			return u.Name == byTable[a.Table] && strings.HasPrefix(u.Address, p.Src.String()+"/")
		}):
			why = "the source address is the uplink's own"
		case owner != nil && owner.Table == a.Table:
			why = "the source is in its lan_prefix6"
		}
		add("pinned   table %d of uplink %s: %s", a.Table, byTable[a.Table], why)
	case polByTable[a.Table] != "":
		name := uplinkOf()
		res.Via = "uplink " + name
		if q := polByTable[a.Table]; q != res.Policy {
			pq, _ := cfg.PolicyNamed(res.Policy)
			if pq.LastResort == config.ResortDefault && q == config.DefaultPolicy {
				res.Via = "last resort default (default policy: uplink " + name + ")"
			}
		}
	case a.Table == 254 && lastResortMain(cfg, st, pol):
		res.Via = "last resort main"
		add("main     main's default route, dev %s", in.Links[a.Oif])
	case a.Table == 254:
		res.Via = "main table, dev " + in.Links[a.Oif]
		add("main     a specific route of main: uplinkd's first rule lets main's specific routes (LAN, VPN, connected networks) win")
	default:
		res.Via = fmt.Sprintf("table %d (not uplinkd's), dev %s", a.Table, in.Links[a.Oif])
	}
	add("%s", res.Via)
	if in.Pinned != "" {
		add("conntrack an existing connection of this flow is pinned to uplink %s", in.Pinned)
	}
	res.Disagree = disagreement(in, res, pol, st)
	if res.Disagree != "" {
		add("DISAGREEMENT %s", res.Disagree)
	}
	return res
}

// disagreement compares the table the kernel answered from with the one
// the configuration and the daemon's state call for.
func disagreement(in Input, res Result, pol config.Policy, st *status.Policy) string {
	cfg, a, p := in.Config, in.Answer, in.Packet
	if mask := cfg.Routing.MarkMask; p.Mark&mask != 0 {
		return "" // a pinned connection's mark: its uplink's table
	}
	if owner, lan := lanOwner(cfg, p.Src); owner != nil {
		// Its from rule sends the source to its table, whatever the
		// daemon's state; main's specific routes come first.
		if a.Err != nil || a.Table == owner.Table || a.Table == 254 {
			return ""
		}
		return fmt.Sprintf("the source is in lan_prefix6 %s of uplink %s, but the kernel used table %d; it should use table %d", lan, owner.Name, a.Table, owner.Table)
	}
	if st == nil || a.Table == 254 && !lastResortMain(cfg, st, pol) {
		return "" // unknown state, or main's specific routes
	}
	for _, u := range in.Status.GetUplinks() {
		if p.Src.IsValid() && strings.HasPrefix(u.Address, p.Src.String()+"/") {
			return "" // the uplink's own address: its table
		}
	}
	want := pol.Table
	if pol.Name == config.DefaultPolicy {
		want = cfg.Routing.BalanceTable
	}
	if st.Tier == 0 {
		switch pol.LastResort {
		case config.ResortMain:
			// The policy's rule looks up main; the default policy's empty
			// table falls through to main's own rule.
			want = 254
		case config.ResortDefault:
			def, _ := cfg.PolicyNamed(config.DefaultPolicy)
			return disagreement(in, res, def, policyState(in.Status, config.DefaultPolicy, familyOf(p.Dst)))
		}
	}
	got := a.Table
	if a.Err != nil {
		if pol.LastResort == config.ResortUnreachable || pol.LastResort == config.ResortBlackhole {
			return ""
		}
		return fmt.Sprintf("the kernel refused the lookup (%v); policy %s should use table %d", a.Err, pol.Name, want)
	}
	if got != want {
		return fmt.Sprintf("the kernel used table %d; policy %s should use table %d now", got, pol.Name, want)
	}
	if st.Tier > 0 && strings.HasPrefix(res.Via, "uplink ") &&
		!slices.ContainsFunc(st.Members, func(m status.Member) bool { return "uplink "+m.Name == res.Via }) {
		return fmt.Sprintf("the kernel chose %s, which is not in policy %s's tier %d (%s)", res.Via, pol.Name, st.Tier, members(st.Members))
	}
	return ""
}

func lastResortMain(cfg *config.Config, st *status.Policy, pol config.Policy) bool {
	if st != nil && st.Tier > 0 {
		return false
	}
	switch pol.LastResort {
	case config.ResortMain:
		return true
	case config.ResortDefault:
		return defaultResort(cfg) == config.ResortMain
	}
	return false
}

func defaultResort(cfg *config.Config) string {
	def, _ := cfg.PolicyNamed(config.DefaultPolicy)
	return def.LastResort
}

// policyState is the daemon's state of policy name in family fam (an
// entry without a family, of a daemon before IPv6, is IPv4's).
func policyState(s *status.Snapshot, name, fam string) *status.Policy {
	if s == nil {
		return nil
	}
	for i, p := range s.Policies {
		if p.Name == name && (p.Family == fam || p.Family == "" && fam == status.FamilyIPv4) {
			return &s.Policies[i]
		}
	}
	return nil
}

// familyOf is the status family of a packet to dst.
func familyOf(dst netip.Addr) string {
	if dst.Is6() && !dst.Is4In6() {
		return status.FamilyIPv6
	}
	return status.FamilyIPv4
}

// lanOwner returns the uplink whose lan_prefix6 holds src, and that
// prefix; nil when none does.
func lanOwner(cfg *config.Config, src netip.Addr) (*config.Uplink, netip.Prefix) {
	if !src.Is6() {
		return nil, netip.Prefix{}
	}
	for i, u := range cfg.Uplinks {
		if u.LANPrefix6.IsValid() && u.LANPrefix6.Contains(src.WithZone("")) {
			return &cfg.Uplinks[i], u.LANPrefix6
		}
	}
	return nil, netip.Prefix{}
}

// matches says whether rule r matches the packet, as the kernel's rule
// would: a lookup without a source address matches no from prefix, and
// the router's own traffic has input interface lo.
func matches(r config.Rule, p Packet) bool {
	in := func(ps []netip.Prefix, a netip.Addr) bool {
		return len(ps) == 0 || a.IsValid() && slices.ContainsFunc(ps, func(q netip.Prefix) bool { return q.Contains(a) })
	}
	rng := func(r *config.Range, v uint32) bool { return r == nil || r.Start <= v && v <= r.End }
	iif := cmpOr(p.Iif, "lo")
	ruleIif := r.Iif
	if r.UID != nil {
		ruleIif = "lo"
	}
	uidOK := r.UID == nil || iif == "lo" && rng(r.UID, p.UID)
	return in(r.From, p.Src) && in(r.To, p.Dst) && (ruleIif == "" || ruleIif == iif) &&
		(r.Proto == 0 || r.Proto == p.Proto) &&
		(r.Sport == nil || p.Sport != 0 && rng(r.Sport, uint32(p.Sport))) &&
		(r.Dport == nil || p.Dport != 0 && rng(r.Dport, uint32(p.Dport))) &&
		p.Mark&r.Mask == r.Mark && uidOK
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func describeAnswer(a netops.Answer, links map[int]string) string {
	if a.Err != nil {
		return fmt.Sprintf("refused: %v", a.Err)
	}
	var b strings.Builder
	if a.Type != netops.Unicast {
		b.WriteString(a.Type.String() + " ")
	}
	fmt.Fprintf(&b, "table %d", a.Table)
	if a.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", a.Gateway)
	}
	if a.Oif != 0 {
		fmt.Fprintf(&b, " dev %s", cmpOr(links[a.Oif], fmt.Sprintf("#%d", a.Oif)))
	}
	if a.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", a.Src)
	}
	return b.String()
}

func describeRule(r config.Rule) string {
	var parts []string
	list := func(key string, ps []netip.Prefix) {
		if len(ps) > 0 {
			s := make([]string, len(ps))
			for i, p := range ps {
				s[i] = p.String()
			}
			parts = append(parts, key+" "+strings.Join(s, ","))
		}
	}
	list("from", r.From)
	list("to", r.To)
	if r.Iif != "" {
		parts = append(parts, "iif "+r.Iif)
	}
	if r.Proto != 0 {
		parts = append(parts, fmt.Sprintf("proto %d", r.Proto))
	}
	if r.Sport != nil {
		parts = append(parts, "sport "+r.Sport.String())
	}
	if r.Dport != nil {
		parts = append(parts, "dport "+r.Dport.String())
	}
	if r.Mask != 0 {
		parts = append(parts, fmt.Sprintf("fwmark %#x/%#x", r.Mark, r.Mask))
	}
	if r.UID != nil {
		parts = append(parts, "uid "+r.UID.String())
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

func tiers(ts [][]string) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = strings.Join(t, "+")
	}
	return strings.Join(s, " > ")
}

func members(ms []status.Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%s %.0f%%", m.Name, 100*m.Share)
	}
	return strings.Join(s, ", ")
}
