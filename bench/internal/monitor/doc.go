// Package monitor stamps the routing changes of one network namespace: a
// netlink socket in the namespace joins the link, IPv4 route, IPv4 rule and
// nexthop groups, and a goroutine stamps every message on arrival with the
// bench's clock, the clock fault injections are stamped with.
package monitor
