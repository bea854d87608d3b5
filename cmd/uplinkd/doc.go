// Command uplinkd balances a Linux router's traffic over several Internet
// uplinks and moves it off a failed one on the kernel's own events.
//
//	uplinkd run   [--config FILE]   run the daemon in the foreground
//	uplinkd check [--config FILE]   validate a configuration
//	uplinkd version
//
// main only parses flags, wires packages and handles signals; the logic is
// in the daemon, config, events, fsm, netops and probe packages.
package main
