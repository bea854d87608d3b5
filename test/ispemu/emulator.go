package ispemu

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Counters are what the emulator did with the echo requests that came in
// on one interface.
type Counters struct {
	Mode     string `json:"mode"`
	Requests uint64 `json:"requests"`
	Answered uint64 `json:"answered"`
	Dropped  uint64 `json:"dropped"`
	// Peak is the most requests that came in within any one second, the
	// probe budget a prober must keep.
	Peak int `json:"peak"`
}

// peakWindow is the span Peak counts requests in.
const peakWindow = time.Second

// Emulator answers echo requests in its network namespace. The zero value
// answers everything at once (every interface healthy).
type Emulator struct {
	mu     sync.Mutex
	modes  map[string]Mode // by ingress interface name
	counts map[string]*Counters
	recent map[string][]time.Time // request times within peakWindow
	rnd    *rand.Rand
}

// Set sets the mode of requests arriving on interface iface.
func (e *Emulator) Set(iface string, m Mode) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.modes == nil {
		e.modes = make(map[string]Mode)
	}
	e.modes[iface] = m
	e.counter(iface).Mode = m.String()
}

// Stats returns the counters of every interface that has a mode or saw a
// request.
func (e *Emulator) Stats() map[string]Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Counters, len(e.counts))
	for k, c := range e.counts {
		out[k] = *c
	}
	return out
}

func (e *Emulator) counter(iface string) *Counters {
	if e.counts == nil {
		e.counts = make(map[string]*Counters)
	}
	c, ok := e.counts[iface]
	if !ok {
		c = &Counters{Mode: e.modes[iface].String()}
		e.counts[iface] = c
	}
	return c
}

// decide counts a request from iface and returns its fate.
func (e *Emulator) decide(iface string, now time.Time) (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rnd == nil {
		e.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	c := e.counter(iface)
	c.Requests++
	if e.recent == nil {
		e.recent = make(map[string][]time.Time)
	}
	r := e.recent[iface]
	i := 0
	for i < len(r) && now.Sub(r[i]) >= peakWindow {
		i++
	}
	r = append(r[i:], now)
	e.recent[iface] = r
	c.Peak = max(c.Peak, len(r))
	d, ok := e.modes[iface].fate(e.rnd)
	if ok {
		c.Answered++
	} else {
		c.Dropped++
	}
	return d, ok
}

const echoIgnoreAll = "/proc/sys/net/ipv4/icmp_echo_ignore_all"

// Run answers echo requests and serves the control socket at control
// until ctx is done. It must run in the namespace to emulate (started with
// `ip netns exec`), never in the host's: it refuses any namespace that is not
// named in /run/netns. ready, if not nil, is called
// once the emulator answers and the control socket accepts connections.
func (e *Emulator) Run(ctx context.Context, control string, ready func()) error {
	if err := checkNamespace(); err != nil {
		return err
	}
	sock, err := openICMP()
	if err != nil {
		return err
	}
	defer sock.Close()
	raw, err := sock.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw ICMP socket: %w", err)
	}

	// The kernel's echo replies off, so that ours are the only ones.
	old, err := os.ReadFile(echoIgnoreAll)
	if err != nil {
		return fmt.Errorf("read %s: %w", echoIgnoreAll, err)
	}
	if err := os.WriteFile(echoIgnoreAll, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("switch off the kernel's echo replies: %w", err)
	}
	defer func() { _ = os.WriteFile(echoIgnoreAll, old, 0o644) }()

	_ = os.Remove(control)
	ln, err := net.Listen("unix", control)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer os.Remove(control)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
		sock.Close() // wakes the reader
	})
	wg.Go(func() { e.serve(ctx, ln, &wg) })
	if ready != nil {
		ready()
	}
	rerr := e.answer(ctx, sock, raw, &wg)
	cancel()
	wg.Wait()
	if ctx.Err() != nil && (rerr == nil || errors.Is(rerr, os.ErrClosed)) {
		return nil
	}
	return rerr
}

// netnsDir is where `ip netns add` keeps its named namespaces.
const netnsDir = "/run/netns"

// checkNamespace accepts only a named network namespace, one that `ip
// netns add` created: switching off the echo replies of any other, the
// host's own above all, would change a system the lab does not own.
func checkNamespace() error {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(netnsDir, e.Name()), &st) == nil && st.Ino == self.Ino && st.Dev == self.Dev {
			return nil
		}
	}
	return errors.New("refusing to run outside a named network namespace: start it with ip netns exec")
}

