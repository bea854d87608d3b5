package scenario

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/bench/internal/nsrun"
)

// The foreign routes loaded into main are every prefix of length 17 to 32
// inside 198.18.128.0/17 (65,535 prefixes, away from the probe targets in
// 198.18.0.0/24), repeated with metrics 1, 2, ... until there are enough:
// the documentation ranges hold no million distinct IPv4 prefixes, and the
// kernel, a dump and an event cost the same per route whatever its prefix.
var foreignBase = netip.MustParseAddr("198.18.128.0")

const foreignPrefixes = 1<<16 - 1

// foreignRoute returns the k-th foreign route: its prefix and metric.
func foreignRoute(k int) (netip.Prefix, uint32) {
	metric := uint32(1 + k/foreignPrefixes)
	p := k % foreignPrefixes
	bits := 17
	for p >= 1<<(bits-17) {
		p -= 1 << (bits - 17)
		bits++
	}
	base := binary.BigEndian.Uint32(foreignBase.AsSlice())
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], base+uint32(p)<<(32-bits))
	return netip.PrefixFrom(netip.AddrFrom4(a), bits), metric
}

// LoadRoutes adds n routes to the main table of namespace ns, via gw on
// the interface with index oif, in batches of raw netlink messages (no ip
// process per route, no acknowledgement per route). It reports the first
// error the kernel returned.
func LoadRoutes(ns string, n int, gw netip.Addr, oif int) error {
	return nsrun.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		const batch = 1024
		buf := make([]byte, 0, batch*routeMsgLen)
		var firstErr error
		for k := 0; k < n; k++ {
			p, metric := foreignRoute(k)
			flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL)
			last := k == n-1
			if last {
				flags |= unix.NLM_F_ACK
			}
			buf = appendRoute(buf, uint32(k+1), flags, p, gw, oif, metric)
			if len(buf) == cap(buf) || last {
				if _, err := unix.Write(fd, buf); err != nil {
					return fmt.Errorf("send routes: %w", err)
				}
				buf = buf[:0]
				if err := drain(fd, last, uint32(n), &firstErr); err != nil {
					return err
				}
			}
		}
		return firstErr
	})
}

const routeMsgLen = unix.NLMSG_HDRLEN + unix.SizeofRtMsg + 4*8

func appendRoute(b []byte, seq uint32, flags uint16, p netip.Prefix, gw netip.Addr, oif int, metric uint32) []byte {
	ne := binary.NativeEndian
	b = ne.AppendUint32(b, routeMsgLen)
	b = ne.AppendUint16(b, unix.RTM_NEWROUTE)
	b = ne.AppendUint16(b, flags)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	b = append(b, unix.AF_INET, byte(p.Bits()), 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_STATIC, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST)
	b = ne.AppendUint32(b, 0)
	attr := func(typ uint16, v []byte) {
		b = ne.AppendUint16(b, 8)
		b = ne.AppendUint16(b, typ)
		b = append(b, v...)
	}
	attr(unix.RTA_DST, p.Addr().AsSlice())
	attr(unix.RTA_GATEWAY, gw.AsSlice())
	attr(unix.RTA_OIF, ne.AppendUint32(nil, uint32(oif)))
	attr(unix.RTA_PRIORITY, ne.AppendUint32(nil, metric))
	return b
}

// drain reads the kernel's answers: errors for failed routes and, when
// wait is set, the acknowledgement of message lastSeq.
func drain(fd int, wait bool, lastSeq uint32, firstErr *error) error {
	buf := make([]byte, 1<<16)
	for {
		flags := unix.MSG_DONTWAIT
		if wait {
			flags = 0
		}
		n, _, err := unix.Recvfrom(fd, buf, flags)
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read netlink answers: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 && *firstErr == nil {
				p, metric := foreignRoute(int(m.Header.Seq) - 1)
				*firstErr = fmt.Errorf("add route %s metric %d: %w", p, metric, unix.Errno(-code))
			}
			if m.Header.Seq == lastSeq {
				return nil
			}
		}
	}
}
