package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultPolicy is the name of the policy of traffic no [[rule]] matches.
// Without a [[policy]] of that name it is built in: every uplink in one
// tier, by the uplinks' weights, last resort "main".
const DefaultPolicy = "default"

// Limits of policies and rules (netops: the rule priorities P+10..P+89 and
// the nexthop IDs left in uplinkd's range).
const (
	MaxPolicies = 125
	MaxRules    = 80
)

// Last resorts of a policy.
const (
	ResortMain        = "main"
	ResortDefault     = "default"
	ResortUnreachable = "unreachable"
	ResortBlackhole   = "blackhole"
)

// Failback modes.
const (
	FailbackNew = "new"
	FailbackAll = "all"
)

// Policy is one [[policy]] table.
type Policy struct {
	Name string
	// Table is the policy's routing table: the key table, else
	// routing.balance_table + its position among the policies other than
	// the default one (from 1), skipping the reserved tables 253..255.
	// The default policy uses balance_table.
	Table int
	// Tiers are uplink names, tier 1 first.
	Tiers      [][]string
	LastResort string // ResortMain (default), ResortDefault, ResortUnreachable, ResortBlackhole
	// DegradedPolicy is the policy's own degraded_policy, by default
	// probe.degraded_policy.
	DegradedPolicy string
	// Failback is FailbackNew (default) or FailbackAll: when a better
	// tier returns, flush the pins of the uplinks of the tier left.
	Failback string
	// StandbyInterval, when not 0, is the probe interval of the
	// policy's uplinks while a better tier of the policy is in use (and
	// no policy uses them); 0: they are probed at probe.interval.
	StandbyInterval time.Duration
}

// Rule is one [[rule]] table: the traffic its selectors match takes
// Policy. Absent selectors match everything.
type Rule struct {
	From, To []netip.Prefix
	Iif      string
	Proto    int // IP protocol number; 0: any
	// Sport and Dport are inclusive port ranges; nil: any.
	Sport, Dport *Range
	// Mark and Mask select by firewall mark; Mask 0: any.
	Mark, Mask uint32
	// UID is a range of uids of the router's own processes; nil: any.
	UID    *Range
	Policy string
	// Line is the rule's line in the file, for explain.
	Line int
}

// Range is an inclusive range of ports or uids.
type Range struct{ Start, End uint32 }

func (r Range) contains(o Range) bool { return r.Start <= o.Start && o.End <= r.End }

func (r Range) String() string {
	if r.Start == r.End {
		return strconv.FormatUint(uint64(r.Start), 10)
	}
	return fmt.Sprintf("%d-%d", r.Start, r.End)
}

// PolicyNamed returns the policy called name, the built-in default policy
// included.
func (c *Config) PolicyNamed(name string) (Policy, bool) {
	for _, p := range c.Policies {
		if p.Name == name {
			return p, true
		}
	}
	if name == DefaultPolicy {
		return c.BuiltinDefault(), true
	}
	return Policy{}, false
}

// BuiltinDefault is the default policy when the file has none: every
// uplink in one tier.
func (c *Config) BuiltinDefault() Policy {
	all := make([]string, len(c.Uplinks))
	for i, u := range c.Uplinks {
		all[i] = u.Name
	}
	return Policy{
		Name: DefaultPolicy, Table: c.Routing.BalanceTable, Tiers: [][]string{all},
		LastResort: ResortMain, DegradedPolicy: c.Probe.DegradedPolicy, Failback: FailbackNew,
	}
}

type rawPolicy struct {
	Name            opt[string]     `toml:"name"`
	Tiers           opt[[][]string] `toml:"tiers"`
	LastResort      opt[string]     `toml:"last_resort"`
	DegradedPolicy  opt[string]     `toml:"degraded_policy"`
	Failback        opt[string]     `toml:"failback"`
	Table           opt[int64]      `toml:"table"`
	StandbyInterval opt[string]     `toml:"standby_interval"`
}

type rawRule struct {
	From   opt[[]string] `toml:"from"`
	To     opt[[]string] `toml:"to"`
	Iif    opt[string]   `toml:"iif"`
	Proto  scalar        `toml:"proto"`
	Sport  scalar        `toml:"sport"`
	Dport  scalar        `toml:"dport"`
	Fwmark scalar        `toml:"fwmark"`
	UID    scalar        `toml:"uid"`
	Policy opt[string]   `toml:"policy"`
}

