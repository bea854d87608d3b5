package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where uplinkd looks for its configuration.
const DefaultPath = "/etc/uplinkd/uplinkd.toml"

// RulePriorityRange is the number of rule priorities uplinkd owns, starting
// at Routing.RulePriority.
const RulePriorityRange = 100

// Config is a validated configuration.
type Config struct {
	Routing Routing
	Probe   Probe
	Uplinks []Uplink // at least one, at most 256, in file order
	// Policies are the [[policy]] tables in file order; see PolicyNamed
	// for the built-in default policy.
	Policies []Policy
	// Rules are the [[rule]] tables, tried in file order.
	Rules   []Rule
	Hooks   Hooks
	Status  Status
	Metrics Metrics
	Log     Log
}

// Routing is the [routing] table: how uplinkd's routes and rules look in
// the kernel.
type Routing struct {
	// LANInterfaces whose forwarded traffic is balanced, together with
	// locally originated traffic. Nil: all traffic is balanced.
	LANInterfaces []string
	// BalanceTable holds the weighted default route over the uplinks that
	// may carry traffic.
	BalanceTable int
	// RulePriority is the first of the RulePriorityRange rule priorities
	// uplinkd owns: [RulePriority, RulePriority+RulePriorityRange).
	RulePriority int
	// RouteProtocol marks every route and rule uplinkd installs, so that
	// it finds exactly its own objects (5..255).
	RouteProtocol int
	// Hash is the multipath hash: "l4" (addresses and ports: one host's
	// flows spread over the uplinks), "l3" (addresses only: one host
	// talking to one server sticks to one uplink) or "source" (sticky
	// mode: every flow of one source address takes the same uplink).
	Hash string
	// Balancer is "auto" (hash-threshold with pinning, else resilient
	// when the kernel supports it, else multipath), "hash-threshold" (a
	// hash-threshold nexthop group), "resilient" (a resilient nexthop
	// group) or "multipath" (a classic multipath route).
	Balancer string
	// NexthopIDBase is the first of the nexthop object IDs uplinkd owns
	// (resilient balancer): [NexthopIDBase, NexthopIDBase+NexthopIDRange).
	NexthopIDBase uint32
	// IdleTimer: a bucket of the resilient group moves to a returning
	// uplink only after no packet used it for this long.
	IdleTimer time.Duration
	// UnbalancedTimer: after the group has been unbalanced this long,
	// busy buckets move too. 0: never.
	UnbalancedTimer time.Duration
	// FlushConntrack deletes the connection-tracking entries translated
	// to an uplink's address when it leaves the balance.
	FlushConntrack bool
	// MarkMask holds the connection-mark bits that pin connections to
	// their uplink; 0 turns pinning off.
	MarkMask uint32
	// StateDir keeps what must survive a crash (the original multipath
	// hash policy).
	StateDir string
}

// NexthopIDRange is the number of nexthop object IDs uplinkd owns,
// starting at Routing.NexthopIDBase (netops.NexthopIDRange).
const NexthopIDRange = 2048

