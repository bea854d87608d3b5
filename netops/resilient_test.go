package netops

import (
	"encoding/json"
	"fmt"
	"github.com/vishvananda/netlink"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// nexthopConn opens a NexthopConn in namespace ns.
func nexthopConn(t *testing.T, ns string) *NexthopConn {
	t.Helper()
	var c *NexthopConn
	nsFD(t, ns, func(fd int) {
		var err error
		if c, err = DialNexthops(fd); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// bucketsOf counts the buckets of group id per uplink (both its members),
// by the uplink's first nexthop ID, from `ip nexthop bucket show`.
func bucketsOf(t *testing.T, ns string, id string) map[uint32]int {
	t.Helper()
	out := make(map[uint32]int)
	for _, nh := range bucketMap(t, ns, id) {
		out[uplinkOf(nh)]++
	}
	return out
}

// uplinkOf maps a twin's nexthop ID to its uplink's first one.
func uplinkOf(nh uint32) uint32 {
	ids := NexthopIDs(resilient.NexthopIDBase)
	for s := range MaxUplinks {
		if ids.Twin(s) == nh {
			return ids.Uplink(s)
		}
	}
	return nh
}

// modelBuckets is what the kernel should give uplinks of the given weights
// in a group of b buckets: their two members' buckets, by the uplink's first
// nexthop ID (ids[i]).
func modelBuckets(b int, weights []int, ids ...uint32) map[uint32]int {
	m := kernelBuckets(b, twins(weights))
	out := make(map[uint32]int)
	for i, id := range ids {
		out[id] = m[2*i] + m[2*i+1]
	}
	return out
}

// touchBuckets looks up the route of n UDP flows of the namespace itself,
// which marks their buckets busy.
func touchBuckets(t *testing.T, ns string, n int) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	var in strings.Builder
	for p := range n {
		fmt.Fprintf(&in, "route get 198.18.0.1 ipproto udp sport %d dport 9\n", 1024+p)
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("route lookups: %v: %.500s", err, out)
	}
}

// bucketMap returns the member of every bucket of group id.
func bucketMap(t *testing.T, ns string, id string) map[int]uint32 {
	t.Helper()
	var buckets []struct {
		Bucket struct {
			Index int    `json:"index"`
			NHID  uint32 `json:"nhid"`
		} `json:"bucket"`
	}
	if err := json.Unmarshal([]byte(ipOut(t, ns, "-j", "nexthop", "bucket", "show", "id", id)), &buckets); err != nil {
		t.Fatal(err)
	}
	out := make(map[int]uint32)
	for _, b := range buckets {
		out[b.Bucket.Index] = b.Bucket.NHID
	}
	return out
}

func waitUntil(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// carrierNS is nsHandle with both links' peers up: nexthop objects need
// carrier. It returns the namespace, a handle and a nexthop connection in it.
func carrierNS(t *testing.T) (string, *netlink.Handle, *NexthopConn) {
	t.Helper()
	ns, h := nsHandle(t)
	nh := nexthopConn(t, ns)
	ipOut(t, ns+"-p", "link", "set", "up1", "up")
	ipOut(t, ns+"-p", "link", "set", "up2", "up")
	waitUntil(t, "carrier on eth1 and eth2", 5*time.Second, func() bool {
		return !strings.Contains(ipOut(t, ns, "link"), "NO-CARRIER")
	})
	return ns, h, nh
}

func TestReconcileResilientKernel(t *testing.T) {
	ns, h, nh := carrierNS(t)
	u1, u2 := inNS(t, h, withCarrier(isp1(true)), withCarrier(isp2(true)))
	s := resilient
	s.IdleTimer = 3 * time.Second
	r := &Reconciler{K: h, NH: nh, Protocol: 201}
	// A foreign nexthop, even in uplinkd's range, is never touched.
	ipOut(t, ns, "nexthop", "add", "id", "2010000100", "blackhole")
	const group = "2010000000"
	const id1, id2 = 2010000001, 2010000002

	both := Plan(s, []Uplink{u1, u2})
	res, err := r.Reconcile(both)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if want := len(both.Routes) + len(both.Rules) + len(both.Nexthops); res.Changes() != want {
		t.Fatalf("first reconcile made %d changes, want %d: %v", res.Changes(), want, res)
	}
	if bal := ipOut(t, ns, "route", "show", "table", "250"); !strings.HasPrefix(bal, "default nhid "+group+" proto 201") {
		t.Fatalf("balance table:\n%s", bal)
	}
	nhs := ipOut(t, ns, "nexthop", "show", "id", group)
	if !strings.Contains(nhs, "group 2010000001/2010000065/2010000002,3/2010000066,3 type resilient buckets 1024 idle_timer 3 unbalanced_timer 0") ||
		!strings.Contains(nhs, "proto 201") {
		t.Fatalf("group: %s", nhs)
	}
	// The kernel splits the buckets exactly by weight.
	want2 := modelBuckets(1024, []int{1, 3}, id1, id2)
	if b := bucketsOf(t, ns, group); !maps.Equal(b, want2) || b[id1] != 256 {
		t.Fatalf("buckets: %v, want %v", b, want2)
	}
	if res, err := r.Reconcile(both); err != nil || res.Changes() != 0 {
		t.Fatalf("second reconcile: %d changes %v, err %v", res.Changes(), res, err)
	}

	// isp2 leaves: the group is replaced in place, the route is not
	// touched, and isp1 keeps its own buckets and gets isp2's.
	u2.InBalance = false
	res, err = r.Reconcile(Plan(s, []Uplink{u1, u2}))
	if err != nil || res.Changes() != 1 || !strings.HasPrefix(res.Added[0], "nexthop id "+group) {
		t.Fatalf("isp2 out: %v, err %v", res, err)
	}
	if b := bucketsOf(t, ns, group); b[id1] != 1024 {
		t.Fatalf("buckets with isp2 out: %v", b)
	}
	// isp2 returns: its buckets move back only once idle. Traffic (here
	// route lookups of 16384 flows of the router itself, iif lo) keeps
	// nearly all of them busy; a bucket not used since it moved is idle.
	// (Were isp1 a single member, the kernel would not hash and so not
	// track activity: everything owed to isp2 would move at once.)
	returns := func(all, without Desired, returning uint32, want map[uint32]int) {
		t.Helper()
		if _, err := r.Reconcile(without); err != nil {
			t.Fatal(err)
		}
		before := bucketMap(t, ns, group)
		touchBuckets(t, ns, 16384)
		if _, err := r.Reconcile(all); err != nil {
			t.Fatal(err)
		}
		if b := bucketsOf(t, ns, group); b[returning] > 5 {
			t.Fatalf("busy buckets moved back at once: %v", b)
		}
		waitUntil(t, "idle buckets to move back", 15*time.Second, func() bool {
			return maps.Equal(bucketsOf(t, ns, group), want)
		})
		// Only buckets that go to the returning uplink moved.
		for i, nh := range bucketMap(t, ns, group) {
			if uplinkOf(nh) != returning && nh != before[i] {
				t.Fatalf("bucket %d moved from %d to %d", i, before[i], nh)
			}
		}
	}
	u2.InBalance = true
	u2out := u2
	u2out.InBalance = false
	returns(both, Plan(s, []Uplink{u1, u2out}), id2, want2)

	// The same with three uplinks; isp3 is a second uplink on eth1.
	ipOut(t, ns, "addr", "add", "198.51.100.3/24", "dev", "eth1")
	u3 := Uplink{Name: "isp3", Table: 300, Weight: 1, Gateway: gw1, Index: u1.Index,
		Addr: netip.MustParsePrefix("198.51.100.3/24"), Carrier: true, InBalance: true, Slot: 2}
	const id3 = 2010000003
	three := Plan(s, []Uplink{u1, u2, u3})
	if res, err := r.Reconcile(three); err != nil || !slices.Contains(res.Added, "nexthop "+three.Nexthops[4].String()) {
		t.Fatalf("isp3 in: %v, err %v", res, err)
	}
	want3 := modelBuckets(1024, []int{1, 3, 1}, id1, id2, id3)
	waitUntil(t, "idle buckets to spread over three", 15*time.Second, func() bool {
		return maps.Equal(bucketsOf(t, ns, group), want3)
	})
	returns(three, Plan(s, []Uplink{u1, u2out, u3}), id2, want3)
	if _, err := r.Reconcile(both); err != nil {
		t.Fatal(err)
	}

	// Carrier loss: the kernel deletes isp2's nexthop and removes it from
	// the group without a word. A reconcile that still believes in isp2
	// cannot re-create it and keeps the group going with isp1 alone.
	ipOut(t, ns+"-p", "link", "set", "up2", "down")
	waitUntil(t, "the kernel to delete isp2's nexthop", 5*time.Second, func() bool {
		return !strings.Contains(ipOut(t, ns, "nexthop"), "id 2010000002 ")
	})
	if _, err := r.Reconcile(both); err == nil || !strings.Contains(err.Error(), "Carrier for nexthop device is down") {
		t.Fatalf("reconcile without carrier: err %v", err)
	}
	if got := ipOut(t, ns, "nexthop", "show", "id", group); !strings.Contains(got, "group 2010000001/2010000065 type resilient") {
		t.Fatalf("group without carrier: %s", got)
	}
	ipOut(t, ns+"-p", "link", "set", "up2", "up")
	waitUntil(t, "the reconcile to restore isp2's nexthop", 5*time.Second, func() bool {
		_, err := r.Reconcile(both)
		return err == nil
	})
	if res, err := r.Reconcile(both); err != nil || res.Changes() != 0 {
		t.Fatalf("after carrier returned: %v, err %v", res, err)
	}

	// Admin down deletes every route and nexthop through eth1, then
	// isp1's group membership; deleting the last member takes the group
	// and the balance route with it.
	ipOut(t, ns, "link", "set", "eth1", "down")
	ipOut(t, ns, "link", "set", "eth2", "down")
	if got := ipOut(t, ns, "route", "show", "table", "250"); got != "" {
		t.Fatalf("balance route survived its group: %s", got)
	}
	ipOut(t, ns, "link", "set", "eth1", "up")
	ipOut(t, ns, "link", "set", "eth2", "up")
	waitUntil(t, "repair after admin down", 5*time.Second, func() bool {
		_, err := r.Reconcile(both)
		return err == nil
	})
	if res, err := r.Reconcile(both); err != nil || res.Changes() != 0 {
		t.Fatalf("after repair: %v, err %v", res, err)
	}

	// A new weight that needs more buckets (1:9: 2048) changes the bucket
	// count, which the kernel cannot do in place: the group is created
	// anew, and the route through it too. (Fewer buckets keep the group:
	// TestResilientWeightChangeInPlace.)
	u2.Weight = 9
	reweighted := Plan(s, []Uplink{u1, u2})
	res, err = r.Reconcile(reweighted)
	if err != nil || len(res.Removed) != 1 || len(res.Added) != 2 {
		t.Fatalf("new bucket count: %v, err %v", res, err)
	}
	if got := ipOut(t, ns, "nexthop", "show", "id", group); !strings.Contains(got, "group 2010000001/2010000065/2010000002,9/2010000066,9 type resilient buckets 2048") {
		t.Fatalf("group after new weights: %s", got)
	}
	if bal := ipOut(t, ns, "route", "show", "table", "250"); !strings.HasPrefix(bal, "default nhid "+group) {
		t.Fatalf("balance table after new weights:\n%s", bal)
	}

	// An object of another protocol with one of uplinkd's IDs is reported
	// and left alone.
	ipOut(t, ns, "nexthop", "del", "id", "2010000002")
	ipOut(t, ns, "nexthop", "add", "id", "2010000002", "via", "203.0.113.1", "dev", "eth2", "proto", "4")
	if _, err := r.Reconcile(reweighted); err == nil || !strings.Contains(err.Error(), "belongs to protocol 4") {
		t.Fatalf("foreign object at a desired ID: err %v", err)
	}
	if got := ipOut(t, ns, "nexthop", "show", "id", "2010000002"); !strings.Contains(got, "proto static") {
		t.Fatalf("foreign object changed: %s", got)
	}
	ipOut(t, ns, "nexthop", "del", "id", "2010000002")

	// Switching to the multipath balancer: the route is replaced first,
	// then the nexthop objects go.
	mp := settings
	res, err = r.Reconcile(Plan(mp, []Uplink{u1, u2}))
	if err != nil {
		t.Fatalf("to multipath: %v (%v)", err, res)
	}
	bal := ipOut(t, ns, "route", "show", "table", "250")
	if strings.Contains(bal, "nhid") || !strings.Contains(bal, "nexthop via 203.0.113.1 dev eth2 weight 9") {
		t.Fatalf("balance table after switching to multipath:\n%s", bal)
	}
	if got := ipOut(t, ns, "nexthop", "show", "proto", "201"); got != "" {
		t.Fatalf("nexthops left after switching to multipath:\n%s", got)
	}
	if res, err := r.Reconcile(reweighted); err != nil || res.Changes() != len(reweighted.Nexthops)+1 {
		t.Fatalf("back to resilient: %v, err %v", res, err)
	}

	if _, err := r.Cleanup(); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if got := ipOut(t, ns, "nexthop", "show", "proto", "201") + ipOut(t, ns, "route", "show", "table", "all", "proto", "201"); got != "" {
		t.Fatalf("left after cleanup:\n%s", got)
	}
	if got := ipOut(t, ns, "nexthop", "show", "id", "2010000100"); !strings.Contains(got, "blackhole") {
		t.Fatalf("foreign nexthop removed: %q", got)
	}
}

func TestSupportsResilient(t *testing.T) {
	ns, _ := nsHandle(t)
	nh := nexthopConn(t, ns)
	ids := NexthopIDs(2010000000)
	// Leftovers of a check that crashed are cleaned up.
	ipOut(t, ns, "nexthop", "add", "id", "2010000254", "blackhole", "proto", "201")
	if err := SupportsResilient(nh, ids, 201); err != nil {
		t.Fatalf("SupportsResilient: %v", err)
	}
	if got := ipOut(t, ns, "nexthop"); got != "" {
		t.Fatalf("left behind:\n%s", got)
	}
	// Someone else's object at the check's ID is not uplinkd's to delete.
	ipOut(t, ns, "nexthop", "add", "id", "2010000255", "blackhole")
	if err := SupportsResilient(nh, ids, 201); err == nil || !strings.Contains(err.Error(), "2010000255") {
		t.Fatalf("SupportsResilient with a foreign object at its ID: %v", err)
	}
	if got := ipOut(t, ns, "nexthop"); !strings.Contains(got, "id 2010000255 blackhole") {
		t.Fatalf("foreign object touched:\n%s", got)
	}
}

// A weight change that needs fewer buckets keeps the group and its bucket
// count: the group is replaced in place, the route is untouched, and only
// the buckets the new weights require change hands.
func TestResilientWeightChangeInPlace(t *testing.T) {
	ns, h, nh := carrierNS(t)
	u1, u2 := inNS(t, h, withCarrier(isp1(true)), withCarrier(isp2(true)))
	r := &Reconciler{K: h, NH: nh, Protocol: 201}
	const group = "2010000000"
	const id1, id2 = 2010000001, 2010000002
	if _, err := r.Reconcile(Plan(resilient, []Uplink{u1, u2})); err != nil {
		t.Fatal(err)
	}
	before := bucketMap(t, ns, group)

	u2.Weight = 1 // 1:3 -> 1:1 plans 512 buckets; the group keeps 1024
	res, err := r.Reconcile(Plan(resilient, []Uplink{u1, u2}))
	if err != nil || res.Changes() != 1 || len(res.Removed) != 0 || !strings.HasPrefix(res.Added[0], "nexthop id "+group) {
		t.Fatalf("weight change: %v, err %v", res, err)
	}
	if nhs := ipOut(t, ns, "nexthop", "show", "id", group); !strings.Contains(nhs, "type resilient buckets 1024") {
		t.Fatalf("group: %s", nhs)
	}
	if res, err := r.Reconcile(Plan(resilient, []Uplink{u1, u2})); err != nil || res.Changes() != 0 {
		t.Fatalf("reconcile after the change: %v, err %v", res, err)
	}
	after := bucketMap(t, ns, group)
	if b := bucketsOf(t, ns, group); b[id1] != 512 {
		t.Fatalf("buckets after 1:1: %v", b)
	}
	// BucketCounts reads the same split as `ip nexthop bucket show`.
	want := make(map[uint32]int)
	for _, nh := range after {
		want[nh]++
	}
	got, err := nh.BucketCounts(2010000000)
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("BucketCounts = %v (err %v), ip says %v", got, err, want)
	}
	// Exactly 256 buckets move, all from isp2's members to isp1's.
	moved := 0
	for i, was := range before {
		if after[i] != was {
			moved++
			if isp1Member(was) || !isp1Member(after[i]) {
				t.Fatalf("bucket %d moved %d -> %d", i, was, after[i])
			}
		}
	}
	if moved != 256 {
		t.Fatalf("%d buckets moved, want 256", moved)
	}
}

func isp1Member(id uint32) bool { return id == 2010000001 || id == 2010000065 }
