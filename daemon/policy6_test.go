package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
)

// Policies choose their tier per family: isp1's IPv6 failing moves the
// IPv6 side of policy default to isp2 while IPv4 stays on isp1; status
// shows both, and on_policy runs with UPLINKD_FAMILY=ipv6.
func TestPolicyPerFamily(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "policy.log")
	hook := writeHook(t, dir, `echo "$UPLINKD_POLICY $UPLINKD_FAMILY $UPLINKD_TIER_FROM $UPLINKD_TIER_TO" >> `+out+"\n")
	doc := dualUplinks + fmt.Sprintf(`
[hooks]
on_policy = [%q]
[[policy]]
name = "default"
tiers = [["isp1"], ["isp2"]]
last_resort = "unreachable"
`, hook)
	d := quietDaemon(t, doc)
	d.sysctl = nil
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.hooks.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	d.observe(dualSnapshot(), nil)
	isp1, isp2 := d.uplinks[0], d.uplinks[1]
	isp2.v6.gw = isp1.v6.cfg.Gateway6 // as if learned from an RA
	for _, u := range []*uplink{isp1, isp1.v6, isp2, isp2.v6} {
		u.m.LinkUp("usable", time.Now())
		for range d.cfg.Probe.UpAfter {
			u.m.ProbeRound(true, fsm.Quality{}, time.Now())
		}
	}
	note := func() {
		d.notePolicies(d.choose(d.settings(), d.only4(d.inputs()), ipv4))
		d.notePolicies(d.choose(d.settings(), d.inputs6(), ipv6))
	}
	tiers := func() string {
		var s []string
		for _, p := range d.policyStatus() {
			s = append(s, fmt.Sprintf("%s/%s:%d", p.Name, p.Family, p.Tier))
		}
		return strings.Join(s, " ")
	}
	note()
	if got := tiers(); got != "default/ipv4:1 default/ipv6:1" {
		t.Fatalf("both families up: %s", got)
	}
	for range d.cfg.Probe.DownAfter {
		isp1.v6.m.ProbeRound(false, fsm.Quality{}, time.Now())
	}
	note()
	if got := tiers(); got != "default/ipv4:1 default/ipv6:2" {
		t.Fatalf("isp1's IPv6 failed: %s", got)
	}
	if st := d.policies["default/ipv6"]; st == nil || st.choice.Tier != 2 || d.policies["default"].choice.Tier != 1 {
		t.Fatalf("recorded policies: %+v", d.policies)
	}
	waitFor(t, "the on_policy hook", func() bool {
		b, _ := os.ReadFile(out)
		return string(b) == "default ipv6 1 2\n"
	})

	// A reload without IPv6 forgets IPv6's side of the policies.
	d.apply(parse(t, strings.NewReplacer("gateway6 = \"fe80::1%eth1\"\n", "", "gateway6 = \"auto\"\n", "", "lan_prefix6 = \"2001:db8:200::/56\"\n", "").Replace(doc)))
	d.forgetPolicies(ipv6, nil)
	if _, ok := d.policies["default/ipv6"]; ok || tiers() != "default/ipv4:1" {
		t.Fatalf("after removing IPv6: %s, %v", tiers(), d.policies)
	}
}

// bucketsRouter is fakeNet with a nexthop socket that reads resilient
// groups' buckets.
type bucketsRouter struct {
	*fakeNet
	nh bucketNexthops
}

func (r bucketsRouter) Nexthops() netops.NexthopKernel { return r.nh }

// bucketNexthops answers BucketCounts from counts, by group ID; nothing
// else of netops.NexthopKernel is used.
type bucketNexthops struct {
	netops.NexthopKernel
	counts map[uint32]map[uint32]int
}

func (b bucketNexthops) BucketCounts(id uint32) (map[uint32]int, error) { return b.counts[id], nil }

// With the resilient balancer, the IPv6 shares come from the kernel's
// buckets of IPv6's group, as IPv4's come from IPv4's.
func TestBucketSharesPerFamily(t *testing.T) {
	d := dualDaemon(t)
	bal := netops.Resilient
	d.balancer.Store(&bal)
	base := d.cfg.Routing.NexthopIDBase
	ids4, ids6 := netops.NexthopIDsFor(base, netops.V4), netops.NexthopIDsFor(base, netops.V6)
	s1, s2, s3 := uint32(d.slotOf("isp1")), uint32(d.slotOf("isp2")), uint32(d.slotOf("lte"))
	d.rec = bucketsRouter{newFakeNet(labBalance), bucketNexthops{counts: map[uint32]map[uint32]int{
		ids4.Group: {ids4.Uplink(int(s1)): 64, ids4.Uplink(int(s2)): 32, ids4.Uplink(int(s3)): 32},
		ids6.Group: {ids6.Uplink(int(s1)): 96, ids6.Twin(int(s2)): 32},
	}}}
	got := fmt.Sprint(d.bucketShares(ipv4), d.bucketShares(ipv6))
	if want := "map[isp1:0.5 isp2:0.25 lte:0.25] map[isp1:0.75 isp2:0.25]"; got != want {
		t.Fatalf("shares %s, want %s", got, want)
	}
	shares := make(map[string]float64)
	for _, u := range d.snapshot().Uplinks {
		shares[u.Name+"/"+u.Family] = u.Share
	}
	if shares["isp1/ipv6"] != 0.75 || shares["isp2/ipv6"] != 0.25 || shares["isp1/ipv4"] != 0.5 {
		t.Fatalf("status shares %v", shares)
	}
}
