package netops

import (
	"fmt"
	"math/bits"
	"time"
)

// defaultIdleTimer is the kernel's own idle timer of resilient groups
// (NH_RES_DEFAULT_IDLE_TIMER in net/ipv4/nexthop.c).
const defaultIdleTimer = 120 * time.Second

// Balancer is how the balance table spreads flows over the uplinks.
type Balancer uint8

const (
	// Multipath is a classic weighted multipath default route
	// (hash-threshold): whenever the set of uplinks changes, the hash
	// space is cut anew and flows of healthy uplinks move too.
	Multipath Balancer = iota
	// Resilient is a default route through a resilient nexthop group
	// (Linux 5.13): flows map to buckets owned by members, so a member
	// leaving moves only its own buckets, and a member joining takes
	// buckets only as they fall idle.
	Resilient
	// HashThreshold is a default route through a hash-threshold nexthop
	// group (NEXTHOP_GRP_TYPE_MPATH): the hash space is cut by weight like
	// Multipath, but the group is replaced in place, so the route never
	// changes. With pinning only new connections follow it, and they
	// follow the current weights at once.
	HashThreshold
)

func (b Balancer) String() string {
	switch b {
	case Multipath:
		return "multipath"
	case Resilient:
		return "resilient"
	case HashThreshold:
		return "hash-threshold"
	}
	return fmt.Sprintf("balancer(%d)", uint8(b))
}

// NexthopIDRange is the number of nexthop object IDs uplinkd owns,
// starting at Settings.NexthopIDBase: familyIDRange for IPv4's objects,
// then as many for IPv6's. NexthopIDsFor says which is which.
const NexthopIDRange = 2 * familyIDRange

// familyIDRange is the number of IDs of one family's layout (see IDs).
const familyIDRange = 1024

// IDs are uplinkd's nexthop object IDs of one family for one base (the
// family's first ID: nexthop_id_base for IPv4, nexthop_id_base+1024 for
// IPv6, so that the two never collide and an uplink's slot gives it the
// same offset in both):
//
//	base            the balance group
//	base+1+s        the next hop of the uplink in slot s < 64 (see Slots)
//	base+65+s       its twin (resilient groups): the same next hop, a second member
//	base+129+i      the group of policy i (0..MaxPolicies-1), the default
//	                policy aside, in file order
//	base+254..255   the throwaway objects of the startup support check
//	base+256+s-64   the next hop of the uplink in slot s, 64 <= s < 256
//	base+448+s-64   its twin
//	base+640        the balance group's alternate ID (see Alt)
//	base+769+i      the alternate ID of policy i's group
//
// The slots past 64 came with the limit of 256 uplinks; they lie past the
// first layout's IDs, so the IDs of the first 64 slots and of the
// policies, and what a running uplinkd adopts, stay as they were.
//
// Slots follow the uplink's name, never its position in the file, so
// reordering or removing uplinks changes no one else's IDs. In a
// resilient group every uplink is two members, so that the group never
// has a single member: the kernel does not hash through a group of one and
// then does not track which buckets are busy, so the buckets a returning
// uplink is owed would move back at once, busy or not.
type IDs struct {
	Base  uint32
	Group uint32
	// first is the configured base, the first ID of both families'.
	first uint32
	// Probe and ProbeGroup are created and deleted again by
	// SupportsResilient.
	Probe, ProbeGroup uint32
}

// NexthopIDs returns the IPv4 IDs for base (the configured
// nexthop_id_base).
func NexthopIDs(base uint32) IDs { return NexthopIDsFor(base, V4) }

// NexthopIDsFor returns the IDs of family f for base (the configured
// nexthop_id_base): IPv6's start familyIDRange after IPv4's.
func NexthopIDsFor(base uint32, f Family) IDs {
	b := base
	if f.norm() == V6 {
		b += familyIDRange
	}
	return IDs{Base: b, Group: b, Probe: b + 254, ProbeGroup: b + 255, first: base}
}

