// Package daemon is uplinkd's event loop: one goroutine that owns all
// mutable state and wires the other packages together.
//
// Kernel netlink events (package events), probe results (package probe) and
// timers arrive as messages. Link and address events are hints: after a
// burst of them the loop re-reads the links they named, and their
// addresses, from the kernel (everything at start, after lost events and
// on reload), so a queued stale event can never overwrite newer state.
// Route, rule and nexthop events that concern uplinkd's objects, and every
// link event (the kernel deletes nexthop objects silently when their link
// loses carrier), trigger a reconcile, which repairs foreign changes; each
// also tells the reconciler's cache what to read again, so that a
// reconcile reads only what may have changed (netops.Reconciler.EnableCache). A neighbour event
// saying that an uplink's gateway failed to resolve (no answer to ARP) goes
// straight to that uplink's state machine.
//
// Connections are pinned to their uplink (pinning.go, package pin): the
// nftables table is applied before every reconcile, and again at once when
// a firewall reload removes or changes it; an uplink that becomes down or
// probing loses its fwmark rule and its connections are deleted by mark,
// off the loop. Without nf_tables, when an uplink leaves the balance the
// conntrack entries translated to its address are flushed instead. On
// start the loop adopts what an earlier run left in the kernel and keeps
// it until each uplink's first verdict (adopt.go); SIGUSR2 exits leaving
// everything in place. The original multipath hash policy and
// src_valid_mark values are kept in the state directory across crashes.
//
// An uplink with gateway = "auto" learns its gateway from the foreign
// default routes through its interface (a DHCP client's), kept current by
// route events and re-read after a resync or a link or address change; a
// point-to-point uplink has none (gateway.go). Probe targets given by host
// name are resolved by a goroutine of their own, never in the loop
// (names.go).
//
// Every change of observed state or health runs
// the uplink state machines (package fsm), then netops.Plan and the
// Reconciler, the only kernel writer. The machines start no timers: after
// each burst the loop sets one timer to the earliest deadline any machine
// reports (the end of a flap hold) and lets the machines act on it when it
// fires.
//
// IPv6 (family.go, observe6.go): an uplink with gateway6 has a second
// entity, its IPv6 side, with its own state machine, source (source6),
// gateway (static, or the router advertisements' default route of its
// interface), prober (probe.targets6), history, hooks, status entry and
// metrics. Link events reach both entities through the same links; probe
// results and neighbour failures reach the entity of their family only.
// Both families are planned at once (netops.PlanAll) and adopted, and a
// failure of one family flushes only that family's pinned connections. An
// uplink with gateway6 and no gateway has its IPv6 entity only. IPv6's
// multipath hash is set only while some uplink has IPv6.
//
// Policies (policy.go): Plan chooses each policy's tier, per family, from
// the uplinks' states; after each reconcile the loop records each family's
// choice, logs a tier change, exports IPv4's, queues the on_policy hook
// (with the family), and with failback = "all" deletes that family's pins
// of the uplinks a policy left for a better tier. An entity that only
// stands by in its family's policies is probed at their standby_interval.
//
// The loop reaches the kernel only through Kernel (kernel.go): small
// interfaces for reading links, addresses and default routes
// (StateReader), subscribing to events (Subscriber, Subscription),
// installing plans and reading what an earlier run left (Router), starting
// probers (ProberStarter) and flushing NAT entries (NATFlusher), plus flags
// for what only the real kernel has (the multipath hash sysctls, pinning's
// nftables table and src_valid_mark). Run dials the real kernel when
// Options.Kernel is nil; the loop tests (loop_test.go) pass fakes
// (fake_test.go) and run without root. A failed read of the kernel waits
// for its retry timer: nothing else that wakes the loop hastens it.
package daemon
