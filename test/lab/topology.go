package lab

import (
	"fmt"
	"net/netip"
	"strings"
)

// Short namespace names, as accepted by NS, Exec, IP and Start.
const (
	Router = "r"
	Host   = "h"
	ISP1   = "isp1"
	ISP2   = "isp2"
	Inet   = "inet"
	// ISP3 exists only in a lab made with Options.ThirdISP.
	ISP3 = "isp3"
)

// Addresses of the lab, for tests and configuration files.
var (
	LANPrefix      = netip.MustParsePrefix("192.0.2.0/24")
	RouterLANAddr  = netip.MustParseAddr("192.0.2.1")
	HostAddr       = netip.MustParseAddr("192.0.2.10")
	HostAddr2      = netip.MustParseAddr("192.0.2.11")
	ISP1RouterAddr = netip.MustParsePrefix("198.51.100.2/24")
	ISP1Gateway    = netip.MustParseAddr("198.51.100.1")
	ISP2RouterAddr = netip.MustParsePrefix("203.0.113.2/24")
	ISP2Gateway    = netip.MustParseAddr("203.0.113.1")
	// ISP3's access network is carved out of 198.18.0.0/15, the only
	// documentation range left; Blackhole(ISP3) leaves it reachable.
	ISP3RouterAddr = netip.MustParsePrefix("198.19.30.2/24")
	ISP3Gateway    = netip.MustParseAddr("198.19.30.1")
	// Target1 to Target3 live on the Internet namespace's loopback: probe
	// targets and destinations for test flows.
	Target1 = netip.MustParseAddr("198.18.0.1")
	Target2 = netip.MustParseAddr("198.18.0.2")
	Target3 = netip.MustParseAddr("198.18.0.3")
	// BlackholePrefix is what Blackhole drops inside an ISP: every target.
	BlackholePrefix = netip.MustParsePrefix("198.18.0.0/15")
)

// The router's LAN interface and the host's.
const (
	RouterLANLink = "eth0"
	HostLink      = "eth0"
)

// isp describes one ISP and the router link that reaches it.
type isp struct {
	name       string       // namespace short name, "isp1"
	routerLink string       // router interface at creation, "eth1"
	routerAddr netip.Prefix // router side of the access link
	gateway    netip.Prefix // ISP side of the access link, on "down0"
	upAddr     netip.Prefix // ISP side of the transit link, on "up0"
	inetAddr   netip.Prefix // Internet side of the transit link, named after the ISP
}

// Name of the ISP-side interfaces.
const (
	ispDownLink = "down0"
	ispUpLink   = "up0"
)

var isps = []isp{
	{
		name:       ISP1,
		routerLink: "eth1",
		routerAddr: ISP1RouterAddr,
		gateway:    netip.PrefixFrom(ISP1Gateway, 24),
		upAddr:     netip.MustParsePrefix("198.19.1.1/30"),
		inetAddr:   netip.MustParsePrefix("198.19.1.2/30"),
	},
	{
		name:       ISP2,
		routerLink: "eth2",
		routerAddr: ISP2RouterAddr,
		gateway:    netip.PrefixFrom(ISP2Gateway, 24),
		upAddr:     netip.MustParsePrefix("198.19.2.1/30"),
		inetAddr:   netip.MustParsePrefix("198.19.2.2/30"),
	},
}

// isp3 is the optional third ISP.
var isp3 = isp{
	name:       ISP3,
	routerLink: "eth3",
	routerAddr: ISP3RouterAddr,
	gateway:    netip.PrefixFrom(ISP3Gateway, 24),
	upAddr:     netip.MustParsePrefix("198.19.3.1/30"),
	inetAddr:   netip.MustParsePrefix("198.19.3.2/30"),
}

func (l *Lab) lookupISP(name string) (isp, error) {
	var names []string
	for _, i := range l.isps {
		if i.name == name {
			return i, nil
		}
		names = append(names, fmt.Sprintf("%q", i.name))
	}
	return isp{}, fmt.Errorf("lab: unknown ISP %q (want %s)", name, strings.Join(names, " or "))
}

// adminDefault is the administrator's own default route in the router's
// main table.
func adminDefault(link string) []string {
	return []string{"route", "replace", "default", "via", ISP1Gateway.String(), "dev", link}
}

// namespaces lists every short name, in creation order.
var namespaces = []string{Router, Host, ISP1, ISP2, Inet}

// sysctls returns the settings for namespace ns with the given interfaces.
// Reverse-path filtering is off everywhere because lab paths are
// asymmetric (replies to the LAN always come back through isp1).
func sysctls(ns string, links []string) []string {
	s := []string{
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
	}
	switch ns {
	case Router:
		// A distribution default (systemd's 50-default.conf): deleting a
		// primary address promotes a secondary instead of removing every
		// address of the subnet, which Readdress relies on.
		s = append(s, "net.ipv4.ip_forward=1",
			"net.ipv4.conf.all.promote_secondaries=1",
			"net.ipv4.conf.default.promote_secondaries=1")
	case ISP1, ISP2, ISP3:
		s = append(s, "net.ipv4.ip_forward=1")
	}
	return append(s, linkSysctls(ns, links)...)
}

// linkSysctls returns the per-interface settings, for links created later.
func linkSysctls(ns string, links []string) []string {
	var s []string
	for _, l := range links {
		s = append(s, "net.ipv4.conf."+l+".rp_filter=0")
		if ns == Router {
			s = append(s, "net.ipv4.conf."+l+".promote_secondaries=1")
		}
	}
	return s
}

// UplinkConfig is the [[uplink]] part of an uplinkd configuration for the
// lab's router: isp1 on eth1 (weight 1, table 100) and isp2 on eth2 (weight
// 3, table 200).
const UplinkConfig = `
[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
weight = 1
table = 100

[[uplink]]
name = "isp2"
interface = "eth2"
gateway = "203.0.113.1"
weight = 3
table = 200
`
