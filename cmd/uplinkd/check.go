package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/vishvananda/netlink"
)

// checkWarnings is what `uplinkd check` warns about: the file's own
// warnings, plus what it can see on this system without privileges:
// uplinks whose interface prefixes overlap, and policy rules whose fwmark
// shares bits with mark_mask. A system it cannot read adds nothing.
func checkWarnings(cfg *config.Config) []string {
	out := cfg.Warnings()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if snap, err := events.Dump(ctx); err == nil {
		out = append(out, cfg.OverlapWarnings(uplinkPrefixes(cfg, snap))...)
	}
	if cfg.Routing.MarkMask == 0 {
		return out
	}
	var marks []config.WellKnownMark
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := netlink.RuleList(fam)
		if err != nil {
			continue
		}
		for _, r := range rules {
			if r.Protocol == uint8(cfg.Routing.RouteProtocol) || (r.Mark == 0 && r.Mask == nil) {
				continue
			}
			bits := r.Mark
			if r.Mask != nil {
				bits = *r.Mask
			}
			marks = append(marks, config.WellKnownMark{Mask: bits, Who: fmt.Sprintf("the policy rule at priority %d", r.Priority)})
		}
	}
	return append(out, cfg.MarkRuleWarnings(marks)...)
}

// uplinkPrefixes maps each uplink interface that has an IPv4 address to its
// first one.
func uplinkPrefixes(cfg *config.Config, snap events.Snapshot) map[string]netip.Prefix {
	out := make(map[string]netip.Prefix)
	for _, u := range cfg.Uplinks {
		for _, l := range snap.Links {
			if l.Name != u.Interface {
				continue
			}
			for _, a := range snap.Addrs {
				if a.Index == l.Index && a.Prefix.Addr().Is4() {
					out[u.Interface] = a.Prefix
					break
				}
			}
		}
	}
	return out
}
