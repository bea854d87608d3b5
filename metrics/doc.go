// Package metrics exposes uplinkd's figures in the Prometheus text format
// ([metrics] listen): uplink states (one-hot), transitions, probe rounds and
// round-trip times, reconcile durations, netlink resyncs and overruns, hook
// and reload counters.
//
// The daemon's event loop records into a Metrics as things happen; the
// prometheus client library makes the values safe to scrape from the HTTP
// server's goroutines.
package metrics