// scalar is a setting written as a string or an integer ("5060-5061" or
// 5060); an integer is kept in decimal.
type scalar struct {
	val string
	set bool
	bad string
}

// UnmarshalTOML implements toml.Unmarshaler; like opt it never fails.
func (s *scalar) UnmarshalTOML(data any) error {
	s.set = true
	switch v := data.(type) {
	case string:
		s.val = v
	case int64:
		s.val = strconv.FormatInt(v, 10)
	default:
		s.bad = describe(data)
	}
	return nil
}

// policies checks the [[policy]] tables against the uplinks.
func (v *validator) policies(cfg *Config, raw []rawPolicy) {
	known := make(map[string]bool, len(cfg.Uplinks))
	uplinkTables := make(map[int]string)
	for _, u := range cfg.Uplinks {
		known[u.Name] = true
		uplinkTables[u.Table] = u.Name
	}
	names := make(map[string]int)
	tables := make(map[int]string)
	others := 0
	for i := range raw {
		r := &raw[i]
		path := indexPath("policy", i)
		p := Policy{Failback: FailbackNew}
		if s, ok := v.required(path+".name", r.Name); ok {
			if !validName(s) {
				v.errorf(path+".name", "%q is an invalid name: use 1 to %d letters, digits, '_', '.' or '-'", s, maxNameLength)
			} else if j, dup := names[s]; dup {
				v.errorf(path+".name", "duplicate policy %q (also policy[%d], line %d)", s, j, v.pos.line(indexPath("policy", j)))
			} else {
				names[s] = i
			}
			p.Name = s
		}
		isDefault := p.Name == DefaultPolicy
		p.Tiers = v.tiers(path+".tiers", r.Tiers, known)
		choices := []string{ResortMain, ResortDefault, ResortUnreachable, ResortBlackhole}
		p.LastResort = v.oneOf(path+".last_resort", r.LastResort, ResortMain, choices...)
		if isDefault && p.LastResort == ResortDefault {
			v.errorf(path+".last_resort", `the default policy cannot fall back to itself; use "main", "unreachable" or "blackhole"`)
		}
		p.DegradedPolicy = v.oneOf(path+".degraded_policy", r.DegradedPolicy, cfg.Probe.DegradedPolicy, DegradedStandby, DegradedKeep)
		p.Failback = v.oneOf(path+".failback", r.Failback, FailbackNew, FailbackNew, FailbackAll)
		if d, ok := v.durationOrZero(path+".standby_interval", r.StandbyInterval, 0); ok {
			if d != 0 && d < cfg.Probe.Interval {
				v.errorf(path+".standby_interval", "%v is shorter than probe.interval (%v)", d, cfg.Probe.Interval)
			}
			p.StandbyInterval = d
		}
		switch {
		case isDefault && r.Table.set:
			v.errorf(path+".table", "the default policy uses routing.balance_table; remove table here")
		case isDefault:
			p.Table = cfg.Routing.BalanceTable
		default:
			others++
			if others == MaxPolicies+1 {
				v.errorf(path, "too many policies: at most %d besides the default one", MaxPolicies)
			}
			n, ok := v.integer(path+".table", r.Table, defaultPolicyTable(cfg.Routing.BalanceTable, others))
			if !ok {
				break
			}
			where := path + ".table"
			if !r.Table.set {
				where = path + ".name"
			}
			p.Table = int(n)
			msg := tableProblem(n)
			switch {
			case msg != "":
			case n == int64(cfg.Routing.BalanceTable):
				msg = fmt.Sprintf("table %d is the balance table (routing.balance_table)", n)
			case uplinkTables[int(n)] != "":
				msg = fmt.Sprintf("table %d is the table of uplink %s", n, uplinkTables[int(n)])
			case tables[int(n)] != "":
				msg = fmt.Sprintf("table %d is also the table of policy %s", n, tables[int(n)])
			}
			if msg != "" {
				if !r.Table.set {
					msg += fmt.Sprintf(" (the default for policy %d after the default one); set table", others)
				}
				v.errorf(where, "%s", msg)
			} else {
				tables[int(n)] = p.Name
			}
		}
		cfg.Policies = append(cfg.Policies, p)
	}
}

// defaultPolicyTable is the table of the i-th policy (from 1) other than
// the default one: the i-th table after balance, skipping the kernel's
// reserved tables.
func defaultPolicyTable(balance, i int) int64 {
	n := int64(balance)
	for k := 0; k < i; {
		n++
		if _, reserved := reservedTables[n]; !reserved {
			k++
		}
	}
	return n
}

