package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DumpLinks reads the links with the given indexes and their IPv4 and
// IPv6 addresses over a fresh strict request socket: one request per link and
// one address dump per link, filtered by the kernel, so that re-reading
// the links a burst of events named costs what they are, not what the
// namespace holds (hundreds of uplinks, containers' veths). The Snapshot
// holds those that exist; an index missing from it is gone.
func DumpLinks(ctx context.Context, indexes []int) (Snapshot, error) {
	return dumpLinks(ctx, 0, indexes)
}

// DumpLinksAt is DumpLinks for the network namespace ns.
func DumpLinksAt(ctx context.Context, ns netns.NsHandle, indexes []int) (Snapshot, error) {
	if ns <= 0 {
		return Snapshot{}, errors.New("dump rtnetlink: invalid network namespace handle")
	}
	return dumpLinks(ctx, int(ns), indexes)
}

func dumpLinks(ctx context.Context, nsFD int, indexes []int) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	// Strict: the kernel filters the address dump by ifa_index.
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsFD, Strict: true})
	if err != nil {
		return Snapshot{}, fmt.Errorf("read links: dial: %w", err)
	}
	defer c.Close()
	defer interruptOnDone(ctx, c)()

	var snap Snapshot
	for _, index := range slices.Compact(slices.Sorted(slices.Values(indexes))) {
		if index <= 0 {
			continue
		}
		l, ok, err := getLink(ctx, c, index)
		if err != nil {
			return Snapshot{}, err
		}
		if !ok {
			continue
		}
		snap.Links = append(snap.Links, l)
		// Like Dump: IPv4's addresses, then IPv6's.
		for _, family := range []byte{unix.AF_INET, unix.AF_INET6} {
			req := make([]byte, unix.SizeofIfAddrmsg)
			req[0] = family
			binary.NativeEndian.PutUint32(req[4:8], uint32(index))
			addrs, err := dumpRequest(ctx, c, unix.RTM_GETADDR, req)
			if err != nil {
				return Snapshot{}, fmt.Errorf("dump %s addresses of link %d: %w", families[family], index, err)
			}
			for _, msg := range addrs {
				ev, ok, err := parseAddr(msg)
				if err != nil {
					return Snapshot{}, fmt.Errorf("dump %s addresses of link %d: %w", families[family], index, err)
				}
				// The kernel filters; this guards against one that does
				// not (strict checking came with Linux 4.20).
				if ok && ev.Addr.Index == index {
					snap.Addrs = append(snap.Addrs, ev.Addr)
				}
			}
		}
	}
	return snap, nil
}

// getLink reads one link by index; ok is false when there is none.
func getLink(ctx context.Context, c *netlink.Conn, index int) (Link, bool, error) {
	req := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(req[4:8], uint32(index))
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   req,
	})
	switch {
	case errors.Is(err, unix.ENODEV):
		return Link{}, false, nil
	case err != nil && ctx.Err() != nil:
		return Link{}, false, ctx.Err()
	case err != nil:
		return Link{}, false, fmt.Errorf("read link %d: %w", index, err)
	}
	for _, msg := range msgs {
		ev, ok, err := parseLink(msg)
		if err != nil {
			return Link{}, false, fmt.Errorf("read link %d: %w", index, err)
		}
		if ok && ev.Link.Index == index {
			return ev.Link, true, nil
		}
	}
	return Link{}, false, nil
}

// Merge returns s with the links of fresh, a DumpLinks of indexes, in
// place of what s held of those indexes: links gone from fresh are
// dropped with their addresses, and a link of s whose name a fresh one
// now has is dropped too (its own event will say where it went).
func (s Snapshot) Merge(fresh Snapshot, indexes []int) Snapshot {
	drop := make(map[int]bool, len(indexes))
	for _, i := range indexes {
		drop[i] = true
	}
	names := make(map[string]bool, len(fresh.Links))
	for _, l := range fresh.Links {
		names[l.Name] = true
		drop[l.Index] = true
	}
	var out Snapshot
	for _, l := range s.Links {
		if drop[l.Index] || names[l.Name] {
			drop[l.Index] = true
			continue
		}
		out.Links = append(out.Links, l)
	}
	for _, a := range s.Addrs {
		if !drop[a.Index] {
			out.Addrs = append(out.Addrs, a)
		}
	}
	out.Links = append(out.Links, fresh.Links...)
	out.Addrs = append(out.Addrs, fresh.Addrs...)
	return out
}
