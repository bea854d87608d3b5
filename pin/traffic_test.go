package pin

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPinnedTraffic: LAN connections (UDP and TCP) stay on the uplink they
// started on after the route for new connections moves, new ones follow
// it, and foreign conntrack mark bits survive.
func TestPinnedTraffic(t *testing.T) {
	l := newPinLab(t)
	foreignCtBits(t, l.router)

	u1 := dial(t, l.host, "udp4", 0).(*net.UDPConn)
	t1 := dial(t, l.host, "tcp4", 0)
	t1r := bufio.NewReader(t1)
	if got := udpAsk(t, u1); got != "isp1" {
		t.Fatalf("UDP flow 1 answered by %s, want isp1", got)
	}
	if got := tcpAsk(t, t1, t1r); got != "isp1" {
		t.Fatalf("TCP flow 1 answered by %s, want isp1", got)
	}

	l.balance(t, "203.0.113.1")
	u2 := dial(t, l.host, "udp4", 0).(*net.UDPConn)
	t2 := dial(t, l.host, "tcp4", 0)
	t2r := bufio.NewReader(t2)
	for i := range 3 {
		if got := udpAsk(t, u1); got != "isp1" {
			t.Fatalf("round %d: pinned UDP flow answered by %s, want isp1", i, got)
		}
		if got := tcpAsk(t, t1, t1r); got != "isp1" {
			t.Fatalf("round %d: pinned TCP flow answered by %s, want isp1", i, got)
		}
		if got := udpAsk(t, u2); got != "isp2" {
			t.Fatalf("round %d: new UDP flow answered by %s, want isp2", i, got)
		}
		if got := tcpAsk(t, t2, t2r); got != "isp2" {
			t.Fatalf("round %d: new TCP flow answered by %s, want isp2", i, got)
		}
	}
	for _, c := range []struct {
		proto uint8
		conn  net.Conn
		want  uint32
	}{
		{unix.IPPROTO_UDP, u1, m1 | foreignCt},
		{unix.IPPROTO_TCP, t1, m1 | foreignCt},
		{unix.IPPROTO_UDP, u2, m2 | foreignCt},
		{unix.IPPROTO_TCP, t2, m2 | foreignCt},
	} {
		if got := ctMarkOf(t, l.router, c.proto, c.conn.LocalAddr()); got != c.want {
			t.Errorf("conntrack mark of %s %s = %#x, want %#x", c.conn.LocalAddr().Network(), c.conn.LocalAddr(), got, c.want)
		}
	}
}

// TestPinnedRouterTraffic: the router's own connections are pinned too
// (the route output chain re-routes them), and a socket with its own mark
// (SO_MARK) is left alone.
func TestPinnedRouterTraffic(t *testing.T) {
	l := newPinLab(t)
	own := dial(t, l.router, "udp4", 0).(*net.UDPConn)
	marked := dial(t, l.router, "udp4", 0xca6c).(*net.UDPConn)
	if got := udpAsk(t, own); got != "isp1" {
		t.Fatalf("router flow answered by %s, want isp1", got)
	}
	if got := udpAsk(t, marked); got != "isp1" {
		t.Fatalf("marked router flow answered by %s, want isp1", got)
	}
	l.balance(t, "203.0.113.1")
	if got := udpAsk(t, own); got != "isp1" {
		t.Fatalf("pinned router flow answered by %s after the balance moved, want isp1", got)
	}
	if got := ctMarkOf(t, l.router, unix.IPPROTO_UDP, own.LocalAddr()); got != m1 {
		t.Fatalf("router flow's conntrack mark %#x, want %#x", got, m1)
	}
	if got := ctMarkOf(t, l.router, unix.IPPROTO_UDP, marked.LocalAddr()); got != 0 {
		t.Fatalf("SO_MARK flow's conntrack mark %#x, want 0: a marked packet must not be pinned", got)
	}
}

// TestPinnedInbound: a connection arriving through isp2 is answered
// through isp2 while main's default (new connections) points at isp1,
// also under strict reverse-path filtering, thanks to src_valid_mark.
func TestPinnedInbound(t *testing.T) {
	l := newPinLab(t)
	l.router.run(t, func() error {
		for _, f := range []string{"all/rp_filter", "eth2/rp_filter"} {
			if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+f, []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	var ln net.Listener
	l.router.run(t, func() (err error) {
		ln, err = net.Listen("tcp4", "203.0.113.2:2222")
		return err
	})
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = fmt.Fprintln(c, "router")
			c.Close()
		}
	})
	connect := func(timeout time.Duration) error {
		var err error
		l.isp2.run(t, func() error {
			d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(internet)}}
			var c net.Conn
			if c, err = d.Dial("tcp4", "203.0.113.2:2222"); err != nil {
				return nil
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(timeout))
			_, err = bufio.NewReader(c).ReadString('\n')
			return nil
		})
		return err
	}
	// Strict rp_filter drops the SYN from 198.18.0.1 on eth2 (main routes
	// it via eth1) unless the restored mark counts.
	var svm SrcValidMark
	i2 := 0
	l.router.run(t, func() (err error) { i2, err = ifindex("eth2"); return err })
	l.router.run(t, func() error { return svm.Set(i2, "eth2") })
	if err := connect(10 * time.Second); err != nil {
		t.Fatalf("inbound connection through isp2: %v", err)
	}
	l.router.run(t, svm.Restore)
	// Without the mark, the reverse path is eth1: the SYN is dropped (a
	// bounded wait for something that must not happen).
	if err := connect(time.Second); err == nil {
		t.Fatal("inbound connection worked under strict rp_filter without src_valid_mark: the test proves nothing")
	}
}

