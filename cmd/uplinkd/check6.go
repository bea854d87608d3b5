package main

import (
	"fmt"
	"strings"

	"github.com/uplinkd/uplinkd/config"
)

// ipv6Summary is what `uplinkd check` adds to its OK line: how many
// uplinks have IPv6, and of those how many have IPv6 only.
func ipv6Summary(cfg *config.Config) string {
	n, only := 0, 0
	for _, u := range cfg.Uplinks {
		if u.IPv6 {
			n++
		}
		if u.IPv6Only {
			only++
		}
	}
	switch {
	case n == 0:
		return ", IPv4 only"
	case only > 0:
		return fmt.Sprintf(", %d with IPv6 (%d IPv6 only)", n, only)
	}
	return fmt.Sprintf(", %d with IPv6", n)
}

// ipv6Lines describes the IPv6 side of each uplink that has one: its
// gateway, source, LAN prefix and probe targets.
func ipv6Lines(cfg *config.Config) []string {
	var out []string
	for _, u := range cfg.Uplinks {
		if !u.IPv6 {
			continue
		}
		gw := "auto (router advertisements on " + u.Interface + ")"
		if u.Gateway6Mode == config.GatewayStatic {
			gw = u.Gateway6.String() + " on " + u.Interface
		}
		src := "auto"
		if u.Source6.IsValid() {
			src = u.Source6.String()
		}
		lan := "none (LAN IPv6 balanced)"
		if u.LANPrefix6.IsValid() {
			lan = u.LANPrefix6.String() + " (leaves through " + u.Name + " only)"
		}
		targets := "none (carrier-only)"
		if ts := cfg.Targets6For(u); len(ts) > 0 {
			strs := make([]string, len(ts))
			for i, t := range ts {
				strs[i] = t.String()
			}
			targets = strings.Join(strs, " ")
		}
		out = append(out, fmt.Sprintf("%s IPv6: gateway6 %s, source6 %s, lan_prefix6 %s, targets6 %s", u.Name, gw, src, lan, targets))
	}
	return out
}
