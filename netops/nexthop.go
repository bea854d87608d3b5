package netops

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Nexthop object attributes and values missing from golang.org/x/sys/unix,
// from the kernel's include/uapi/linux/nexthop.h (enum NHA_*,
// NHA_RES_GROUP_*, NEXTHOP_GRP_TYPE_*) and include/uapi/linux/rtnetlink.h
// (RTA_NH_ID). The values are ABI and never change.
const (
	nhaFDB      = 11 // NHA_FDB: a bridge FDB nexthop
	nhaResGroup = 12 // NHA_RES_GROUP: nested resilient group parameters

	nhaResGroupBuckets         = 1 // NHA_RES_GROUP_BUCKETS, u16
	nhaResGroupIdleTimer       = 2 // NHA_RES_GROUP_IDLE_TIMER, u32 clock_t
	nhaResGroupUnbalancedTimer = 3 // NHA_RES_GROUP_UNBALANCED_TIMER, u32 clock_t

	nexthopGrpTypeMpath = 0 // NEXTHOP_GRP_TYPE_MPATH: hash-threshold group
	nexthopGrpTypeRes   = 1 // NEXTHOP_GRP_TYPE_RES: resilient group

	rtaNHID = 30 // RTA_NH_ID, u32: the route's nexthop object

	// userHZ is the unit of the clock_t timers (USER_HZ, 100 on every
	// architecture Linux exposes to user space).
	userHZ = 100

	// sizeofNexthopGrp is sizeof(struct nexthop_grp): id u32, weight u8
	// (weight - 1), weight_high u8 (bits 8..15 of weight - 1, Linux 6.12),
	// resvd2 u16.
	sizeofNexthopGrp = 8
)

// GroupType is the kind of a nexthop group.
type GroupType uint16

// Group types (NEXTHOP_GRP_TYPE_*).
const (
	// GroupMultipath picks a member by hash threshold, like a classic
	// multipath route: any membership change moves flows between
	// survivors.
	GroupMultipath GroupType = nexthopGrpTypeMpath
	// GroupResilient maps flows to a fixed table of buckets, each owned
	// by one member: when a member leaves, only its buckets move.
	GroupResilient GroupType = nexthopGrpTypeRes
)

func (t GroupType) String() string {
	switch t {
	case GroupMultipath:
		return "hash-threshold"
	case GroupResilient:
		return "resilient"
	}
	return fmt.Sprintf("type %d", uint16(t))
}

// GroupMember is one member of a nexthop group.
type GroupMember struct {
	ID     uint32
	Weight int // 1..256
}

// NexthopObject is a kernel nexthop object (`ip nexthop`): a gateway on an
// interface, a blackhole, or a group of other nexthop objects. Routes refer
// to it by ID (Route.NHID), so a group can be changed without touching the
// routes that use it.
type NexthopObject struct {
	ID       uint32
	Protocol int
	// Family is the family of a single next hop (zero: V4); Plan sets it
	// on groups too, but the kernel gives groups none, so it is not part
	// of a group's identity.
	Family Family

	// A single next hop.
	Gateway   netip.Addr
	Index     int
	OnLink    bool
	Blackhole bool

	// A group, when Members is not empty.
	Members []GroupMember
	Type    GroupType
	// Resilient groups only. The kernel keeps the bucket count for the
	// group's lifetime; the timers may change.
	Buckets         int
	IdleTimer       time.Duration // a bucket unused this long may move to another member
	UnbalancedTimer time.Duration // an unbalanced group moves busy buckets after this long; 0: never
	// Alt is the alternate ID of a hash-threshold group (IDs.Alt), zero
	// for any other object. The reconciler keeps such a group at ID or
	// at Alt, and changes it by making it anew at the other one and
	// moving the routes there (altgroup.go). Not part of the identity:
	// the kernel does not know it.
	Alt uint32

	// Unknown marks a listed object of a kind uplinkd never creates
	// (encapsulated next hops, FDB nexthops): it never equals a desired
	// one.
	Unknown bool
}