// Probe is the [probe] table: how the health of uplinks is checked and
// judged.
type Probe struct {
	// Targets are probed through every uplink: ICMP echo, or TCP
	// connections (targets.go). Nil: no targets; an uplink is then probed
	// at its gateway (Gateway) or in carrier-only mode, active whenever
	// its link is usable.
	Targets []Target
	// TargetNames are the ICMP targets given by host name, resolved by
	// the daemon (see NamesFor); a name that does not resolve is skipped.
	TargetNames []string
	// Targets6 are probed through every uplink with IPv6, from its IPv6
	// source (ipv6.go). Empty: the IPv6 side of every uplink is in
	// carrier-only mode.
	Targets6 []Target
	// Gateway probes an uplink's own gateway when it has no targets.
	Gateway   bool
	Interval  time.Duration // between probe rounds
	Timeout   time.Duration // for the replies of one round
	DownAfter int           // failed rounds that take an active uplink out of the balance
	UpAfter   int           // good rounds that put an uplink into the balance
	// Reliability is how many targets must answer for a good round; an
	// uplink with fewer targets (its gateway alone) needs all of them.
	Reliability int
	// Window is how many probes per target the loss, RTT and jitter
	// statistics cover.
	Window int
	// DegradedLoss and DegradedRTT (0: off) move an active uplink to
	// degraded; it is active again at or below RecoverLoss and RecoverRTT.
	// Losses are percentages, 0 to 100.
	DegradedLoss, RecoverLoss float64
	DegradedRTT, RecoverRTT   time.Duration
	// DegradedPolicy: "standby" (degraded uplinks carry traffic only when
	// no uplink is active) or "keep" (they stay in the balance).
	DegradedPolicy string
	// Flap damping: from the FlapLimit-th flap (0: off) of a series of
	// flaps less than FlapWindow apart, an uplink is held out of the
	// balance for FlapHold, doubled per further flap, at most FlapHoldMax.
	FlapLimit             int
	FlapWindow            time.Duration
	FlapHold, FlapHoldMax time.Duration
	// Checks: http and https targets (targets.go) run every
	// CheckInterval, each within CheckTimeout, and must answer with
	// status HTTPExpect.
	CheckInterval, CheckTimeout time.Duration
	HTTPExpect                  int
}

// Degraded policies.
const (
	DegradedStandby = "standby"
	DegradedKeep    = "keep"
)

// Uplink is one [[uplink]] table.
type Uplink struct {
	Name      string // unique; [A-Za-z0-9_.-]{1,32}
	Interface string // unique
	// Gateway is the IPv4 next hop on Interface when GatewayMode is
	// GatewayStatic; invalid otherwise.
	Gateway netip.Addr
	// GatewayMode says where the next hop comes from: the file, the
	// interface's default routes ("auto"), or nowhere ("none": a
	// point-to-point link).
	GatewayMode GatewayMode
	// GatewayHold keeps a learned gateway (GatewayAuto) this long after
	// its route disappeared while carrier and address remain.
	GatewayHold time.Duration
	// Address selects the uplink's address among several on Interface:
	// a single address (bits 32) or a prefix; invalid: any.
	Address netip.Prefix
	Weight  int // share of new flows in the balance, 1..256
	Table   int // routing table of this uplink alone; unique
	// ProbeTargets replaces Probe.Targets for this uplink when not nil.
	// Empty and not nil: no targets for this uplink.
	ProbeTargets []Target
	// ProbeTargetNames are the host names of this uplink's own list.
	ProbeTargetNames []string
	// ProbeGateway replaces Probe.Gateway for this uplink when not nil.
	ProbeGateway *bool

	// IPv6 is true when the file sets gateway6: the uplink then has an
	// IPv6 side with its own health, routes and rules (ipv6.go).
	IPv6 bool
	// IPv6Only is true when the file sets gateway6 but no gateway: the
	// uplink has no IPv4 side at all (no IPv4 state machine, prober,
	// routes, rules or status entry). Gateway, GatewayMode and Address
	// are then unused. See HasIPv4.
	IPv6Only bool
	// Gateway6 is the IPv6 next hop on Interface when Gateway6Mode is
	// GatewayStatic (the zone stripped: it is always Interface's);
	// invalid otherwise. Usually link-local.
	Gateway6     netip.Addr
	Gateway6Mode GatewayMode
	// Source6 is the IPv6 source of the uplink's probes and routes;
	// invalid: auto (the interface's stable global address, else an
	// address of LANPrefix6 on the router).
	Source6 netip.Addr
	// LANPrefix6 is the LAN prefix the uplink's ISP delegated: sources in
	// it leave through this uplink only. Invalid: none.
	LANPrefix6 netip.Prefix
}

