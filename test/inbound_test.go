package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
	"golang.org/x/sys/unix"
)

// forwardPort is the port of the test's port forward and echo servers.
const forwardPort = 8080

// portForward adds, in the router, an nftables table "lab_fwd" that
// forwards TCP port forwardPort of addr to the LAN host (DNAT), as a home
// router's port forward does.
func (r *rig) portForward(addr netip.Addr) {
	r.t.Helper()
	r.nft(func(c *nftables.Conn) error {
		t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "lab_fwd"})
		ch := c.AddChain(&nftables.Chain{
			Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
		})
		dst, host := addr.As4(), lab.HostAddr.As4()
		port := binary.BigEndian.AppendUint16(nil, forwardPort)
		// ip daddr ADDR tcp dport PORT dnat to HOST:PORT
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dst[:]},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
			&expr.Immediate{Register: 1, Data: host[:]},
			&expr.Immediate{Register: 2, Data: port},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
		}})
		return c.Flush()
	})
}

// echoServer runs a TCP echo server on addr:port in the lab namespace ns
// until the test ends.
func (r *rig) echoServer(ns string, addr netip.Addr, port int) {
	r.t.Helper()
	var ln net.Listener
	err := testutil.InNS(r.lab.NS(ns), func() {
		var err error
		if ln, err = net.Listen("tcp4", netip.AddrPortFrom(addr, uint16(port)).String()); err != nil {
			r.t.Errorf("echo server: %v", err)
		}
	})
	if err != nil || ln == nil {
		r.t.Fatalf("echo server in %s: %v", ns, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				_, _ = io.Copy(c, c)
				c.Close()
			})
		}
	})
	r.t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// dialFrom opens a TCP connection in the lab namespace ns from laddr (any
// if invalid) to raddr.
func (r *rig) dialFrom(ns string, laddr netip.Addr, raddr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	var err error
	nerr := testutil.InNS(r.lab.NS(ns), func() {
		d := net.Dialer{Timeout: 5 * time.Second}
		if laddr.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: laddr.AsSlice()}
		}
		c, err = d.DialContext(r.ctx, "tcp4", raddr.String())
	})
	return c, errors.Join(nerr, err)
}

// roundTrip sends a line on c and waits for its echo.
func roundTrip(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != msg {
		return fmt.Errorf("echo %q, want %q", b, msg)
	}
	return nil
}

// Issue 9, acceptance "inbound": connections from the Internet to a port
// forward on isp2's address are answered through isp2 (under masquerade
// and ingress filtering an answer through isp1 is dropped), with both
// uplinks in the balance and while isp1 is the only uplink in the balance
// for new outbound connections (isp2 degraded by slow probe replies, so
// still usable: its pin rule stays). A connection opened before isp2 left
// the balance keeps working.
func TestInboundPortForward(t *testing.T) {
	r := newNATRig(t, coreConfig(""), lab.Options{}, 4*time.Minute)
	r.startEmu()
	r.portForward(lab.ISP2RouterAddr.Addr())
	r.echoServer(lab.Host, lab.HostAddr, forwardPort)
	r.start()
	r.waitBoth()
	fwd := netip.AddrPortFrom(lab.ISP2RouterAddr.Addr(), forwardPort)
	inbound := func(phase string, n int) {
		t.Helper()
		for i := range n {
			c, err := r.dialFrom(lab.Inet, lab.Target3, fwd)
			if err == nil {
				err = roundTrip(c, fmt.Sprintf("%s %d\n", phase, i))
				c.Close()
			}
			if err != nil {
				t.Fatalf("%s: inbound connection %d through isp2: %v", phase, i, err)
			}
		}
	}
	inbound("both uplinks in the balance", 32)
	long, err := r.dialFrom(lab.Inet, lab.Target3, fwd)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	if err := roundTrip(long, "long-lived\n"); err != nil {
		t.Fatal(err)
	}

	mark := r.mark()
	r.setISP(lab.ISP2, "slow")
	r.waitTransition(mark, "isp2", "degraded", 60*time.Second)
	r.waitOnly("eth1")
	// New outbound connections take isp1 only.
	if out, err := r.lab.RouteGet(r.ctx, lab.Target1, lab.HostAddr, "eth0", 40000, 9100); err != nil || out != "eth1" {
		t.Fatalf("a new outbound connection with isp2 degraded: %q, %v; want eth1", out, err)
	}
	inbound("isp1 alone in the balance", 32)
	if err := roundTrip(long, "still there\n"); err != nil {
		t.Fatalf("the inbound connection opened before isp2 left the balance: %v", err)
	}
}

