package status

import "time"

// Snapshot is the daemon's state at one moment, as served on the socket.
// Durations are in milliseconds, times in RFC 3339.
type Snapshot struct {
	// Version increases with every change that matters to an operator:
	// a transition, a link or address change, a routing change, a reload.
	Version  uint64    `json:"version"`
	Time     time.Time `json:"time"`
	Daemon   Daemon    `json:"daemon"`
	Balancer string    `json:"balancer"` // how the balance route is built: "hash-threshold", "resilient" or "multipath"
	Active   int       `json:"active"`   // uplink entries (families) in state active
	Uplinks  []Uplink  `json:"uplinks"`  // in configuration order
	// Policies are the policies in effect, the default one first (built
	// in when the configuration has none).
	Policies  []Policy  `json:"policies"`
	Reconcile Reconcile `json:"reconcile"`
	Netlink   Netlink   `json:"netlink"`
	Hooks     Hooks     `json:"hooks"`
	Pinning   Pinning   `json:"pinning"`
}

// Daemon describes the process and its configuration.
type Daemon struct {
	Version  string    `json:"version"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Config   string    `json:"config"`    // configuration file
	Loaded   time.Time `json:"loaded"`    // when the configuration in force was read
	Reloads  uint64    `json:"reloads"`   // successful reloads
	Failed   uint64    `json:"failed"`    // reloads refused (the old configuration stayed)
	LastFail string    `json:"last_fail"` // why the last refused reload was refused
}

// Uplink is one family of one configured uplink: an uplink with IPv6 has
// two entries, IPv4's first, each with its own state, address, gateway,
// balance and probes.
type Uplink struct {
	Name   string    `json:"name"`
	Family string    `json:"family"` // "ipv4" or "ipv6"
	State  string    `json:"state"`  // down, probing, degraded, active
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`

	Interface string `json:"interface"`
	Ifindex   int    `json:"ifindex"` // 0: the interface does not exist
	AdminUp   bool   `json:"admin_up"`
	Carrier   bool   `json:"carrier"`
	Address   string `json:"address"` // "198.51.100.2/24"; "" when none
	Gateway   string `json:"gateway"`
	Table     int    `json:"table"`

	Weight    int  `json:"weight"`
	InBalance bool `json:"in_balance"` // carries balanced traffic
	// Share is the uplink's part of new balanced flows: its weight over
	// the sum of the weights in the balance, 0 when not in it; with the
	// resilient balancer its part of the group's buckets as the kernel
	// has them (which lags the weights while busy buckets wait to move).
	Share float64 `json:"share"`

	Probe       Probe        `json:"probe"`
	Transitions []Transition `json:"transitions"` // the last ones, oldest first
}

// Probe is what the uplink's health probes saw.
type Probe struct {
	Enabled bool `json:"enabled"` // false: carrier-only mode
	Running bool `json:"running"` // a prober is running (the link is usable)
	// Since is when the running prober started; it restarts only when
	// what it probes changes (interface, address, targets, timing).
	Since   time.Time `json:"since,omitzero"`
	Targets []Target  `json:"targets"`
	// Rounds and Failed count the probe rounds since the uplink was
	// configured (at start, or by the reload that added it).
	Rounds uint64 `json:"rounds"`
	Failed uint64 `json:"failed"`
	// LastRTT is the fastest reply of the last good round.
	LastRTT float64 `json:"last_rtt_ms"`
	// PerSecond is the probe packets sent per second through the uplink,
	// confirmation bursts included, over the last 10 seconds.
	PerSecond float64 `json:"packets_per_second"`
	// Stats rate the uplink over the statistics window: for each figure
	// the reliability-th best target's, as the state machine judges it.
	Stats Stats `json:"stats"`
	// HeldUntil is when a hold for flapping ends; zero when not held.
	HeldUntil time.Time `json:"held_until,omitzero"`
}

