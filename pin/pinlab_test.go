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
		if f.TupleOrig.Proto.Protocol == proto && f.TupleOrig.Proto.SourcePort == ap.Port() && f.TupleOrig.IP.SourceAddress == ap.Addr().Unmap() {
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

const internet6 = "2001:db8:ffff::1"

// addIPv6 gives the pinning lab the same topology in IPv6.
func (l *pinLab) addIPv6(t *testing.T) {
	t.Helper()
	r := l.router.name
	for _, a := range [][]string{
		{r, "2001:db8:a::1/64", "lan"}, {r, "2001:db8:1::2/64", "eth1"}, {r, "2001:db8:2::2/64", "eth2"},
		{l.host.name, "2001:db8:a::10/64", "eth0"},
		{l.isp1.name, "2001:db8:1::1/64", "eth0"}, {l.isp2.name, "2001:db8:2::1/64", "eth0"},
		{l.isp1.name, internet6 + "/128", "lo"}, {l.isp2.name, internet6 + "/128", "lo"},
	} {
		ip(t, "-n", a[0], "addr", "add", a[1], "dev", a[2], "nodad")
	}
	ip(t, "-n", l.host.name, "-6", "route", "add", "default", "via", "2001:db8:a::1")
	ip(t, "-n", l.isp1.name, "-6", "route", "add", "default", "via", "2001:db8:1::2")
	ip(t, "-n", l.isp2.name, "-6", "route", "add", "default", "via", "2001:db8:2::2")
	ip(t, "-n", r, "-6", "route", "add", "default", "via", "2001:db8:1::1", "table", "101")
	ip(t, "-n", r, "-6", "route", "add", "default", "via", "2001:db8:2::1", "table", "102")
	ip(t, "-n", r, "-6", "rule", "add", "pref", "100", "lookup", "main", "suppress_prefixlength", "0")
	ip(t, "-n", r, "-6", "rule", "add", "pref", "200", "fwmark", fmt.Sprintf("%#x/%#x", m1, DefaultMask), "lookup", "101")
	ip(t, "-n", r, "-6", "rule", "add", "pref", "201", "fwmark", fmt.Sprintf("%#x/%#x", m2, DefaultMask), "lookup", "102")
	ip(t, "-n", r, "-6", "route", "replace", "default", "via", "2001:db8:1::1")
	l.router.run(t, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644)
	})
	for _, n := range []*testNS{l.isp1, l.isp2} {
		name := "isp" + strings.TrimPrefix(n.name[:strings.LastIndex(n.name, "-")], "pin-i")
		var c *net.UDPConn
		n.run(t, func() (err error) {
			c, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP(internet6), Port: 7})
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
}
