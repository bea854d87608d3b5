package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Hub is the raw ICMP sockets that the probers of one network namespace
// share, one per address family, and the goroutines that read them. One
// socket for 256 uplinks costs one wakeup per reply instead of one socket,
// reader goroutine and socket filter per uplink.
//
// A shared socket cannot be bound to a device or an address, so every echo
// says where it goes instead: a packet-info control message on each send
// (IP_PKTINFO, IPV6_PKTINFO) carries the uplink's interface index (the
// route lookup may only use that device, as SO_BINDTODEVICE would) and its
// address as the source (so the lookup goes through `from <source> lookup
// <table>`, the uplink's own table). On the way back the kernel reports,
// again in a packet-info message, the interface each reply arrived on (and
// for IPv6 the address it was sent to): a reply counts for a prober only
// when it carries the prober's identifier, was addressed to its source and
// came in through its interface. A probe thus still proves the path
// through its own uplink, never through the balance; and two uplinks whose
// IPv6 gateways are both fe80::1 never answer for each other, since each
// echo leaves by, and each reply must come in by, its own interface.
//
// The zero Hub is not usable; NewHub opens one. Close it after the last
// prober using it has stopped.
type Hub struct {
	v4, v6 *icmpSocket // nil when not opened
	v6err  error       // why v6 is nil

	mu      sync.Mutex // serializes writers of probers
	probers atomic.Pointer[map[uint16]*Prober]

	closing atomic.Bool // set by Close before it closes the sockets
	once    sync.Once
}

// icmpSocket is one raw socket of a hub and its reader.
type icmpSocket struct {
	v6   bool
	file *os.File
	raw  syscall.RawConn
	done chan struct{} // closed when read returns
	// drained is when the last drain of the socket began, in
	// nanoseconds since epoch: every packet the kernel had received by
	// then has been read. Probers woken together share one drain.
	drained atomic.Int64
}

// NewHub opens the raw ICMP and ICMPv6 sockets in the calling thread's
// network namespace and starts reading them. Without IPv6 in the kernel
// the hub serves IPv4 probers only; IPv6 probers then fail to start.
func NewHub() (*Hub, error) {
	return newHub(true, true)
}

// newHub opens a hub with the sockets of the families asked for. Without
// IPv6 in the kernel (EAFNOSUPPORT), and IPv4 wanted too, the hub has no
// IPv6 socket; any other failure fails.
func newHub(v4, v6 bool) (*Hub, error) {
	h := &Hub{}
	h.probers.Store(&map[uint16]*Prober{})
	if v4 {
		s, err := openSocket(false)
		if err != nil {
			return nil, err
		}
		h.v4 = s
	}
	if v6 {
		s, err := openSocket(true)
		switch {
		case err == nil:
			h.v6 = s
		case v4 && errors.Is(err, unix.EAFNOSUPPORT):
			h.v6err = err
		default:
			if h.v4 != nil {
				h.v4.file.Close() // no reader started yet
			}
			return nil, err
		}
	}
	for _, s := range []*icmpSocket{h.v4, h.v6} {
		if s != nil {
			go h.read(s)
		}
	}
	return h, nil
}

// openSocket opens and sets up a raw ICMP (v6: ICMPv6) socket.
func openSocket(v6 bool) (*icmpSocket, error) {
	family, proto, name := unix.AF_INET, unix.IPPROTO_ICMP, "ICMP"
	if v6 {
		family, proto, name = unix.AF_INET6, unix.IPPROTO_ICMPV6, "ICMPv6"
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		return nil, fmt.Errorf("open raw %s socket: %w", name, err)
	}
	setup := setupHub
	if v6 {
		setup = setupHub6
	}
	if err := setup(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("raw %s socket: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	// A nonblocking fd makes os.NewFile register it with the runtime poller;
	// deadlines only work if that succeeded, and Close relies on waking a
	// blocked Read.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("raw %s socket not pollable: %w", name, err)
	}
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raw %s socket: %w", name, err)
	}
	s := &icmpSocket{v6: v6, file: f, raw: raw, done: make(chan struct{})}
	s.drained.Store(math.MinInt64)
	return s, nil
}

func setupHub(fd int) error {
	// Have the kernel drop every ICMP message but echo replies, so the
	// reader is not woken for the host's other ICMP traffic. read checks
	// everything again.
	filter := []unix.SockFilter{
		{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 0}, // X = IPv4 header length
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_IND, K: 0},  // A = ICMP type
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: icmpEchoReply, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("attach socket filter: %w", err)
	}
	// And says which interface each packet came in on.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return fmt.Errorf("enable IP_PKTINFO: %w", err)
	}
	return setupCommon(fd)
}