// tiers checks a policy's tiers: at least one, none empty, every name an
// uplink, no uplink twice.
func (v *validator) tiers(path string, o opt[[][]string], known map[string]bool) [][]string {
	switch {
	case !o.set:
		v.errorf(path, `missing; list the tiers, best first, such as [["isp1", "isp2"], ["lte"]]`)
		return nil
	case o.bad != "":
		v.errorf(path, `expected an array of arrays of uplink names, such as [["isp1", "isp2"], ["lte"]], got %s`, o.bad)
		return nil
	case len(o.val) == 0:
		v.errorf(path, "no tiers; a policy needs at least one tier of uplinks")
		return nil
	}
	seen := make(map[string]string)
	for i, tier := range o.val {
		tp := indexPath(path, i)
		if len(tier) == 0 {
			v.errorf(tp, "empty tier %d; list at least one uplink or remove it", i+1)
		}
		for j, name := range tier {
			ep := indexPath(tp, j)
			switch {
			case !known[name]:
				v.errorf(ep, "unknown uplink %q", name)
			case seen[name] != "":
				v.errorf(ep, "uplink %q is already in %s", name, seen[name])
			default:
				seen[name] = fmt.Sprintf("tier %d", i+1)
			}
		}
	}
	return o.val
}

// rules checks the [[rule]] tables; policies must be checked first.
func (v *validator) rules(cfg *Config, raw []rawRule) {
	if len(raw) > MaxRules {
		v.errorAt(v.pos.line(indexPath("rule", MaxRules)), "rule", "too many rules: %d (at most %d)", len(raw), MaxRules)
	}
	for i := range raw {
		r := &raw[i]
		path := indexPath("rule", i)
		out := Rule{Line: v.pos.line(path)}
		out.From = v.prefixes(path+".from", r.From)
		out.To = v.prefixes(path+".to", r.To)
		if s, ok := v.str(path+".iif", r.Iif, ""); ok && r.Iif.set {
			if msg := ifnameProblem(s); msg != "" {
				v.errorf(path+".iif", "%s", msg)
			}
			out.Iif = s
		}
		out.Proto = v.proto(path+".proto", r.Proto)
		out.Sport = v.portRange(path+".sport", r.Sport, out.Proto, r.Proto.set)
		out.Dport = v.portRange(path+".dport", r.Dport, out.Proto, r.Proto.set)
		out.Mark, out.Mask = v.fwmark(path+".fwmark", r.Fwmark, cfg.Routing.MarkMask)
		out.UID = v.uidRange(path+".uid", r.UID)
		if out.UID != nil && out.Iif != "" && out.Iif != "lo" {
			v.errorf(path+".uid", "uid selects the router's own traffic (iif lo); it cannot match traffic from %s", out.Iif)
		}
		if s, ok := v.required(path+".policy", r.Policy); ok {
			if _, ok := cfg.PolicyNamed(s); !ok {
				v.errorf(path+".policy", "unknown policy %q", s)
			}
			out.Policy = s
		}
		for j, earlier := range cfg.Rules {
			if earlier.covers(out) {
				v.errorf(path, "rule[%d] (line %d) matches everything this rule matches: it never applies; remove it or move it first", j, earlier.Line)
				break
			}
		}
		cfg.Rules = append(cfg.Rules, out)
	}
}

// prefixes parses a list of IPv4 prefixes; an address is a /32.
func (v *validator) prefixes(path string, o opt[[]string]) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range v.stringList(path, o) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				v.errorf(indexPath(path, i), "%q is not an IPv4 prefix such as 192.0.2.0/24 or an address", s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.Addr().Is4() {
			v.errorf(indexPath(path, i), "%q is not IPv4; IPv6 is not supported yet", s)
			continue
		}
		if p.Masked() != p {
			v.errorf(indexPath(path, i), "%q has host bits set; write %s", s, p.Masked())
			continue
		}
		out = append(out, p)
	}
	return out
}

var protoNumbers = map[string]int{"icmp": 1, "tcp": 6, "udp": 17}

func (v *validator) proto(path string, s scalar) int {
	switch {
	case !s.set:
		return 0
	case s.bad != "":
		v.errorf(path, `expected "tcp", "udp", "icmp" or a protocol number, got %s`, s.bad)
		return 0
	}
	if n, ok := protoNumbers[s.val]; ok {
		return n
	}
	n, err := strconv.Atoi(s.val)
	if err != nil || n < 1 || n > 255 {
		v.errorf(path, `%q: must be "tcp", "udp", "icmp" or a protocol number 1..255`, s.val)
		return 0
	}
	return n
}

