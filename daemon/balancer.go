package daemon

import (
	"errors"
	"fmt"

	"github.com/uplinkd/uplinkd/netops"
)

// Balancer is the balancer chosen at startup ("hash-threshold",
// "resilient" or "multipath"), or "" before Run has chosen one. It may be called from any
// goroutine.
func (d *Daemon) Balancer() string {
	if b := d.balancer.Load(); b != nil {
		return b.String()
	}
	return ""
}

// chooseBalancer applies [routing] balancer. "auto" picks a
// hash-threshold group when connections are pinned (established ones never
// go through it, so new ones may follow the weights at once), else a
// resilient group (which only approximates pinning, per bucket), each when
// the kernel can create one, else a multipath route. "hash-threshold" and
// "resilient" require the kernel to have them.
func (d *Daemon) chooseBalancer() (netops.Balancer, error) {
	r := d.cfg.Routing
	if r.Balancer == "multipath" {
		d.log.Info("balancer", "balancer", netops.Multipath, "reason", "set in the configuration")
		return netops.Multipath, nil
	}
	ids := netops.NexthopIDs(r.NexthopIDBase)
	supports := func(typ netops.GroupType) error {
		nh := d.rec.Nexthops()
		if nh == nil {
			return errors.New("no rtnetlink socket for nexthop objects")
		}
		return netops.SupportsGroup(nh, ids, r.RouteProtocol, typ)
	}
	if r.Balancer == "hash-threshold" || (r.Balancer == "auto" && d.pinOn()) {
		err := supports(netops.GroupMultipath)
		switch {
		case err == nil:
			reason := "connections are pinned, and the kernel has nexthop objects"
			if r.Balancer == "hash-threshold" {
				reason = "set in the configuration"
			}
			d.log.Info("balancer", "balancer", netops.HashThreshold, "reason", reason)
			return netops.HashThreshold, nil
		case r.Balancer == "hash-threshold":
			return 0, fmt.Errorf("balancer = \"hash-threshold\", but the kernel cannot create a nexthop group: %w", err)
		}
		d.log.Info("balancer", "balancer", netops.Multipath, "reason", fmt.Sprintf("connections are pinned, but no nexthop groups: %v", err))
		return netops.Multipath, nil
	}
	err := supports(netops.GroupResilient)
	switch {
	case err == nil:
		reason := "the kernel supports resilient nexthop groups"
		if r.Balancer == "resilient" {
			reason = "set in the configuration"
		} else {
			reason = fmt.Sprintf("connections are not pinned (%s), and %s", d.pin.off, reason)
		}
		d.log.Info("balancer", "balancer", netops.Resilient, "reason", reason)
		return netops.Resilient, nil
	case r.Balancer == "resilient":
		return 0, fmt.Errorf("balancer = \"resilient\", but the kernel cannot create a resilient nexthop group: %w", err)
	}
	d.log.Info("balancer", "balancer", netops.Multipath, "reason", fmt.Sprintf("no resilient nexthop groups: %v", err))
	return netops.Multipath, nil
}
