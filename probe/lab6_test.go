package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/testutil"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

var (
	source6  = netip.MustParseAddr("2001:db8:1::2")
	source6b = netip.MustParseAddr("2001:db8:2::2")
	target6a = netip.MustParseAddr("2001:db8:ff::1")
	target6b = netip.MustParseAddr("2001:db8:ff::2")
)

// newLab6 is a router namespace r with two IPv6 uplinks, veths into one ISP
// namespace i: eth1 (2001:db8:1::2/64, to up0) and eth2 (2001:db8:2::2/64,
// to up1). The ISP's router is fe80::1 on both links, as ISPs' routers
// usually are. i owns the targets 2001:db8:ff::1 and ::2 on its loopback.
// As on the real router, r's main table has no route to them: only
// `from 2001:db8:1::2 lookup 100` (default via fe80::1 dev eth1) and
// `from 2001:db8:2::2 lookup 200` (default via fe80::1 dev eth2) lead
// there. eth1 is dual-stack: 198.51.100.2/24, with the IPv4 target
// 198.18.0.1 through table 100 as in newLab.
func newLab6(t *testing.T) *lab {
	t.Helper()
	testutil.RequirePriv(t)
	l := newNamespaces(t, "p6-")
	for _, ns := range []string{l.r, l.i} {
		// No duplicate address detection: addresses are usable at once,
		// the link-local ones included.
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		l.ip(ns, "link", "set", "lo", "up")
	}
	for n, link := range []struct{ r, i, prefix string }{{"eth1", "up0", "2001:db8:1::"}, {"eth2", "up1", "2001:db8:2::"}} {
		l.ip(l.r, "link", "add", link.r, "type", "veth", "peer", "name", link.i, "netns", l.i)
		l.ip(l.r, "addr", "add", link.prefix+"2/64", "dev", link.r)
		l.ip(l.i, "addr", "add", link.prefix+"1/64", "dev", link.i)
		l.ip(l.i, "addr", "add", "fe80::1/64", "dev", link.i)
		l.ip(l.r, "link", "set", link.r, "up")
		l.ip(l.i, "link", "set", link.i, "up")
		table := []string{"100", "200"}[n]
		l.ip(l.r, "-6", "route", "add", "default", "via", "fe80::1", "dev", link.r, "table", table)
		l.ip(l.r, "-6", "rule", "add", "from", link.prefix+"2", "lookup", table, "pref", []string{"1000", "1001"}[n])
	}
	l.ip(l.i, "addr", "add", target6a.String()+"/128", "dev", "lo")
	l.ip(l.i, "addr", "add", target6b.String()+"/128", "dev", "lo")
	l.ip(l.r, "addr", "add", "198.51.100.2/24", "dev", "eth1")
	l.ip(l.i, "addr", "add", "198.51.100.1/24", "dev", "up0")
	l.ip(l.i, "addr", "add", "198.18.0.1/32", "dev", "lo")
	l.ip(l.r, "route", "add", "198.18.0.0/15", "via", "198.51.100.1", "dev", "eth1", "table", "100")
	l.ip(l.r, "rule", "add", "from", "198.51.100.2", "lookup", "100", "pref", "1002")
	l.waitReady6()
	return l
}

