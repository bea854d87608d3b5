// Package fsm holds the per-uplink state machine: down, probing, degraded and
// active, built on github.com/looplab/fsm.
//
// The machine is pure: it is fed link usability (from netlink events) and
// probe round results, and answers with the transition it made, if any. It
// owns the consecutive good/bad round counters that turn probe rounds into
// state changes (up_after, down_after). It never touches the kernel and never
// blocks, so the daemon's event loop can call it directly.
package fsm
