package config

import (
	"fmt"
	"net/netip"
)

// WellKnownMark is a firewall mark (or mask) other software on routers
// uses; uplinkd's mark_mask should stay clear of it.
type WellKnownMark struct {
	Mask uint32
	Who  string
}

// WellKnownMarks are the marks `uplinkd check` warns about.
var WellKnownMarks = []WellKnownMark{
	{0xff0000, "tailscale"},
	{0x4000, "kube-proxy (masquerade mark)"},
	{0x8000, "kube-proxy and docker (drop mark)"},
	{0xca6c, "wg-quick"},
}

// Warnings returns what is legal but likely wrong in cfg, for `uplinkd
// check` and the daemon's log: mark bits shared with well-known software,
// and uplinks behind the same gateway address (two modems on
// 192.168.1.0/24: their prefixes overlap, and main's connected route for
// it goes through one of them only).
func (c *Config) Warnings() []string {
	out := c.MarkRuleWarnings(WellKnownMarks)
	seen := make(map[netip.Addr]string)
	for _, u := range c.Uplinks {
		if !u.Gateway.IsValid() {
			continue // learned or none
		}
		if o, dup := seen[u.Gateway]; dup {
			out = append(out, fmt.Sprintf("uplinks %s and %s have the same gateway %s: their prefixes overlap; "+
				"renumber one modem's LAN so each uplink has its own prefix", o, u.Name, u.Gateway))
			continue
		}
		seen[u.Gateway] = u.Name
	}
	return out
}

// OverlapWarnings warns about uplinks whose interface prefixes (as the
// kernel has them now: name to prefix) overlap. Traffic to the shared
// prefix follows main's connected route, through one of them only, and
// the router cannot reach the other modem's network.
func (c *Config) OverlapWarnings(prefixes map[string]netip.Prefix) []string {
	var out []string
	for i, a := range c.Uplinks {
		pa, ok := prefixes[a.Interface]
		if !ok {
			continue
		}
		for _, b := range c.Uplinks[i+1:] {
			if pb, ok := prefixes[b.Interface]; ok && pa.Masked().Overlaps(pb.Masked()) {
				out = append(out, fmt.Sprintf("uplinks %s (%s on %s) and %s (%s on %s) have overlapping prefixes: "+
					"main routes that prefix through one of them only", a.Name, pa, a.Interface, b.Name, pb, b.Interface))
			}
		}
	}
	return out
}

// MarkRuleWarnings warns about firewall marks in use on this system (from
// the policy rules, fwmark value and mask) that share bits with mark_mask.
func (c *Config) MarkRuleWarnings(marks []WellKnownMark) []string {
	var out []string
	m := c.Routing.MarkMask
	for _, w := range marks {
		if m != 0 && m&w.Mask != 0 {
			out = append(out, fmt.Sprintf("routing.mark_mask %#x overlaps fwmark %#x of %s", m, w.Mask, w.Who))
		}
	}
	return out
}
