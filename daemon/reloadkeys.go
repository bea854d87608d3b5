package daemon

import (
	"fmt"
	"net/netip"

	"github.com/uplinkd/uplinkd/config"
)

// How a reload treats a changed key.
type keyClass int

const (
	// applied: the running daemon follows the new value (the next settle
	// re-plans and reconciles with it, or apply acts on it).
	applied keyClass = iota
	// onRestart: the old value stays in force until uplinkd restarts,
	// and the reload says so.
	onRestart
)

// restartNote is appended to the description of a change of an onRestart
// key; tests and users look for it.
const restartNote = " (takes effect on restart)"

// reloadKey is one configuration key: how to read it and what a reload
// does with a change. Every key of config.Config must be here (or in
// uplinkKeys); TestEveryKeyClassified fails otherwise.
type reloadKey struct {
	key   string
	class keyClass
	get   func(*config.Config) any
}

// globalKeys are in file order. The routing keys are applied by the next
// reconcile, which plans from the configuration in force: objects of the
// old rule priorities, tables or nexthop IDs carry uplinkd's protocol and
// are removed as no longer desired. route_protocol is special (see
// switchProtocol); flush_conntrack is read at each flush.
var globalKeys = []reloadKey{
	{"routing.lan_interfaces", applied, func(c *config.Config) any { return c.Routing.LANInterfaces }},
	{"routing.balance_table", applied, func(c *config.Config) any { return c.Routing.BalanceTable }},
	{"routing.rule_priority", applied, func(c *config.Config) any { return c.Routing.RulePriority }},
	{"routing.route_protocol", applied, func(c *config.Config) any { return c.Routing.RouteProtocol }},
	{"routing.hash", applied, func(c *config.Config) any { return c.Routing.Hash }},
	// The balancer is chosen once, against the kernel, at start.
	{"routing.balancer", onRestart, func(c *config.Config) any { return c.Routing.Balancer }},
	{"routing.nexthop_id_base", applied, func(c *config.Config) any { return c.Routing.NexthopIDBase }},
	{"routing.idle_timer", applied, func(c *config.Config) any { return c.Routing.IdleTimer }},
	{"routing.unbalanced_timer", applied, func(c *config.Config) any { return c.Routing.UnbalancedTimer }},
	{"routing.flush_conntrack", applied, func(c *config.Config) any { return c.Routing.FlushConntrack }},
	// The nftables table is opened with the mask at start.
	{"routing.mark_mask", onRestart, func(c *config.Config) any { return fmt.Sprintf("%#x", c.Routing.MarkMask) }},
	// What the next start must find (the original hash policy, the
	// src_valid_mark values) is written where the running one started.
	{"routing.state_dir", onRestart, func(c *config.Config) any { return c.Routing.StateDir }},

	// Names are resolved again on every reload.
	{"probe.targets", applied, func(c *config.Config) any { return targetList(c.Probe.Targets, c.Probe.TargetNames) }},
	{"probe.targets6", applied, func(c *config.Config) any { return targetList(c.Probe.Targets6, nil) }},
	{"probe.gateway", applied, func(c *config.Config) any { return c.Probe.Gateway }},
	{"probe.interval", applied, func(c *config.Config) any { return c.Probe.Interval }},
	{"probe.timeout", applied, func(c *config.Config) any { return c.Probe.Timeout }},
	{"probe.down_after", applied, func(c *config.Config) any { return c.Probe.DownAfter }},
	{"probe.up_after", applied, func(c *config.Config) any { return c.Probe.UpAfter }},
	{"probe.reliability", applied, func(c *config.Config) any { return c.Probe.Reliability }},
	{"probe.window", applied, func(c *config.Config) any { return c.Probe.Window }},
	{"probe.degraded_loss", applied, func(c *config.Config) any { return c.Probe.DegradedLoss }},
	{"probe.recover_loss", applied, func(c *config.Config) any { return c.Probe.RecoverLoss }},
	{"probe.degraded_rtt", applied, func(c *config.Config) any { return c.Probe.DegradedRTT }},
	{"probe.recover_rtt", applied, func(c *config.Config) any { return c.Probe.RecoverRTT }},
	{"probe.degraded_policy", applied, func(c *config.Config) any { return c.Probe.DegradedPolicy }},
	{"probe.flap_limit", applied, func(c *config.Config) any { return c.Probe.FlapLimit }},
	{"probe.flap_window", applied, func(c *config.Config) any { return c.Probe.FlapWindow }},
	{"probe.flap_hold", applied, func(c *config.Config) any { return c.Probe.FlapHold }},
	{"probe.flap_hold_max", applied, func(c *config.Config) any { return c.Probe.FlapHoldMax }},
	// Check settings are part of what a prober is started for: a change
	// restarts the probers.
	{"probe.check_interval", applied, func(c *config.Config) any { return c.Probe.CheckInterval }},
	{"probe.check_timeout", applied, func(c *config.Config) any { return c.Probe.CheckTimeout }},
	{"probe.http_expect", applied, func(c *config.Config) any { return c.Probe.HTTPExpect }},

	{"hooks.on_transition", applied, func(c *config.Config) any { return c.Hooks.OnTransition }},
	{"hooks.on_down", applied, func(c *config.Config) any { return c.Hooks.OnDown }},
	{"hooks.on_probing", applied, func(c *config.Config) any { return c.Hooks.OnProbing }},
	{"hooks.on_degraded", applied, func(c *config.Config) any { return c.Hooks.OnDegraded }},
	{"hooks.on_active", applied, func(c *config.Config) any { return c.Hooks.OnActive }},
	{"hooks.on_policy", applied, func(c *config.Config) any { return c.Hooks.OnPolicy }},
	{"hooks.timeout", applied, func(c *config.Config) any { return c.Hooks.Timeout }},
	{"hooks.max_running", applied, func(c *config.Config) any { return c.Hooks.MaxRunning }},

	// The socket is how the reload itself arrives.
	{"status.socket", onRestart, func(c *config.Config) any { return c.Status.Socket }},
	{"metrics.listen", onRestart, func(c *config.Config) any { return quote(c.Metrics.Listen) }},
	{"log.level", applied, func(c *config.Config) any { return c.Log.Level }},
	// The handler is built once, in main.
	{"log.format", onRestart, func(c *config.Config) any { return c.Log.Format }},
}