// IsGroup says whether the object is a group.
func (n NexthopObject) IsGroup() bool { return len(n.Members) > 0 }

// String renders the object like `ip nexthop`; it doubles as its identity
// for diffs (fields the kernel sets on its own are not part of it).
func (n NexthopObject) String() string {
	b := make([]byte, 0, 64+12*len(n.Members))
	if !n.IsGroup() && !n.Blackhole {
		b = append(b, n.Family.prefix()...)
	}
	b = appendUint(append(b, "id "...), uint64(n.ID))
	switch {
	case n.IsGroup():
		b = append(b, " group "...)
		for i, m := range n.Members {
			if i > 0 {
				b = append(b, '/')
			}
			b = appendUint(b, uint64(m.ID))
			if m.Weight != 1 {
				b = appendInt(append(b, ','), m.Weight)
			}
		}
		if n.Type == GroupResilient {
			b = appendInt(append(b, " type resilient buckets "...), n.Buckets)
			b = append(append(b, " idle_timer "...), n.IdleTimer.String()...)
			b = append(append(b, " unbalanced_timer "...), n.UnbalancedTimer.String()...)
		}
	case n.Blackhole:
		b = append(b, " blackhole"...)
	default:
		if n.Gateway.IsValid() {
			b = n.Gateway.AppendTo(append(b, " via "...))
		}
		b = appendInt(append(b, " dev #"...), n.Index)
		if n.OnLink {
			b = append(b, " onlink"...)
		}
	}
	b = appendInt(append(b, " proto "...), n.Protocol)
	if n.Unknown {
		b = append(b, " (a kind uplinkd does not create)"...)
	}
	return string(b)
}

// nexthopHeader encodes struct nhmsg: family, scope, protocol, resvd (u8)
// and flags (u32). Groups and blackholes have no family of their own.
func nexthopHeader(family, protocol uint8, flags uint32) []byte {
	b := make([]byte, unix.SizeofNhmsg)
	b[0], b[2] = family, protocol
	binary.NativeEndian.PutUint32(b[4:], flags)
	return b
}

// marshalNexthop encodes the body of an RTM_NEWNEXTHOP request for n, with
// the attributes in the order iproute2 sends them for
// `ip nexthop add id ID via GW dev DEV [onlink]` and
// `ip nexthop add id ID group ... type resilient buckets B idle_timer I unbalanced_timer U`.
func marshalNexthop(n NexthopObject) ([]byte, error) {
	if n.ID == 0 {
		return nil, errors.New("nexthop id 0 is reserved")
	}
	if n.Protocol < 0 || n.Protocol > 255 {
		return nil, fmt.Errorf("nexthop protocol %d out of range", n.Protocol)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.NHA_ID, n.ID)
	var family uint8
	var flags uint32
	switch {
	case n.IsGroup():
		grp := make([]byte, 0, sizeofNexthopGrp*len(n.Members))
		for _, m := range n.Members {
			if m.Weight < 1 || m.Weight > 256 {
				return nil, fmt.Errorf("nexthop %d: member %d weight %d out of range 1..256", n.ID, m.ID, m.Weight)
			}
			e := make([]byte, sizeofNexthopGrp)
			binary.NativeEndian.PutUint32(e, m.ID)
			e[4] = uint8(m.Weight - 1)
			grp = append(grp, e...)
		}
		ae.Bytes(unix.NHA_GROUP, grp)
		if n.Type == GroupResilient {
			if n.Buckets < 1 || n.Buckets > 0xffff {
				return nil, fmt.Errorf("nexthop %d: %d buckets out of range 1..65535", n.ID, n.Buckets)
			}
			ae.Nested(nhaResGroup, func(nae *netlink.AttributeEncoder) error {
				nae.Uint16(nhaResGroupBuckets, uint16(n.Buckets))
				nae.Uint32(nhaResGroupIdleTimer, toClock(n.IdleTimer))
				nae.Uint32(nhaResGroupUnbalancedTimer, toClock(n.UnbalancedTimer))
				return nil
			})
		}
		ae.Uint16(unix.NHA_GROUP_TYPE, uint16(n.Type))
	case n.Blackhole:
		family = unix.AF_INET
		ae.Flag(unix.NHA_BLACKHOLE, true)
	default:
		// Without a gateway: a point-to-point link (`dev IF`).
		fam := n.Family.norm()
		if (n.Gateway.IsValid() && FamilyOf(n.Gateway) != fam) || n.Index <= 0 {
			return nil, fmt.Errorf("nexthop %d: want an interface and an %s gateway or none, have %s dev #%d", n.ID, fam, n.Gateway, n.Index)
		}
		family = uint8(fam.AF())
		if n.Gateway.IsValid() {
			ae.Bytes(unix.NHA_GATEWAY, n.Gateway.Unmap().AsSlice())
		}
		ae.Uint32(unix.NHA_OIF, uint32(n.Index))
		if n.OnLink {
			flags |= unix.RTNH_F_ONLINK
		}
	}
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode nexthop %d: %w", n.ID, err)
	}
	return append(nexthopHeader(family, uint8(n.Protocol), flags), attrs...), nil
}

