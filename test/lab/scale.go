package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Namespaces of a scale lab (NewScale), as accepted by NS, Exec, IP and
// Start.
const (
	// WAN holds the far end of every uplink of a scale lab and the probe
	// targets ScaleTarget1 and ScaleTarget2 on its loopback.
	WAN = "wan"
	// Peer is the far end of the router's non-uplink interface PeerLink,
	// the next hop of foreign routes loaded into the router's main table.
	Peer = "peer"
)

// Addresses and names of a scale lab.
var (
	ScaleTarget1 = Target1
	ScaleTarget2 = Target2
	// PeerRouterAddr is the router's address on PeerLink and PeerAddr the
	// peer's: the next hop of foreign routes.
	PeerRouterAddr = netip.MustParsePrefix("192.0.2.1/24")
	PeerAddr       = netip.MustParseAddr("192.0.2.2")
)

// PeerLink is the router's interface towards Peer in a scale lab.
const PeerLink = "lan0"

// MaxScaleUplinks bounds NewScale: uplink access networks are /30s carved
// out of 198.19.0.0/16.
const MaxScaleUplinks = 4096

// ScaleUplink describes uplink i (from 0) of a scale lab.
type ScaleUplink struct {
	Link    string       // router interface, "u<i>"
	Far     string       // WAN-side interface, "g<i>"
	Addr    netip.Prefix // router address, a /30
	Gateway netip.Addr   // WAN-side address
}

// ScaleUplinkAt returns uplink i of a scale lab.
func ScaleUplinkAt(i int) ScaleUplink {
	base := netip.AddrFrom4([4]byte{198, 19, byte(i / 64), byte(i % 64 * 4)})
	gw := base.Next()
	return ScaleUplink{
		Link:    "u" + strconv.Itoa(i),
		Far:     "g" + strconv.Itoa(i),
		Addr:    netip.PrefixFrom(gw.Next(), 30),
		Gateway: gw,
	}
}

// NewScale builds a scale lab: a router (prefix+"-r") with n uplinks, each
// a veth pair to one WAN namespace (prefix+"-wan") that answers pings to
// ScaleTarget1 and ScaleTarget2, and one non-uplink interface PeerLink to a
// peer namespace (prefix+"-peer"). The router's main table has only its
// connected routes. The lab's methods that name ISPs do not apply to it;
// Start, Exec, IP, NS and Close do. Faults are link changes of the WAN-side
// interfaces (ScaleUplink.Far), which the router sees as carrier changes.
func NewScale(ctx context.Context, prefix string, n int) (*Lab, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("lab: bad prefix %q: want %s", prefix, prefixRE)
	}
	if n < 1 || n > MaxScaleUplinks {
		return nil, fmt.Errorf("lab: scale lab with %d uplinks: want 1 to %d", n, MaxScaleUplinks)
	}
	l := &Lab{prefix: prefix, uplinks: make(map[string]*uplink), namespaces: []string{Router, WAN, Peer}}
	if err := l.buildScale(ctx, n); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("lab %s: %w", prefix, err)
	}
	return l, nil
}

func (l *Lab) buildScale(ctx context.Context, n int) error {
	for _, ns := range l.namespaces {
		if _, err := runIP(ctx, "netns", "add", l.NS(ns)); err != nil {
			return err
		}
		l.mu.Lock()
		l.created = append(l.created, l.NS(ns))
		l.mu.Unlock()
		// Defaults first, so that every interface created later inherits
		// them: lab paths are asymmetric, reverse-path filtering is off.
		kv := []string{"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"}
		if ns == Router {
			kv = append(kv, "net.ipv4.ip_forward=1")
		}
		if err := l.sysctl(ctx, ns, kv...); err != nil {
			return err
		}
	}
	var steps []step
	add := func(ns string, args ...string) { steps = append(steps, step{ns, args}) }
	add(Router, "link", "add", PeerLink, "type", "veth", "peer", "name", PeerLink, "netns", l.NS(Peer))
	for i := range n {
		u := ScaleUplinkAt(i)
		add(Router, "link", "add", u.Link, "type", "veth", "peer", "name", u.Far, "netns", l.NS(WAN))
	}
	add(Router, "addr", "add", PeerRouterAddr.String(), "dev", PeerLink)
	for i := range n {
		u := ScaleUplinkAt(i)
		add(Router, "addr", "add", u.Addr.String(), "dev", u.Link)
		add(Router, "link", "set", u.Link, "up")
	}
	add(Router, "link", "set", PeerLink, "up")
	add(Router, "link", "set", "lo", "up")
	for i := range n {
		u := ScaleUplinkAt(i)
		add(WAN, "addr", "add", netip.PrefixFrom(u.Gateway, 30).String(), "dev", u.Far)
		add(WAN, "link", "set", u.Far, "up")
	}
	add(WAN, "addr", "add", netip.PrefixFrom(ScaleTarget1, 32).String(), "dev", "lo")
	add(WAN, "addr", "add", netip.PrefixFrom(ScaleTarget2, 32).String(), "dev", "lo")
	add(WAN, "link", "set", "lo", "up")
	add(Peer, "addr", "add", netip.PrefixFrom(PeerAddr, PeerRouterAddr.Bits()).String(), "dev", PeerLink)
	add(Peer, "link", "set", PeerLink, "up")
	add(Peer, "link", "set", "lo", "up")
	return l.runSteps(ctx, steps)
}

// ScaleUplinkConfig returns the [[uplink]] part of an uplinkd configuration
// for the first n uplinks of a scale lab: names "w<i>", weight 1, tables
// from firstTable on.
func ScaleUplinkConfig(n, firstTable int) string {
	var b []byte
	for i := range n {
		u := ScaleUplinkAt(i)
		b = fmt.Appendf(b, "\n[[uplink]]\nname = \"w%d\"\ninterface = %q\ngateway = %q\nweight = 1\ntable = %d\n",
			i, u.Link, u.Gateway, firstTable+i)
	}
	return string(b)
}
