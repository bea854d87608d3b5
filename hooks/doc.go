// Package hooks runs the programs an operator configured for uplink state
// transitions ([hooks] in the configuration).
//
// The daemon's event loop hands each invocation to a Runner with Enqueue,
// which never blocks: when the queue is full the invocation is dropped,
// counted and logged, so a slow hook can never delay a routing change. The
// Runner starts at most MaxRunning programs at once, each executed directly
// (argv, no shell) in its own process group with the UPLINKD_* environment
// of its Event. A program still running at its timeout is killed together
// with its process group. Exit status and standard error are logged.
//
// The invocations of one uplink run one at a time, in the order they were
// queued, so a stateful hook sees its transitions in order; different
// uplinks' run in parallel. Environment values are single lines (control
// characters escaped), and a program others could have replaced (writable
// by others, or in a directory others may write without the sticky bit)
// is refused.
package hooks