func setupHub6(fd int) error {
	// ICMPv6 has its own filter (RFC 3542): block every type but echo
	// replies. The kernel checks the ICMPv6 checksum of what it delivers.
	var f unix.ICMPv6Filter
	for i := range f.Data {
		f.Data[i] = 0xffffffff
	}
	f.Data[icmp6EchoReply>>5] &^= 1 << (icmp6EchoReply & 31)
	if err := unix.SetsockoptICMPv6Filter(fd, unix.IPPROTO_ICMPV6, unix.ICMPV6_FILTER, &f); err != nil {
		return fmt.Errorf("set ICMPv6 filter: %w", err)
	}
	// The interface each packet came in on and the address it was sent
	// to: the message comes without its IPv6 header.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
		return fmt.Errorf("enable IPV6_RECVPKTINFO: %w", err)
	}
	return setupCommon(fd)
}

func setupCommon(fd int) error {
	// The kernel stamps each packet when it arrives, so a reply that
	// waited in the socket while this process was stalled keeps its time.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("enable receive timestamps: %w", err)
	}
	// Replies of 256 uplinks can arrive together.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	return nil
}

// Close closes the sockets and waits for the readers. Probers still using
// the hub fail their sends from then on.
func (h *Hub) Close() error {
	var err error
	h.once.Do(func() {
		h.closing.Store(true)
		for _, s := range []*icmpSocket{h.v4, h.v6} {
			if s == nil {
				continue
			}
			if cerr := s.file.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		for _, s := range []*icmpSocket{h.v4, h.v6} {
			if s != nil {
				<-s.done
			}
		}
	})
	return err
}

// socket returns the hub's socket for IPv6 or IPv4.
func (h *Hub) socket(v6 bool) (*icmpSocket, error) {
	switch {
	case v6 && h.v6 != nil:
		return h.v6, nil
	case v6 && h.v6err != nil:
		return nil, fmt.Errorf("no raw ICMPv6 socket: %w", h.v6err)
	case v6:
		return nil, errors.New("the probe hub has no ICMPv6 socket")
	case h.v4 != nil:
		return h.v4, nil
	}
	return nil, errors.New("the probe hub has no ICMP socket")
}

// add registers p for replies carrying its identifier.
func (h *Hub) add(p *Prober) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.probers.Load()
	if _, ok := old[p.id]; ok {
		return fmt.Errorf("ICMP identifier %d in use", p.id)
	}
	m := make(map[uint16]*Prober, len(old)+1)
	for id, q := range old {
		m[id] = q
	}
	m[p.id] = p
	h.probers.Store(&m)
	return nil
}

// remove unregisters p.
func (h *Hub) remove(p *Prober) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.probers.Load()
	m := make(map[uint16]*Prober, len(old))
	for id, q := range old {
		if q != p {
			m[id] = q
		}
	}
	h.probers.Store(&m)
}

// ifindex returns the index of the interface called name.
func (h *Hub) ifindex(name string) (int, error) {
	s := h.v4
	if s == nil {
		s = h.v6
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("interface %q: %w", name, err)
	}
	var ierr error
	if err := s.raw.Control(func(fd uintptr) { ierr = unix.IoctlIfreq(int(fd), unix.SIOCGIFINDEX, ifr) }); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, fmt.Errorf("interface %s: %w", name, ierr)
	}
	return int(ifr.Uint32()), nil
}

// send sends the ICMP message pkt to dst with the control message oob
// (packet info: the uplink's interface and source). The socket is
// nonblocking: a full send buffer (EAGAIN) fails this echo instead of
// stalling the caller.
func (s *icmpSocket) send(pkt, oob []byte, dst unix.Sockaddr) error {
	var serr error
	if err := s.raw.Control(func(fd uintptr) {
		_, serr = unix.SendmsgN(int(fd), pkt, oob, dst, 0)
	}); err != nil {
		return err
	}
	return serr
}

// pktinfo returns the IP_PKTINFO control message that sends through the
// interface with index ifindex from source.
func pktinfo(ifindex int, source netip.Addr) []byte {
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_IP
	h.Type = unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	info.Ifindex = int32(ifindex)
	info.Spec_dst = source.As4()
	return b
}