// Hooks is the [hooks] table: programs run on state transitions. Each
// program is an argv, executed directly (never through a shell); nil means
// none.
type Hooks struct {
	OnTransition []string // on every transition
	OnDown       []string // on every transition to down
	OnProbing    []string // ... to probing
	OnDegraded   []string // ... to degraded
	OnActive     []string // ... to active
	// OnPolicy runs when a policy changes the tier it uses (its last
	// resort counting as tier 0).
	OnPolicy []string
	// Timeout after which a hook still running is killed with its process
	// group.
	Timeout time.Duration
	// MaxRunning is the number of hooks that may run at once; the others
	// wait in a queue.
	MaxRunning int
}

// Status is the [status] table: the unix socket `uplinkd status` and
// `uplinkd reload` talk to.
type Status struct {
	Socket string // absolute path
}

// Metrics is the [metrics] table.
type Metrics struct {
	// Listen is the address of the Prometheus endpoint, "IP:port" or
	// ":port". Empty: no endpoint.
	Listen string
}

// Log is the [log] table.
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
}

// HasIPv4 says whether u has an IPv4 side (the file sets gateway).
func (u Uplink) HasIPv4() bool { return !u.IPv6Only }

// TargetsFor returns the probe targets of u: its own when it has any list,
// even an empty one, else those of [probe]; when that leaves none and
// gateway probing is on for u, its gateway. Empty: carrier-only mode.
func (c *Config) TargetsFor(u Uplink) []Target {
	return c.TargetsWith(u, u.Gateway)
}

// TargetsWith is TargetsFor for an uplink whose gateway is gw now (a
// learned one; invalid while unknown or on a point-to-point link).
func (c *Config) TargetsWith(u Uplink, gw netip.Addr) []Target {
	if u.IPv6Only {
		return nil
	}
	targets := c.Probe.Targets
	if u.ProbeTargets != nil {
		targets = u.ProbeTargets
	}
	if len(targets) > 0 {
		return targets
	}
	if c.ProbesGateway(u) && gw.IsValid() {
		return []Target{{Method: MethodICMP, Addr: gw}}
	}
	return targets
}

// ProbesGateway says whether u is probed at its gateway (it has no
// targets, and gateway probing is on for it).
func (c *Config) ProbesGateway(u Uplink) bool {
	if u.GatewayMode == GatewayNone {
		return false
	}
	if u.ProbeTargets == nil && (len(c.Probe.Targets) > 0 || len(c.Probe.TargetNames) > 0) ||
		len(u.ProbeTargets) > 0 || len(u.ProbeTargetNames) > 0 {
		return false
	}
	gw := c.Probe.Gateway
	if u.ProbeGateway != nil {
		gw = *u.ProbeGateway
	}
	return gw
}

// ReliabilityFor returns how many of u's targets must answer for a good
// round: [probe] reliability, or all of them when u has fewer (as when
// only its gateway is probed).
func (c *Config) ReliabilityFor(u Uplink) int {
	return max(1, min(c.Probe.Reliability, roundTargets(c.TargetsFor(u))))
}

// Defaults of the pinning and restart keys.
const (
	// DefaultMarkMask is pin.DefaultMask: clear of tailscale (0xff0000),
	// kube-proxy and docker (0x4000, 0x8000), wg-quick (0xca6c) and
	// firewalld.
	DefaultMarkMask = 0xff000000
	// DefaultStateDir is systemd's RuntimeDirectory of the unit.
	DefaultStateDir = "/run/uplinkd"
	// defaultUnbalancedTimer: see unbalanced_timer in etc/uplinkd.toml.
	defaultUnbalancedTimer = 10 * time.Second
)