// lanLeak adds, in the router, a counter of packets to the LAN prefix that
// leave through any interface but the LAN's, and returns a function that
// reads it.
func (r *rig) lanLeak() func() uint64 {
	r.t.Helper()
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "lab_leak"}
	ch := &nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityFilter}
	r.nft(func(c *nftables.Conn) error {
		c.AddTable(t)
		c.AddChain(ch)
		lan := lab.LANPrefix.Addr().As4()
		// oifname != "eth0" ip daddr & 255.255.255.0 == 192.0.2.0 counter
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(lab.RouterLANLink)},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: lan[:]},
			&expr.Counter{},
		}})
		return c.Flush()
	})
	return func() uint64 {
		var n uint64
		r.nft(func(c *nftables.Conn) error {
			rules, err := c.GetRules(t, ch)
			for _, rule := range rules {
				for _, e := range rule.Exprs {
					if ctr, ok := e.(*expr.Counter); ok {
						n += ctr.Packets
					}
				}
			}
			return err
		})
		return n
	}
}

// ifname is an interface name as nftables compares it.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// ping sends count ICMP echo requests from src to dst in the lab
// namespace ns over a raw socket and returns how many replies came back.
func (r *rig) ping(ns string, src, dst netip.Addr, count int) int {
	r.t.Helper()
	var pc net.PacketConn
	err := testutil.InNS(r.lab.NS(ns), func() {
		var err error
		if pc, err = net.ListenPacket("ip4:icmp", src.String()); err != nil {
			r.t.Errorf("raw ICMP socket: %v", err)
		}
	})
	if err != nil || pc == nil {
		r.t.Fatalf("ping from %s: %v", src, err)
	}
	defer pc.Close()
	id := uint16(time.Now().UnixNano())
	got := map[uint16]bool{}
	b := make([]byte, 1500)
	for seq := range uint16(count) {
		req := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'u', 'p', 'l', 'k'}
		binary.BigEndian.PutUint16(req[2:], icmpChecksum(req))
		if _, err := pc.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			r.t.Fatalf("ping %s from %s: %v", dst, src, err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for !got[seq] {
			_ = pc.SetReadDeadline(deadline)
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				break // lost
			}
			// An echo reply (type 0) of ours from dst.
			if a, ok := netip.AddrFromSlice(from.(*net.IPAddr).IP); ok && a.Unmap() == dst && n >= 8 && b[0] == 0 &&
				binary.BigEndian.Uint16(b[4:]) == id {
				got[binary.BigEndian.Uint16(b[6:])] = true
			}
		}
	}
	return len(got)
}

// icmpChecksum is the Internet checksum of b.
func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// Issue 9, acceptance "hairpin", with traffic: from both LAN addresses the
// host pings each uplink's address (raw ICMP) and holds a TCP echo with
// the router on it; every reply arrives, the router routes its answers
// out the LAN, and no packet to the LAN leaves through an uplink.
// TestRuleOrderHairpin checks the route decisions alone.
func TestHairpinTraffic(t *testing.T) {
	r := newNATRig(t, coreConfig(""), lab.Options{}, 3*time.Minute)
	r.echoServer(lab.Router, netip.IPv4Unspecified(), forwardPort)
	r.start()
	r.waitBoth()
	leaked := r.lanLeak()
	for _, src := range []netip.Addr{lab.HostAddr, lab.HostAddr2} {
		for _, up := range []netip.Addr{lab.ISP1RouterAddr.Addr(), lab.ISP2RouterAddr.Addr()} {
			if dev := r.ip(lab.Router, "route", "get", src.String(), "from", up.String()); !strings.Contains(dev, "dev "+lab.RouterLANLink) {
				t.Errorf("the router's route from %s to %s: %s, want dev %s", up, src, dev, lab.RouterLANLink)
			}
			if got := r.ping(lab.Host, src, up, 10); got != 10 {
				t.Errorf("ping %s from %s: %d of 10 replies", up, src, got)
			}
			c, err := r.dialFrom(lab.Host, src, netip.AddrPortFrom(up, forwardPort))
			if err != nil {
				t.Fatalf("TCP from %s to %s: %v", src, up, err)
			}
			for i := range 10 {
				if err := roundTrip(c, fmt.Sprintf("hairpin %d\n", i)); err != nil {
					t.Errorf("TCP from %s to %s: %v", src, up, err)
					break
				}
			}
			c.Close()
		}
	}
	if n := leaked(); n != 0 {
		t.Errorf("%d packets to the LAN left the router through an uplink", n)
	}
}
