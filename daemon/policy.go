package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/hooks"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/pin"
	"github.com/uplinkd/uplinkd/status"
)

// policyState is what the loop keeps of one policy between reconciles.
type policyState struct {
	choice netops.Choice
	since  time.Time // when it took its current tier
}

// LastResorts maps the configuration's last resorts to netops'.
var lastResorts = map[string]netops.LastResort{
	config.ResortMain:        netops.ResortMain,
	config.ResortDefault:     netops.ResortDefault,
	config.ResortUnreachable: netops.ResortUnreachable,
	config.ResortBlackhole:   netops.ResortBlackhole,
}

// policySettings converts the configured policies and rules for Plan.
func policySettings(cfg *config.Config) ([]netops.Policy, []netops.PolicyRule) {
	pols := make([]netops.Policy, 0, len(cfg.Policies))
	for _, p := range cfg.Policies {
		pols = append(pols, netops.Policy{
			Name: p.Name, Table: p.Table, Tiers: p.Tiers, LastResort: lastResorts[p.LastResort],
			KeepDegraded: p.DegradedPolicy == config.DegradedKeep,
		})
	}
	rng := func(r *config.Range) *netops.Range {
		if r == nil {
			return nil
		}
		return &netops.Range{Start: r.Start, End: r.End}
	}
	rules := make([]netops.PolicyRule, 0, len(cfg.Rules))
	for _, r := range cfg.Rules {
		rules = append(rules, netops.PolicyRule{
			From: r.From, To: r.To, IifName: r.Iif, IPProto: r.Proto,
			Sport: rng(r.Sport), Dport: rng(r.Dport), Mark: r.Mark, Mask: r.Mask, UID: rng(r.UID),
			Policy: r.Policy,
		})
	}
	return pols, rules
}

// notePolicies records what every policy uses in family ch.fam after a
// reconcile: a log line and the on_policy hook (with the family) when a
// policy changes tier, and with failback =
// "all" the flush of that family's pins of the uplinks a policy left for a
// better tier. Policies are chosen per family, as netops plans them: an
// uplink can serve a policy in IPv4 and not in IPv6. The metrics are
// IPv4's (they have no family label).
func (d *Daemon) notePolicies(ch *chosen) {
	in, fam, choices := ch.in, ch.fam, ch.choices
	now := time.Now()
	seen := make(map[string]bool, len(choices))
	for _, c := range choices {
		key := familyKey(c.Policy, fam)
		seen[key] = true
		if fam != ipv6 {
			d.metrics.Policy(c.Policy, c.Tier, c.LastResort.String())
		}
		old, known := d.policies[key]
		if known && slices.Equal(old.choice.Members, c.Members) && old.choice.Tier == c.Tier && old.choice.LastResort == c.LastResort {
			continue
		}
		st := &policyState{choice: c, since: now}
		if known && old.choice.Tier == c.Tier {
			st.since = old.since
		}
		d.policies[key] = st
		d.changed = true
		if !known || old.choice.Tier == c.Tier {
			continue
		}
		reason := policyReason(c)
		d.log.Info("policy changed tier", "policy", c.Policy, "from", old.choice.Tier, "to", c.Tier, "reason", reason, "family", fam.String())
		if argv := d.cfg.Hooks.OnPolicy; len(argv) > 0 {
			d.hooks.Enqueue(hooks.Job{Hook: "on_policy", Argv: argv, Timeout: d.cfg.Hooks.Timeout, Event: hooks.Event{
				Policy: c.Policy, Family: fam.String(), TierFrom: old.choice.Tier, TierTo: c.Tier, Reason: reason, Time: now,
				Active: d.active(), Uplinks: len(d.uplinks),
			}})
		}
		if p, ok := d.cfg.PolicyNamed(c.Policy); ok && p.Failback == config.FailbackAll && c.Tier > 0 &&
			(old.choice.Tier == 0 || c.Tier < old.choice.Tier) {
			d.failbackAll(c.Policy, old.choice, c, in, fam)
		}
	}
	d.forgetPolicies(fam, seen)
}

// forgetPolicies drops the policies of family fam not in keep (removed by
// a reload, or all of IPv6's when no uplink has IPv6 any more).
func (d *Daemon) forgetPolicies(fam family, keep map[string]bool) {
	for key := range d.policies {
		name, is6 := strings.CutSuffix(key, "/ipv6")
		if is6 != (fam == ipv6) || keep[key] {
			continue
		}
		delete(d.policies, key)
		if fam != ipv6 {
			d.metrics.ForgetPolicy(name)
		}
		d.changed = true
	}
}