func openICMP() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMP)
	if err != nil {
		return nil, fmt.Errorf("open raw ICMP socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("IP_PKTINFO: %w", err)
	}
	return os.NewFile(uintptr(fd), "icmp"), nil
}

// answer reads echo requests until the socket is closed and replies to
// them according to their ingress interface's mode.
func (e *Emulator) answer(ctx context.Context, sock *os.File, raw syscall.RawConn, wg *sync.WaitGroup) error {
	buf := make([]byte, 65536)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	names := make(map[int]string)
	for {
		var n, oobn int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		req, ok := parseRequest(buf[:n])
		if !ok {
			continue
		}
		iface := ingress(oob[:oobn], names)
		delay, ok := e.decide(iface, time.Now())
		if !ok {
			continue
		}
		if delay == 0 {
			send(raw, req)
			continue
		}
		wg.Go(func() {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
				send(raw, req)
			case <-ctx.Done():
			}
		})
	}
}

// request is an echo request and the reply it deserves.
type request struct {
	src, dst netip.Addr
	reply    []byte // ICMP echo reply message
}

// parseRequest extracts an echo request from an IPv4 packet as a raw
// socket delivers it, and builds its reply: the same message with type 0.
func parseRequest(pkt []byte) (request, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != unix.IPPROTO_ICMP {
		return request{}, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	end := int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < 20 || end < ihl+8 || end > len(pkt) || binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
		return request{}, false
	}
	icmp := pkt[ihl:end]
	if icmp[0] != 8 || icmp[1] != 0 { // echo request
		return request{}, false
	}
	reply := append([]byte(nil), icmp...)
	reply[0] = 0
	binary.BigEndian.PutUint16(reply[2:], 0)
	binary.BigEndian.PutUint16(reply[2:], checksum(reply))
	return request{
		src:   netip.AddrFrom4([4]byte(pkt[12:16])),
		dst:   netip.AddrFrom4([4]byte(pkt[16:20])),
		reply: reply,
	}, true
}

// checksum is the Internet checksum of b (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for ; len(b) > 1; b = b[2:] {
		sum += uint32(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	sum = sum>>16 + sum&0xffff
	sum += sum >> 16
	return ^uint16(sum)
}

// ingress names the interface a request came in on, from its IP_PKTINFO.
func ingress(oob []byte, names map[int]string) string {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return ""
	}
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IP || m.Header.Type != unix.IP_PKTINFO || len(m.Data) < unix.SizeofInet4Pktinfo {
			continue
		}
		info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&m.Data[0]))
		index := int(info.Ifindex)
		if name, ok := names[index]; ok {
			return name
		}
		ifi, err := net.InterfaceByIndex(index)
		if err != nil {
			return ""
		}
		names[index] = ifi.Name
		return ifi.Name
	}
	return ""
}

// send sends req's reply from the address the request was sent to.
func send(raw syscall.RawConn, req request) {
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
	info.Spec_dst = req.dst.As4()
	to := &unix.SockaddrInet4{Addr: req.src.As4()}
	_ = raw.Write(func(fd uintptr) bool {
		err := unix.Sendmsg(int(fd), req.reply, oob, to, 0)
		return err != unix.EAGAIN
	})
}

// serve accepts control connections until ln is closed.
func (e *Emulator) serve(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				if _, err := fmt.Fprintln(c, e.command(sc.Text())); err != nil {
					return
				}
			}
		})
	}
}

// command runs one control command and returns its one-line answer.
func (e *Emulator) command(line string) string {
	f := strings.Fields(line)
	switch {
	case len(f) == 0:
		return "error empty command"
	case f[0] == "set" && len(f) >= 3:
		m, err := ParseMode(f[2:])
		if err != nil {
			return "error " + err.Error()
		}
		e.Set(f[1], m)
		return "ok " + f[1] + " " + m.String()
	case f[0] == "stats" && len(f) == 1:
		b, err := json.Marshal(e.Stats())
		if err != nil {
			return "error " + err.Error()
		}
		return "ok " + string(b)
	}
	return "error unknown command: want \"set IFACE MODE...\" or \"stats\""
}