// firstSlots is the number of slots of the first ID layout (see IDs).
const firstSlots = 64

// Uplink is the nexthop ID of the uplink in slot s.
func (ids IDs) Uplink(s int) uint32 {
	if s < firstSlots {
		return ids.Base + 1 + uint32(s)
	}
	return ids.Base + 256 + uint32(s-firstSlots)
}

// Twin is the ID of the second member of the uplink in slot s.
func (ids IDs) Twin(s int) uint32 {
	if s < firstSlots {
		return ids.Base + 1 + firstSlots + uint32(s)
	}
	return ids.Base + 256 + MaxUplinks - firstSlots + uint32(s-firstSlots)
}

// Policy is the ID of the group of the i-th policy other than the
// default one.
func (ids IDs) Policy(i int) uint32 { return ids.Base + 1 + 2*firstSlots + uint32(i) }

// altOffset is how far a group's alternate ID lies from its ID.
const altOffset = 640

// Alt returns the alternate ID of a group ID (the balance group's, a
// policy's): where a hash-threshold group is made anew when its members
// change, so that the kernel never replaces it in place (see
// NexthopObject.Alt). It is always the higher of the two.
func (ids IDs) Alt(group uint32) uint32 { return group + altOffset }

// MaxPolicies is how many policies besides the default one the ID layout
// has room for.
const MaxPolicies = 256 - 3 - 2*firstSlots

// SlotOf returns the slot of an uplink nexthop ID (not a twin), and false
// for any other ID.
func (ids IDs) SlotOf(id uint32) (int, bool) {
	if id <= ids.Base {
		return 0, false
	}
	switch off := id - ids.Base; {
	case off <= firstSlots:
		return int(off - 1), true
	case off >= 256 && off < 256+MaxUplinks-firstSlots:
		return firstSlots + int(off-256), true
	}
	return 0, false
}

// MaxUplinks is the most uplinks the ID layout has room for (config
// allows as many).
const MaxUplinks = 256

// Contains says whether id is in uplinkd's range, of either family.
func (ids IDs) Contains(id uint32) bool { return id >= ids.first && id-ids.first < NexthopIDRange }

// Bucket limits of the resilient group.
const (
	MinBuckets = 128
	MaxBuckets = 32768
)

// Buckets returns the bucket count of the resilient group for uplinks with
// the given configured weights (all of them, in the balance or not, so the
// count stays fixed: the kernel cannot change it in place):
//
//	B = min(MaxBuckets, max(MinBuckets, 2^ceil(log2(200 · W / w_min))))
//
// with W the sum of the weights and w_min the smallest. Each uplink is two
// members of weight w_i (see IDs). The kernel gives member j of the
// members in the balance round(B·C_j/M) − round(B·C_(j−1)/M) buckets, where
// M is their weight sum and C_j the sum of the weights up to j, so a
// member's share of the buckets differs from its weight share by less than
// one bucket, and an uplink's (two members) by less than 2/B. An uplink's
// weight share is at least w_min/W, and 2/B ≤ w_min/(100·W): the error is
// less than 1% of the uplink's share, whichever uplinks are in the balance
// (and so less than one percentage point). Weights 1:3 give 1024 buckets:
// 256 and 768. Only when B is capped at MaxBuckets (a weight ratio above
// 163:1 summed over all uplinks) is the error bound 2/32768 absolute
// instead.
func Buckets(weights []int) int {
	sum, least := 0, 0
	for _, w := range weights {
		if w < 1 {
			continue
		}
		sum += w
		if least == 0 || w < least {
			least = w
		}
	}
	if sum == 0 {
		return MinBuckets
	}
	need := (200*sum + least - 1) / least // ceil(200·W/w_min)
	if need >= MaxBuckets {
		return MaxBuckets
	}
	b := 1 << bits.Len(uint(need-1)) // the power of two >= need
	return max(MinBuckets, b)
}
