// Package events turns the kernel's rtnetlink notifications into typed events
// for the daemon loop, and lists links and addresses on demand.
//
// A Monitor owns one multicast netlink socket (link, nexthop and neighbour
// groups, and the address, route and rule groups of IPv4 and IPv6). Link
// and address events carry the whole link or address, so a Snapshot from
// Dump with every later event applied (Snapshot.Apply) is the kernel's
// current state; other events are hints about what to read again. When the
// kernel drops notifications because the socket's receive buffer overran
// (ENOBUFS), the Monitor sends a ResyncEvent and keeps going, and the
// consumer re-reads everything it cares about. SetFilter narrows the stream to what matters: a socket filter
// (classic BPF, attribute matching with SKF_AD_NLATTR) drops route
// notifications of foreign tables and protocols in the kernel, default
// routes excepted, for both families alike (they share struct rtmsg), and
// Run drops link, address and neighbour events of links outside the filter.
// The daemon subscribes first and dumps second (Dump), so no change can fall
// between the two.
//
// Default routes are decoded (family, gateway, link, metric) so that a DHCP
// client's gateway, or the IPv6 gateway that a router advertisement
// installed (proto ra, link-local), can be learned; DefaultRoutes lists
// those through one link, in every table. Addresses carry the kernel's
// flags and scope, so that a tentative, deprecated or temporary IPv6
// address is not taken for an uplink's source. Link-local addresses carry
// no zone: every event has its link's index, and a neighbour or gateway is
// the pair (index, address).
//
// Parsing is pure and independent of any socket, so it is unit-tested with
// bytes captured from the kernel. Nothing in this package writes to the kernel.
package events
