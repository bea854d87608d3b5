package probe

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// read receives packets until the socket is closed and passes the echo
// replies meant for this prober to run, stamped with the time the kernel
// received them.
func (p *Prober) read() {
	defer close(p.readDone)
	buf := make([]byte, readBuf)
	oob := make([]byte, oobBuf)
	for {
		var (
			nr, noob int
			rerr     error
		)
		err := p.raw.Read(func(fd uintptr) bool {
			nr, noob, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			select {
			case <-p.stop:
				return
			default:
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// Unexpected; do not spin on a persistent error.
			select {
			case <-p.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		r, ok := p.match(buf[:nr], received(oob[:noob], time.Now()))
		if !ok {
			continue
		}
		select {
		case p.replies <- r:
		case <-p.stop:
			return
		}
	}
}

// drainSocket reads, without waiting, every packet the socket holds and
// queues the replies for run, which calls it: the reader goroutine may not
// have been scheduled since they arrived.
func (p *Prober) drainSocket() {
	buf, oob := p.drainBuf, p.drainOOB
	_ = p.raw.Control(func(fd uintptr) {
		for {
			nr, noob, _, _, err := unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
			if err != nil {
				return
			}
			r, ok := p.match(buf[:nr], received(oob[:noob], time.Now()))
			if !ok {
				continue
			}
			select {
			case p.replies <- r:
			default:
				return // full: run takes them in first
			}
		}
	})
}

// oobBuf holds the SCM_TIMESTAMPNS control message.
var oobBuf = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// received returns when the kernel received the packet whose control
// messages are oob, on the monotonic clock of now (read just after the
// packet): the kernel stamps with the wall clock, so its age is taken
// from the wall clock and subtracted from now. Without a timestamp it is
// now.
func received(oob []byte, now time.Time) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return now
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS || len(m.Data) < int(unsafe.Sizeof(unix.Timespec{})) {
			continue
		}
		ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
		age := now.Round(0).Sub(time.Unix(ts.Unix()))
		if age < 0 || age > time.Minute {
			return now // the wall clock stepped
		}
		return now.Add(-age)
	}
	return now
}

// match reports whether pkt, received at at, is an echo reply to one of this
// prober's echoes, and which one.
func (p *Prober) match(pkt []byte, at time.Time) (reply, bool) {
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
