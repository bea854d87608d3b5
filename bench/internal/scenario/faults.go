package scenario

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Fault is one failure of an ISP, injected and repaired over netlink in
// the ISP's namespace so that the stamp taken just before is within
// microseconds of the kernel's change.
type Fault struct {
	Name   string // "carrier loss"
	Key    string // "carrier"
	Inject func(h *netlink.Handle) error
	Repair func(h *netlink.Handle) error
}

// ispLink is the ISP's end of the router's access link (lab's "down0").
const ispLink = "down0"

var blackholeDst = func() *net.IPNet {
	_, n, _ := net.ParseCIDR(lab.BlackholePrefix.String())
	return n
}()

// Faults are the failures the failover scenarios inject, as test/lab
// defines them: CarrierDown, Blackhole and GatewayARP.
var Faults = []Fault{
	{
		Name: "carrier loss", Key: "carrier",
		Inject: func(h *netlink.Handle) error { return setLink(h, false) },
		Repair: func(h *netlink.Handle) error { return setLink(h, true) },
	},
	{
		Name: "upstream blackhole", Key: "blackhole",
		Inject: func(h *netlink.Handle) error {
			return h.RouteReplace(&netlink.Route{Dst: blackholeDst, Type: unix.RTN_BLACKHOLE})
		},
		Repair: func(h *netlink.Handle) error {
			return h.RouteDel(&netlink.Route{Dst: blackholeDst, Type: unix.RTN_BLACKHOLE})
		},
	},
	{
		Name: "gateway ARP failure", Key: "arp",
		Inject: func(h *netlink.Handle) error { return setARP(h, false) },
		Repair: func(h *netlink.Handle) error { return setARP(h, true) },
	},
}

func setLink(h *netlink.Handle, up bool) error {
	l, err := h.LinkByName(ispLink)
	if err != nil {
		return err
	}
	if up {
		return h.LinkSetUp(l)
	}
	return h.LinkSetDown(l)
}

func setARP(h *netlink.Handle, on bool) error {
	l, err := h.LinkByName(ispLink)
	if err != nil {
		return err
	}
	if on {
		return h.LinkSetARPOn(l)
	}
	return h.LinkSetARPOff(l)
}

// handleIn opens a netlink handle in the namespace named ns.
func handleIn(ns string) (*netlink.Handle, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	return nh, nil
}