// Defaults for keys left out of the file.
const (
	defaultBalanceTable  = 250
	defaultRulePriority  = 10000
	defaultRouteProtocol = 201
	defaultHash          = "l4"
	defaultBalancer      = "auto"
	defaultNexthopIDBase = 2010000000
	defaultIdleTimer     = 120 * time.Second // the kernel's own default
	defaultFlush         = true
	defaultInterval      = 500 * time.Millisecond
	defaultTimeout       = 430 * time.Millisecond
	defaultDownAfter     = 4
	defaultUpAfter       = 2
	defaultReliability   = 1
	defaultWindow        = 50
	defaultDegradedLoss  = 30 // percent
	defaultRecoverLoss   = 10 // percent
	defaultDegradedRTT   = 300 * time.Millisecond
	defaultRecoverRTT    = 200 * time.Millisecond
	defaultPolicy        = DegradedStandby
	defaultFlapLimit     = 3
	defaultFlapWindow    = 60 * time.Second
	defaultFlapHold      = 30 * time.Second
	defaultFlapHoldMax   = 10 * time.Minute
	defaultCheckInterval = 5 * time.Second
	defaultCheckTimeout  = 2 * time.Second
	defaultHTTPExpect    = 204
	defaultWeight        = 1
	defaultHookTimeout   = 10 * time.Second
	defaultMaxRunning    = 4
	defaultLogLevel      = "info"
	defaultLogFormat     = "text"
	// DefaultSocket is where the status socket is, unless [status] socket
	// says otherwise.
	DefaultSocket = "/run/uplinkd/uplinkd.sock"
)

// Load reads and validates the configuration file at path.
//
// A file that users other than its owner and group may write is refused:
// uplinkd runs as root and runs the hook programs the file names.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	// The mode of the file read, not of whatever the path names later.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o002 != 0 {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("refused: mode %#o lets any user rewrite the configuration of a daemon running as root; run chmod o-w %s", perm, path)}}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates the configuration in data; name is the file name used in
// errors. On failure it returns Errors with every problem found.
func Parse(name string, data []byte) (*Config, error) {
	var raw rawConfig
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, Errors{{File: name, Line: syntaxErrorLine(data, perr.Position), Msg: "invalid TOML: " + perr.Message}}
		}
		// The document is valid TOML, but a table has the wrong shape
		// (routing = 5, [uplink] for [[uplink]]). The decoder stops there,
		// leaving raw half filled, so report the shape and nothing else.
		return nil, shapeErrors(name, data, err)
	}
	v := &validator{file: name, pos: scanPositions(string(data))}
	v.unknownKeys(md)
	cfg := v.config(&raw)
	if len(v.errs) > 0 {
		v.errs.sortByLine()
		return nil, v.errs
	}
	return cfg, nil
}

// syntaxErrorLine returns the line of a TOML syntax error. The toml
// package counts a newline that ends a line too early ("[routing" followed
// by a newline) as the start of the next line; the byte offset does not.
func syntaxErrorLine(data []byte, p toml.Position) int {
	if p.Line == 0 || p.Start < 0 || len(data) == 0 {
		return p.Line
	}
	end := min(p.Start, len(data)-1)
	return 1 + bytes.Count(data[:end], []byte("\n"))
}

// rawConfig mirrors the file. Every setting is an opt, which records
// presence and type mismatches instead of failing the decoder, so that all
// of them are reported.
type rawConfig struct {
	Routing  rawRouting  `toml:"routing"`
	Probe    rawProbe    `toml:"probe"`
	Uplinks  []rawUplink `toml:"uplink"`
	Policies []rawPolicy `toml:"policy"`
	Rules    []rawRule   `toml:"rule"`
	Hooks    rawHooks    `toml:"hooks"`
	Status   rawStatus   `toml:"status"`
	Metrics  rawMetrics  `toml:"metrics"`
	Log      rawLog      `toml:"log"`
}

type rawRouting struct {
	LANInterfaces opt[[]string] `toml:"lan_interfaces"`
	BalanceTable  opt[int64]    `toml:"balance_table"`
	RulePriority  opt[int64]    `toml:"rule_priority"`
	RouteProtocol opt[int64]    `toml:"route_protocol"`
	Hash          opt[string]   `toml:"hash"`

	Balancer        opt[string] `toml:"balancer"`
	NexthopIDBase   opt[int64]  `toml:"nexthop_id_base"`
	IdleTimer       opt[string] `toml:"idle_timer"`
	UnbalancedTimer opt[string] `toml:"unbalanced_timer"`
	FlushConntrack  opt[bool]   `toml:"flush_conntrack"`
	MarkMask        opt[int64]  `toml:"mark_mask"`
	StateDir        opt[string] `toml:"state_dir"`
}

