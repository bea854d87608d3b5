package netops

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"

	mnl "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrDumpInterrupted means the kernel flagged a dump as inconsistent
// (NLM_F_DUMP_INTR) every time it was tried: the table changed while it
// was walked. It wraps EINTR, so callers treat it as transient.
var ErrDumpInterrupted = fmt.Errorf("route dump interrupted by concurrent changes: %w", unix.EINTR)

// dumpAttempts bounds the repeats of an interrupted dump.
const dumpAttempts = 5

// messageBuffer is the receive buffer of the request sockets, iproute2's
// size. The kernel sizes the datagrams of a dump by the largest buffer the
// socket has read with (at most 32 KiB), a page before the first read. A
// route too big for the datagram (the balance route through a group of
// 240 or more uplinks, with nexthop_compat_mode's per-hop gateways) ends
// the dump without an error: it and the routes after it are missing.
// mdlayher/netlink's default buffer is the size of the next datagram, so
// the datagrams would stay near a page; a fixed buffer, and one read
// before the first dump (primeDumps), make them 32 KiB.
const messageBuffer = 32 << 10

// primeDumps makes the kernel size c's dump datagrams by messageBuffer: it
// reads the acknowledgement of a no-op request with the fixed buffer.
func primeDumps(c *mnl.Conn) error {
	_, err := c.Execute(mnl.Message{Header: mnl.Header{Type: mnl.Noop, Flags: mnl.Request | mnl.Acknowledge}})
	if err != nil {
		return fmt.Errorf("prime rtnetlink socket: %w", err)
	}
	return nil
}

// Handle is the Kernel the daemon uses: github.com/vishvananda/netlink's
// handle for writes and rules, and a strict rtnetlink socket
// (NETLINK_GET_STRICT_CHK) for route listings, so that the kernel filters
// them by table and protocol before they are copied out. The cost of a
// reconcile then follows uplinkd's own routes, not the size of main.
type Handle struct {
	*netlink.Handle
	c *mnl.Conn
	// messages counts the route messages the kernel sent.
	messages atomic.Uint64
}

// NewHandle opens both sockets in the network namespace whose file
// descriptor is netns, or in the caller's when netns is 0.
func NewHandle(h *netlink.Handle, netns int) (*Handle, error) {
	c, err := mnl.Dial(unix.NETLINK_ROUTE, &mnl.Config{NetNS: netns, Strict: true, MessageBufferSize: messageBuffer})
	if err != nil {
		return nil, fmt.Errorf("open strict rtnetlink socket: %w", err)
	}
	if err := primeDumps(c); err != nil {
		c.Close()
		return nil, err
	}
	return &Handle{Handle: h, c: c}, nil
}

// Close closes the strict socket; the caller closes the handle it passed.
func (h *Handle) Close() error { return h.c.Close() }

// RouteMessages is the number of route messages the kernel has sent to
// RouteListFiltered: what a listing cost, whatever it returned.
func (h *Handle) RouteMessages() uint64 { return h.messages.Load() }

// RouteListFiltered implements Kernel. Table (0: every table) and
// protocol go into the request and the kernel returns only the matching
// routes of family (IPv4 or IPv6); other filters are not supported. A
// table that does not exist has no routes.
func (h *Handle) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	fam, ok := familyOfAF(family)
	if !ok || filter == nil || mask&^(netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL) != 0 {
		return nil, fmt.Errorf("list routes: only IPv4 and IPv6 routes by table and protocol are supported")
	}
	table, proto := 0, 0
	if mask&netlink.RT_FILTER_TABLE != 0 {
		table = filter.Table
	}
	if mask&netlink.RT_FILTER_PROTOCOL != 0 {
		proto = int(filter.Protocol)
	}
	msgs, err := strictRouteDump(h.c, fam, table, proto)
	if err != nil {
		return nil, err
	}
	h.messages.Add(uint64(len(msgs)))
	out := make([]netlink.Route, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE {
			continue
		}
		rt, ok, err := parseKernelRoute(m.Data)
		if err != nil {
			return nil, fmt.Errorf("decode route: %w", err)
		}
		// The kernel filters; this only guards against one that does
		// not (before Linux 4.20, strict checking did not exist).
		if !ok || rt.Family != fam.AF() || (table != 0 && rt.Table != table) || (proto != 0 && int(rt.Protocol) != proto) {
			continue
		}
		out = append(out, rt)
	}
	return out, nil
}

// routeDumpRequest is the body of a strict RTM_GETROUTE dump of the
// routes of family of table (0: all) and protocol (0: all). Strict
// checking accepts only rtm_table, rtm_protocol, rtm_type, RTM_F_CLONED
// and the RTA_TABLE and RTA_OIF attributes as filters.
func routeDumpRequest(family Family, table, protocol int) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = uint8(family.AF())
	b[5] = uint8(protocol)
	if table > 0 && table < 256 {
		b[4] = uint8(table)
	}
	if table >= 256 {
		// struct rtattr {len u16, type u16} + u32
		a := make([]byte, 8)
		binary.NativeEndian.PutUint16(a[0:2], 8)
		binary.NativeEndian.PutUint16(a[2:4], unix.RTA_TABLE)
		binary.NativeEndian.PutUint32(a[4:8], uint32(table))
		b = append(b, a...)
	}
	return b
}

