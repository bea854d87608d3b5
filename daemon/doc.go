// Package daemon is uplinkd's event loop: one goroutine that owns all
// mutable state and wires the other packages together.
//
// Kernel netlink events (package events), probe results (package probe) and
// timers arrive as messages. Link and address events are hints: after a
// burst of them the loop re-reads links and addresses from the kernel, so a
// queued stale event can never overwrite newer state. Route, rule and
// nexthop events that concern uplinkd's objects, and every link event (the
// kernel deletes nexthop objects silently when their link loses carrier),
// trigger a reconcile, which repairs foreign changes. A neighbour event
// saying that an uplink's gateway failed to resolve (no answer to ARP) goes
// straight to that uplink's state machine. When an uplink leaves the
// balance, the conntrack entries translated to its address are flushed
// after the routing change. Every change of observed state or health runs
// the uplink state machines (package fsm), then netops.Plan and the
// Reconciler, the only kernel writer. The machines start no timers: after
// each burst the loop sets one timer to the earliest deadline any machine
// reports (the end of a flap hold) and lets the machines act on it when it
// fires.
package daemon
