package monitor

import (
	"fmt"

	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NexthopsOn counts the nexthop objects of namespace ns that go out of the
// interface with index ifindex. The kernel deletes such objects by itself
// when the interface loses its carrier, and says nothing about it: the
// link message is then the only trace of that routing change.
func NexthopsOn(ns string, ifindex int) (int, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return 0, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(h)})
	if err != nil {
		return 0, fmt.Errorf("dial rtnetlink in %s: %w", ns, err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETNEXTHOP, Flags: netlink.Request | netlink.Dump},
		Data:   make([]byte, 8), // struct nhmsg, any family
	})
	if err != nil {
		return 0, fmt.Errorf("dump nexthops in %s: %w", ns, err)
	}
	n := 0
	for _, m := range msgs {
		if len(m.Data) < 8 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[8:])
		if err != nil {
			continue
		}
		for ad.Next() {
			if ad.Type() == unix.NHA_OIF && int(ad.Uint32()) == ifindex {
				n++
			}
		}
	}
	return n, nil
}

// CarrierLost reports whether e says the interface named link has no
// carrier.
func CarrierLost(e Event, link string) bool {
	return e.Kind() == "link" && e.Type == unix.RTM_NEWLINK && e.Link == link && e.Flags&unix.IFF_LOWER_UP == 0
}