// portProtos are the protocols with ports that `ip rule` can match.
var portProtos = []int{6, 17, 33, 132, 136} // tcp, udp, dccp, sctp, udplite

func (v *validator) portRange(path string, s scalar, proto int, protoSet bool) *Range {
	if !s.set {
		return nil
	}
	r := v.rangeOf(path, s, math.MaxUint16, "port")
	switch {
	case r == nil:
	case !protoSet:
		v.errorf(path, `a port selector needs proto ("tcp" or "udp"): without it, it would match any protocol's bytes at that offset`)
	case proto != 0 && !slices.Contains(portProtos, proto):
		v.errorf(path, "protocol %d has no ports", proto)
	}
	return r
}

func (v *validator) uidRange(path string, s scalar) *Range {
	if !s.set {
		return nil
	}
	return v.rangeOf(path, s, math.MaxUint32-1, "uid")
}

// rangeOf parses "N" or "N-M" with N <= M <= limit.
func (v *validator) rangeOf(path string, s scalar, limit uint64, what string) *Range {
	if s.bad != "" {
		v.errorf(path, `expected a %s or range such as "1000-1999", got %s`, what, s.bad)
		return nil
	}
	lo, hi, isRange := strings.Cut(s.val, "-")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 64)
	if err1 != nil || err2 != nil || a > limit || b > limit {
		v.errorf(path, `%q is not a %s or range (0..%d, such as "5060" or "5060-5061")`, s.val, what, limit)
		return nil
	}
	if a > b {
		v.errorf(path, "%q: the range ends before it starts", s.val)
		return nil
	}
	return &Range{uint32(a), uint32(b)}
}

// fwmark parses "MARK" or "MARK/MASK" (hexadecimal with 0x, or decimal);
// the mask must stay clear of uplinkd's own mark bits.
func (v *validator) fwmark(path string, s scalar, ours uint32) (mark, mask uint32) {
	if !s.set {
		return 0, 0
	}
	if s.bad != "" {
		v.errorf(path, `expected a mark such as "0x10/0xff", got %s`, s.bad)
		return 0, 0
	}
	ms, ks, hasMask := strings.Cut(s.val, "/")
	m, err1 := strconv.ParseUint(strings.TrimSpace(ms), 0, 32)
	k := uint64(math.MaxUint32)
	var err2 error
	if hasMask {
		k, err2 = strconv.ParseUint(strings.TrimSpace(ks), 0, 32)
	}
	if err1 != nil || err2 != nil || k == 0 {
		v.errorf(path, `%q is not a mark such as "0x10" or "0x10/0xff" (a non-zero mask)`, s.val)
		return 0, 0
	}
	if m&^k != 0 {
		v.errorf(path, "%q: the mark has bits outside the mask", s.val)
		return 0, 0
	}
	if ours != 0 && uint32(k)&ours != 0 {
		v.errorf(path, "%q overlaps uplinkd's own mark bits (routing.mark_mask %#x, bits %#x): pinned connections carry them; "+
			"use a mask outside %#x", s.val, ours, uint32(k)&ours, ours)
		return 0, 0
	}
	return uint32(m), uint32(k)
}

// covers says whether r matches every packet o matches.
func (r Rule) covers(o Rule) bool {
	prefixes := func(a, b []netip.Prefix) bool {
		if len(a) == 0 {
			return true
		}
		if len(b) == 0 {
			return false
		}
		for _, q := range b {
			if !slices.ContainsFunc(a, func(p netip.Prefix) bool { return p.Bits() <= q.Bits() && p.Contains(q.Addr()) }) {
				return false
			}
		}
		return true
	}
	ranges := func(a, b *Range) bool { return a == nil || b != nil && a.contains(*b) }
	iif := func(x Rule) string {
		if x.UID != nil {
			return "lo"
		}
		return x.Iif
	}
	return prefixes(r.From, o.From) && prefixes(r.To, o.To) &&
		(iif(r) == "" || iif(r) == iif(o)) &&
		(r.Proto == 0 || r.Proto == o.Proto) &&
		ranges(r.Sport, o.Sport) && ranges(r.Dport, o.Dport) && ranges(r.UID, o.UID) &&
		(r.Mask == 0 || o.Mask&r.Mask == r.Mask && o.Mark&r.Mask == r.Mark)
}
