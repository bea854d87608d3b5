package probe

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHubProbesEachUplinksOwnPath runs two probers of two uplinks on one
// shared hub. Each must be judged on its own path only: when the far side
// drops the replies of one uplink, or sends them back through the other
// uplink's interface, that prober fails while the other stays good.
func TestHubProbesEachUplinksOwnPath(t *testing.T) {
	l := newLab(t)
	// A second uplink eth2 (203.0.113.2) to the same far side, with its
	// own table and source rule, like every uplink of the router.
	l.ip(l.r, "link", "add", "eth2", "type", "veth", "peer", "name", "up1", "netns", l.i)
	l.ip(l.r, "addr", "add", "203.0.113.2/24", "dev", "eth2")
	l.ip(l.i, "addr", "add", "203.0.113.1/24", "dev", "up1")
	l.ip(l.r, "link", "set", "eth2", "up")
	l.ip(l.i, "link", "set", "up1", "up")
	l.ip(l.r, "route", "add", "198.18.0.0/15", "via", "203.0.113.1", "dev", "eth2", "table", "200")
	l.ip(l.r, "rule", "add", "from", "203.0.113.2", "lookup", "200", "pref", "1001")
	// Replies that come back through the wrong interface must reach the
	// socket, so that the test shows the hub refusing them, not the
	// kernel.
	for _, k := range []string{"all", "default", "eth1", "eth2"} {
		l.sysctl(l.r, "net.ipv4.conf."+k+".rp_filter=0")
	}

	// Made before the probers, so it closes after their Stop.
	hub := newHubIn(t, l.r)
	cfgA := Config{
		Uplink: "isp1", Interface: "eth1", Source: source, Targets: ICMP(target1, target2), Hub: hub,
		Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, Window: 10,
	}
	cfgB := cfgA
	cfgB.Uplink, cfgB.Interface, cfgB.Source = "isp2", "eth2", netip.MustParseAddr("203.0.113.2")
	outA, outB := make(chan Result, 16), make(chan Result, 16)
	startIn(t, l.r, cfgA, outA)
	startIn(t, l.r, cfgB, outB)
	ca := &collector{t: t, cfg: cfgA, out: outA}
	cb := &collector{t: t, cfg: cfgB, out: outB}
	ca.waitFor(true, 5, 50)
	cb.waitFor(true, 5, 50)

	// The far side answers B through A's interface: the replies reach
	// the host, addressed to B's source, but they prove nothing of B's
	// uplink.
	bound := cb.change(func() { l.ip(l.i, "route", "add", "203.0.113.2/32", "via", "198.51.100.2", "dev", "up0") })
	for _, r := range cb.waitFor(false, 5, bound) {
		if r.Replies != 0 {
			t.Errorf("B counted replies that came in through A's interface: %+v", r)
		}
	}
	bound = ca.change(func() {})
	ca.waitFor(true, 5, bound)

	// Back to its own path: B recovers; A is not disturbed.
	bound = cb.change(func() { l.ip(l.i, "route", "del", "203.0.113.2/32", "via", "198.51.100.2", "dev", "up0") })
	cb.waitFor(true, 5, bound)
	bound = ca.change(func() {})
	ca.waitFor(true, 5, bound)
}

