// Package fsm holds the per-uplink state machine: down, probing, degraded and
// active, built on github.com/looplab/fsm.
//
// The machine is pure: it is fed link usability (from netlink events), the
// gateway's neighbour failures, probe round results with the quality the
// probes measured over their window, and the passing of time, and answers
// with the transition it made, if any. It owns the consecutive good/bad round
// counters that turn probe rounds into state changes (up_after, down_after),
// the hysteresis between active and degraded (degraded_* to enter, lower
// recover_* thresholds to leave) and flap damping: an uplink that keeps
// falling out of the balance is held out for a penalty that doubles with
// every further flap, up to a cap, and its reason says so.
//
// It never touches the kernel, never blocks and starts no timers: the
// daemon's event loop asks each machine for its Deadline and calls Tick when
// it passes.
package fsm
