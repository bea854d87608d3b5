package probe

import (
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// drainSocket makes sure the replies the kernel received on the hub's
// socket of the prober's family, up to at least after, are queued (see
// Hub.drain), and returns until when they are: run calls it before
// anything times out, and the hub's reader may not have been scheduled
// since they arrived.
func (p *Prober) drainSocket(after time.Time) time.Time {
	return p.hub.drain(p.sock, after, p.drainBuf, p.drainOOB)
}

// received returns when the kernel received the packet whose control
// messages are oob, on the monotonic clock of now (read just after the
// packet), the index of the interface it came in on (0: unknown) and, for
// IPv6, the address it was sent to (IPV6_PKTINFO; invalid for IPv4, whose
// header says it). The kernel stamps with the wall clock, so the packet's
// age is taken from the wall clock and subtracted from now. Without a
// timestamp it is now.
func received(oob []byte, now time.Time) (time.Time, int, netip.Addr) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return now, 0, netip.Addr{}
	}
	at, ifindex, dst := now, 0, netip.Addr{}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			age := now.Round(0).Sub(time.Unix(ts.Unix()))
			if age >= 0 && age <= time.Minute { // else the wall clock stepped
				at = now.Add(-age)
			}
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&m.Data[0]))
			ifindex = int(info.Ifindex)
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&m.Data[0]))
			ifindex, dst = int(info.Ifindex), netip.AddrFrom16(info.Addr)
		}
	}
	return at, ifindex, dst
}

// match reports whether pkt, an IPv4 packet received at at on the
// interface with index ifindex, is an echo reply to one of this prober's
// echoes, and which one.
func (p *Prober) match(pkt []byte, at time.Time, ifindex int) (reply, bool) {
	if p.v6 {
		return reply{}, false
	}
	e, err := parseEcho(pkt)
	if err != nil || e.Type != icmpEchoReply {
		return reply{}, false
	}
	return p.matchEcho(e, at, ifindex)
}

// match6 reports whether msg, an ICMPv6 message from src to dst received
// at at on the interface with index ifindex, is an echo reply to one of
// this prober's echoes, and which one.
func (p *Prober) match6(src, dst netip.Addr, msg []byte, at time.Time, ifindex int) (reply, bool) {
	if !p.v6 {
		return reply{}, false
	}
	e, err := parseEcho6(src, dst, msg)
	if err != nil || e.Type != icmp6EchoReply {
		return reply{}, false
	}
	return p.matchEcho(e, at, ifindex)
}

// matchEcho reports whether the echo reply e, received at at on the
// interface with index ifindex, answers one of this prober's echoes.
func (p *Prober) matchEcho(e echo, at time.Time, ifindex int) (reply, bool) {
	// Only a reply that came in through the prober's own interface proves
	// its uplink: the shared socket hears every interface.
	if ifindex != p.ifindex {
		return reply{}, false
	}
	// Only an echo reply carrying our identifier, from one of our targets
	// and addressed to our source counts: our own requests looped back,
	// replies to another address of this host and foreign or spoofed
	// messages do not.
	if e.ID != p.id || e.Dst != p.cfg.Source.Unmap() {
		return reply{}, false
	}
	target, ok := p.index[e.Src]
	if !ok {
		return reply{}, false
	}
	token, n, ok := parsePayload(e.Payload)
	if !ok || token != p.token || uint16(n) != e.Seq {
		return reply{}, false
	}
	return reply{id: n, target: target, at: at}, true
}
