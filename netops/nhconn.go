package netops

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NexthopKernel is the part of the kernel the reconciler uses for nexthop
// objects and the routes through them, which github.com/vishvananda/netlink
// does not wrap. *NexthopConn implements it.
type NexthopKernel interface {
	// NexthopList returns every nexthop object, whoever owns it.
	NexthopList() ([]NexthopObject, error)
	// NexthopGet returns the object with id; ok is false when there is
	// none.
	NexthopGet(id uint32) (n NexthopObject, ok bool, err error)
	// NexthopAdd creates n, or replaces the object with its ID in place
	// when replace is set.
	NexthopAdd(n NexthopObject, replace bool) error
	NexthopDel(id uint32) error
	// NHIDRouteList returns the routes of protocol in table (0: every
	// table) that use a nexthop object, IPv4's then IPv6's (Route.Family).
	NHIDRouteList(protocol, table int) ([]Route, error)
	// NHIDRouteReplace creates or replaces a route through a nexthop
	// object.
	NHIDRouteReplace(rt Route) error
}

// NexthopConn is an rtnetlink request socket for nexthop objects and
// routes through them.
type NexthopConn struct {
	c *netlink.Conn
	// read counts the nexthop messages the kernel sent.
	read atomic.Uint64
}

// NexthopMessages is the number of nexthop objects the kernel has sent to
// NexthopList and NexthopGet: what listing them cost.
func (c *NexthopConn) NexthopMessages() uint64 { return c.read.Load() }

// DialNexthops opens the socket in the network namespace whose file
// descriptor is netns, or in the caller's when netns is 0.
func DialNexthops(netns int) (*NexthopConn, error) {
	// Strict: extended acknowledgements carry the kernel's reason
	// ("Carrier for nexthop device is down"), and dump requests are
	// filtered by the kernel.
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: netns, Strict: true, MessageBufferSize: messageBuffer})
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	if err := primeDumps(c); err != nil {
		c.Close()
		return nil, err
	}
	return &NexthopConn{c: c}, nil
}

// Close closes the socket.
func (c *NexthopConn) Close() error { return c.c.Close() }

func (c *NexthopConn) request(typ netlink.HeaderType, flags netlink.HeaderFlags, data []byte) ([]netlink.Message, error) {
	return c.c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | flags},
		Data:   data,
	})
}

