package test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/status"
	"github.com/uplinkd/uplinkd/test/lab"
)

// The rig's IPv6 side (issue 12): a dual-stack lab and the configurations,
// tables, balance and leftovers of both families.

// groupID6 is uplinkd's IPv6 balance group with the default
// nexthop_id_base: IPv6's IDs start 1024 after IPv4's.
const groupID6 = groupID + 1024

// health6Config is healthConfig with IPv6 on both uplinks (link-local
// gateway fe80::1) and two IPv6 probe targets, plus extra lines for
// [probe]; LAN IPv6 is balanced like IPv4 (no lan_prefix6).
func health6Config(extra ...string) string {
	return `
[routing]
lan_interfaces = ["eth0"]

[probe]
targets = ["198.18.0.1", "198.18.0.2"]
targets6 = ["2001:db8:ffff::1", "2001:db8:ffff::2"]
` + strings.Join(extra, "\n") + "\n" + lab.UplinkConfig6
}

// core6Config is health6Config with the given balancer ("": auto).
func core6Config(balancer string) string {
	if balancer == "" {
		return health6Config()
	}
	return strings.Replace(health6Config(), "[routing]\n", "[routing]\nbalancer = \""+balancer+"\"\n", 1)
}

// withLANPrefixes gives each uplink of config its delegated prefix
// (lan_prefix6, right after its interface line).
func withLANPrefixes(config string) string {
	config = strings.Replace(config, "interface = \"eth1\"\n", "interface = \"eth1\"\nlan_prefix6 = \""+lab.ISP1LANPrefix6.String()+"\"\n", 1)
	return strings.Replace(config, "interface = \"eth2\"\n", "interface = \"eth2\"\nlan_prefix6 = \""+lab.ISP2LANPrefix6.String()+"\"\n", 1)
}

// newRig6 is newRig in a dual-stack lab.
func newRig6(t *testing.T, config string, opts lab.Options, limit time.Duration) *rig {
	t.Helper()
	opts.IPv6 = true
	return newRigWith(t, config, opts, limit)
}

// v6 names an uplink's IPv6 entity in the daemon's log ("isp2/ipv6").
func v6(uplink string) string { return uplink + "/ipv6" }

// table6 lists an IPv6 routing table of the router ("" when it does not
// exist).
func (r *rig) table6(id string) string {
	r.t.Helper()
	out, err := r.lab.IP(r.ctx, lab.Router, "-6", "route", "show", "table", id)
	if err != nil {
		if strings.Contains(out+err.Error(), "FIB table does not exist") {
			return ""
		}
		r.t.Fatalf("ip -6 route show table %s: %v: %s", id, err, out)
	}
	return out
}

