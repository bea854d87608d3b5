package netops

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// Conntrack deletes the connection-tracking entries of an uplink that
// left the balance. A connection whose source was translated (masquerade,
// SNAT) to that uplink's address keeps the address for its lifetime: routed
// through another uplink it carries the wrong source and hangs. Deleting
// its entry lets its next packet start a new entry, translated to the
// address of the uplink it now takes.
type Conntrack struct {
	c *conntrack.Conn
}

// DialConntrack opens a ctnetlink socket in the network namespace whose file
// descriptor is netns, or in the caller's when netns is 0.
func DialConntrack(netns int) (*Conntrack, error) {
	c, err := conntrack.Dial(&netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open conntrack socket: %w", err)
	}
	return &Conntrack{c: c}, nil
}

// Close closes the socket.
func (c *Conntrack) Close() error { return c.c.Close() }

// ctFamily is the conntrack family of a's.
func ctFamily(a netip.Addr) netfilter.ProtoFamily {
	if FamilyOf(a) == V6 {
		return netfilter.ProtoIPv6
	}
	return netfilter.ProtoIPv4
}

// FlushNAT deletes the entries (of addr's family) whose source was
// translated to addr and returns how many it deleted. Entries of
// connections that addr itself started or accepted, and entries of other
// addresses, are not touched.
func (c *Conntrack) FlushNAT(addr netip.Addr) (int, error) {
	addr = addr.Unmap()
	flows, err := c.c.DumpFilter(conntrack.NewFilter().Family(ctFamily(addr)), nil)
	if err != nil && unsupported(err) {
		flows, err = c.c.Dump(nil) // filtering needs Linux 4.20
	}
	if err != nil {
		return 0, fmt.Errorf("list conntrack entries: %w", err)
	}
	n := 0
	var errs []error
	for _, f := range natedTo(flows, addr) {
		// The entry's ID makes sure a newer connection with the same
		// tuples is not deleted instead.
		if err := c.c.Delete(f); err != nil {
			if !gone(err) {
				errs = append(errs, fmt.Errorf("delete conntrack entry %s: %w", f.TupleOrig, err))
			}
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// natedTo selects the entries whose source was translated to addr: the
// reply goes to addr, but the original packet did not come from it (without
// source translation the reply goes back to the original source).
func natedTo(flows []conntrack.Flow, addr netip.Addr) []conntrack.Flow {
	var out []conntrack.Flow
	for _, f := range flows {
		if f.TupleReply.IP.DestinationAddress == addr && f.TupleOrig.IP.SourceAddress != addr {
			out = append(out, f)
		}
	}
	return out
}

// MarkOf returns the mark of the connection whose original direction is
// the given tuple (proto: an IP protocol with ports); found is false when
// the kernel tracks no such connection. It lists the table of src's
// family (for
// `uplinkd explain`, never the daemon's loop): a single-entry get
// (IPCTNL_MSG_CT_GET with a tuple) through ti-mo/conntrack v0.6.0 gets no
// answer on Linux 6.18.
func (c *Conntrack) MarkOf(proto uint8, src, dst netip.Addr, sport, dport uint16) (mark uint32, found bool, err error) {
	src, dst = src.Unmap(), dst.Unmap()
	flows, err := c.c.DumpFilter(conntrack.NewFilter().Family(ctFamily(src)), nil)
	if err != nil && unsupported(err) {
		flows, err = c.c.Dump(nil)
	}
	if err != nil {
		return 0, false, fmt.Errorf("list conntrack entries: %w", err)
	}
	for _, f := range flows {
		o := f.TupleOrig
		if o.Proto.Protocol == proto && o.IP.SourceAddress == src && o.IP.DestinationAddress == dst &&
			o.Proto.SourcePort == sport && o.Proto.DestinationPort == dport {
			return f.Mark, true, nil
		}
	}
	return 0, false, nil
}