func policyReason(c netops.Choice) string {
	if c.Tier == 0 {
		return "no tier has a usable uplink: last resort " + c.LastResort.String()
	}
	names := make([]string, len(c.Members))
	for i, m := range c.Members {
		names[i] = m.Name
	}
	return fmt.Sprintf("tier %d is the best with a usable uplink (%s)", c.Tier, strings.Join(names, ", "))
}

// failbackAll deletes the pinned connections of the uplinks policy left
// for a better tier, so they restart there. Pins are per uplink: other
// policies' connections on those uplinks restart too (documented).
func (d *Daemon) failbackAll(policy string, from, to netops.Choice, in []netops.Uplink, fam family) {
	if !d.pinOn() {
		return
	}
	p := d.pin
	for _, m := range from.Members {
		if slices.ContainsFunc(to.Members, func(n netops.Member) bool { return n.Name == m.Name }) {
			continue
		}
		i := slices.IndexFunc(in, func(u netops.Uplink) bool { return u.Name == m.Name })
		if i < 0 || in[i].Mark == 0 {
			continue
		}
		name, mark := m.Name, in[i].Mark
		p.flusher.Flush(d.conntrackFamily(name, fam), mark, p.mask, func(deleted int, took time.Duration, err error) {
			// The flusher's goroutine: counters and logs only.
			d.metrics.ConntrackFlush(name, "all", deleted, took, err)
			p.flushes.Add(1)
			if err != nil {
				p.flushErrs.Add(1)
				if !errors.Is(err, pin.ErrClosed) {
					d.log.Warn("failback: flushing conntrack entries by mark", "policy", policy, "uplink", name, "err", err)
				}
				return
			}
			p.flushed.Add(uint64(deleted))
			d.log.Info("failback: conntrack entries flushed", "policy", policy, "uplink", name,
				"mark", fmt.Sprintf("%#x", mark), "deleted", deleted, "took", took.Round(time.Microsecond))
		})
	}
}

// inUse says which uplinks some policy uses for new connections.
func inUse(choices []netops.Choice) map[string]bool {
	out := make(map[string]bool)
	for _, c := range choices {
		for _, m := range c.Members {
			out[m.Name] = true
		}
	}
	return out
}

// policyStatus is what status shows of the policies, the default first:
// IPv4's, then, when an uplink has IPv6, IPv6's (each policy chooses its
// tier per family).
func (d *Daemon) policyStatus() []status.Policy {
	out := d.familyPolicyStatus(d.only4(d.inputs()), ipv4)
	if len(d.familyEntities(ipv6)) > 0 {
		out = append(out, d.familyPolicyStatus(d.inputs6(), ipv6)...)
	}
	return out
}

// familyPolicyStatus is policyStatus of family fam, whose inputs are in.
func (d *Daemon) familyPolicyStatus(in []netops.Uplink, fam family) []status.Policy {
	s := d.settings()
	s.Family = fam
	pols := netops.Choose(s, in)
	out := make([]status.Policy, 0, len(pols))
	for _, c := range pols {
		ps := status.Policy{Name: c.Policy, Family: fam.String(), Table: c.Table, Tier: c.Tier, LastResort: c.LastResort.String(), InEffect: c.Tier == 0}
		if p, ok := d.cfg.PolicyNamed(c.Policy); ok {
			ps.Tiers = p.Tiers
			ps.Failback = p.Failback
		}
		ps.Builtin = c.Policy == config.DefaultPolicy && !slices.ContainsFunc(d.cfg.Policies, func(p config.Policy) bool { return p.Name == config.DefaultPolicy })
		if st, ok := d.policies[familyKey(c.Policy, fam)]; ok {
			ps.Since = st.since
		}
		total := 0
		for _, m := range c.Members {
			total += m.Weight
		}
		for _, m := range c.Members {
			ps.Members = append(ps.Members, status.Member{Name: m.Name, Weight: m.Weight, Share: float64(m.Weight) / float64(total)})
		}
		out = append(out, ps)
	}
	return out
}

