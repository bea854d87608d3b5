package lab

import "net/netip"

// IPv6 addresses of a dual-stack lab (Options.IPv6). Only 2001:db8::/32 and
// link-local addresses are used.
var (
	// Gateway6 is every ISP's link-local address on its access link: the
	// same on every ISP on purpose, as it often is in real life, so
	// anything keyed by the gateway alone mixes the uplinks up.
	Gateway6 = netip.MustParseAddr("fe80::1")
	// RouterLinkLocal6 is the router's link-local address on every uplink;
	// the ISPs route the delegated prefixes to it.
	RouterLinkLocal6 = netip.MustParseAddr("fe80::2")

	// The router's global address on each access link (none on isp2 with
	// Options.PrefixOnlyISP2).
	ISP1RouterAddr6 = netip.MustParsePrefix("2001:db8:a1::2/64")
	ISP2RouterAddr6 = netip.MustParsePrefix("2001:db8:a2::2/64")
	ISP3RouterAddr6 = netip.MustParsePrefix("2001:db8:a3::2/64")

	// The prefix each ISP delegates to the router for the LAN. The router
	// holds ::1 of each on its LAN interface, the host ::10.
	ISP1LANPrefix6 = netip.MustParsePrefix("2001:db8:1100::/64")
	ISP2LANPrefix6 = netip.MustParsePrefix("2001:db8:2200::/64")
	ISP3LANPrefix6 = netip.MustParsePrefix("2001:db8:3300::/64")

	RouterLANAddr6ISP1 = netip.MustParseAddr("2001:db8:1100::1")
	RouterLANAddr6ISP2 = netip.MustParseAddr("2001:db8:2200::1")
	RouterLANAddr6ISP3 = netip.MustParseAddr("2001:db8:3300::1")
	HostAddr6ISP1      = netip.MustParseAddr("2001:db8:1100::10")
	HostAddr6ISP2      = netip.MustParseAddr("2001:db8:2200::10")
	HostAddr6ISP3      = netip.MustParseAddr("2001:db8:3300::10")

	// Target6_1 to Target6_3 live on the Internet namespace's loopback.
	Target6_1 = netip.MustParseAddr("2001:db8:ffff::1")
	Target6_2 = netip.MustParseAddr("2001:db8:ffff::2")
	Target6_3 = netip.MustParseAddr("2001:db8:ffff::3")
	// BlackholePrefix6 is what Blackhole6 drops inside an ISP.
	BlackholePrefix6 = netip.MustParsePrefix("2001:db8:ffff::/48")
)

// isp6 is one ISP's IPv6 plan.
type isp6 struct {
	routerAddr netip.Prefix // router's global address on the access link; invalid: prefix-only
	ispAddr    netip.Prefix // ISP's global address on the access link (same /64)
	delegated  netip.Prefix // the LAN prefix delegated to the router
	routerLAN  netip.Addr   // the router's address of delegated, on its LAN interface
	host       netip.Addr   // the host's address of delegated
	upAddr     netip.Prefix // ISP side of the transit link
	inetAddr   netip.Prefix // Internet side of the transit link
}

var plans6 = map[string]isp6{
	ISP1: {
		routerAddr: ISP1RouterAddr6, ispAddr: netip.MustParsePrefix("2001:db8:a1::1/64"),
		delegated: ISP1LANPrefix6, routerLAN: RouterLANAddr6ISP1, host: HostAddr6ISP1,
		upAddr: netip.MustParsePrefix("2001:db8:f1::1/64"), inetAddr: netip.MustParsePrefix("2001:db8:f1::2/64"),
	},
	ISP2: {
		routerAddr: ISP2RouterAddr6, ispAddr: netip.MustParsePrefix("2001:db8:a2::1/64"),
		delegated: ISP2LANPrefix6, routerLAN: RouterLANAddr6ISP2, host: HostAddr6ISP2,
		upAddr: netip.MustParsePrefix("2001:db8:f2::1/64"), inetAddr: netip.MustParsePrefix("2001:db8:f2::2/64"),
	},
	ISP3: {
		routerAddr: ISP3RouterAddr6, ispAddr: netip.MustParsePrefix("2001:db8:a3::1/64"),
		delegated: ISP3LANPrefix6, routerLAN: RouterLANAddr6ISP3, host: HostAddr6ISP3,
		upAddr: netip.MustParsePrefix("2001:db8:f3::1/64"), inetAddr: netip.MustParsePrefix("2001:db8:f3::2/64"),
	},
}

// UplinkConfig6 is UplinkConfig with IPv6 on both uplinks through the
// link-local gateway; LAN IPv6 traffic is balanced like IPv4 (no
// lan_prefix6).
const UplinkConfig6 = `
[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
gateway6 = "fe80::1"
weight = 1
table = 100

[[uplink]]
name = "isp2"
interface = "eth2"
gateway = "203.0.113.1"
gateway6 = "fe80::1"
weight = 3
table = 200
`