// newHubIn opens a hub in namespace ns, closed when the test ends: a hub
// made before the probers that use it closes after their Stop (cleanups
// run last first).
func newHubIn(t *testing.T, ns string) *Hub {
	t.Helper()
	var hub *Hub
	inNS(t, ns, func() {
		var err error
		if hub, err = NewHub(); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() {
		if err := hub.Close(); err != nil {
			t.Errorf("close hub: %v", err)
		}
	})
	return hub
}

// TestHubDrainShared: a drain that began at or after the time a prober
// asks about serves it, so probers woken for one instant read the socket
// once; a later time makes a new drain, which reads everything the socket
// holds.
func TestHubDrainShared(t *testing.T) {
	l := newLab(t)
	var s *icmpSocket
	inNS(t, l.r, func() {
		var err error
		if s, err = openSocket(false); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { s.file.Close() })
	// No reader: only drain reads the socket.
	h := &Hub{v4: s}
	h.probers.Store(&map[uint16]*Prober{})
	buf, oob := make([]byte, readBuf), make([]byte, hubOOB)
	pending := func(wait time.Duration) bool {
		var ready bool
		if err := s.raw.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(fds, int(wait.Milliseconds()))
			ready = n > 0 && fds[0].Revents&unix.POLLIN != 0
		}); err != nil {
			t.Fatal(err)
		}
		return ready
	}

	before := time.Now()
	first := h.drain(s, before, buf, oob)
	if first.Before(before) {
		t.Fatalf("drain for %v returned %v, before it", before, first)
	}
	var ifindex int
	inNS(t, l.r, func() {
		var err error
		if ifindex, err = h.ifindex("eth1"); err != nil {
			t.Fatal(err)
		}
	})
	pkt := make([]byte, icmpHeaderLen+payloadLen)
	putEcho(pkt, icmpEchoRequest, 1, 1, 2, 1)
	if err := s.send(pkt, pktinfo(ifindex, source), &unix.SockaddrInet4{Addr: target1.As4()}); err != nil {
		t.Fatal(err)
	}
	if !pending(5 * time.Second) {
		t.Fatal("no reply to the echo")
	}
	if got := h.drain(s, before, buf, oob); !got.Equal(first) {
		t.Errorf("drain for %v, already served by the drain at %v, returned %v", before, first, got)
	}
	if !pending(0) {
		t.Fatal("a drain served by an earlier one read the socket")
	}
	later := time.Now()
	if got := h.drain(s, later, buf, oob); got.Before(later) {
		t.Errorf("drain for %v returned %v, before it", later, got)
	}
	if pending(0) {
		t.Error("the socket still holds a packet after a drain")
	}
}

// TestRecvmsg: recvmsg returns the packet, its control messages and its
// source address, for either family (UDP on loopback stands in for ICMP:
// the decoding of the source is the same).
func TestRecvmsg(t *testing.T) {
	for _, c := range []struct {
		family int
		addr   netip.Addr
		sa     func(port int) unix.Sockaddr
	}{
		{unix.AF_INET, netip.MustParseAddr("127.0.0.1"), func(port int) unix.Sockaddr { return &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}} }},
		{unix.AF_INET6, netip.IPv6Loopback(), func(port int) unix.Sockaddr {
			return &unix.SockaddrInet6{Port: port, Addr: netip.IPv6Loopback().As16()}
		}},
	} {
		open := func() int {
			fd, err := unix.Socket(c.family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Skipf("no %v socket: %v", c.addr, err)
			}
			t.Cleanup(func() { unix.Close(fd) })
			if err := unix.Bind(fd, c.sa(0)); err != nil {
				t.Skipf("bind to %v: %v", c.addr, err)
			}
			return fd
		}
		rx, tx := open(), open()
		if err := unix.SetsockoptInt(rx, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			t.Fatal(err)
		}
		sa, err := unix.Getsockname(rx)
		if err != nil {
			t.Fatal(err)
		}
		port := 0
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			port = sa.Port
		case *unix.SockaddrInet6:
			port = sa.Port
		}
		if _, _, _, err := recvmsg(rx, make([]byte, 16), nil, unix.MSG_DONTWAIT); err != unix.EAGAIN {
			t.Errorf("%v: recvmsg on an empty socket: %v, want EAGAIN", c.addr, err)
		}
		if err := unix.Sendto(tx, []byte("hello"), 0, c.sa(port)); err != nil {
			t.Fatal(err)
		}
		buf, oob := make([]byte, 16), make([]byte, hubOOB)
		n, oobn, from, err := recvmsg(rx, buf, oob, 0)
		if err != nil || string(buf[:n]) != "hello" || from != c.addr {
			t.Errorf("%v: recvmsg = %q from %v, %v; want \"hello\" from %v", c.addr, buf[:n], from, err, c.addr)
		}
		if now := time.Now(); oobn == 0 {
			t.Errorf("%v: no control messages", c.addr)
		} else if at, _, _ := received(oob[:oobn], now); at.Equal(now) {
			t.Errorf("%v: no receive timestamp in the control messages", c.addr)
		}
	}
}