// policyKeys are the keys of one [[policy]] (its name identifies it); a
// reload applies them all with the next reconcile, which adds the new
// rules before it deletes the old ones.
var policyKeys = []struct {
	key   string
	class keyClass
	get   func(config.Policy) any
}{
	{"table", applied, func(p config.Policy) any { return p.Table }},
	{"tiers", applied, func(p config.Policy) any { return p.Tiers }},
	{"last_resort", applied, func(p config.Policy) any { return p.LastResort }},
	{"degraded_policy", applied, func(p config.Policy) any { return p.DegradedPolicy }},
	{"failback", applied, func(p config.Policy) any { return p.Failback }},
	{"standby_interval", applied, func(p config.Policy) any { return p.StandbyInterval }},
}

// ruleKeys are the keys of one [[rule]]; rules are compared by position.
var ruleKeys = []struct {
	key   string
	class keyClass
	get   func(config.Rule) any
}{
	{"from", applied, func(r config.Rule) any { return r.From }},
	{"to", applied, func(r config.Rule) any { return r.To }},
	{"iif", applied, func(r config.Rule) any { return quote(r.Iif) }},
	{"proto", applied, func(r config.Rule) any { return r.Proto }},
	{"sport", applied, func(r config.Rule) any { return rangeOf(r.Sport) }},
	{"dport", applied, func(r config.Rule) any { return rangeOf(r.Dport) }},
	{"fwmark", applied, func(r config.Rule) any { return fmt.Sprintf("%#x/%#x", r.Mark, r.Mask) }},
	{"uid", applied, func(r config.Rule) any { return rangeOf(r.UID) }},
	{"policy", applied, func(r config.Rule) any { return r.Policy }},
}

func rangeOf(r *config.Range) string {
	if r == nil {
		return "any"
	}
	return r.String()
}

// describePolicies lists the policies and rules a reload changes.
func describePolicies(old, cfg *config.Config) []string {
	var out []string
	oldPol := make(map[string]config.Policy)
	for _, p := range old.Policies {
		oldPol[p.Name] = p
	}
	for _, p := range cfg.Policies {
		o, ok := oldPol[p.Name]
		if !ok {
			out = append(out, fmt.Sprintf("policy %s: added", p.Name))
			continue
		}
		for _, k := range policyKeys {
			if c := describeKey("policy "+p.Name+": "+k.key, k.class, k.get(o), k.get(p)); c != "" {
				out = append(out, c)
			}
		}
	}
	for _, p := range old.Policies {
		if !slices.ContainsFunc(cfg.Policies, func(n config.Policy) bool { return n.Name == p.Name }) {
			out = append(out, fmt.Sprintf("policy %s: removed", p.Name))
		}
	}
	for i := range max(len(old.Rules), len(cfg.Rules)) {
		switch {
		case i >= len(old.Rules):
			out = append(out, fmt.Sprintf("rule[%d]: added (policy %s)", i, cfg.Rules[i].Policy))
		case i >= len(cfg.Rules):
			out = append(out, fmt.Sprintf("rule[%d]: removed (policy %s)", i, old.Rules[i].Policy))
		default:
			for _, k := range ruleKeys {
				if c := describeKey(fmt.Sprintf("rule[%d].%s", i, k.key), k.class, k.get(old.Rules[i]), k.get(cfg.Rules[i])); c != "" {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// probeInterval is u's probe interval: the policies' standby_interval
// while u stands by (see standbyInterval), else probe.interval.
func (d *Daemon) probeInterval(u *uplink) time.Duration {
	return max(d.cfg.Probe.Interval, d.standbyInterval(u.cfg.Name, u.fam))
}

// standbyInterval returns the interval at which the uplink name may be
// probed because it stands by: every policy that lists it has a
// standby_interval and uses a better tier now (so no policy uses it).
// The shortest of those intervals; 0 when it does not stand by. Its state
// is kept by the slower probes, so when its tier is needed it carries
// traffic at once, and from then on it is probed at probe.interval.
func (d *Daemon) standbyInterval(name string, fam family) time.Duration {
	var out time.Duration
	listed := false
	for _, p := range d.cfg.Policies {
		tier := slices.IndexFunc(p.Tiers, func(t []string) bool { return slices.Contains(t, name) }) + 1
		if tier == 0 {
			continue
		}
		listed = true
		st, ok := d.policies[familyKey(p.Name, fam)]
		if p.StandbyInterval == 0 || !ok || st.choice.Tier == 0 || st.choice.Tier >= tier {
			return 0
		}
		if out == 0 || p.StandbyInterval < out {
			out = p.StandbyInterval
		}
	}
	if !listed || !slices.ContainsFunc(d.cfg.Policies, func(p config.Policy) bool { return p.Name == config.DefaultPolicy }) {
		// The built-in default policy uses every uplink.
		return 0
	}
	return out
}
