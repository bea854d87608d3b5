// Package events turns the kernel's rtnetlink notifications into typed events
// for the daemon loop, and lists links and addresses on demand.
//
// A Monitor owns one multicast netlink socket (link, IPv4 address, IPv4 route,
// IPv4 rule, nexthop and neighbour groups). Events are hints, not a replicated state: when
// the kernel drops notifications because the socket's receive buffer overran
// (ENOBUFS), the Monitor sends a ResyncEvent and keeps going, and the consumer
// re-reads everything it cares about. SetFilter narrows the stream to what
// matters: a socket filter (classic BPF, attribute matching with
// SKF_AD_NLATTR) drops route notifications of foreign tables and protocols
// in the kernel, default routes excepted, and Run drops link, address and
// neighbour events of links outside the filter. The daemon subscribes first and dumps
// second (Dump), so no change can fall between the two. Default routes are
// decoded (gateway, link, metric) so that a DHCP client's gateway can be
// learned; DefaultRoutes lists those through one link, in every table.
//
// Parsing is pure and independent of any socket, so it is unit-tested with
// bytes captured from the kernel. Nothing in this package writes to the kernel.
package events
