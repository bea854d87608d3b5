package config

import (
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Limits.
const (
	maxUplinks    = 256 // netops.MaxUplinks, the nexthop ID layout
	minInterval   = 10 * time.Millisecond
	maxTimeout    = 10 * time.Second
	maxWeight     = 256 // the kernel's nexthop weight limit
	maxTable      = min(math.MaxUint32, math.MaxInt)
	maxPriority   = 32765 - RulePriorityRange // stay clear of main's rule at 32766
	minProtocol   = 5                         // 0..4 belong to the kernel (unspec, redirect, kernel, boot, static)
	maxProtocol   = 255
	maxNameLength = 32
	maxIfnameLen  = 15 // IFNAMSIZ - 1
	maxWindow     = 10000
	maxFlapLimit  = 1000

	maxNexthopIDBase = math.MaxUint32 - NexthopIDRange + 1
	maxBucketTimer   = 24 * time.Hour
)

// reservedTables are the kernel's own routing tables.
var reservedTables = map[int64]string{0: "unspecified", 253: "default", 254: "main", 255: "local"}

// validator collects the problems of one file.
type validator struct {
	file string
	pos  positions
	errs Errors
}

// errorf records a problem with the setting at path, on the line of path.
func (v *validator) errorf(path, format string, args ...any) {
	v.errorAt(v.pos.line(path), path, format, args...)
}

func (v *validator) errorAt(line int, path, format string, args ...any) {
	v.errs = append(v.errs, Error{File: v.file, Line: line, Key: path, Msg: fmt.Sprintf(format, args...)})
}

// unknownKeys reports the keys of the file that uplinkd does not know:
// those MetaData.Undecoded lists, and those the decoder matched to a field
// only by ignoring case (it accepts "Weight" for "weight"; uplinkd does
// not). Keys inside an unknown table are not reported again.
func (v *validator) unknownKeys(md toml.MetaData) {
	undecoded := make(map[string]bool)
	for _, k := range md.Undecoded() {
		undecoded[strings.Join(k, ".")] = true
	}
	known := make(map[string]bool)
	for table, keys := range schema {
		known[table] = table != ""
		for _, k := range keys {
			known[joinPath(table, k)] = true
		}
	}
	reported := make(map[string]bool)
	within := func(generic string) bool {
		for p := parentPath(generic); p != ""; p = parentPath(p) {
			if reported[p] {
				return true
			}
		}
		return false
	}
	for _, d := range v.pos.defs {
		if within(d.generic) {
			continue
		}
		switch {
		case undecoded[d.generic]:
			v.errorf(d.path, "unknown key; %s", validKeys(parentPath(d.generic)))
		case !known[d.generic] && caseMatch(d.generic, known) != "":
			v.errorf(d.path, "unknown key; keys are case-sensitive: did you mean %q?", lastKey(caseMatch(d.generic, known)))
		default:
			continue
		}
		reported[d.generic] = true
	}
	// The scanner should have found every undecoded key; if it missed one,
	// report it anyway, without an exact place.
	for _, key := range md.Undecoded() {
		k := strings.Join(key, ".")
		if !reported[k] && !within(k) {
			v.errorf(k, "unknown key; %s", validKeys(parentPath(k)))
			reported[k] = true
		}
	}
}

// validKeys lists the keys a table accepts, for an unknown-key message.
func validKeys(table string) string {
	switch table {
	case "":
		return "the file has the tables [" + strings.Join(tables, "], [") + "], [[uplink]], [[policy]] and [[rule]]"
	case "uplink", "policy", "rule":
		return "[[" + table + "]] accepts " + strings.Join(schema[table], ", ")
	}
	if keys, ok := schema[table]; ok {
		return "[" + table + "] accepts " + strings.Join(keys, ", ")
	}
	return "not a setting of uplinkd"
}

func caseMatch(generic string, known map[string]bool) string {
	for k := range known {
		if strings.EqualFold(k, generic) {
			return k
		}
	}
	return ""
}

func lastKey(path string) string { return path[strings.LastIndexByte(path, '.')+1:] }

// config checks raw and converts it. The result is meaningful only when no
// problem was recorded.
func (v *validator) config(raw *rawConfig) *Config {
	cfg := &Config{
		Routing: v.routing(&raw.Routing),
		Probe:   v.probe(&raw.Probe),
		Hooks:   v.hooks(&raw.Hooks),
		Status:  v.status(&raw.Status),
		Metrics: v.metrics(&raw.Metrics),
		Log:     v.log(&raw.Log),
	}
	switch n := len(raw.Uplinks); {
	case n == 0:
		v.errorf("uplink", "no uplinks configured; add at least one [[uplink]] table")
	case n > maxUplinks:
		// On the first uplink too many.
		v.errorAt(v.pos.line(indexPath("uplink", maxUplinks)), "uplink", "too many uplinks: %d (at most %d)", n, maxUplinks)
	}
	for i := range raw.Uplinks {
		cfg.Uplinks = append(cfg.Uplinks, v.uplink(indexPath("uplink", i), &raw.Uplinks[i]))
	}
	v.crossCheck(cfg, raw)
	v.policies(cfg, raw.Policies)
	v.rules(cfg, raw.Rules)
	return cfg
}

func (v *validator) routing(r *rawRouting) Routing {
	var out Routing
	if n, ok := v.integer("routing.balance_table", r.BalanceTable, defaultBalanceTable); ok {
		if msg := tableProblem(n); msg != "" {
			v.errorf("routing.balance_table", "%s", msg)
		}
		out.BalanceTable = int(n)
	}
	if n, ok := v.integer("routing.rule_priority", r.RulePriority, defaultRulePriority); ok {
		if n < 1 || n > maxPriority {
			v.errorf("routing.rule_priority", "%d is out of range (1..%d): uplinkd uses priorities up to rule_priority+%d, below main's rule at 32766",
				n, maxPriority, RulePriorityRange-1)
		}
		out.RulePriority = int(n)
	}
	if n, ok := v.integer("routing.route_protocol", r.RouteProtocol, defaultRouteProtocol); ok {
		if n < minProtocol || n > maxProtocol {
			v.errorf("routing.route_protocol", "%d is out of range (%d..%d); 0 to 4 belong to the kernel", n, minProtocol, maxProtocol)
		}
		out.RouteProtocol = int(n)
	}
	out.Hash = v.oneOf("routing.hash", r.Hash, defaultHash, "l4", "l3", "source")
	out.Balancer = v.oneOf("routing.balancer", r.Balancer, defaultBalancer, "auto", "hash-threshold", "resilient", "multipath")
	if n, ok := v.integer("routing.nexthop_id_base", r.NexthopIDBase, defaultNexthopIDBase); ok {
		if n < 1 || n > maxNexthopIDBase {
			v.errorf("routing.nexthop_id_base", "%d is out of range (1..%d): uplinkd uses the IDs up to nexthop_id_base+%d",
				n, maxNexthopIDBase, NexthopIDRange-1)
		}
		out.NexthopIDBase = uint32(n)
	}
	if d, ok := v.duration("routing.idle_timer", r.IdleTimer, defaultIdleTimer); ok {
		if d < time.Second || d > maxBucketTimer {
			v.errorf("routing.idle_timer", "%q is out of range (1s..%v)", r.IdleTimer.val, maxBucketTimer)
		}
		out.IdleTimer = d
	}
	if d, ok := v.durationOrZero("routing.unbalanced_timer", r.UnbalancedTimer, defaultUnbalancedTimer); ok {
		if d != 0 && (d < time.Second || d > maxBucketTimer) {
			v.errorf("routing.unbalanced_timer", `%q is out of range ("0s" for never, or 1s..%v)`, r.UnbalancedTimer.val, maxBucketTimer)
		}
		out.UnbalancedTimer = d
	}
	out.FlushConntrack, _ = v.boolean("routing.flush_conntrack", r.FlushConntrack, defaultFlush)
	if n, ok := v.integer("routing.mark_mask", r.MarkMask, DefaultMarkMask); ok {
		if n < 0 || n > math.MaxUint32 {
			v.errorf("routing.mark_mask", "%#x is out of range (0 to 0xffffffff; 0 turns pinning off)", n)
		}
		out.MarkMask = uint32(n)
	}
	if dir, ok := v.str("routing.state_dir", r.StateDir, DefaultStateDir); ok {
		if !filepath.IsAbs(dir) {
			v.errorf("routing.state_dir", "%q is not an absolute path", dir)
		}
		out.StateDir = dir
	}
	// lan_interfaces is checked in crossCheck, against the uplinks.
	return out
}

func (v *validator) probe(p *rawProbe) Probe {
	var out Probe
	out.Targets, out.TargetNames = v.targets("probe.targets", p.Targets)
	if len(out.Targets) == 0 {
		out.Targets = nil
	}
	out.Targets6 = v.targets6("probe.targets6", p.Targets6)
	out.Gateway, _ = v.boolean("probe.gateway", p.Gateway, false)
	if d, ok := v.duration("probe.interval", p.Interval, defaultInterval); ok && d < minInterval {
		v.errorf("probe.interval", "%q is shorter than %v", p.Interval.val, minInterval)
	} else {
		out.Interval = d
	}
	if d, ok := v.duration("probe.timeout", p.Timeout, defaultTimeout); ok && d > maxTimeout {
		v.errorf("probe.timeout", "%q is longer than %v", p.Timeout.val, maxTimeout)
	} else {
		out.Timeout = d
	}
	out.DownAfter = v.count("probe.down_after", p.DownAfter, defaultDownAfter)
	out.UpAfter = v.count("probe.up_after", p.UpAfter, defaultUpAfter)
	// reliability is checked against the target lists in crossCheck.
	out.Reliability = v.count("probe.reliability", p.Reliability, defaultReliability)
	out.Window = v.count("probe.window", p.Window, defaultWindow)
	if out.Window > maxWindow {
		v.errorf("probe.window", "%d is more than %d probes", out.Window, maxWindow)
	}

	var lossOK bool
	out.DegradedLoss, lossOK = v.percent("probe.degraded_loss", p.DegradedLoss, defaultDegradedLoss)
	if r, ok := v.percent("probe.recover_loss", p.RecoverLoss, defaultRecoverLoss); ok {
		out.RecoverLoss = r
		if lossOK && out.DegradedLoss > 0 && r >= out.DegradedLoss {
			v.errorf(setOr("probe.recover_loss", p.RecoverLoss.set, "probe.degraded_loss"),
				"recover_loss %v%%%s is not below degraded_loss (%v%%): an uplink must recover below the loss that degraded it",
				r, defaultNote(p.RecoverLoss.set), out.DegradedLoss)
		}
	}
	var rttOK bool
	out.DegradedRTT, rttOK = v.durationOrZero("probe.degraded_rtt", p.DegradedRTT, defaultDegradedRTT)
	if rttOK && out.Timeout > 0 && out.DegradedRTT >= out.Timeout {
		v.errorf(setOr("probe.degraded_rtt", p.DegradedRTT.set, "probe.timeout"),
			"degraded_rtt %v%s is not shorter than the timeout (%v): a slower reply is a loss, so the RTT never gets there; "+
				`lower it (and recover_rtt), or set it to "0s" to turn it off`, out.DegradedRTT, defaultNote(p.DegradedRTT.set), out.Timeout)
	}
	if r, ok := v.durationOrZero("probe.recover_rtt", p.RecoverRTT, defaultRecoverRTT); ok {
		out.RecoverRTT = r
		if rttOK && out.DegradedRTT > 0 && r >= out.DegradedRTT {
			v.errorf(setOr("probe.recover_rtt", p.RecoverRTT.set, "probe.degraded_rtt"),
				"recover_rtt %v%s is not shorter than degraded_rtt (%v): an uplink must recover below the RTT that degraded it",
				r, defaultNote(p.RecoverRTT.set), out.DegradedRTT)
		}
	}
	if s, ok := v.str("probe.degraded_policy", p.DegradedPolicy, defaultPolicy); ok {
		if s != DegradedStandby && s != DegradedKeep {
			v.errorf("probe.degraded_policy", `%q: must be %q or %q`, s, DegradedStandby, DegradedKeep)
		}
		out.DegradedPolicy = s
	}

	if n, ok := v.integer("probe.flap_limit", p.FlapLimit, defaultFlapLimit); ok {
		if n < 0 || n > maxFlapLimit {
			v.errorf("probe.flap_limit", "%d is out of range (0 turns damping off, at most %d)", n, maxFlapLimit)
		}
		out.FlapLimit = int(n)
	}
	out.FlapWindow, _ = v.duration("probe.flap_window", p.FlapWindow, defaultFlapWindow)
	out.FlapHold, _ = v.duration("probe.flap_hold", p.FlapHold, defaultFlapHold)
	if d, ok := v.duration("probe.flap_hold_max", p.FlapHoldMax, defaultFlapHoldMax); ok {
		if out.FlapHold > 0 && d < out.FlapHold {
			v.errorf("probe.flap_hold_max", "%v is shorter than flap_hold (%v)", d, out.FlapHold)
		}
		out.FlapHoldMax = d
	}
	v.checks(p, &out)
	return out
}

func (v *validator) uplink(path string, r *rawUplink) Uplink {
	var out Uplink
	if s, ok := v.required(path+".name", r.Name); ok {
		if !validName(s) {
			v.errorf(path+".name", "%q is an invalid name: use 1 to %d letters, digits, '_', '.' or '-'", s, maxNameLength)
		}
		out.Name = s
	}
	if s, ok := v.required(path+".interface", r.Interface); ok {
		if msg := ifnameProblem(s); msg != "" {
			v.errorf(path+".interface", "%s", msg)
		} else if s == "lo" {
			v.errorf(path+".interface", "lo is the loopback interface, not an uplink")
		}
		out.Interface = s
	}
	v.dynamic(path, r, &out)
	v.ipv6Keys(path, r, &out)
	if n, ok := v.integer(path+".weight", r.Weight, defaultWeight); ok {
		if n < 1 || n > maxWeight {
			v.errorf(path+".weight", "%d is out of range (1..%d)", n, maxWeight)
		}
		out.Weight = int(n)
	}
	if !r.Table.set {
		v.errorf(path+".table", "missing; every uplink needs its own routing table (1..%d, not 253..255)", maxTable)
	} else if n, ok := v.integer(path+".table", r.Table, 0); ok {
		if msg := tableProblem(n); msg != "" {
			v.errorf(path+".table", "%s", msg)
		}
		out.Table = int(n)
	}
	if r.ProbeTargets.set {
		out.ProbeTargets, out.ProbeTargetNames = v.targets(path+".probe_targets", r.ProbeTargets)
	}
	if r.ProbeGateway.set {
		if b, ok := v.boolean(path+".probe_gateway", r.ProbeGateway, false); ok {
			out.ProbeGateway = &b
		}
	}
	return out
}

// crossCheck finds problems between settings: duplicates among uplinks, an
// uplink on the balance table, LAN interfaces that are uplinks.
func (v *validator) crossCheck(cfg *Config, raw *rawConfig) {
	type first struct {
		uplink int
		line   int
	}
	names := make(map[string]first)
	ifaces := make(map[string]first)
	tables := make(map[int]first)
	balanceOK := !raw.Routing.BalanceTable.set ||
		raw.Routing.BalanceTable.bad == "" && tableProblem(raw.Routing.BalanceTable.val) == ""
	for i, u := range cfg.Uplinks {
		path := indexPath("uplink", i)
		r := &raw.Uplinks[i]
		if r.Name.bad == "" && validName(u.Name) {
			if f, dup := names[u.Name]; dup {
				v.errorf(path+".name", "duplicate name %q (also uplink[%d], line %d)", u.Name, f.uplink, f.line)
			} else {
				names[u.Name] = first{i, v.pos.line(path + ".name")}
			}
		}
		if r.Interface.bad == "" && ifnameProblem(u.Interface) == "" {
			if f, dup := ifaces[u.Interface]; dup {
				v.errorf(path+".interface", "duplicate interface %q (also uplink[%d], line %d)", u.Interface, f.uplink, f.line)
			} else {
				ifaces[u.Interface] = first{i, v.pos.line(path + ".interface")}
			}
		}
		if r.Table.set && r.Table.bad == "" && tableProblem(r.Table.val) == "" {
			switch f, dup := tables[u.Table]; {
			case balanceOK && u.Table == cfg.Routing.BalanceTable:
				v.errorf(path+".table", "table %d is the balance table (routing.balance_table); use another one", u.Table)
			case dup:
				v.errorf(path+".table", "duplicate table %d (also uplink[%d], line %d)", u.Table, f.uplink, f.line)
			default:
				tables[u.Table] = first{i, v.pos.line(path + ".table")}
			}
		}
	}

	v.reliability(cfg, raw)
	v.crossCheck6(cfg, raw)

	const lan = "routing.lan_interfaces"
	lanNames := v.stringList(lan, raw.Routing.LANInterfaces)
	seen := make(map[string]bool)
	for i, name := range lanNames {
		path := indexPath(lan, i)
		if msg := ifnameProblem(name); msg != "" {
			v.errorf(path, "%s", msg)
			continue
		}
		if seen[name] {
			v.errorf(path, "duplicate interface %q", name)
			continue
		}
		seen[name] = true
		if name == "lo" {
			v.errorf(path, "locally originated traffic is always balanced; do not list lo")
			continue
		}
		if f, ok := ifaces[name]; ok {
			v.errorf(path, "%s is the interface of uplink %s (uplink[%d], line %d), not a LAN interface",
				name, cfg.Uplinks[f.uplink].Name, f.uplink, f.line)
			continue
		}
		cfg.Routing.LANInterfaces = append(cfg.Routing.LANInterfaces, name)
	}
	if m := cfg.Routing.MarkMask; m != 0 && raw.Routing.MarkMask.bad == "" {
		// Marks are the values 1..2^bits-1 deposited into the mask.
		if room := uint64(1)<<bits.OnesCount32(m) - 1; room < uint64(len(cfg.Uplinks)) {
			v.errorf("routing.mark_mask", "%#x has room for %d uplinks, the file has %d; give it more bits", m, room, len(cfg.Uplinks))
		}
	}
}

// reliability checks that every explicit target list has at least
// reliability targets; an uplink probed at its gateway alone needs just it.
func (v *validator) reliability(cfg *Config, raw *rawConfig) {
	n := cfg.Probe.Reliability
	if n <= 1 || raw.Probe.Reliability.bad != "" {
		return
	}
	globalUsed := false
	for i, u := range cfg.Uplinks {
		if u.IPv6Only {
			continue // no IPv4 probes
		}
		if u.ProbeTargets == nil {
			globalUsed = true
			continue
		}
		if k := roundTargets(u.ProbeTargets) + len(u.ProbeTargetNames); k > 0 && k < n {
			v.errorf(indexPath("uplink", i)+".probe_targets", "%s, fewer than the %d that probe.reliability requires to answer", targetCount(k), n)
		}
	}
	if k := roundTargets(cfg.Probe.Targets) + len(cfg.Probe.TargetNames); globalUsed && k > 0 && k < n {
		v.errorf("probe.reliability", "%d targets must answer, but probe.targets has %s", n, targetCount(k))
	}
}

func targetCount(n int) string {
	if n == 1 {
		return "1 target"
	}
	return strconv.Itoa(n) + " targets"
}

// integer returns the value of an integer setting, or def when it is
// absent; ok is false when the value has the wrong type (already reported).
func (v *validator) integer(path string, o opt[int64], def int64) (n int64, ok bool) {
	switch {
	case !o.set:
		return def, true
	case o.bad != "":
		v.errorf(path, "expected an integer, got %s", o.bad)
		return 0, false
	}
	return o.val, true
}

// count returns a number of probe rounds, at least 1.
func (v *validator) count(path string, o opt[int64], def int64) int {
	n, ok := v.integer(path, o, def)
	if ok && n < 1 {
		v.errorf(path, "%d: must be at least 1", n)
	}
	return int(n)
}

func (v *validator) boolean(path string, o opt[bool], def bool) (bool, bool) {
	switch {
	case !o.set:
		return def, true
	case o.bad != "":
		v.errorf(path, "expected true or false, got %s", o.bad)
		return false, false
	}
	return o.val, true
}

// percent returns a percentage setting, 0 to 100.
func (v *validator) percent(path string, o opt[float64], def float64) (float64, bool) {
	switch {
	case !o.set:
		return def, true
	case o.bad != "":
		v.errorf(path, "expected a percentage such as 30 or 2.5, got %s", o.bad)
		return 0, false
	case o.val < 0 || o.val > 100 || math.IsNaN(o.val):
		v.errorf(path, "%v is out of range (0 to 100 percent)", o.val)
		return 0, false
	}
	return o.val, true
}

func (v *validator) str(path string, o opt[string], def string) (string, bool) {
	switch {
	case !o.set:
		return def, true
	case o.bad != "":
		v.errorf(path, "expected a string, got %s", o.bad)
		return "", false
	}
	return o.val, true
}

// oneOf returns a string setting that must be one of choices.
func (v *validator) oneOf(path string, o opt[string], def string, choices ...string) string {
	s, ok := v.str(path, o, def)
	if ok && !slices.Contains(choices, s) {
		quoted := make([]string, len(choices))
		for i, c := range choices {
			quoted[i] = strconv.Quote(c)
		}
		last := len(quoted) - 1
		v.errorf(path, "%q: must be %s or %s", s, strings.Join(quoted[:last], ", "), quoted[last])
	}
	return s
}

// required returns a string setting that has no default.
func (v *validator) required(path string, o opt[string]) (string, bool) {
	if !o.set {
		v.errorf(path, "missing")
		return "", false
	}
	return v.str(path, o, "")
}

func (v *validator) stringList(path string, o opt[[]string]) []string {
	if o.bad != "" {
		v.errorf(path, "expected an array of strings, got %s", o.bad)
		return nil
	}
	return o.val
}

// durationOrZero returns a duration setting, which must not be negative.
func (v *validator) durationOrZero(path string, o opt[string], def time.Duration) (time.Duration, bool) {
	if o.set && o.bad == "" {
		if d, err := time.ParseDuration(o.val); err == nil && d <= 0 {
			if d < 0 {
				v.errorf(path, "%q: must not be negative", o.val)
				return 0, false
			}
			return 0, true
		}
	}
	return v.duration(path, o, def)
}

// duration returns a duration setting, which must be positive.
func (v *validator) duration(path string, o opt[string], def time.Duration) (time.Duration, bool) {
	if !o.set {
		return def, true
	}
	if o.bad != "" {
		v.errorf(path, `expected a duration string such as "250ms", got %s`, o.bad)
		return 0, false
	}
	d, err := time.ParseDuration(o.val)
	if err != nil {
		v.errorf(path, `%q is not a duration; write a number with a unit, such as "250ms" or "1.5s"`, o.val)
		return 0, false
	}
	if d <= 0 {
		v.errorf(path, "%q: must be positive", o.val)
		return 0, false
	}
	return d, true
}

// setOr names the key a problem belongs to: key when the file sets it,
// else other, the setting that made key's default wrong.
func setOr(key string, set bool, other string) string {
	if set {
		return key
	}
	return other
}

func defaultNote(set bool) string {
	if set {
		return ""
	}
	return " (the default)"
}

// targets returns a list of IPv4 probe targets and host names. It is not
// nil when the setting is present, even when empty.
func (v *validator) targets(path string, o opt[[]string]) ([]Target, []string) {
	return v.targetList(path, o, 4)
}

// targetList returns a list of probe targets of family fam (4 or 6): host
// names are IPv4 targets only.
func (v *validator) targetList(path string, o opt[[]string], fam int) ([]Target, []string) {
	strs := v.stringList(path, o)
	if !o.set || o.bad != "" {
		return nil, nil
	}
	out := make([]Target, 0, len(strs))
	var names []string
	seen := make(map[Target]bool)
	seenName := make(map[string]bool)
	for i, s := range strs {
		p := indexPath(path, i)
		// A bare host name is an ICMP target the daemon resolves.
		if _, err := netip.ParseAddr(s); err != nil && hostName(s) && fam == 4 {
			n := strings.ToLower(strings.TrimSuffix(s, "."))
			if seenName[n] {
				v.errorf(p, "duplicate target %s", n)
				continue
			}
			seenName[n] = true
			names = append(names, n)
			continue
		}
		t, ok := v.target(p, s, fam)
		if !ok {
			continue
		}
		if seen[t] {
			v.errorf(p, "duplicate target %v", t)
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	if rounds, checks := Probed(out); len(checks) > 0 && len(rounds) == 0 && len(names) == 0 {
		v.errorf(path, "has HTTP checks but no ICMP or TCP target: the checks only veto rounds, and rounds need a target")
	}
	return out, names
}

// ipv4 parses a unicast IPv4 address; it returns the zero Addr after
// reporting a problem. hint6 says where an IPv6 address belongs.
func (v *validator) ipv4(path, s, hint6 string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		why := hint6
		if err != nil {
			why = "write it as four decimal numbers, such as 192.0.2.1"
		}
		v.errorf(path, "%q is not an IPv4 address; %s", s, why)
		return netip.Addr{}
	}
	if msg := unicastProblem(a); msg != "" {
		v.errorf(path, "%s", msg)
		return netip.Addr{}
	}
	return a
}

// unicastProblem says why a cannot be a gateway or probe target.
func unicastProblem(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return fmt.Sprintf("%v is the unspecified address", a)
	case a.As4()[0] == 0:
		return fmt.Sprintf("%v is in 0.0.0.0/8 (unspecified, \"this network\")", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Sprintf("%v is the broadcast address", a)
	case a.IsMulticast():
		return fmt.Sprintf("%v is a multicast address", a)
	case a.IsLoopback():
		return fmt.Sprintf("%v is a loopback address", a)
	}
	return ""
}

// tableProblem says why n cannot be a routing table of uplinkd.
func tableProblem(n int64) string {
	if name, ok := reservedTables[n]; ok {
		return fmt.Sprintf("table %d is reserved (%s)", n, name)
	}
	if n < 1 || n > maxTable {
		return fmt.Sprintf("table %d is out of range (1..%d)", n, maxTable)
	}
	return ""
}

// validName reports whether s is a valid uplink name: [A-Za-z0-9_.-]{1,32}.
// Names appear in logs, metrics and hook arguments, so they are kept plain.
func validName(s string) bool {
	if len(s) < 1 || len(s) > maxNameLength {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ifnameProblem says why the kernel would refuse s as an interface name
// (dev_valid_name in net/core/dev.c).
func ifnameProblem(s string) string {
	switch {
	case s == "":
		return `"" is an invalid interface name: it is empty`
	case len(s) > maxIfnameLen:
		return fmt.Sprintf("%q is an invalid interface name: longer than %d bytes", s, maxIfnameLen)
	case s == "." || s == "..":
		return fmt.Sprintf("%q is an invalid interface name", s)
	}
	if i := strings.IndexAny(s, "/:"); i >= 0 {
		return fmt.Sprintf("%q is an invalid interface name: it contains '%c'", s, s[i])
	}
	if slices.ContainsFunc([]byte(s), func(c byte) bool { return c <= ' ' || c == 0x7f }) {
		return fmt.Sprintf("%q is an invalid interface name: it contains whitespace or a control character", s)
	}
	return ""
}