// uplinkKey is reloadKey for a key of one [[uplink]]. The name identifies
// the uplink and the interface is described on its own (a new interface
// starts the uplink over): both are classified here all the same.
type uplinkKey struct {
	key   string
	class keyClass
	get   func(config.Uplink) any
}

var uplinkKeys = []uplinkKey{
	{"name", applied, func(u config.Uplink) any { return u.Name }},
	{"interface", applied, func(u config.Uplink) any { return u.Interface }},
	// A new gateway mode applies at the next dump: a learned gateway is
	// read then (see gateway.go).
	{"gateway", applied, func(u config.Uplink) any { return gatewayKey(u) }},
	{"gateway_hold", applied, func(u config.Uplink) any { return u.GatewayHold }},
	{"address", applied, func(u config.Uplink) any { return addressKey(u) }},
	{"weight", applied, func(u config.Uplink) any { return u.Weight }},
	{"table", applied, func(u config.Uplink) any { return u.Table }},
	{"probe_targets", applied, func(u config.Uplink) any { return targets(u) }},
	{"probe_gateway", applied, func(u config.Uplink) any { return gateway(u) }},
	// The IPv6 side follows at the next dump, like gateway and address.
	{"gateway6", applied, func(u config.Uplink) any { return gateway6Key(u) }},
	{"source6", applied, func(u config.Uplink) any { return source6Key(u) }},
	{"lan_prefix6", applied, func(u config.Uplink) any { return prefixKey(u.LANPrefix6) }},
}

// gateway6Key shows gateway6 as the file has it: "(none)" (no IPv6),
// "auto" or the address.
func gateway6Key(u config.Uplink) string {
	s := "(none)"
	switch {
	case u.Gateway6Mode == config.GatewayAuto:
		s = "auto"
	case u.Gateway6.IsValid():
		s = u.Gateway6.String()
	}
	if u.IPv6 == (s == "(none)") { // never from a file
		s += fmt.Sprintf(" (ipv6 %t)", u.IPv6)
	}
	return s
}

func source6Key(u config.Uplink) string {
	if !u.Source6.IsValid() {
		return "auto"
	}
	return u.Source6.String()
}

func prefixKey(p netip.Prefix) string {
	if !p.IsValid() {
		return "(none)"
	}
	return p.String()
}

// describeKey describes a change of one key, or returns "" when its value
// is the same.
func describeKey(key string, class keyClass, a, b any) string {
	as, bs := fmt.Sprint(a), fmt.Sprint(b)
	if as == bs {
		return ""
	}
	s := fmt.Sprintf("%s: %s -> %s", key, as, bs)
	if class == onRestart {
		s += restartNote
	}
	return s
}