// TestRemoveStopsPinning: without the table, pinned flows follow main.
func TestRemoveStopsPinning(t *testing.T) {
	l := newPinLab(t)
	u1 := dial(t, l.host, "udp4", 0).(*net.UDPConn)
	if got := udpAsk(t, u1); got != "isp1" {
		t.Fatalf("answered by %s", got)
	}
	if err := l.tb.Remove(); err != nil {
		t.Fatal(err)
	}
	l.balance(t, "203.0.113.1")
	if got := udpAsk(t, u1); got != "isp2" {
		t.Fatalf("after Remove the flow is answered by %s, want isp2 (main's default)", got)
	}
}

// TestPinsOlderConnections: a connection that existed before the table
// (uplinkd started after it) is pinned by its next packet.
func TestPinsOlderConnections(t *testing.T) {
	l := newPinLab(t)
	if err := l.tb.Remove(); err != nil {
		t.Fatal(err)
	}
	u1 := dial(t, l.host, "udp4", 0).(*net.UDPConn)
	if got := udpAsk(t, u1); got != "isp1" {
		t.Fatalf("answered by %s", got)
	}
	if got := ctMarkOf(t, l.router, unix.IPPROTO_UDP, u1.LocalAddr()); got != 0 {
		t.Fatalf("mark %#x before the table exists", got)
	}
	if _, err := l.tb.Apply(labUplinks); err != nil {
		t.Fatal(err)
	}
	if got := udpAsk(t, u1); got != "isp1" {
		t.Fatalf("answered by %s", got)
	}
	if got := ctMarkOf(t, l.router, unix.IPPROTO_UDP, u1.LocalAddr()); got != m1 {
		t.Fatalf("older connection's mark %#x after its next packet, want %#x", got, m1)
	}
	l.balance(t, "203.0.113.1")
	if got := udpAsk(t, u1); got != "isp1" {
		t.Fatalf("older connection answered by %s after the balance moved, want isp1", got)
	}
}

// TestPinnedIPv6: the inet table pins IPv6 connections the same way, and
// a flush by mark of the IPv4 family leaves them alone.
func TestPinnedIPv6(t *testing.T) {
	l := newPinLab(t)
	l.addIPv6(t)
	var u6 *net.UDPConn
	l.host.run(t, func() (err error) {
		u6, err = net.DialUDP("udp6", nil, &net.UDPAddr{IP: net.ParseIP(internet6), Port: 7})
		return err
	})
	defer u6.Close()
	u4 := dial(t, l.host, "udp4", 0).(*net.UDPConn)
	if got := udpAsk(t, u6); got != "isp1" {
		t.Fatalf("IPv6 flow answered by %s, want isp1", got)
	}
	if got := udpAsk(t, u4); got != "isp1" {
		t.Fatalf("IPv4 flow answered by %s, want isp1", got)
	}
	ip(t, "-n", l.router.name, "-6", "route", "replace", "default", "via", "2001:db8:2::1")
	if got := udpAsk(t, u6); got != "isp1" {
		t.Fatalf("pinned IPv6 flow answered by %s after the balance moved, want isp1", got)
	}
	if got := ctMarkOf(t, l.router, unix.IPPROTO_UDP, u6.LocalAddr()); got != m1 {
		t.Fatalf("IPv6 flow's conntrack mark %#x, want %#x", got, m1)
	}

	// isp1 fails in IPv4 only: its IPv4 entries go, its IPv6 ones stay.
	f, err := NewFlusher(l.router.fd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if r := flushWait(t, f, unix.AF_INET, m1, DefaultMask); r.err != nil || r.deleted < 1 {
		t.Fatalf("IPv4 flush of isp1 = %+v, want the IPv4 flow's entry deleted", r)
	}
	if got := ctMarkOf(t, l.router, unix.IPPROTO_UDP, u6.LocalAddr()); got != m1 {
		t.Fatalf("IPv6 flow's mark after an IPv4 flush: %#x, want %#x", got, m1)
	}
}