// strictRouteDump runs the dump, repeating it while the kernel flags it as
// interrupted. A table that does not exist (ENOENT) is empty.
func strictRouteDump(c *mnl.Conn, family Family, table, protocol int) ([]mnl.Message, error) {
	for range dumpAttempts {
		msgs, err := c.Execute(mnl.Message{
			Header: mnl.Header{Type: unix.RTM_GETROUTE, Flags: mnl.Request | mnl.Dump},
			Data:   routeDumpRequest(family, table, protocol),
		})
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dump %s routes of table %d protocol %d: %w", family, table, protocol, err)
		}
		if !dumpInterrupted(msgs) {
			return msgs, nil
		}
	}
	return nil, ErrDumpInterrupted
}

func dumpInterrupted(msgs []mnl.Message) bool {
	for _, m := range msgs {
		if m.Header.Flags&mnl.DumpInterrupted != 0 {
			return true
		}
	}
	return false
}

// parseKernelRoute decodes an RTM_NEWROUTE message into the fields of
// github.com/vishvananda/netlink's Route that the reconciler compares and
// deletes by. ok is false for routes that are neither IPv4 nor IPv6, or
// are cached clones.
func parseKernelRoute(b []byte) (rt netlink.Route, ok bool, err error) {
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol,
	// scope, type u8; flags u32.
	if len(b) < unix.SizeofRtMsg {
		return netlink.Route{}, false, fmt.Errorf("route message of %d bytes, want at least %d", len(b), unix.SizeofRtMsg)
	}
	flags := binary.NativeEndian.Uint32(b[8:12])
	fam, known := familyOfAF(int(b[0]))
	if !known || flags&unix.RTM_F_CLONED != 0 {
		return netlink.Route{}, false, nil
	}
	ipOf := ip4
	zero, size := net.IPv4zero.To4(), 32
	if fam == V6 {
		ipOf, zero, size = ip6, net.IPv6zero, 128
	}
	bits := int(b[1])
	if bits > size {
		return netlink.Route{}, false, fmt.Errorf("%s route with prefix length %d", fam, bits)
	}
	rt = netlink.Route{
		Family:   fam.AF(),
		Table:    int(b[4]),
		Protocol: netlink.RouteProtocol(b[5]),
		Scope:    netlink.Scope(b[6]),
		Type:     int(b[7]),
		Flags:    int(flags),
		Dst:      &net.IPNet{IP: zero, Mask: net.CIDRMask(bits, size)},
	}
	ad, err := mnl.NewAttributeDecoder(b[unix.SizeofRtMsg:])
	if err != nil {
		return netlink.Route{}, false, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_TABLE:
			rt.Table = int(ad.Uint32())
		case unix.RTA_DST:
			ip, err := ipOf(ad.Bytes())
			if err != nil {
				return netlink.Route{}, false, fmt.Errorf("RTA_DST: %w", err)
			}
			rt.Dst.IP = ip.Mask(rt.Dst.Mask)
		case unix.RTA_OIF:
			rt.LinkIndex = int(ad.Uint32())
		case unix.RTA_GATEWAY:
			if rt.Gw, err = ipOf(ad.Bytes()); err != nil {
				return netlink.Route{}, false, fmt.Errorf("RTA_GATEWAY: %w", err)
			}
		case unix.RTA_PREFSRC:
			if rt.Src, err = ipOf(ad.Bytes()); err != nil {
				return netlink.Route{}, false, fmt.Errorf("RTA_PREFSRC: %w", err)
			}
		case unix.RTA_MULTIPATH:
			if rt.MultiPath, err = parseMultipath(ad.Bytes(), ipOf); err != nil {
				return netlink.Route{}, false, fmt.Errorf("RTA_MULTIPATH: %w", err)
			}
		}
	}
	if err := ad.Err(); err != nil {
		return netlink.Route{}, false, err
	}
	return rt, true, nil
}

// parseMultipath decodes the struct rtnexthop list of RTA_MULTIPATH: len
// u16, flags u8, hops u8, ifindex i32, then the hop's own attributes, whose
// gateways ipOf decodes.
func parseMultipath(b []byte, ipOf func([]byte) (net.IP, error)) ([]*netlink.NexthopInfo, error) {
	var out []*netlink.NexthopInfo
	for len(b) > 0 {
		if len(b) < unix.SizeofRtNexthop {
			return nil, fmt.Errorf("%d trailing bytes, want a %d-byte next hop", len(b), unix.SizeofRtNexthop)
		}
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < unix.SizeofRtNexthop || n > len(b) {
			return nil, fmt.Errorf("next hop of length %d in %d bytes", n, len(b))
		}
		h := &netlink.NexthopInfo{
			Flags:     int(b[2]),
			Hops:      int(b[3]),
			LinkIndex: int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		}
		if n > unix.SizeofRtNexthop {
			ad, err := mnl.NewAttributeDecoder(b[unix.SizeofRtNexthop:n])
			if err != nil {
				return nil, err
			}
			for ad.Next() {
				if ad.Type() == unix.RTA_GATEWAY {
					if h.Gw, err = ipOf(ad.Bytes()); err != nil {
						return nil, fmt.Errorf("RTA_GATEWAY: %w", err)
					}
				}
			}
			if err := ad.Err(); err != nil {
				return nil, err
			}
		}
		out = append(out, h)
		// Next hops are aligned to 4 bytes (RTNH_ALIGN).
		b = b[min((n+3)&^3, len(b)):]
	}
	return out, nil
}

func ip4(b []byte) (net.IP, error) {
	if len(b) != 4 {
		return nil, fmt.Errorf("IPv4 address of %d bytes", len(b))
	}
	return net.IPv4(b[0], b[1], b[2], b[3]).To4(), nil
}

func ip6(b []byte) (net.IP, error) {
	if len(b) != net.IPv6len {
		return nil, fmt.Errorf("IPv6 address of %d bytes", len(b))
	}
	return net.IP(slices.Clone(b)), nil
}
