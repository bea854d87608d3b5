// Package lab builds uplinkd's network-namespace laboratory: a router with a
// LAN host and two ISPs that both reach a small "Internet", all in named
// network namespaces created with iproute2 so that the real uplinkd binary
// can run in the router with `ip netns exec`.
//
//	host (prefix-h)                router (prefix-r)              ISPs                     Internet (prefix-inet)
//	eth0 192.0.2.10/24 ─────── eth0 192.0.2.1/24
//	     192.0.2.11/24             eth1 198.51.100.2/24 ─── down0 198.51.100.1/24 (isp1) up0 198.19.1.1/30 ─── isp1 198.19.1.2/30
//	                               eth2 203.0.113.2/24  ─── down0 203.0.113.1/24  (isp2) up0 198.19.2.1/30 ─── isp2 198.19.2.2/30
//	                                                                                               lo 198.18.0.1/32 .. 198.18.0.3/32
//
// NewWithOptions can add a third ISP: router eth3 198.19.30.2/24, isp3's
// down0 198.19.30.1/24, transit 198.19.3.0/30.
//
// The router's main table holds its connected routes and the administrator's
// own default route via isp1 (198.51.100.1 dev eth1), which uplinkd must
// never touch. By default there is no NAT: the Internet routes the LAN back
// through isp1 whatever path a datagram took on the way out, so tests
// measure forward paths (RouteGet, Split, or the labtool udpsend/udpsink
// pair). EnableNAT adds masquerade or SNAT on the uplinks and ingress
// filtering at the ISPs, as on a real home router.
//
// Every object lives inside the lab's namespaces: veth pairs are created in
// a namespace and their peers placed directly into another, sysctls are set
// with `ip netns exec`, and only documentation address ranges are used. The
// host namespace is never changed.
//
// The fault helpers (CarrierDown, Blackhole, DeleteRouterLink, Readdress, ...)
// reproduce what happens on a real router: a cable pulled on the ISP side, an
// ISP that still answers ARP but forwards nothing, a USB modem unplugged, a
// DHCP lease that changes the address.
//
// StartFlows runs long-lived LAN flows (by default 128 TCP connections and
// 128 UDP flows from both host addresses) to an echoing sink in the
// Internet namespace, inside the test process; with EnableNAT, the source
// address the sink echoes names the uplink each flow takes. A snapshot
// gives, per flow, its uplink over time, the longest gap between echoes,
// lost UDP sequence numbers, TCP resets and TCP connections that hang
// while sending (FlowClient and FlowSink, also run as labtool flows and
// flowsink).
//
// Dual-stack (Options.IPv6, addresses in topology6.go): only 2001:db8::/32
// and link-local addresses. Every ISP's gateway is fe80::1 on its access
// link (the same on every ISP, on purpose), the router's uplinks have
// fe80::2 and a global address (2001:db8:a1::2/64 on isp1; none on isp2
// with Options.PrefixOnlyISP2), each ISP delegates a LAN prefix
// (2001:db8:1100::/64 isp1, 2001:db8:2200::/64 isp2) that the router holds
// on its LAN interface (::1) and the host (::10), and routes it to the
// router's link-local address; the Internet routes each prefix back to its
// ISP. Targets 2001:db8:ffff::1..3 live on the Internet's loopback.
// DAD is off and every address is nodad. The router forwards and accepts
// router advertisements on its uplinks (accept_ra 2); StartRADVD runs real
// radvd in an ISP. Blackhole6 (and BlackholeFamilies) break IPv6 only;
// AddCounts counts packets per source prefix at every ISP's access link
// and at the Internet, which shows the uplink a packet really left by;
// EnableIngressFilter6 makes the ISPs drop sources that are not theirs
// (BCP 38); EnableNAT66 masquerades IPv6 on the uplinks. StartFlows runs
// over IPv6 with an IPv6 Target.
//
// Real ISPs: StartDHCPServer runs dnsmasq as an ISP's DHCP server and
// StartDHCPClient udhcpc or dhcpcd on the router (files in the test's
// directory, dhcpcd in a private mount namespace); StartPointToPoint
// brings up a point-to-point link to ISP3 (labtool tunpair: a tun pair
// bridged by a forwarder), as a PPP session would.
package lab