// Stats summarise the last probes (up to the configured window) of a
// target or an uplink.
type Stats struct {
	Probes int     `json:"probes"` // in the window, with a known outcome
	Lost   int     `json:"lost"`   // of those
	Late   int     `json:"late"`   // of the lost, answered after the timeout
	Loss   float64 `json:"loss_pct"`
	RTT    float64 `json:"rtt_ms"`    // mean of the answered probes
	Jitter float64 `json:"jitter_ms"` // mean difference of consecutive RTTs
	Full   bool    `json:"full"`      // the window is full: quality is judged
}

// Target is one probe target.
type Target struct {
	Address string `json:"address"`
	Method  string `json:"method"` // how it is probed: "icmp"
	Stats   Stats  `json:"stats"`
	// Duplicates counts replies received more than once.
	Duplicates uint64 `json:"duplicates"`
}

// Transition is one state change.
type Transition struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Reconcile counts the reconciler's runs since the start.
type Reconcile struct {
	Runs     uint64    `json:"runs"`
	Changes  uint64    `json:"changes"` // routes and rules written or removed
	Errors   uint64    `json:"errors"`  // runs that failed (and were retried)
	Last     time.Time `json:"last,omitzero"`
	LastTook float64   `json:"last_took_ms"`
	LastErr  string    `json:"last_error"`
}

// Netlink counts how the kernel's state was (re)read.
type Netlink struct {
	Dumps        uint64 `json:"dumps"`        // full reads of links and addresses
	Resyncs      uint64 `json:"resyncs"`      // events lost, everything re-read
	Overruns     uint64 `json:"enobufs"`      // of which receive buffer overruns
	Resubscribes uint64 `json:"resubscribes"` // event socket failures
	// Errors counts failed reads of the kernel's state and failed
	// subscriptions, each retried with backoff while the routing stays
	// as installed; Transient of them were expected to heal (EINTR,
	// EBUSY, ENOBUFS, interrupted dumps).
	Errors    uint64 `json:"errors"`
	Transient uint64 `json:"transient_errors"`
	// LastError is set while the kernel's state cannot be read.
	LastError string `json:"last_error,omitempty"`
}

// Hooks counts hook programs; see hooks.Stats.
type Hooks struct {
	Started  uint64 `json:"started"`
	Failed   uint64 `json:"failed"`
	TimedOut uint64 `json:"timed_out"`
	Dropped  uint64 `json:"dropped"`
	Running  int64  `json:"running"`
}

// ReloadResult is the answer to a reload request.
type ReloadResult struct {
	OK bool `json:"ok"`
	// Changes lists what the reload changed, one item per change; empty
	// when the file was unchanged.
	Changes []string `json:"changes"`
	Error   string   `json:"error,omitempty"` // why the reload was refused
}

// Millis converts d for the JSON fields in milliseconds.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// Policy is one policy: the tier that carries its new connections.
type Policy struct {
	Name string `json:"name"`
	// Family is the family whose routing the entry describes, "ipv4" or
	// "ipv6": a policy chooses its tier per family, and has an IPv6 entry
	// when an uplink has IPv6.
	Family string `json:"family"`
	// Builtin marks the built-in default policy (every uplink, one tier).
	Builtin bool       `json:"builtin"`
	Table   int        `json:"table"`
	Tiers   [][]string `json:"tiers"`
	// Tier is the tier in use, from 1; 0 when the last resort is in
	// effect.
	Tier int `json:"tier"`
	// Members are the uplinks of the tier in use that carry its new
	// connections, with their shares of them.
	Members    []Member `json:"members"`
	LastResort string   `json:"last_resort"` // main, default, unreachable, blackhole
	InEffect   bool     `json:"last_resort_in_effect"`
	Failback   string   `json:"failback"`
	// Since is when the policy took its current tier (this run).
	Since time.Time `json:"since,omitzero"`
}

// Member is one uplink of a policy's tier in use.
type Member struct {
	Name   string  `json:"name"`
	Weight int     `json:"weight"`
	Share  float64 `json:"share"`
}

// GetUplinks returns the uplinks of s; nil for a nil s.
func (s *Snapshot) GetUplinks() []Uplink {
	if s == nil {
		return nil
	}
	return s.Uplinks
}
