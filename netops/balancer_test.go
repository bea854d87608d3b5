package netops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestBuckets(t *testing.T) {
	tests := []struct {
		weights []int
		want    int
	}{
		{nil, 128},
		{[]int{1}, 256},
		{[]int{1, 1}, 512},
		{[]int{1, 3}, 1024},
		{[]int{2, 6}, 1024}, // only ratios matter
		{[]int{1, 1, 2}, 1024},
		{[]int{1, 1, 1}, 1024},
		{[]int{256, 256}, 512},
		{[]int{1, 50}, 16384},
		{[]int{1, 256}, 32768},
	}
	for _, tt := range tests {
		if got := Buckets(tt.weights); got != tt.want {
			t.Errorf("Buckets(%v) = %d, want %d", tt.weights, got, tt.want)
		}
	}
}

// kernelBuckets is what the kernel's nh_res_group_rebalance gives each
// member: cumulative upper bounds rounded to the closest bucket.
func kernelBuckets(buckets int, weights []int) []int {
	total := 0
	for _, w := range weights {
		total += w
	}
	out := make([]int, len(weights))
	cum, prev := 0, 0
	for i, w := range weights {
		cum += w
		upper := (buckets*cum + total/2) / total // DIV_ROUND_CLOSEST
		out[i] = upper - prev
		prev = upper
	}
	return out
}

// twins returns the member weights of uplinks with weights w: two
// members each.
func twins(w []int) []int {
	var out []int
	for _, x := range w {
		out = append(out, x, x)
	}
	return out
}

// The documented promise: whichever uplinks are in the balance, each one's
// share of the buckets (those of its two members) is within 1% of its
// weight share, unless the count is capped.
func TestBucketsAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(weights []int) {
		b := Buckets(weights)
		capped := b == MaxBuckets
		for mask := 1; mask < 1<<len(weights); mask++ {
			var in []int
			for i, w := range weights {
				if mask&(1<<i) != 0 {
					in = append(in, w)
				}
			}
			total := 0
			for _, w := range in {
				total += w
			}
			got := kernelBuckets(b, twins(in))
			for i, w := range in {
				want := float64(w) / float64(total)
				share := float64(got[2*i]+got[2*i+1]) / float64(b)
				if capped {
					if math.Abs(share-want) >= 2.0/float64(b) {
						t.Fatalf("weights %v, members %v, %d buckets: uplink %d has %.5f, want %.5f ± 2/%d", weights, in, b, i, share, want, b)
					}
				} else if math.Abs(share-want) > 0.01*want {
					t.Fatalf("weights %v, members %v, %d buckets: uplink %d has %.5f, want %.5f ± 1%%", weights, in, b, i, share, want)
				}
			}
		}
	}
	check([]int{1, 3})
	check([]int{1, 1, 2})
	check([]int{1, 256})
	for range 300 {
		n := 1 + rng.IntN(6)
		w := make([]int, n)
		for i := range w {
			w[i] = 1 + rng.IntN(256)
		}
		check(w)
	}
}

func TestNexthopIDs(t *testing.T) {
	ids := NexthopIDs(2010000000)
	if ids.Group != 2010000000 || ids.Uplink(0) != 2010000001 || ids.Uplink(63) != 2010000064 ||
		ids.Twin(0) != 2010000065 || ids.Twin(63) != 2010000128 || ids.Probe != 2010000254 || ids.ProbeGroup != 2010000255 {
		t.Fatalf("ids = %+v, uplink 0 %d, 63 %d, twins %d %d", ids, ids.Uplink(0), ids.Uplink(63), ids.Twin(0), ids.Twin(63))
	}
	// Slots past the first 64 lie past the first layout's IDs.
	if ids.Uplink(64) != 2010000256 || ids.Uplink(255) != 2010000447 || ids.Twin(64) != 2010000448 || ids.Twin(255) != 2010000639 {
		t.Fatalf("uplink 64 %d, 255 %d, twins %d %d", ids.Uplink(64), ids.Uplink(255), ids.Twin(64), ids.Twin(255))
	}
	for s := range MaxUplinks {
		if got, ok := ids.SlotOf(ids.Uplink(s)); !ok || got != s {
			t.Errorf("SlotOf(Uplink(%d)) = %d, %v", s, got, ok)
		}
		if _, ok := ids.SlotOf(ids.Twin(s)); ok {
			t.Errorf("SlotOf(Twin(%d)) is a slot", s)
		}
	}
	// Every ID has one use.
	used := map[uint32]string{ids.Group: "group", ids.Probe: "probe", ids.ProbeGroup: "probe group"}
	use := func(id uint32, what string) {
		if o, dup := used[id]; dup || !ids.Contains(id) {
			t.Errorf("ID %d of %s: also %q, or out of range", id, what, o)
		}
		used[id] = what
	}
	for s := range MaxUplinks {
		use(ids.Uplink(s), fmt.Sprintf("uplink %d", s))
		use(ids.Twin(s), fmt.Sprintf("twin %d", s))
	}
	for i := range MaxPolicies {
		use(ids.Policy(i), fmt.Sprintf("policy %d", i))
	}
	if ids.Policy(0) != 2010000129 {
		t.Errorf("policy 0: %d, want the first layout's 2010000129", ids.Policy(0))
	}
	for _, id := range []uint32{2010000000, 2010000254, 2010000255, 2010000640} {
		if s, ok := ids.SlotOf(id); ok {
			t.Errorf("SlotOf(%d) = %d, want none", id, s)
		}
	}
	// Both families' IDs are in the range.
	for id, want := range map[uint32]bool{1999999999: false, 2010000000: true, 2010000255: true, 2010000639: true, 2010001023: true, 2010001024: true, 2010002047: true, 2010002048: false} {
		if ids.Contains(id) != want {
			t.Errorf("Contains(%d) = %v", id, !want)
		}
	}
	// IPv6's IDs never collide with IPv4's, lie in the same range, keep
	// each slot's offset, and are no IPv4 slot's.
	ids6 := NexthopIDsFor(2010000000, V6)
	if ids6.Group != 2010001024 || ids6.Uplink(0) != 2010001025 || ids6.Twin(255) != 2010001663 || ids6.Policy(0) != 2010001153 {
		t.Errorf("IPv6 ids = %+v, uplink 0 %d, twin 255 %d, policy 0 %d", ids6, ids6.Uplink(0), ids6.Twin(255), ids6.Policy(0))
	}
	use6 := func(id uint32, what string) {
		if o, dup := used[id]; dup || !ids6.Contains(id) || !ids.Contains(id) {
			t.Errorf("IPv6 ID %d of %s: also %q, or out of range", id, what, o)
		}
		if s, ok := ids.SlotOf(id); ok {
			t.Errorf("IPv6 ID %d of %s is IPv4 slot %d", id, what, s)
		}
		used[id] = what
	}
	use6(ids6.Group, "ipv6 group")
	for s := range MaxUplinks {
		use6(ids6.Uplink(s), fmt.Sprintf("ipv6 uplink %d", s))
		use6(ids6.Twin(s), fmt.Sprintf("ipv6 twin %d", s))
		if got, ok := ids6.SlotOf(ids6.Uplink(s)); !ok || got != s {
			t.Errorf("IPv6 SlotOf(Uplink(%d)) = %d, %v", s, got, ok)
		}
	}
	for i := range MaxPolicies {
		use6(ids6.Policy(i), fmt.Sprintf("ipv6 policy %d", i))
	}
	if Resilient.String() != "resilient" || Multipath.String() != "multipath" {
		t.Errorf("balancer names: %s %s", Resilient, Multipath)
	}
}