// pktinfo6 returns the IPV6_PKTINFO control message that sends through the
// interface with index ifindex from source.
func pktinfo6(ifindex int, source netip.Addr) []byte {
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_IPV6
	h.Type = unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	info.Ifindex = uint32(ifindex)
	info.Addr = source.As16()
	return b
}

// read receives packets from s until it is closed and hands each echo
// reply to the prober whose identifier it carries.
func (h *Hub) read(s *icmpSocket) {
	defer close(s.done)
	buf := make([]byte, readBuf)
	oob := make([]byte, hubOOB)
	for {
		var (
			nr, noob int
			from     netip.Addr
			rerr     error
		)
		err := s.raw.Read(func(fd uintptr) bool {
			nr, noob, from, rerr = recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if h.closing.Load() || errors.Is(err, os.ErrClosed) {
				return
			}
			// Unexpected; do not spin on a persistent error.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		h.dispatch(s, buf[:nr], oob[:noob], from, true)
	}
}

// drain makes sure that every packet the kernel received on s before at
// least after has been read and its reply handed on, and returns a time T
// not before after such that this holds for every packet received before
// T. When another drain began at or after after, that one serves (probers
// woken together drain the socket once); otherwise drain reads, without
// waiting, every packet s holds, with buf and oob as buffers. A prober
// calls it before anything of its times out, since the reader may not have
// been scheduled since the replies arrived. A reply for a prober whose
// queue is full is dropped: only a prober stalled for many intervals has
// one.
func (h *Hub) drain(s *icmpSocket, after time.Time, buf, oob []byte) time.Time {
	if d := s.drained.Load(); d != math.MinInt64 {
		if last := epoch.Add(time.Duration(d)); !last.Before(after) {
			return last
		}
	}
	start := time.Now()
	_ = s.raw.Control(func(fd uintptr) {
		for {
			nr, noob, from, err := recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
			if err != nil {
				return
			}
			h.dispatch(s, buf[:nr], oob[:noob], from, false)
		}
	})
	ns := int64(start.Sub(epoch))
	for {
		old := s.drained.Load()
		if old >= ns || s.drained.CompareAndSwap(old, ns) {
			break
		}
	}
	return start
}

// recvmsg receives a packet from the socket fd into p and its control
// messages into oob, like unix.Recvmsg but without the getsockopt that
// costs every IPv4 or IPv6 packet a second system call there (it asks for
// the socket's protocol to decode the source address): the source of an
// ICMP or ICMPv6 packet is always an IPv4 or IPv6 address.
func recvmsg(fd int, p, oob []byte, flags int) (n, oobn int, from netip.Addr, err error) {
	var rsa unix.RawSockaddrInet6 // room for either family
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&rsa)), Namelen: uint32(unsafe.Sizeof(rsa)), Iov: &iov}
	msg.SetIovlen(1)
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if errno != 0 {
		return 0, 0, netip.Addr{}, errno
	}
	switch rsa.Family {
	case unix.AF_INET6:
		from = netip.AddrFrom16(rsa.Addr)
	case unix.AF_INET:
		from = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa)).Addr)
	}
	return int(r), int(msg.Controllen), from, nil
}

// dispatch hands pkt, received on s from the address from with the control
// messages oob, to the prober it is for, if any. wait says whether to wait
// for room in the prober's queue (the reader) or drop the reply (drain).
func (h *Hub) dispatch(s *icmpSocket, pkt, oob []byte, from netip.Addr, wait bool) {
	// The identifier is read before any parsing to find the prober; the
	// prober's match checks everything.
	off := 0
	if !s.v6 {
		if len(pkt) < ipv4MinHeader || pkt[0]>>4 != 4 {
			return
		}
		off = int(pkt[0]&0x0f) * 4
	}
	if len(pkt) < off+icmpHeaderLen {
		return
	}
	p := (*h.probers.Load())[binary.BigEndian.Uint16(pkt[off+4:])]
	if p == nil || p.v6 != s.v6 {
		return
	}
	now := time.Now()
	at, ifindex, dst := received(oob, now)
	var (
		r  reply
		ok bool
	)
	if s.v6 {
		if !from.Is6() {
			return
		}
		r, ok = p.match6(from, dst, pkt, at, ifindex)
	} else {
		r, ok = p.match(pkt, at, ifindex)
	}
	if ok {
		p.take(r, wait)
	}
}

// hubOOB holds the SCM_TIMESTAMPNS and packet-info control messages of
// either family.
var hubOOB = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) + unix.CmsgSpace(unix.SizeofInet6Pktinfo)
