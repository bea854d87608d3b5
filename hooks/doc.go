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
package hooks
