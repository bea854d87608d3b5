package pin

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// The pinning lab:
//
//	host (192.0.2.10) -- lan | router | eth1 -- isp1 (198.51.100.1)
//	                                  | eth2 -- isp2 (203.0.113.1)
//
// Both ISPs hold the same "Internet" address 198.18.0.1 and answer as
// themselves, so a reply says which uplink a packet took. The router
// routes new connections by main's default and pinned ones by `fwmark
// M(u)/mask lookup T(u)`, after `lookup main suppress_prefixlength 0`, as
// netops installs them.
const (
	m1, m2    = 0x01000000, 0x02000000
	internet  = "198.18.0.1"
	hostAddr  = "192.0.2.10"
	foreignCt = 0x00001000 // set by a foreign table on LAN connections
)

type pinLab struct {
	router, host, isp1, isp2 *testNS
	tb                       *Table
}

var labUplinks = []Uplink{{Name: "isp1", Ifname: "eth1", Mark: m1}, {Name: "isp2", Ifname: "eth2", Mark: m2}}

func newPinLab(t *testing.T) *pinLab {
	t.Helper()
	l := &pinLab{router: newNS(t, "pin-r"), host: newNS(t, "pin-h"), isp1: newNS(t, "pin-i1"), isp2: newNS(t, "pin-i2")}
	r := l.router.name
	ip(t, "-n", r, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", l.host.name)
	ip(t, "-n", r, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", l.isp1.name)
	ip(t, "-n", r, "link", "add", "eth2", "type", "veth", "peer", "name", "eth0", "netns", l.isp2.name)
	for _, a := range [][]string{
		{r, "192.0.2.1/24", "lan"}, {r, "198.51.100.2/24", "eth1"}, {r, "203.0.113.2/24", "eth2"},
		{l.host.name, hostAddr + "/24", "eth0"},
		{l.isp1.name, "198.51.100.1/24", "eth0"}, {l.isp2.name, "203.0.113.1/24", "eth0"},
		{l.isp1.name, internet + "/32", "lo"}, {l.isp2.name, internet + "/32", "lo"},
	} {
		ip(t, "-n", a[0], "addr", "add", a[1], "dev", a[2])
		ip(t, "-n", a[0], "link", "set", a[2], "up")
	}
	ip(t, "-n", l.host.name, "route", "add", "default", "via", "192.0.2.1")
	ip(t, "-n", l.isp1.name, "route", "add", "default", "via", "198.51.100.2")
	ip(t, "-n", l.isp2.name, "route", "add", "default", "via", "203.0.113.2")
	ip(t, "-n", r, "route", "add", "default", "via", "198.51.100.1", "table", "101")
	ip(t, "-n", r, "route", "add", "default", "via", "203.0.113.1", "table", "102")
	ip(t, "-n", r, "rule", "add", "pref", "100", "lookup", "main", "suppress_prefixlength", "0")
	ip(t, "-n", r, "rule", "add", "pref", "200", "fwmark", fmt.Sprintf("%#x/%#x", m1, DefaultMask), "lookup", "101")
	ip(t, "-n", r, "rule", "add", "pref", "201", "fwmark", fmt.Sprintf("%#x/%#x", m2, DefaultMask), "lookup", "102")
	l.balance(t, "198.51.100.1")
	l.router.run(t, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	})
	for _, n := range []*testNS{l.isp1, l.isp2} {
		// ARP from the ISP's own address, as a real ISP router does:
		// otherwise it asks from 198.18.0.1, which the router's strict
		// rp_filter (TestPinnedInbound) rejects on an ARP packet that
		// carries no mark.
		n.run(t, func() error {
			return os.WriteFile("/proc/sys/net/ipv4/conf/eth0/arp_announce", []byte("2"), 0o644)
		})
	}
	l.tb = openTable(t, l.router)
	if _, err := l.tb.Apply(labUplinks); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNS{l.isp1, l.isp2} {
		name := strings.TrimPrefix(n.name[:strings.LastIndex(n.name, "-")], "pin-i")
		serveUDP(t, n, "isp"+name)
		serveTCP(t, n, "isp"+name)
	}
	return l
}

// balance points main's default (the route of new connections) at gw.
func (l *pinLab) balance(t *testing.T, gw string) {
	t.Helper()
	ip(t, "-n", l.router.name, "route", "replace", "default", "via", gw)
}

// serveUDP answers every datagram to internet:7 with the ISP's name.
func serveUDP(t *testing.T, ns *testNS, name string) {
	t.Helper()
	var c *net.UDPConn
	ns.run(t, func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(internet), Port: 7})
		return err
	})
	var wg sync.WaitGroup
	t.Cleanup(func() { c.Close(); wg.Wait() })
	wg.Go(func() {
		b := make([]byte, 1500)
		for {
			_, from, err := c.ReadFromUDP(b)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDP([]byte(name), from)
		}
	})
}

// serveTCP answers every line on internet:80 with the ISP's name.
func serveTCP(t *testing.T, ns *testNS, name string) {
	t.Helper()
	var ln net.Listener
	ns.run(t, func() (err error) {
		ln, err = net.Listen("tcp4", internet+":80")
		return err
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				s := bufio.NewScanner(c)
				for s.Scan() {
					if _, err := fmt.Fprintln(c, name); err != nil {
						return
					}
				}
			})
		}
	})
}

// udpAsk sends on c until an answer comes (the first datagrams may wait
// for ARP) and returns it.
func udpAsk(t *testing.T, c *net.UDPConn) string {
	t.Helper()
	b := make([]byte, 100)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte("?")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(b)
		if err == nil {
			return string(b[:n])
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatal(err)
		}
	}
	t.Fatal("no UDP answer")
	return ""
}

func tcpAsk(t *testing.T, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, "?"); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// dial opens a socket to internet inside ns, optionally with SO_MARK.
func dial(t *testing.T, ns *testNS, network string, mark int) net.Conn {
	t.Helper()
	var c net.Conn
	d := net.Dialer{Timeout: 10 * time.Second}
	if mark != 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark) }); err != nil {
				return err
			}
			return serr
		}
	}
	port := "7"
	if network == "tcp4" {
		port = "80"
	}
	ns.run(t, func() (err error) {
		c, err = d.Dial(network, internet+":"+port)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// ctMarkOf returns the conntrack mark of the router's entry whose original
// direction comes from src:sport.
func ctMarkOf(t *testing.T, router *testNS, proto uint8, src net.Addr) uint32 {
	t.Helper()
	ap := netip.MustParseAddrPort(src.String())
	c, err := conntrack.Dial(&netlink.Config{NetNS: router.fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if f.TupleOrig.Proto.Protocol == proto && f.TupleOrig.Proto.SourcePort == ap.Port() {
			return f.Mark
		}
	}
	t.Fatalf("no conntrack entry for %s", src)
	return 0
}

// foreignCtBits adds a foreign table to the router that sets foreignCt in
// the conntrack mark of every connection from the LAN, before uplinkd's
// chains run.
func foreignCtBits(t *testing.T, router *testNS) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(router.fd()))
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "fw"})
	ch := c.AddChain(&nftables.Chain{
		Name: "pre", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-160),
	})
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lan")},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(^uint32(foreignCt)), Xor: u32(foreignCt)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

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
