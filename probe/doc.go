// Package probe measures the health of one uplink with ICMP echo rounds,
// for IPv4 or IPv6: a prober whose source is IPv6 sends ICMPv6 echoes
// (icmp6.go) and probes IPv6 targets only.
//
// The probers of a process share one raw ICMP socket per family and its
// reader, a Hub (hub.go): every echo carries the uplink's interface and
// source address (IP_PKTINFO, IPV6_PKTINFO), so it follows the uplink's
// own routing table (`from <source> lookup <table>`) and leaves through
// that uplink even while the uplink is not part of the balance, and a
// reply counts only when it comes back to that address through that
// interface. Every Interval a Prober starts a
// round: one echo request to each target, the targets spread evenly over the
// interval (staggered, so each target gets one echo per Interval and the
// uplink one per gap, Interval/len(Targets)), each carrying the round
// number. The first echo goes as the prober starts; every later one on a
// grid shared by the process (a fixed epoch plus whole gaps), at least a
// gap after the one before: probers with the same interval and number of
// targets, whenever they started, send on the same instants, so one
// wake-up of the process serves them all (a shared timer), and their
// timeouts fall due together. A round is good as soon as Reliability targets have answered within Timeout,
// bad when Timeout passes first for every echo, and bad at once (with Err
// set) when fewer than Reliability echoes could be sent.
//
// Silence. Any reply of ours, late or duplicate included, proves the path
// alive. An echo unanswered after its target's RTT-tracking timeout
// (srtt + 4·rttvar, at least 30ms, at most Timeout) triggers a confirmation
// burst: up to three waves of one echo to every ICMP target. With no reply
// at all for one stagger gap plus Timeout (more when the RTT nears
// Timeout), the burst overdue and at least six echoes unanswered (more on
// a lossy uplink), the uplink is silent: every undecided round is
// decided bad with Silent set, and the daemon takes the uplink out of the
// balance at once. The replies that end a silence often come all at once,
// having waited behind it (neighbour discovery on a link that has just come
// up): they are no RTT samples, and the RTT tracking restarts with the
// echoes sent after. Replies are stamped by the kernel (SO_TIMESTAMPNS), and
// the socket is drained before anything times out, so a stall of this
// process is not taken for an outage: a prober decides only up to a time
// before which every reply the kernel received has been read, by a drain
// that began after the prober's timer was due; probers woken for the same
// instant share one drain. Confirmations stay within 10 probe
// packets in any second per uplink.
//
// Two uplinks whose IPv6 gateways are both fe80::1 are never mixed up:
// each echo leaves by its own interface, and each reply must come back in
// by it.
//
// Targets are probed by ICMP echo or by TCP connection (tcp.go). HTTP,
// HTTPS and DNS checks (check.go, dns.go) run every CheckInterval instead
// and veto every round while one fails.
//
// Every target also has a sliding window of its last Window probes: loss,
// mean RTT and jitter (mean difference of consecutive RTTs). A reply after
// the timeout is late: its probe stays lost and is tallied as late; a reply
// that arrives twice is a duplicate and counts once. Each Result carries a
// snapshot of these statistics per target and for the uplink, which is as
// good as its Reliability-th best target. After an outage (FreshAfter
// failed rounds in a row, or a silence), the statistics restart at the next
// good round: an uplink that comes back is judged on what it does since,
// not on the losses of the outage.
//
// Results are delivered on a channel in round order, tagged with the uplink
// name and the generation the daemon gave the prober, so the daemon's event
// loop can drop results of a prober it has already replaced. The package
// decides nothing about uplink state; turning rounds and statistics into
// state changes is the fsm package's job.
//
// The code is split so the logic is testable without root: icmp.go builds
// and parses packets, stats.go, rounds.go and engine.go are the pure
// statistics, per-round bookkeeping, schedule and silence rule, driven by
// an explicit clock (engine_test.go runs them for simulated hours),
// prober.go and hub.go hold the sockets and goroutines, and loop.go drives
// the engine: a prober's goroutine sends and lets time pass, and a reply
// is fed to the engine by the goroutine that read it, without waking the
// prober's.
package probe
