package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultRoutes lists the unicast default routes through link index, IPv4
// then IPv6, in every table, over a fresh request socket. The kernel filters by
// output interface (strict dump checking), so the cost does not grow with
// the routes of other interfaces.
func DefaultRoutes(ctx context.Context, index int) ([]DefaultRoute, error) {
	return defaultRoutes(ctx, 0, index)
}

// DefaultRoutesAt is DefaultRoutes for the network namespace ns.
func DefaultRoutesAt(ctx context.Context, ns netns.NsHandle, index int) ([]DefaultRoute, error) {
	if ns <= 0 {
		return nil, errors.New("dump routes: invalid network namespace handle")
	}
	return defaultRoutes(ctx, int(ns), index)
}

func defaultRoutes(ctx context.Context, nsFD, index int) ([]DefaultRoute, error) {
	if index <= 0 {
		return nil, fmt.Errorf("dump default routes: invalid link index %d", index)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsFD, Strict: true})
	if err != nil {
		return nil, fmt.Errorf("dump default routes: dial: %w", err)
	}
	defer c.Close()
	defer interruptOnDone(ctx, c)()

	// struct rtmsg: family AF_INET or AF_INET6, table RT_TABLE_UNSPEC
	// (all tables), then RTA_OIF, which strict checking turns into a
	// kernel filter.
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.RTA_OIF, uint32(index))
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("dump default routes: %w", err)
	}
	var out []DefaultRoute
	for _, family := range []byte{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, unix.SizeofRtMsg)
		req[0] = family
		msgs, err := dumpRequest(ctx, c, unix.RTM_GETROUTE, append(req, attrs...))
		if err != nil {
			return nil, fmt.Errorf("dump %s default routes of link %d: %w", families[family], index, err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWROUTE {
				continue
			}
			ev, ok, err := parseRoute(m)
			if err != nil {
				return nil, fmt.Errorf("dump %s default routes of link %d: %w", families[family], index, err)
			}
			// A kernel without strict checking ignores the filter.
			if ok && ev.Default && ev.Route.Index == index {
				out = append(out, ev.Route)
			}
		}
	}
	return out, nil
}
