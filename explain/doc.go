// Package explain answers "which way does this connection go, and why":
// from a route lookup the kernel made (netops.RouteQuery), the
// configuration and, when the daemon runs, its status, it names the
// configured rule that matches, the policy and tier that rule selects, the
// uplink (or last resort) the kernel chose, and any disagreement between
// what the configuration says and what the kernel does. Explain is pure;
// `uplinkd explain` does the lookups.
package explain