type rawProbe struct {
	Targets        opt[[]string] `toml:"targets"`
	Targets6       opt[[]string] `toml:"targets6"`
	Gateway        opt[bool]     `toml:"gateway"`
	Interval       opt[string]   `toml:"interval"`
	Timeout        opt[string]   `toml:"timeout"`
	DownAfter      opt[int64]    `toml:"down_after"`
	UpAfter        opt[int64]    `toml:"up_after"`
	Reliability    opt[int64]    `toml:"reliability"`
	Window         opt[int64]    `toml:"window"`
	DegradedLoss   opt[float64]  `toml:"degraded_loss"`
	RecoverLoss    opt[float64]  `toml:"recover_loss"`
	DegradedRTT    opt[string]   `toml:"degraded_rtt"`
	RecoverRTT     opt[string]   `toml:"recover_rtt"`
	DegradedPolicy opt[string]   `toml:"degraded_policy"`
	FlapLimit      opt[int64]    `toml:"flap_limit"`
	FlapWindow     opt[string]   `toml:"flap_window"`
	FlapHold       opt[string]   `toml:"flap_hold"`
	FlapHoldMax    opt[string]   `toml:"flap_hold_max"`
	CheckInterval  opt[string]   `toml:"check_interval"`
	CheckTimeout   opt[string]   `toml:"check_timeout"`
	HTTPExpect     opt[int64]    `toml:"http_expect"`
}

type rawUplink struct {
	Name         opt[string]   `toml:"name"`
	Interface    opt[string]   `toml:"interface"`
	Gateway      opt[string]   `toml:"gateway"`
	GatewayHold  opt[string]   `toml:"gateway_hold"`
	Address      opt[string]   `toml:"address"`
	Weight       opt[int64]    `toml:"weight"`
	Table        opt[int64]    `toml:"table"`
	ProbeTargets opt[[]string] `toml:"probe_targets"`
	ProbeGateway opt[bool]     `toml:"probe_gateway"`
	Gateway6     opt[string]   `toml:"gateway6"`
	Source6      opt[string]   `toml:"source6"`
	LANPrefix6   opt[string]   `toml:"lan_prefix6"`
}

type rawHooks struct {
	OnTransition opt[[]string] `toml:"on_transition"`
	OnDown       opt[[]string] `toml:"on_down"`
	OnProbing    opt[[]string] `toml:"on_probing"`
	OnDegraded   opt[[]string] `toml:"on_degraded"`
	OnActive     opt[[]string] `toml:"on_active"`
	OnPolicy     opt[[]string] `toml:"on_policy"`
	Timeout      opt[string]   `toml:"timeout"`
	MaxRunning   opt[int64]    `toml:"max_running"`
}

type rawStatus struct {
	Socket opt[string] `toml:"socket"`
}

type rawMetrics struct {
	Listen opt[string] `toml:"listen"`
}

type rawLog struct {
	Level  opt[string] `toml:"level"`
	Format opt[string] `toml:"format"`
}

// schema lists the keys of each table, "" being the top level, from the
// toml tags of the raw structs.
var schema = map[string][]string{
	"":        tomlKeys(reflect.TypeFor[rawConfig]()),
	"routing": tomlKeys(reflect.TypeFor[rawRouting]()),
	"probe":   tomlKeys(reflect.TypeFor[rawProbe]()),
	"uplink":  tomlKeys(reflect.TypeFor[rawUplink]()),
	"policy":  tomlKeys(reflect.TypeFor[rawPolicy]()),
	"rule":    tomlKeys(reflect.TypeFor[rawRule]()),
	"hooks":   tomlKeys(reflect.TypeFor[rawHooks]()),
	"status":  tomlKeys(reflect.TypeFor[rawStatus]()),
	"metrics": tomlKeys(reflect.TypeFor[rawMetrics]()),
	"log":     tomlKeys(reflect.TypeFor[rawLog]()),
}

