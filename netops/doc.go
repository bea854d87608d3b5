// Package netops turns uplinkd's view of the uplinks into kernel routing
// state, in two halves.
//
// Plan is pure: from the settings and each uplink's observed link, address
// and health it computes the desired per-uplink tables, the rules and the
// weighted default route of the balance table. With the HashThreshold and
// Resilient balancers that route points at a nexthop group (one nexthop
// object per uplink with carrier, two in a resilient group; IDs from
// NexthopIDs and the uplink's name-stable Slot) that changes as uplinks
// come and go: a resilient group is replaced in place (its buckets are the
// flows' next hops), a hash-threshold group is made anew at its alternate
// ID and the route moved to it (altgroup.go: the kernel's in-place replace
// waits for an RCU grace period and walks every IPv4 route); with
// Multipath it is a classic multipath route. It is unit-tested without
// root.
//
// Both families: Plan plans one (Settings.Family), PlanAll both, the daemon
// calls PlanAll with each family's uplinks (an uplink with both families
// is in both lists, with one name, table, slot and mark). The kernel keeps
// IPv4's and IPv6's routes and rules apart, so the tables, the balance
// table and the rule priorities below are the same numbers in both; every
// Route, Rule and NexthopObject says its Family (zero: V4). IPv6 differs
// only where it must: the gateway is usually link-local (an uplink is
// always keyed by interface and gateway, so fe80::1 on two links is two
// next hops, two nexthop objects); an address of the delegated prefix used
// as source is a /128, with no connected route; Uplink.LANPrefix adds
// `from <prefix> lookup <uplink table>` at the source rules' priority, and
// while the uplink cannot route (no interface, address or carrier) its
// IPv6 table holds `unreachable default`, so those sources never fall
// through to another uplink; policy rules whose address selectors are of
// the other family are left out of a family's plan (a rule without one is
// in both). IPv6's nexthop objects take the second half of the ID range
// (see IDs). With no IPv6 uplink PlanAll plans nothing IPv6.
//
// uplinkd owns the rule priorities [P, P+PriorityRange), P being
// Settings.RulePriority, laid out lowest (first) to highest:
//
//	P+0       lookup main suppress_prefixlength 0, all traffic: main's
//	          specific routes win, the router's replies included
//	P+1       from <uplink address> lookup <uplink table>
//	P+2       fwmark <uplink mark>/<mask> lookup <uplink table>, while the
//	          uplink is usable (active or degraded): pinned connections
//	P+3..9    free
//	P+10..89  the [[rule]]s of the policies (PrioPolicyFirst..
//	          PrioPolicyLast), one priority per rule in file order (every
//	          from × to pair of a rule is one kernel rule at its
//	          priority); uid selectors are installed as `iif lo uidrange`
//	P+90..98  free
//	P+99      iif <LAN interface>|lo lookup <balance table>: the default
//	          policy, new connections
//
// Policies (Settings.Policies, see Choose): each one but the default has
// its own table (Policy.Table, chosen by the configuration) holding one
// default route: through the policy's hash-threshold nexthop group
// (IDs.Policy: the group balancers) or a multipath route (Multipath), over
// the uplinks of its best tier with a usable member; the uplinks' nexthop
// objects are shared. The default policy is the balance table and its
// group, built as before from the members of its tier in use (the
// built-in default policy: every uplink, one tier). With no usable tier a
// policy's last resort applies: an unreachable or blackhole route in its
// table, its rules looking up main (ResortMain; the default policy's empty
// table falls through to main's own rule instead), or the default
// policy's table (ResortDefault). A rule names its policy's table in the
// rule itself, so a last resort change rewrites the policy's rules (added
// before the old ones are deleted).
//
// Reconciler is the only code in uplinkd that writes routes, rules and
// nexthop objects. It lists what the kernel has, replaces what differs from
// the plan and deletes what carries uplinkd's route protocol but is no
// longer desired, so running it twice changes nothing, foreign deletions
// (and the kernel's silent deletion of nexthops whose link lost carrier)
// are repaired and a restart after a crash adopts what the previous run
// left (HoldsFor reads what it left in one family: the balance route's
// next hops, the fwmark rules, the nexthop objects). It handles both
// families in every reconcile, so Cleanup leaves nothing in either. Listings cost what uplinkd owns,
// not what the kernel holds: Handle lists routes over a strict rtnetlink
// socket with table and protocol in the request, so the kernel filters
// them, and the reconciler lists only the tables that hold (or should
// hold) its routes, every table only at the first run and after Rescan;
// nexthop objects are then fetched by ID. Rules are listed whole (the
// kernel cannot filter a rule dump) and filtered by protocol. With
// EnableCache (the daemon's), a reconcile lists none of that but what the
// caller's events made dirty (cache.go): the tables, rules and nexthop
// objects they name, and for a link or address event the tables routed
// over the link, its nexthop objects and the groups, which the kernel
// changes without a notification; one carrier change of 256 uplinks then
// costs a handful of kernel-filtered requests instead of some 800. It
// also keeps the last plan (lastplan.go): after a reconcile without error,
// a desired object equal to last time's in an entry still clean is known
// to be in the kernel, so the CPU of a reconcile follows what changed too,
// not the size of the plan. The
// events of its own rule and nexthop writes are recognised (RuleEcho,
// NexthopEcho) and make neither a listing nor another reconcile. Nexthop
// objects, routes through them and resilient groups' buckets are encoded
// here with github.com/mdlayher/netlink (NexthopConn); SupportsGroup checks the
// kernel at startup.
//
// Conntrack deletes the connection-tracking entries translated to the
// address of an uplink that left the balance (used without pinning), and
// SetMultipathHashFor sets the hash that spreads flows, per family (IPv6
// never with its policy 0, which hashes the flow label: Hash.IPv6). RouteQuery only reads:
// it asks the kernel for the route of one packet (`uplinkd explain`).
package netops