// NexthopList implements NexthopKernel.
func (c *NexthopConn) NexthopList() ([]NexthopObject, error) {
	msgs, err := c.request(unix.RTM_GETNEXTHOP, netlink.Dump, nexthopHeader(0, 0, 0))
	if err != nil {
		return nil, err
	}
	c.read.Add(uint64(len(msgs)))
	out := make([]NexthopObject, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEXTHOP {
			continue
		}
		n, err := parseNexthop(m.Data)
		if err != nil {
			return nil, fmt.Errorf("decode nexthop: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// NexthopGet implements NexthopKernel.
func (c *NexthopConn) NexthopGet(id uint32) (NexthopObject, bool, error) {
	msgs, err := c.request(unix.RTM_GETNEXTHOP, 0, marshalNexthopID(id))
	if gone(err) {
		return NexthopObject{}, false, nil
	}
	if err != nil {
		return NexthopObject{}, false, err
	}
	c.read.Add(uint64(len(msgs)))
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEXTHOP {
			continue
		}
		n, err := parseNexthop(m.Data)
		if err != nil {
			return NexthopObject{}, false, fmt.Errorf("decode nexthop %d: %w", id, err)
		}
		return n, true, nil
	}
	return NexthopObject{}, false, nil
}

// NexthopAdd implements NexthopKernel.
func (c *NexthopConn) NexthopAdd(n NexthopObject, replace bool) error {
	data, err := marshalNexthop(n)
	if err != nil {
		return err
	}
	flags := netlink.Acknowledge | netlink.Create | netlink.Excl
	if replace {
		flags = netlink.Acknowledge | netlink.Create | netlink.Replace
	}
	_, err = c.request(unix.RTM_NEWNEXTHOP, flags, data)
	return err
}

// NexthopDel implements NexthopKernel.
func (c *NexthopConn) NexthopDel(id uint32) error {
	_, err := c.request(unix.RTM_DELNEXTHOP, netlink.Acknowledge, marshalNexthopID(id))
	return err
}

// NHIDRouteList implements NexthopKernel.
func (c *NexthopConn) NHIDRouteList(protocol, table int) ([]Route, error) {
	var out []Route
	for _, f := range Families {
		rs, err := c.NHIDRouteListFamily(f, protocol, table)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// familyNHIDLister is a NexthopKernel that lists one family's routes
// through nexthop objects at a time: one dump instead of two.
type familyNHIDLister interface {
	NHIDRouteListFamily(f Family, protocol, table int) ([]Route, error)
}

// nhidRoutes returns k's routes of family f through nexthop objects.
func nhidRoutes(k NexthopKernel, f Family, protocol, table int) ([]Route, error) {
	if fl, ok := k.(familyNHIDLister); ok {
		return fl.NHIDRouteListFamily(f, protocol, table)
	}
	all, err := k.NHIDRouteList(protocol, table)
	return slices.DeleteFunc(all, func(rt Route) bool { return rt.Family.norm() != f }), err
}

// NHIDRouteListFamily is NHIDRouteList of family f only.
func (c *NexthopConn) NHIDRouteListFamily(f Family, protocol, table int) ([]Route, error) {
	// With strict checking the kernel returns only routes of protocol
	// in table.
	msgs, err := strictRouteDump(c.c, f, table, protocol)
	if err != nil {
		return nil, err
	}
	var out []Route
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE {
			continue
		}
		rt, ok, err := parseNHIDRoute(m.Data)
		if err != nil {
			return nil, fmt.Errorf("decode route: %w", err)
		}
		if ok && rt.Protocol == protocol && (table == 0 || rt.Table == table) {
			out = append(out, rt)
		}
	}
	return out, nil
}

// NHIDRouteReplace implements NexthopKernel.
func (c *NexthopConn) NHIDRouteReplace(rt Route) error {
	data, err := marshalNHIDRoute(rt)
	if err != nil {
		return err
	}
	_, err = c.request(unix.RTM_NEWROUTE, netlink.Acknowledge|netlink.Create|netlink.Replace, data)
	return err
}

// SupportsResilient checks that the kernel has nexthop objects and
// resilient groups by creating a blackhole nexthop and a resilient group
// with the throwaway IDs of ids, then deleting both. Leftovers of an
// earlier check that crashed are removed first; objects with those IDs
// that belong to another protocol are an error.
func SupportsResilient(k NexthopKernel, ids IDs, protocol int) error {
	return SupportsGroup(k, ids, protocol, GroupResilient)
}

// SupportsGroup is SupportsResilient for a group of type typ.
func SupportsGroup(k NexthopKernel, ids IDs, protocol int, typ GroupType) error {
	list, err := k.NexthopList()
	if err != nil {
		return fmt.Errorf("list nexthop objects: %w", err)
	}
	for _, n := range list {
		if n.ID != ids.Probe && n.ID != ids.ProbeGroup {
			continue
		}
		if n.Protocol != protocol {
			return fmt.Errorf("nexthop id %d is used by protocol %d", n.ID, n.Protocol)
		}
	}
	cleanup := func() error {
		var errs []error
		for _, id := range []uint32{ids.ProbeGroup, ids.Probe} {
			if err := k.NexthopDel(id); err != nil && !gone(err) {
				errs = append(errs, fmt.Errorf("delete nexthop %d: %w", id, err))
			}
		}
		return errors.Join(errs...)
	}
	if err := cleanup(); err != nil {
		return err
	}
	hole := NexthopObject{ID: ids.Probe, Blackhole: true, Protocol: protocol}
	if err := k.NexthopAdd(hole, false); err != nil {
		return fmt.Errorf("create nexthop object: %w", err)
	}
	group := NexthopObject{ID: ids.ProbeGroup, Members: []GroupMember{{ID: ids.Probe, Weight: 1}}, Type: typ, Protocol: protocol}
	if typ == GroupResilient {
		group.Buckets, group.IdleTimer = MinBuckets, defaultIdleTimer
	}
	err = k.NexthopAdd(group, false)
	if err != nil {
		err = fmt.Errorf("create %s nexthop group: %w", typ, err)
	}
	return errors.Join(err, cleanup())
}