// members6 is members for the IPv6 balance route.
func (r *rig) members6() ([]string, int) {
	r.t.Helper()
	type hop struct {
		Dev    string `json:"dev"`
		Weight int    `json:"weight"`
	}
	var routes []struct {
		Dst      string `json:"dst"`
		Type     string `json:"type"`
		NHID     int    `json:"nhid"`
		Nexthops []hop  `json:"nexthops"`
		hop
	}
	out, err := r.lab.IP(r.ctx, lab.Router, "-6", "-j", "route", "show", "table", "250")
	if err != nil {
		if strings.Contains(out+err.Error(), "FIB table does not exist") {
			return nil, 0
		}
		r.t.Fatalf("ip -6 route show table 250: %v: %s", err, out)
	}
	if out = strings.TrimSpace(out); out != "" {
		if err := json.Unmarshal([]byte(out), &routes); err != nil {
			r.t.Fatalf("IPv6 balance table %q: %v", out, err)
		}
	}
	// The default route only (unreachable or absent: no members).
	routes = slices.DeleteFunc(routes, func(rt struct {
		Dst      string `json:"dst"`
		Type     string `json:"type"`
		NHID     int    `json:"nhid"`
		Nexthops []hop  `json:"nexthops"`
		hop
	}) bool {
		return rt.Dst != "default" || (rt.Type != "" && rt.Type != "unicast")
	})
	if len(routes) == 0 {
		return nil, 0
	}
	rt := routes[0]
	var hops []hop
	switch {
	case rt.NHID != 0:
		var groups []struct {
			Group []struct {
				ID     int `json:"id"`
				Weight int `json:"weight"`
			} `json:"group"`
			Dev string `json:"dev"`
		}
		r.nexthopJSON(rt.NHID, &groups)
		if len(groups[0].Group) == 0 { // a single nexthop object
			hops = []hop{{Dev: groups[0].Dev, Weight: 1}}
		}
		for _, m := range groups[0].Group {
			var nh []hop
			r.nexthopJSON(m.ID, &nh)
			hops = append(hops, hop{Dev: nh[0].Dev, Weight: m.Weight})
		}
	case len(rt.Nexthops) > 0:
		hops = rt.Nexthops
	default:
		hops = []hop{rt.hop}
	}
	var m []string
	for _, h := range hops {
		m = append(m, fmt.Sprintf("%s/%d", h.Dev, max(h.Weight, 1)))
	}
	slices.Sort(m)
	return slices.Compact(m), rt.NHID
}

// waitMembers6 waits until the IPv6 balance route has exactly the given
// members ("dev/weight"; none: no balance route).
func (r *rig) waitMembers6(members ...string) {
	r.t.Helper()
	slices.Sort(members)
	r.waitFor(fmt.Sprintf("IPv6 balance over %v", members), 30*time.Second, func() bool {
		got, nhid := r.members6()
		if !slices.Equal(got, members) {
			return false
		}
		switch {
		case len(members) == 0:
			return true
		case r.balancer == "resilient" || r.balancer == "hash-threshold":
			return nhid == groupID6
		case r.balancer == "multipath":
			return nhid == 0
		}
		return true
	})
}

func (r *rig) waitBoth6() {
	r.t.Helper()
	r.waitMembers6("eth1/1", "eth2/3")
}

// waitOnly6 waits until dev is the only uplink in the IPv6 balance.
func (r *rig) waitOnly6(dev string) {
	r.t.Helper()
	w := map[string]int{"eth1": 1, "eth2": 3}[dev]
	r.waitMembers6(fmt.Sprintf("%s/%d", dev, w))
}

// ours6 lists uplinkd's IPv6 routes (all tables) and rules, one per line
// ("-6 " and ip's line), sorted.
func (r *rig) ours6() string {
	var lines []string
	routes := r.ip(lab.Router, "-6", "-o", "route", "show", "table", "all", "proto", "201")
	for _, l := range strings.Split(routes, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, "-6 "+l)
		}
	}
	lines = append(lines, r.rules6()...)
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// rules6 lists uplinkd's IPv6 rules, each line prefixed with "-6 " (they
// read like IPv4's otherwise).
func (r *rig) rules6() []string {
	var lines []string
	for _, l := range strings.Split(r.ip(lab.Router, "-6", "rule"), "\n") {
		if strings.Contains(l, "proto 201") {
			lines = append(lines, "-6 "+l)
		}
	}
	return lines
}

// uplinkFam returns the status entry of uplink name in family ("ipv4",
// "ipv6").
func uplinkFam(t *testing.T, s *status.Snapshot, name, family string) status.Uplink {
	t.Helper()
	for _, u := range s.Uplinks {
		if u.Name == name && u.Family == family {
			return u
		}
	}
	t.Fatalf("no %s entry of uplink %s in status %+v", family, name, s.Uplinks)
	return status.Uplink{}
}

// containsAll says whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// prefixAddr is a router address of a delegated prefix as the /128 a
// prefix-only uplink uses as its source.
func prefixAddr(a netip.Addr) string { return netip.PrefixFrom(a, 128).String() }