// tables are the single tables of the file, [[uplink]] aside, in the order
// of the reference configuration.
var tables = []string{"routing", "probe", "hooks", "status", "metrics", "log"}

func tomlKeys(t reflect.Type) []string {
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i], _, _ = strings.Cut(t.Field(i).Tag.Get("toml"), ",")
	}
	return keys
}

// opt is one setting as found in the file.
type opt[T string | int64 | float64 | bool | []string | [][]string] struct {
	val T
	set bool // the key is in the file
	// bad describes the value when it has the wrong TOML type, e.g.
	// `string "250"`; val is then the zero value.
	bad string
}

// UnmarshalTOML implements toml.Unmarshaler. It never fails: a value of the
// wrong type is recorded in bad, for the validator to report with its key.
func (o *opt[T]) UnmarshalTOML(data any) error {
	o.set = true
	switch v := any(&o.val).(type) {
	case *string:
		if s, ok := data.(string); ok {
			*v = s
			return nil
		}
	case *int64:
		if n, ok := data.(int64); ok {
			*v = n
			return nil
		}
	case *float64: // a number: 2.5 or 30
		switch n := data.(type) {
		case float64:
			*v = n
			return nil
		case int64:
			*v = float64(n)
			return nil
		}
	case *bool:
		if b, ok := data.(bool); ok {
			*v = b
			return nil
		}
	case *[]string:
		list, ok := data.([]any)
		if !ok {
			break
		}
		strs := make([]string, len(list))
		for i, e := range list {
			if strs[i], ok = e.(string); !ok {
				o.bad = fmt.Sprintf("an array whose element %d is %s", i, describe(e))
				return nil
			}
		}
		*v = strs
		return nil
	case *[][]string:
		list, ok := data.([]any)
		if !ok {
			break
		}
		out := make([][]string, len(list))
		for i, e := range list {
			inner, ok := e.([]any)
			if !ok {
				o.bad = fmt.Sprintf("an array whose element %d is %s", i, describe(e))
				return nil
			}
			out[i] = make([]string, len(inner))
			for j, x := range inner {
				if out[i][j], ok = x.(string); !ok {
					o.bad = fmt.Sprintf("an array whose element %d has %s at %d", i, describe(x), j)
					return nil
				}
			}
		}
		*v = out
		return nil
	}
	o.bad = describe(data)
	return nil
}

// describe names the TOML type of a decoded value, with the value when it
// is short.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case time.Time:
		return "a date-time"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// shapeErrors explains why a valid TOML document did not fit rawConfig:
// one of the top-level tables has the wrong type.
func shapeErrors(name string, data []byte, decodeErr error) Errors {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return Errors{{File: name, Msg: err.Error()}}
	}
	v := &validator{file: name, pos: scanPositions(string(data))}
	for _, key := range tables {
		if val, ok := doc[key]; ok {
			if _, ok := val.(map[string]any); !ok {
				line := v.pos.line(key)
				if line == 0 { // [[probe]]
					line = v.pos.line(indexPath(key, 0))
				}
				v.errorAt(line, key, "expected a table, got %s; write [%s] followed by its keys", describe(val), key)
			}
		}
	}
	switch val := doc["uplink"].(type) {
	case nil, []map[string]any:
	case []any: // uplink = [{...}, ...]
		for i, e := range val {
			if _, ok := e.(map[string]any); !ok {
				v.errorf(indexPath("uplink", i), "expected a table, got %s", describe(e))
			}
		}
	default:
		v.errorf("uplink", "expected an array of tables, got %s; write [[uplink]] before each uplink", describe(val))
	}
	if len(v.errs) == 0 {
		return Errors{{File: name, Msg: decodeErr.Error()}}
	}
	v.errs.sortByLine()
	return v.errs
}
