package test

import (
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
	return r.showTable(id, "-6")
}

// members6 is members for the IPv6 balance route.
func (r *rig) members6() ([]string, int) {
	r.t.Helper()
	return r.membersOf(ipv6)
}

// waitMembers6 waits until the IPv6 balance route has exactly the given
// members ("dev/weight"; none: no balance route).
func (r *rig) waitMembers6(members ...string) {
	r.t.Helper()
	r.waitMembersOf(ipv6, members...)
}

func (r *rig) waitBoth6() {
	r.t.Helper()
	r.waitMembers6("eth1/1", "eth2/3")
}

// waitOnly6 waits until dev is the only uplink in the IPv6 balance.
func (r *rig) waitOnly6(dev string) {
	r.t.Helper()
	r.waitMembers6(onlyMember(dev))
}

// ours6 lists uplinkd's IPv6 routes (all tables) and rules, one per line
// ("-6 " and ip's line), sorted.
func (r *rig) ours6() string {
	lines := append(r.routesOf(ipv6), r.rulesOf(ipv6)...)
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// rules6 lists uplinkd's IPv6 rules, each line prefixed with "-6 " (they
// read like IPv4's otherwise).
func (r *rig) rules6() []string { return r.rulesOf(ipv6) }

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
