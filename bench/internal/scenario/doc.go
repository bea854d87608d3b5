// Package scenario holds the bench's scenarios: failover and recovery of
// ISP2 under both tools in the two-ISP lab (failover.go), and uplinkd's
// scale and cost rows in scale labs (scale.go). Every time is taken on the
// bench's clock: the fault is stamped just before its netlink request, and
// the response is the first routing change a netlink monitor in the
// router namespace sees afterwards.
package scenario
