package netops

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// Family is an address family of the routing state: IPv4 or IPv6. The
// kernel keeps the routes and rules of the two apart, so one table number
// (an uplink's, the balance table) and one rule priority hold one route
// or rule of each.
type Family uint8

// The families; the zero value means V4.
const (
	V4 Family = 4
	V6 Family = 6
)

// Families are both families, in the order the reconciler handles them.
var Families = []Family{V4, V6}

// norm maps the zero value to V4.
func (f Family) norm() Family {
	if f == V6 {
		return V6
	}
	return V4
}

func (f Family) String() string {
	if f.norm() == V6 {
		return "ipv6"
	}
	return "ipv4"
}

// AF is the family's address family constant (unix.AF_INET or AF_INET6),
// as netlink and conntrack want it.
func (f Family) AF() int {
	if f.norm() == V6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// FamilyOf returns the family of a.
func FamilyOf(a netip.Addr) Family {
	if a.Is6() && !a.Is4In6() {
		return V6
	}
	return V4
}

// familyOfAF returns the family of an address family constant; ok is false
// for any other than AF_INET and AF_INET6.
func familyOfAF(af int) (Family, bool) {
	switch af {
	case unix.AF_INET:
		return V4, true
	case unix.AF_INET6:
		return V6, true
	}
	return 0, false
}

var (
	defaultDst4 = netip.MustParsePrefix("0.0.0.0/0")
	defaultDst6 = netip.MustParsePrefix("::/0")
)

// defaultDst is IPv4's default destination, kept under its old name.
var defaultDst = defaultDst4

// DefaultDst is the family's default destination (0.0.0.0/0 or ::/0).
func (f Family) DefaultDst() netip.Prefix {
	if f.norm() == V6 {
		return defaultDst6
	}
	return defaultDst4
}

// prefix is the marker of IPv6 objects in their `ip`-like rendering, as
// in `ip -6 route`; IPv4's have none, as before.
func (f Family) prefix() string {
	if f.norm() == V6 {
		return "-6 "
	}
	return ""
}
