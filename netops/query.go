package netops

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Query is a route lookup as `ip route get` makes it: the kernel runs the
// rules and the tables for a packet with these selectors. It only reads.
// Dst's family (IPv4 or IPv6) is the lookup's; Src must be of the same.
type Query struct {
	Dst netip.Addr
	Src netip.Addr // invalid: none
	// Iif is the input interface's index: a forwarded packet (needs Src).
	// 0: a packet the router itself sends.
	Iif     int
	IPProto int
	Sport   int
	Dport   int
	Mark    uint32
	// UID of the sending process; nil: the kernel's default (the caller's).
	UID *uint32
}

// Answer is the kernel's route for a Query.
type Answer struct {
	Table   int
	Type    RouteType
	Oif     int
	Gateway netip.Addr
	Src     netip.Addr
	// Err is the kernel's refusal (no route, unreachable, prohibited),
	// when it answered with an error instead of a route.
	Err error
}

// Unreachable says whether the kernel refused the lookup: an unreachable
// route, or no route at all (ENETUNREACH).
func (a Answer) Unreachable() bool {
	return errors.Is(a.Err, unix.EHOSTUNREACH) || errors.Is(a.Err, unix.ENETUNREACH)
}

// RouteQuery asks the kernel of the current network namespace for the
// route of q (RTM_GETROUTE with RTM_F_LOOKUP_TABLE, so that it names the
// table that answered). A lookup the kernel refuses returns an Answer with
// Err set and a nil error; err is for failures to ask.
func RouteQuery(q Query) (Answer, error) {
	q.Dst, q.Src = q.Dst.Unmap(), q.Src.Unmap()
	fam := FamilyOf(q.Dst)
	if !q.Dst.IsValid() || q.Src.IsValid() && FamilyOf(q.Src) != fam {
		return Answer{}, errors.New("route query: want a destination, and a source of its family")
	}
	bits := uint8(q.Dst.BitLen())
	if q.Iif != 0 && !q.Src.IsValid() {
		return Answer{}, errors.New("route query: an input interface needs a source address")
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_REQUEST)
	msg := &nl.RtMsg{}
	msg.Family = uint8(fam.AF())
	msg.Dst_len = bits
	msg.Flags = unix.RTM_F_LOOKUP_TABLE
	if q.Src.IsValid() {
		msg.Src_len = bits
	}
	req.AddData(msg)
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	be16 := func(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
	req.AddData(nl.NewRtAttr(unix.RTA_DST, q.Dst.Unmap().AsSlice()))
	if q.Src.IsValid() {
		req.AddData(nl.NewRtAttr(unix.RTA_SRC, q.Src.Unmap().AsSlice()))
	}
	if q.Iif != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_IIF, u32(uint32(q.Iif))))
	}
	if q.Mark != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_MARK, u32(q.Mark)))
	}
	if q.UID != nil {
		req.AddData(nl.NewRtAttr(unix.RTA_UID, u32(*q.UID)))
	}
	if q.IPProto != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_IP_PROTO, []byte{byte(q.IPProto)}))
	}
	if q.Sport != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_SPORT, be16(q.Sport)))
	}
	if q.Dport != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_DPORT, be16(q.Dport)))
	}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE)
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) && (errno == unix.EHOSTUNREACH || errno == unix.ENETUNREACH ||
			errno == unix.EACCES || errno == unix.EINVAL) {
			return Answer{Err: errno}, nil
		}
		return Answer{}, fmt.Errorf("route query: %w", err)
	}
	if len(msgs) == 0 {
		return Answer{}, errors.New("route query: no answer")
	}
	return parseAnswer(msgs[0])
}

func parseAnswer(m []byte) (Answer, error) {
	rt := nl.DeserializeRtMsg(m)
	attrs, err := nl.ParseRouteAttr(m[rt.Len():])
	if err != nil {
		return Answer{}, fmt.Errorf("route query: parse answer: %w", err)
	}
	a := Answer{Table: int(rt.Table), Type: RouteType(rt.Type)}
	if a.Type == unix.RTN_UNICAST {
		a.Type = Unicast
	}
	for _, at := range attrs {
		switch at.Attr.Type {
		case unix.RTA_TABLE:
			if len(at.Value) >= 4 {
				a.Table = int(binary.NativeEndian.Uint32(at.Value))
			}
		case unix.RTA_OIF:
			if len(at.Value) >= 4 {
				a.Oif = int(binary.NativeEndian.Uint32(at.Value))
			}
		case unix.RTA_GATEWAY:
			a.Gateway, _ = netip.AddrFromSlice(at.Value)
		case unix.RTA_PREFSRC:
			a.Src, _ = netip.AddrFromSlice(at.Value)
		}
	}
	return a, nil
}
