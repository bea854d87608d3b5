package probe

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// drainSocket has the hub read, without waiting, every packet its socket
// holds and queue the replies: run calls it before anything times out, and
// the hub's reader may not have been scheduled since they arrived.
func (p *Prober) drainSocket() {
	p.hub.drain(p.drainBuf, p.drainOOB)
}

// received returns when the kernel received the packet whose control
// messages are oob, on the monotonic clock of now (read just after the
// packet), and the index of the interface it came in on (0: unknown). The
// kernel stamps with the wall clock, so the packet's age is taken from the
// wall clock and subtracted from now. Without a timestamp it is now.
func received(oob []byte, now time.Time) (time.Time, int) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return now, 0
	}
	at, ifindex := now, 0
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
		}
	}
	return at, ifindex
}

// match reports whether pkt, received at at on the interface with index
// ifindex, is an echo reply to one of this prober's echoes, and which one.
func (p *Prober) match(pkt []byte, at time.Time, ifindex int) (reply, bool) {
	// Only a reply that came in through the prober's own interface proves
	// its uplink: the shared socket hears every interface.
	if ifindex != p.ifindex {
		return reply{}, false
	}
	e, err := parseEcho(pkt)
	// Only an echo reply carrying our identifier and addressed to our
	// source counts: our own requests looped back, replies to another
	// address of this host and foreign or spoofed messages do not.
	if err != nil || e.Type != icmpEchoReply || e.ID != p.id || e.Dst != p.cfg.Source.Unmap() {
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
