// Package status is uplinkd's status API: a unix socket that serves the
// daemon's state as JSON, the client `uplinkd status` and `uplinkd reload`
// use, and the table `uplinkd status` prints.
//
// The Server owns no state. For every question it sends a Request to the
// daemon's event loop and relays the Reply, so what it shows is always a
// consistent snapshot taken by the one goroutine that owns the state.
// Watching is a long poll: the loop parks the request (Waiters) until the
// snapshot's Version moves past the one the client already has.
//
// The protocol is one JSON request line ({"op":"status"}, {"op":"watch"} or
// {"op":"reload"}) answered by JSON lines: one for status and reload, one
// per change for watch.
package status