// waitReady6 waits until no IPv6 address of the lab is tentative. Even
// without DAD, a link that has just come up keeps its addresses tentative
// until the kernel's link watcher has seen its carrier (up to a second,
// more on a busy machine); until then an echo from such a source fails
// with EINVAL, and a prober started at once would fail its first rounds.
func (l *lab) waitReady6() {
	l.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, ns := range []string{l.r, l.i} {
		for {
			out, err := exec.Command("ip", "-n", ns, "-6", "addr", "show", "tentative").CombinedOutput()
			if err != nil {
				l.t.Fatalf("ip -n %s -6 addr show tentative: %v: %s", ns, err, out)
			}
			if strings.TrimSpace(string(out)) == "" {
				break
			}
			if time.Now().After(deadline) {
				l.t.Fatalf("IPv6 addresses of %s still tentative after 20s:\n%s", ns, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// An IPv6 prober on a socket of its own (no hub given), through a
// link-local gateway: good while the path works, bad through a blackhole
// in its table, good again after.
func TestProber6GoodBlackholeGood(t *testing.T) {
	l := newLab6(t)
	cfg := Config{
		Uplink: "isp1", Interface: "eth1", Source: source6, Gen: 6, Targets: ICMP(target6a, target6b),
		Interval: 20 * time.Millisecond, Timeout: 250 * time.Millisecond, Window: 10, Reliability: 2,
	}
	out := make(chan Result, 16)
	// A hub without an ICMPv6 socket (as on a kernel without IPv6)
	// cannot take it.
	inNS(t, l.r, func() {
		h, err := newHub(true, false)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		with := cfg
		with.Hub = h
		if p, err := Start(with, out); err == nil || !strings.Contains(err.Error(), "ICMPv6") {
			if p != nil {
				p.Stop()
			}
			t.Errorf("Start on a hub without ICMPv6 = %v, want an error naming it", err)
		}
	})
	startIn(t, l.r, cfg, out)
	c := &collector{t: t, cfg: cfg, out: out}
	for _, r := range c.waitFor(true, 5, 50) {
		if r.Replies < 2 || r.RTT <= 0 {
			t.Errorf("good round %+v: want both targets answering with an RTT", r)
		}
	}

	// Rounds wholly through the blackhole: failed, not one reply (a
	// round under way at the change may have one, and fail by the other).
	bound := c.change(func() { l.ip(l.r, "-6", "route", "add", "blackhole", "2001:db8:ff::/48", "table", "100") })
	c.waitUntil(func(r Result) bool { return !r.Good && r.Replies == 0 }, 5, bound)
	bound = c.change(func() { l.ip(l.r, "-6", "route", "del", "blackhole", "2001:db8:ff::/48", "table", "100") })
	c.waitFor(true, 5, bound)
}

// An uplink whose interface has only a link-local address (the ISP
// delegated a prefix and nothing else) probes from an address of that
// prefix held elsewhere on the router, here on lo: the echoes still leave
// by the uplink's interface, and the replies, routed by the ISP to the
// prefix, come back in by it.
func TestProber6PrefixOnlySource(t *testing.T) {
	l := newLab6(t)
	lan := netip.MustParseAddr("2001:db8:100::1")
	l.ip(l.r, "addr", "del", "2001:db8:2::2/64", "dev", "eth2")
	l.ip(l.r, "addr", "add", "fe80::2/64", "dev", "eth2")
	l.ip(l.r, "addr", "add", lan.String()+"/128", "dev", "lo")
	l.ip(l.r, "-6", "rule", "add", "from", lan.String(), "lookup", "200", "pref", "1003")
	l.ip(l.i, "-6", "route", "add", "2001:db8:100::/48", "via", "fe80::2", "dev", "up1")
	cfg := Config{
		Uplink: "isp2", Interface: "eth2", Source: lan, Targets: ICMP(target6a, target6b),
		Interval: 20 * time.Millisecond, Timeout: 250 * time.Millisecond, Window: 10,
	}
	out := make(chan Result, 16)
	startIn(t, l.r, cfg, out)
	c := &collector{t: t, cfg: cfg, out: out}
	c.waitFor(true, 5, 50)
	// The way back through the uplink is gone: nothing counts.
	bound := c.change(func() { l.ip(l.i, "-6", "route", "del", "2001:db8:100::/48", "via", "fe80::2", "dev", "up1") })
	c.waitFor(false, 5, bound)
}

// Two IPv6 uplinks whose gateways are both fe80::1, and an IPv4 prober, on
// one shared hub. Each is judged on its own path only: when B's gateway
// stops answering on eth2, B fails even though fe80::1 still answers on
// eth1; when the far side sends B's replies back through A's interface, B
// fails; A and the IPv4 prober are never disturbed.
func TestHub6SameGatewayOnTwoUplinks(t *testing.T) {
	l := newLab6(t)
	// Made before the probers, so it closes after their Stop.
	hub := newHubIn(t, l.r)
	cfgA := Config{
		Uplink: "isp1", Interface: "eth1", Source: source6, Targets: ICMP(target6a, target6b), Hub: hub,
		Interval: 20 * time.Millisecond, Timeout: 250 * time.Millisecond, Window: 10,
	}
	cfgB := cfgA
	cfgB.Uplink, cfgB.Interface, cfgB.Source = "isp2", "eth2", source6b
	cfg4 := cfgA
	cfg4.Uplink, cfg4.Source, cfg4.Targets = "isp1-v4", source, ICMP(target1)
	outA, outB, out4 := make(chan Result, 16), make(chan Result, 16), make(chan Result, 16)
	startIn(t, l.r, cfgA, outA)
	startIn(t, l.r, cfgB, outB)
	startIn(t, l.r, cfg4, out4)
	ca := &collector{t: t, cfg: cfgA, out: outA}
	cb := &collector{t: t, cfg: cfgB, out: outB}
	c4 := &collector{t: t, cfg: cfg4, out: out4}
	// A and the IPv4 prober stay good (three rounds in a row: a round
	// lost to a stall of this noisy machine is no disturbance).
	others := func() {
		t.Helper()
		ca.waitFor(true, 3, ca.change(func() {})+25)
		c4.waitFor(true, 3, c4.change(func() {})+25)
	}
	ca.waitFor(true, 5, 50)
	cb.waitFor(true, 5, 50)
	c4.waitFor(true, 5, 50)

	// B's gateway goes: its neighbour entry is forgotten and fe80::1 no
	// longer answers on eth2. Echoes sent to eth1's fe80::1 instead would
	// still be answered (through up1, the connected route back).
	bound := cb.change(func() {
		l.ip(l.i, "addr", "del", "fe80::1/64", "dev", "up1")
		l.ip(l.r, "-6", "neigh", "flush", "dev", "eth2")
	})
	for _, r := range cb.waitFor(false, 5, bound) {
		if r.Replies != 0 {
			t.Errorf("B counted replies while its gateway was gone: %+v", r)
		}
	}
	others()
	bound = cb.change(func() { l.ip(l.i, "addr", "add", "fe80::1/64", "dev", "up1") })
	cb.waitFor(true, 5, bound+150) // a new NDP resolution after FAILED
	others()

	// The far side answers B through A's interface: the replies reach
	// the host, addressed to B's source, but they prove nothing of B's
	// uplink.
	bound = cb.change(func() {
		l.ip(l.i, "-6", "route", "add", source6b.String()+"/128", "via", source6.String(), "dev", "up0")
	})
	for _, r := range cb.waitFor(false, 5, bound) {
		if r.Replies != 0 {
			t.Errorf("B counted replies that came in through A's interface: %+v", r)
		}
	}
	others()
	bound = cb.change(func() {
		l.ip(l.i, "-6", "route", "del", source6b.String()+"/128", "via", source6.String(), "dev", "up0")
	})
	cb.waitFor(true, 5, bound)
	others()
}

// The TCP probe's and the DNS check's sockets of an IPv6 prober leave from
// its source, bound to its interface, to [address]:port, and fail when
// the ISP blackholes the way back. (Probers make these sockets in the process's namespace, so
// the test makes them, as the prober would, on a thread inside r.)
func TestProber6TCPAndDNS(t *testing.T) {
	l := newLab6(t)
	cfg := Config{
		Uplink: "isp1", Interface: "eth1", Source: source6, Targets: ICMP(target6a),
		Interval: time.Second, Timeout: time.Second, Window: 10, CheckTimeout: time.Second,
	}
	p := startIn(t, l.r, cfg, make(chan Result, 16))

	var (
		listener net.Listener
		resolver net.PacketConn
		err      error
	)
	inNS(t, l.i, func() {
		if listener, err = net.Listen("tcp6", "[2001:db8:ff::1]:8080"); err != nil {
			return
		}
		resolver, err = net.ListenPacket("udp6", "[2001:db8:ff::1]:53")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	queries := make(chan netip.AddrPort, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		resolver.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 512)
		for {
			n, from, err := resolver.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 2 {
				continue
			}
			queries <- from.(*net.UDPAddr).AddrPort()
			_, _ = resolver.WriteTo(dnsResponse(t, binary.BigEndian.Uint16(buf), true, dnsmessage.RCodeSuccess, 1), from)
		}
	})

	dial := func(port string) (netip.AddrPort, error) {
		var local netip.AddrPort
		var err error
		inNS(t, l.r, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var c net.Conn
			if c, err = p.dialer.DialContext(ctx, "tcp", net.JoinHostPort(target6a.String(), port)); err == nil {
				local = c.LocalAddr().(*net.TCPAddr).AddrPort()
				c.Close()
			}
		})
		return local, err
	}
	dns := Target{Method: MethodDNS, Addr: target6a, Port: 53, Name: "example.net"}
	checkDNS := func() (err error) {
		inNS(t, l.r, func() { err = p.checkDNS(dns) })
		return err
	}
	if local, err := dial("8080"); err != nil || local.Addr() != source6 {
		t.Errorf("TCP to an open port: from %v, %v; want from %v", local, err, source6)
	}
	if _, err := dial("9"); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("TCP to a closed port: %v, want the reset (connection refused) that proves the path", err)
	}
	if err := checkDNS(); err != nil {
		t.Errorf("DNS check: %v", err)
	}
	if from := <-queries; from.Addr() != source6 {
		t.Errorf("DNS query came from %v, want %v", from, source6)
	}

	// The ISP drops what goes back to the uplink's source. (A blackhole
	// in the router's table 100 would not do: a socket bound to a device
	// makes the kernel's IPv6 lookup skip routes through other devices,
	// a blackhole's lo included, and the default route through eth1
	// wins. Echoes, sent with IPV6_PKTINFO, do meet such a blackhole.)
	l.ip(l.i, "-6", "route", "add", "blackhole", source6.String()+"/128")
	if _, err := dial("9"); err == nil || errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("TCP through a blackhole: %v, want a failure", err)
	}
	if err := checkDNS(); err == nil {
		t.Error("DNS check through a blackhole passed")
	}
}
