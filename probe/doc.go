// Package probe measures the health of one uplink with ICMP echo rounds.
//
// A Prober owns a raw ICMP socket that is bound to the uplink's interface
// (SO_BINDTODEVICE) and source address, so its echoes follow the uplink's own
// routing table (`from <source> lookup <table>`) and leave through that uplink
// even while the uplink is not part of the balance. Every Interval it starts a
// round: one echo request to each target. A round is good as soon as one
// target answers within Timeout, bad when Timeout passes without an answer,
// and bad at once (with Err set) when no echo could be sent at all.
//
// Results are delivered on a channel in round order, tagged with the uplink
// name and the generation the daemon gave the prober, so the daemon's event
// loop can drop results of a prober it has already replaced. The package
// decides nothing about uplink state; counting rounds into state changes is
// the fsm package's job.
//
// The code is split so the logic is testable without root: icmp.go builds
// and parses packets, rounds.go is the pure per-round bookkeeping driven by
// an explicit clock, and prober.go holds the socket and goroutines.
package probe
