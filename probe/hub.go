package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Hub is the raw ICMP socket that the probers of one network namespace
// share, and the goroutine that reads it. One socket for 256 uplinks costs
// one wakeup per reply instead of one socket, reader goroutine and socket
// filter per uplink.
//
// A shared socket cannot be bound to a device or an address, so every echo
// says where it goes instead: an IP_PKTINFO control message on each send
// carries the uplink's interface index (the route lookup may only use that
// device, as SO_BINDTODEVICE would) and its address as the source (so the
// lookup goes through `from <source> lookup <table>`, the uplink's own
// table). On the way back the kernel reports, again with IP_PKTINFO, the
// interface each reply arrived on: a reply counts for a prober only when
// it carries the prober's identifier, was addressed to its source and came
// in through its interface. A probe thus still proves the path through its
// own uplink, never through the balance.
//
// The zero Hub is not usable; NewHub opens one. Close it after the last
// prober using it has stopped.
type Hub struct {
	file *os.File
	raw  syscall.RawConn

	mu      sync.Mutex // serializes writers of probers
	probers atomic.Pointer[map[uint16]*Prober]

	closing atomic.Bool   // set by Close before it closes the socket
	done    chan struct{} // closed when read returns
	once    sync.Once
}

// NewHub opens a raw ICMP socket in the calling thread's network namespace
// and starts reading it.
func NewHub() (*Hub, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMP)
	if err != nil {
		return nil, fmt.Errorf("open raw ICMP socket: %w", err)
	}
	if err := setupHub(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "icmp")
	// A nonblocking fd makes os.NewFile register it with the runtime poller;
	// deadlines only work if that succeeded, and Close relies on waking a
	// blocked Read.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("raw ICMP socket not pollable: %w", err)
	}
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raw ICMP socket: %w", err)
	}
	h := &Hub{file: f, raw: raw, done: make(chan struct{})}
	h.probers.Store(&map[uint16]*Prober{})
	go h.read()
	return h, nil
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
	// The kernel stamps each packet when it arrives, so a reply that
	// waited in the socket while this process was stalled keeps its time.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("enable receive timestamps: %w", err)
	}
	// And says which interface each packet came in on.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return fmt.Errorf("enable IP_PKTINFO: %w", err)
	}
	// Replies of 256 uplinks can arrive together.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	return nil
}

// Close closes the socket and waits for the reader. Probers still using
// the hub fail their sends from then on.
func (h *Hub) Close() error {
	var err error
	h.once.Do(func() {
		h.closing.Store(true)
		err = h.file.Close()
		<-h.done
	})
	return err
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
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("interface %q: %w", name, err)
	}
	var ierr error
	if err := h.raw.Control(func(fd uintptr) { ierr = unix.IoctlIfreq(int(fd), unix.SIOCGIFINDEX, ifr) }); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, fmt.Errorf("interface %s: %w", name, ierr)
	}
	return int(ifr.Uint32()), nil
}

// send sends the ICMP message pkt to dst with the control message oob
// (pktinfo: the uplink's interface and source). The socket is
// nonblocking: a full send buffer (EAGAIN) fails this echo instead of
// stalling the caller.
func (h *Hub) send(pkt, oob []byte, dst *unix.SockaddrInet4) error {
	var serr error
	if err := h.raw.Control(func(fd uintptr) {
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

// read receives packets until the socket is closed and hands each echo
// reply to the prober whose identifier it carries.
func (h *Hub) read() {
	defer close(h.done)
	buf := make([]byte, readBuf)
	oob := make([]byte, hubOOB)
	for {
		var (
			nr, noob int
			rerr     error
		)
		err := h.raw.Read(func(fd uintptr) bool {
			nr, noob, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
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
		h.dispatch(buf[:nr], oob[:noob], true)
	}
}

// drain reads, without waiting, every packet the socket holds and hands
// the replies on, with buf and oob as buffers; a prober calls it before
// anything of its times out, since the reader may not have been scheduled
// since they arrived. A reply for a prober whose queue is full is
// dropped: only a prober stalled for many intervals has one.
func (h *Hub) drain(buf, oob []byte) {
	_ = h.raw.Control(func(fd uintptr) {
		for {
			nr, noob, _, _, err := unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
			if err != nil {
				return
			}
			h.dispatch(buf[:nr], oob[:noob], false)
		}
	})
}

// dispatch hands pkt, received with the control messages oob, to the
// prober it is for, if any. wait says whether to wait for room in the
// prober's queue (the reader) or drop the reply (drain).
func (h *Hub) dispatch(pkt, oob []byte, wait bool) {
	// The identifier is read before any parsing to find the prober; the
	// prober's match checks everything.
	if len(pkt) < ipv4MinHeader || pkt[0]>>4 != 4 {
		return
	}
	ihl := int(pkt[0]&0x0f) * 4
	if len(pkt) < ihl+icmpHeaderLen {
		return
	}
	p := (*h.probers.Load())[binary.BigEndian.Uint16(pkt[ihl+4:])]
	if p == nil {
		return
	}
	now := time.Now()
	at, ifindex := received(oob, now)
	r, ok := p.match(pkt, at, ifindex)
	if !ok {
		return
	}
	if wait {
		select {
		case p.replies <- r:
		case <-p.stop:
		}
		return
	}
	select {
	case p.replies <- r:
	default:
	}
}

// hubOOB holds the SCM_TIMESTAMPNS and IP_PKTINFO control messages.
var hubOOB = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) + unix.CmsgSpace(unix.SizeofInet4Pktinfo)
