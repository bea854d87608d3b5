// Package netops turns uplinkd's view of the uplinks into kernel routing
// state, in two halves.
//
// Plan is pure: from the settings and each uplink's observed link, address
// and health it computes the desired per-uplink tables, source rules, the
// suppress rule and the weighted default route of the balance table. With
// the Resilient balancer that route points at a resilient nexthop group
// (two nexthop objects per uplink with carrier, IDs from NexthopIDs, bucket
// count from Buckets) that is replaced in place as uplinks come and go; with
// Multipath it is a classic multipath route. It is unit-tested without
// root.
//
// Reconciler is the only code in uplinkd that writes routes, rules and
// nexthop objects. It lists what the kernel has, replaces what differs from
// the plan and deletes what carries uplinkd's route protocol but is no
// longer desired, so running it twice changes nothing, foreign deletions
// (and the kernel's silent deletion of nexthops whose link lost carrier)
// are repaired and a restart after a crash adopts what the previous run
// left. Listings cost what uplinkd owns, not what the kernel holds:
// Handle lists routes over a strict rtnetlink socket with table and
// protocol in the request, so the kernel filters them, and the reconciler
// lists only the tables that hold (or should hold) its routes, every table
// only at the first run and after Rescan; nexthop objects are then fetched
// by ID. Rules are listed whole (the kernel cannot filter a rule dump) and
// filtered by protocol. Nexthop objects and routes through them are encoded here with
// github.com/mdlayher/netlink (NexthopConn); SupportsResilient checks the
// kernel at startup.
//
// Conntrack deletes the connection-tracking entries translated to the
// address of an uplink that left the balance, and SetMultipathHash sets
// the hash that spreads flows.
package netops