// marshalNexthopID encodes the body of an RTM_DELNEXTHOP (or a single
// RTM_GETNEXTHOP) request: an empty nhmsg and NHA_ID.
func marshalNexthopID(id uint32) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.NHA_ID, id)
	attrs, _ := ae.Encode() // a u32 attribute cannot fail to encode
	return append(nexthopHeader(0, 0, 0), attrs...)
}

// parseNexthop decodes an RTM_NEWNEXTHOP message from a dump or a
// notification into the fields uplinkd sets; flags the kernel maintains
// (dead, linkdown) and counters (unbalanced_time) are dropped, so that
// they never look like drift. Objects uplinkd cannot describe are marked
// Unknown.
func parseNexthop(b []byte) (n NexthopObject, err error) {
	if len(b) < unix.SizeofNhmsg {
		return NexthopObject{}, fmt.Errorf("nexthop message of %d bytes, want at least %d", len(b), unix.SizeofNhmsg)
	}
	family := b[0]
	n.Protocol = int(b[2])
	n.OnLink = binary.NativeEndian.Uint32(b[4:])&unix.RTNH_F_ONLINK != 0
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofNhmsg:])
	if err != nil {
		return NexthopObject{}, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NHA_ID:
			n.ID = ad.Uint32()
		case unix.NHA_GROUP:
			ad.Do(func(g []byte) error {
				if len(g)%sizeofNexthopGrp != 0 {
					return fmt.Errorf("NHA_GROUP of %d bytes", len(g))
				}
				for ; len(g) > 0; g = g[sizeofNexthopGrp:] {
					w := 1 + int(g[4]) + int(g[5])<<8
					n.Members = append(n.Members, GroupMember{ID: binary.NativeEndian.Uint32(g), Weight: w})
				}
				return nil
			})
		case unix.NHA_GROUP_TYPE:
			n.Type = GroupType(ad.Uint16())
		case nhaResGroup:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case nhaResGroupBuckets:
						n.Buckets = int(nad.Uint16())
					case nhaResGroupIdleTimer:
						n.IdleTimer = fromClock(nad.Uint32())
					case nhaResGroupUnbalancedTimer:
						n.UnbalancedTimer = fromClock(nad.Uint32())
					}
				}
				return nil
			})
		case unix.NHA_BLACKHOLE:
			n.Blackhole = true
		case unix.NHA_OIF:
			n.Index = int(ad.Uint32())
		case unix.NHA_GATEWAY:
			a, ok := netip.AddrFromSlice(ad.Bytes())
			n.Gateway = a
			n.Unknown = n.Unknown || !ok
		case unix.NHA_ENCAP, unix.NHA_ENCAP_TYPE, nhaFDB, unix.NHA_GROUPS, unix.NHA_MASTER:
			n.Unknown = true
		}
	}
	if err := ad.Err(); err != nil {
		return NexthopObject{}, err
	}
	if n.ID == 0 {
		return NexthopObject{}, errors.New("nexthop message without NHA_ID")
	}
	if !n.IsGroup() && !n.Blackhole {
		f, ok := familyOfAF(int(family))
		if f == V6 {
			n.Family = V6 // zero for IPv4, as Plan leaves it
		}
		n.Unknown = n.Unknown || !ok || n.Gateway.IsValid() && FamilyOf(n.Gateway) != f
	}
	if n.IsGroup() {
		n.OnLink = false
	}
	return n, nil
}

