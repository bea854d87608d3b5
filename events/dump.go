package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dumpAttempts bounds the retries of a dump the kernel marks inconsistent
// (NLM_F_DUMP_INTR: the table changed while it was being walked). The check
// is best effort: mdlayher/netlink swallows the closing NLMSG_DONE, which
// can be the only message carrying the flag. Changes racing the dump also
// arrive on the Monitor, which the caller subscribed to first.
const dumpAttempts = 5

// Dump lists every link and every IPv4 and IPv6 address of the calling
// thread's network namespace over a fresh request socket.
func Dump(ctx context.Context) (Snapshot, error) {
	return dump(ctx, 0)
}

// DumpAt is Dump for the network namespace ns.
func DumpAt(ctx context.Context, ns netns.NsHandle) (Snapshot, error) {
	if ns <= 0 {
		return Snapshot{}, errors.New("dump rtnetlink: invalid network namespace handle")
	}
	return dump(ctx, int(ns))
}

func dump(ctx context.Context, nsFD int) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return Snapshot{}, fmt.Errorf("dump rtnetlink: dial: %w", err)
	}
	defer c.Close()

	defer interruptOnDone(ctx, c)()

	var snap Snapshot
	// struct ifinfomsg with ifi_family AF_UNSPEC: every link.
	links, err := dumpRequest(ctx, c, unix.RTM_GETLINK, make([]byte, unix.SizeofIfInfomsg))
	if err != nil {
		return Snapshot{}, fmt.Errorf("dump links: %w", err)
	}
	for _, msg := range links {
		ev, ok, err := parseLink(msg)
		if err != nil {
			return Snapshot{}, fmt.Errorf("dump links: %w", err)
		}
		if ok {
			snap.Links = append(snap.Links, ev.Link)
		}
	}

	// struct ifaddrmsg with ifa_family AF_INET, then AF_INET6.
	for _, family := range []byte{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, unix.SizeofIfAddrmsg)
		req[0] = family
		addrs, err := dumpRequest(ctx, c, unix.RTM_GETADDR, req)
		if err != nil {
			return Snapshot{}, fmt.Errorf("dump %s addresses: %w", families[family], err)
		}
		for _, msg := range addrs {
			ev, ok, err := parseAddr(msg)
			if err != nil {
				return Snapshot{}, fmt.Errorf("dump %s addresses: %w", families[family], err)
			}
			if ok {
				snap.Addrs = append(snap.Addrs, ev.Addr)
			}
		}
	}
	return snap, nil
}

// dumpRequest runs one dump request, repeating it while the kernel flags
// the result as inconsistent.
func dumpRequest(ctx context.Context, c *netlink.Conn, typ netlink.HeaderType, body []byte) ([]netlink.Message, error) {
	for range dumpAttempts {
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Dump},
			Data:   body,
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if !interrupted(msgs) {
			return msgs, nil
		}
	}
	return nil, ErrDumpInterrupted
}

func interrupted(msgs []netlink.Message) bool {
	for _, m := range msgs {
		if m.Header.Flags&netlink.DumpInterrupted != 0 {
			return true
		}
	}
	return false
}

// interruptOnDone makes a blocking request on c return when ctx is done,
// by moving c's deadline into the past. The returned function stops
// watching and waits for the watcher; call it before c is closed.
func interruptOnDone(ctx context.Context, c *netlink.Conn) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			_ = c.SetDeadline(time.Unix(1, 0))
		case <-done:
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
