package config

import (
	"net/netip"
	"slices"
	"strings"
)

// Probe targets may be host names ("one.one.one.one"): the daemon resolves
// them outside its event loop, at start, on reload and periodically. The
// configuration only keeps them, in Probe.TargetNames and
// Uplink.ProbeTargetNames, next to the address targets.

// hostName says whether s is a DNS host name a target may be: two or more
// dot-separated labels of letters, digits and hyphens (not at either end of a label), at
// most 63 characters each and 253 in all, not all digits (then it would be
// a mistyped address).
func hostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false // one label: a typo more likely than a search domain
	}
	letter := false
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				letter = true
			case c >= '0' && c <= '9', c == '-':
			default:
				return false
			}
		}
	}
	return letter
}

// NamesFor returns the host names among u's probe targets: its own list's
// when it has one, else those of [probe].
func (c *Config) NamesFor(u Uplink) []string {
	if u.IPv6Only {
		return nil
	}
	if u.ProbeTargets != nil {
		return u.ProbeTargetNames
	}
	return c.Probe.TargetNames
}

// Names returns every host name any uplink probes, each once, in file
// order.
func (c *Config) Names() []string {
	var out []string
	seen := make(map[string]bool)
	add := func(names []string) {
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	add(c.Probe.TargetNames)
	for _, u := range c.Uplinks {
		add(u.ProbeTargetNames)
	}
	return out
}

// TargetsResolved is TargetsWith with u's host names resolved by resolve
// (false: not resolved, left out) and appended to its other targets as
// ICMP targets, without duplicates. An uplink with names is never probed
// at its gateway instead, even before they resolve.
func (c *Config) TargetsResolved(u Uplink, gw netip.Addr, resolve func(name string) (netip.Addr, bool)) []Target {
	targets := c.TargetsWith(u, gw)
	names := c.NamesFor(u)
	if len(names) == 0 || resolve == nil {
		return targets
	}
	out := slices.Clone(targets)
	for _, n := range names {
		if a, ok := resolve(n); ok {
			if t := (Target{Method: MethodICMP, Addr: a}); !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}