// toClock converts d to clock_t ticks, rounding up so that a positive
// duration never becomes 0 (which would mean "no timer").
func toClock(d time.Duration) uint32 {
	const tick = time.Second / userHZ
	return uint32((d + tick - 1) / tick)
}

func fromClock(c uint32) time.Duration { return time.Duration(c) * (time.Second / userHZ) }

// marshalNHIDRoute encodes the body of an RTM_NEWROUTE request for a
// unicast route through a nexthop object, as iproute2 sends
// `ip route replace DST nhid ID table T proto P`: tables below 256 in
// rtm_table, others in RTA_TABLE.
func marshalNHIDRoute(rt Route) ([]byte, error) {
	fam := rt.Family.norm()
	if rt.NHID == 0 || !rt.Dst.IsValid() || FamilyOf(rt.Dst.Addr()) != fam {
		return nil, fmt.Errorf("route %s: want an %s destination and a nexthop id", rt, fam)
	}
	hdr := make([]byte, unix.SizeofRtMsg)
	hdr[0] = uint8(fam.AF())
	hdr[1] = uint8(rt.Dst.Bits())
	if rt.Table < 256 {
		hdr[4] = uint8(rt.Table)
	}
	hdr[5] = uint8(rt.Protocol)
	hdr[6] = unix.RT_SCOPE_UNIVERSE
	hdr[7] = unix.RTN_UNICAST
	ae := netlink.NewAttributeEncoder()
	if rt.Table >= 256 {
		ae.Uint32(unix.RTA_TABLE, uint32(rt.Table))
	}
	if rt.Dst.Bits() > 0 {
		ae.Bytes(unix.RTA_DST, rt.Dst.Masked().Addr().AsSlice())
	}
	ae.Uint32(rtaNHID, rt.NHID)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode route %s: %w", rt, err)
	}
	return append(hdr, attrs...), nil
}

// parseNHIDRoute decodes an RTM_NEWROUTE message; ok is true for an IPv4
// or IPv6 route through a nexthop object (RTA_NH_ID). Only its identity (table,
// destination), protocol and nexthop id are returned: the gateways the
// kernel adds for old tools (nexthop_compat_mode) belong to the object.
func parseNHIDRoute(b []byte) (rt Route, ok bool, err error) {
	if len(b) < unix.SizeofRtMsg {
		return Route{}, false, fmt.Errorf("route message of %d bytes, want at least %d", len(b), unix.SizeofRtMsg)
	}
	fam, known := familyOfAF(int(b[0]))
	if !known {
		return Route{}, false, nil
	}
	if fam == V6 {
		rt.Family = V6
	}
	bits := int(b[1])
	rt.Table = int(b[4])
	rt.Protocol = int(b[5])
	dst := fam.DefaultDst().Addr()
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofRtMsg:])
	if err != nil {
		return Route{}, false, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_TABLE:
			rt.Table = int(ad.Uint32())
		case unix.RTA_DST:
			if a, aok := netip.AddrFromSlice(ad.Bytes()); aok && a.BitLen() == dst.BitLen() {
				dst = a
			}
		case rtaNHID:
			rt.NHID = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return Route{}, false, err
	}
	if bits > dst.BitLen() {
		return Route{}, false, fmt.Errorf("%s route with prefix length %d", fam, bits)
	}
	rt.Dst = netip.PrefixFrom(dst, bits).Masked()
	return rt, rt.NHID != 0, nil
}
