package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	source  = netip.MustParseAddr("198.51.100.2")
	target1 = netip.MustParseAddr("198.18.0.1")
	target2 = netip.MustParseAddr("198.18.0.2")
)

func TestStartValidates(t *testing.T) {
	ok := Config{
		Uplink: "isp1", Interface: "eth1", Source: source,
		Targets: ICMP(target1), Interval: time.Second, Timeout: time.Second, Window: 10,
	}
	out := make(chan Result)
	tests := []struct {
		name string
		edit func(*Config)
		out  chan<- Result
		want string
	}{
		{"nil channel", func(*Config) {}, nil, "nil result channel"},
		{"no interface", func(c *Config) { c.Interface = "" }, out, "no interface"},
		{"no source", func(c *Config) { c.Source = netip.Addr{} }, out, "source"},
		{"IPv6 source, IPv4 target", func(c *Config) { c.Source = netip.MustParseAddr("2001:db8::1") }, out, "not a global IPv6 address"},
		{"link-local source", func(c *Config) { c.Source = netip.MustParseAddr("fe80::2") }, out, "source"},
		{"source with a zone", func(c *Config) { c.Source = netip.MustParseAddr("2001:db8::1%eth1") }, out, "source"},
		{"no targets", func(c *Config) { c.Targets = nil }, out, "no targets"},
		{"IPv4 source, IPv6 target", func(c *Config) { c.Targets = ICMP(netip.MustParseAddr("2001:db8::1")) }, out, "not a global IPv4 address"},
		{"link-local IPv6 target", func(c *Config) {
			c.Source, c.Targets = netip.MustParseAddr("2001:db8::1"), ICMP(netip.MustParseAddr("fe80::1"))
		}, out, "target"},
		{"IPv4 resolver for an IPv6 source", func(c *Config) {
			c.Source = netip.MustParseAddr("2001:db8::1")
			c.Targets = append(ICMP(netip.MustParseAddr("2001:db8::9")), Target{Method: MethodDNS, Addr: target1, Port: 53})
		}, out, "resolver"},
		{"IPv6 URL host for an IPv4 source", func(c *Config) {
			c.Targets = append(c.Targets, Target{Method: MethodHTTP, URL: "http://[2001:db8::9]/generate_204"})
		}, out, "IPv4 host"},
		{"zero interval", func(c *Config) { c.Interval = 0 }, out, "interval"},
		{"zero window", func(c *Config) { c.Window = 0 }, out, "window"},
		{"reliability above the targets", func(c *Config) { c.Reliability = 2 }, out, "reliability"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, out, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			p, err := Start(cfg, tt.out)
			if err == nil {
				p.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "isp1") {
				t.Errorf("Start error %q does not mention %q and the uplink", err, tt.want)
			}
		})
	}
}

func TestValidateDeduplicatesTargets(t *testing.T) {
	cfg := Config{
		Interface: "eth1", Source: netip.MustParseAddr("::ffff:198.51.100.2"),
		Targets:  ICMP(target1, netip.MustParseAddr("::ffff:198.18.0.1"), target2),
		Interval: time.Second, Timeout: time.Second, Window: 10,
	}
	got, checks, err := validate(cfg, make(chan Result))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Addr != target1 || got[1].Addr != target2 || len(checks) != 0 {
		t.Errorf("targets = %v, checks %v, want [%v %v] and none", got, checks, target1, target2)
	}
	// Checks are split off the targets probed in rounds.
	cfg.Targets = append(cfg.Targets, Target{Method: MethodHTTP, URL: "http://198.18.0.3/generate_204"},
		Target{Method: MethodTCP, Addr: target1, Port: 443})
	cfg.CheckInterval, cfg.CheckTimeout, cfg.HTTPExpect = 5*time.Second, 2*time.Second, 204
	got, checks, err = validate(cfg, make(chan Result))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Method != MethodTCP || len(checks) != 1 || checks[0].URL != "http://198.18.0.3/generate_204" {
		t.Errorf("targets = %v, checks %v", got, checks)
	}
	// Checks alone make no rounds; a check needs its settings.
	for _, c := range []Config{
		{Targets: []Target{{Method: MethodHTTP, URL: "http://198.18.0.3/"}}, CheckInterval: time.Second, CheckTimeout: time.Second, HTTPExpect: 204},
		{Targets: append(ICMP(target1), Target{Method: MethodHTTP, URL: "http://198.18.0.3/"})},
		{Targets: append(ICMP(target1), Target{Method: MethodHTTP, URL: "ftp://198.18.0.3/"}), CheckInterval: time.Second, CheckTimeout: time.Second, HTTPExpect: 204},
	} {
		c.Interface, c.Source, c.Interval, c.Timeout, c.Window = "eth1", source, time.Second, time.Second, 10
		if _, _, err := validate(c, make(chan Result)); err == nil {
			t.Errorf("validate(%+v) passed", c.Targets)
		}
	}
}

func TestNextIDUnique(t *testing.T) {
	seen := make(map[uint16]bool)
	for range 1000 {
		id := nextID()
		if seen[id] {
			t.Fatalf("identifier %d handed out twice", id)
		}
		seen[id] = true
	}
}

func TestMatch(t *testing.T) {
	p := &Prober{
		cfg:     Config{Source: source},
		ifindex: 3,
		id:      0x4242,
		token:   0xfeedface,
		index:   map[netip.Addr]int{target1: 0, target2: 1},
	}
	at := ms(7)
	pkt := func(src string, typ uint8, id, seq uint16, payload []byte) []byte {
		return ipv4(src, "198.51.100.2", 1, 0, marshalEcho(typ, id, seq, payload))
	}
	ours := marshalPayload(0xfeedface, 70000)
	seq := uint16(70000 % 65536)
	tests := []struct {
		name string
		pkt  []byte
		want reply
		ok   bool
	}{
		{"ours from target 2", pkt("198.18.0.2", icmpEchoReply, 0x4242, seq, ours), reply{id: 70000, target: 1, at: at}, true},
		{"other prober's identifier", pkt("198.18.0.2", icmpEchoReply, 0x4243, seq, ours), reply{}, false},
		{"foreign token", pkt("198.18.0.1", icmpEchoReply, 0x4242, seq, marshalPayload(1, 70000)), reply{}, false},
		{"not a target", pkt("198.18.0.3", icmpEchoReply, 0x4242, seq, ours), reply{}, false},
		{"echo request", pkt("198.18.0.1", icmpEchoRequest, 0x4242, seq, ours), reply{}, false},
		{"sequence does not match round", pkt("198.18.0.1", icmpEchoReply, 0x4242, seq+1, ours), reply{}, false},
		{"short payload", pkt("198.18.0.1", icmpEchoReply, 0x4242, seq, ours[:8]), reply{}, false},
		{"garbage", []byte{0x45, 0}, reply{}, false},
		{"addressed to another host", ipv4("198.18.0.1", "198.51.100.3", 1, 0, marshalEcho(icmpEchoReply, 0x4242, seq, ours)), reply{}, false},
		{"truncated by total length", truncated(pkt("198.18.0.1", icmpEchoReply, 0x4242, seq, ours), 4), reply{}, false},
		{"cut short", pkt("198.18.0.1", icmpEchoReply, 0x4242, seq, ours)[:40], reply{}, false},
		{"bad checksum", corrupt(pkt("198.18.0.1", icmpEchoReply, 0x4242, seq, ours)), reply{}, false},
		{"unreachable quoting our echo", pkt("198.18.0.1", 3, 0x4242, seq, ours), reply{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p.match(tt.pkt, at, 3)
			if ok != tt.ok || got != tt.want {
				t.Errorf("match = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	// The shared socket hears every interface: a reply of ours that came
	// in on another uplink's interface (or one the kernel did not name)
	// proves nothing about this one.
	for _, in := range []int{0, 4} {
		if got, ok := p.match(pkt("198.18.0.2", icmpEchoReply, 0x4242, seq, ours), at, in); ok {
			t.Errorf("reply received on interface %d matched the prober of interface 3: %+v", in, got)
		}
	}
}

func TestMatch6(t *testing.T) {
	src := netip.MustParseAddr("2001:db8:1::2")
	t1, t2 := netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:db8:ff::2")
	p := &Prober{
		cfg:     Config{Source: src},
		v6:      true,
		ifindex: 3,
		id:      0x4242,
		token:   0xfeedface,
		index:   map[netip.Addr]int{t1: 0, t2: 1},
	}
	at := ms(7)
	ours := marshalPayload(0xfeedface, 70000)
	seq := uint16(70000 % 65536)
	type pkt struct {
		from, to netip.Addr
		msg      []byte
	}
	echo6 := func(from netip.Addr, typ uint8, id, seq uint16, payload []byte) pkt {
		return pkt{from, src, marshalEcho6(from, src, typ, id, seq, payload)}
	}
	badSum := echo6(t1, icmp6EchoReply, 0x4242, seq, ours)
	badSum.msg[len(badSum.msg)-1] ^= 1
	other := netip.MustParseAddr("2001:db8:1::3")
	tests := []struct {
		name string
		pkt  pkt
		want reply
		ok   bool
	}{
		{"ours from target 2", echo6(t2, icmp6EchoReply, 0x4242, seq, ours), reply{id: 70000, target: 1, at: at}, true},
		{"with the sender's zone", pkt{t1.WithZone("eth1"), src, echo6(t1, icmp6EchoReply, 0x4242, seq, ours).msg},
			reply{id: 70000, target: 0, at: at}, true},
		{"other prober's identifier", echo6(t2, icmp6EchoReply, 0x4243, seq, ours), reply{}, false},
		{"foreign token", echo6(t1, icmp6EchoReply, 0x4242, seq, marshalPayload(1, 70000)), reply{}, false},
		{"not a target", echo6(netip.MustParseAddr("2001:db8:ff::3"), icmp6EchoReply, 0x4242, seq, ours), reply{}, false},
		// The gateway is no target, even with our echo's contents.
		{"from the link-local gateway", echo6(netip.MustParseAddr("fe80::1"), icmp6EchoReply, 0x4242, seq, ours), reply{}, false},
		{"echo request", echo6(t1, icmp6EchoRequest, 0x4242, seq, ours), reply{}, false},
		{"ICMPv4 echo reply type", echo6(t1, icmpEchoReply, 0x4242, seq, ours), reply{}, false},
		{"sequence does not match round", echo6(t1, icmp6EchoReply, 0x4242, seq+1, ours), reply{}, false},
		{"short payload", echo6(t1, icmp6EchoReply, 0x4242, seq, ours[:8]), reply{}, false},
		{"bad checksum", badSum, reply{}, false},
		// Spoofed: the checksum covers the addresses of the packet
		// that carried it, so a message made for another destination
		// does not pass, and one made for it is not ours.
		{"checksum of another destination", pkt{t1, src, marshalEcho6(t1, other, icmp6EchoReply, 0x4242, seq, ours)}, reply{}, false},
		{"addressed to another host", pkt{t1, other, marshalEcho6(t1, other, icmp6EchoReply, 0x4242, seq, ours)}, reply{}, false},
		{"no destination known", pkt{t1, netip.Addr{}, echo6(t1, icmp6EchoReply, 0x4242, seq, ours).msg}, reply{}, false},
		{"IPv4-mapped source", pkt{netip.AddrFrom16(target1.As16()), src, echo6(t1, icmp6EchoReply, 0x4242, seq, ours).msg}, reply{}, false},
		{"unreachable quoting our echo", echo6(t1, 1, 0x4242, seq, ours), reply{}, false},
		{"cut short", pkt{t1, src, echo6(t1, icmp6EchoReply, 0x4242, seq, ours).msg[:7]}, reply{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p.match6(tt.pkt.from, tt.pkt.to, tt.pkt.msg, at, 3)
			if ok != tt.ok || got != tt.want {
				t.Errorf("match6 = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	// On another interface (another uplink whose gateway is fe80::1 too),
	// or one the kernel did not name: nothing.
	for _, in := range []int{0, 4} {
		r := echo6(t2, icmp6EchoReply, 0x4242, seq, ours)
		if got, ok := p.match6(r.from, r.to, r.msg, at, in); ok {
			t.Errorf("reply received on interface %d matched the prober of interface 3: %+v", in, got)
		}
	}
	// An IPv4 packet never matches an IPv6 prober, nor the reverse.
	if _, ok := p.match(ipv4("198.18.0.1", "198.51.100.2", 1, 0, marshalEcho(icmpEchoReply, 0x4242, seq, ours)), at, 3); ok {
		t.Error("an IPv6 prober matched an IPv4 reply")
	}
	p4 := &Prober{cfg: Config{Source: source}, ifindex: 3, id: 0x4242, token: 0xfeedface, index: map[netip.Addr]int{t1: 0}}
	if r := echo6(t1, icmp6EchoReply, 0x4242, seq, ours); func() bool { _, ok := p4.match6(r.from, r.to, r.msg, at, 3); return ok }() {
		t.Error("an IPv4 prober matched an ICMPv6 reply")
	}
}

// The packet information the prober sends is what the receive path reads:
// interface and address.
func TestPktinfoRoundTrip(t *testing.T) {
	src := netip.MustParseAddr("2001:db8:1::2")
	at, ifindex, dst := received(pktinfo6(7, src), ms(5))
	if at != ms(5) || ifindex != 7 || dst != src {
		t.Errorf("received(pktinfo6(7, %v)) = %v, %d, %v", src, at, ifindex, dst)
	}
	at, ifindex, dst = received(pktinfo(9, source), ms(5))
	if at != ms(5) || ifindex != 9 || dst.IsValid() {
		t.Errorf("received(pktinfo(9, %v)) = %v, %d, %v; want no address (the IPv4 header has it)", source, at, ifindex, dst)
	}
}

func TestTargetString(t *testing.T) {
	for tgt, want := range map[Target]string{
		{Method: MethodICMP, Addr: netip.MustParseAddr("2001:db8::1")}:           "2001:db8::1",
		{Method: MethodTCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443}: "tcp://[2001:db8::1]:443",
		{Method: MethodTCP, Addr: target1, Port: 443}:                            "tcp://198.18.0.1:443",
	} {
		if got := tgt.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", tgt, got, want)
		}
	}
}

func TestPutEchoIsMarshalEcho(t *testing.T) {
	b := make([]byte, icmpHeaderLen+payloadLen)
	putEcho(b, icmpEchoRequest, 0x1234, 0x5678, 0xfeedface, 70000)
	want := marshalEcho(icmpEchoRequest, 0x1234, 0x5678, marshalPayload(0xfeedface, 70000))
	if string(b) != string(want) {
		t.Fatalf("putEcho = %x, want %x", b, want)
	}
}

// truncated returns pkt with its IPv4 total length lowered by n, as if
// the datagram had been cut short on the way.
func truncated(pkt []byte, n int) []byte {
	b := append([]byte(nil), pkt...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-n))
	return b
}

// corrupt returns pkt with the last byte of its ICMP payload flipped.
func corrupt(pkt []byte) []byte {
	b := append([]byte(nil), pkt...)
	b[len(b)-1] ^= 0xff
	return b
}

// --- privileged tests, each in namespaces of its own ---

func TestProberGoodBadGood(t *testing.T) {
	l := newLab(t)
	out := make(chan Result, 16)
	cfg := Config{
		Uplink: "isp1", Interface: "eth1", Source: source, Targets: ICMP(target1),
		Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, Window: 10, Gen: 7,
	}
	p := startIn(t, l.r, cfg, out)
	c := &collector{t: t, cfg: cfg, out: out}

	rtts := c.waitFor(true, 10, 50)
	var sum, lo, hi time.Duration
	for i, r := range rtts {
		if r.RTT <= 0 || r.RTT >= cfg.Timeout || r.Replies != 1 || r.Err != nil {
			t.Errorf("good round %+v: want 0 < RTT < Timeout, 1 reply, no error", r)
		}
		sum += r.RTT
		if i == 0 || r.RTT < lo {
			lo = r.RTT
		}
		hi = max(hi, r.RTT)
	}
	t.Logf("RTT over veth in namespaces: min %v avg %v max %v", lo, sum/time.Duration(len(rtts)), hi)

	// Drop the target's answers: rounds in flight may still succeed, the
	// ones started after the change must fail when their timeout expires.
	// The blackhole is for the way back: one for 198.18.0.1 itself would
	// never be consulted, since i's local table, looked up first, delivers
	// its own address.
	bound := c.change(func() { l.ip(l.i, "route", "add", "blackhole", "198.51.100.2/32") })
	silent := false
	for _, r := range c.waitFor(false, 8, bound) {
		if r.Replies != 0 || r.RTT != 0 || r.Err != nil {
			t.Errorf("bad round %+v: want no replies, no RTT, no send error", r)
		}
		if r.Silent {
			silent = true
			// One gap and the 50ms RTO floor plus margin (150ms, over
			// the 100ms timeout) after the last reply, at least four
			// echoes: regular ones and the confirmation burst.
			if r.Silence < 150*time.Millisecond || r.Unanswered < 4 {
				t.Errorf("silent round %+v: want silence of at least 150ms and 4 unanswered echoes", r)
			}
		}
	}
	if !silent {
		t.Error("no round was decided by the silence rule")
	}

	bound = c.change(func() { l.ip(l.i, "route", "del", "blackhole", "198.51.100.2/32") })
	c.waitFor(true, 5, bound)
	p.Stop()
	p.Stop() // twice is fine
}

func TestProberSendError(t *testing.T) {
	l := newLab(t)
	out := make(chan Result, 16)
	cfg := Config{
		Uplink: "isp1", Interface: "eth1", Source: source, Targets: ICMP(target1, target2),
		Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, Window: 10,
	}
	startIn(t, l.r, cfg, out)
	c := &collector{t: t, cfg: cfg, out: out}
	c.waitFor(true, 3, 50)

	bound := c.change(func() { l.ip(l.r, "link", "set", "eth1", "down") })
	for _, r := range c.waitFor(false, 3, bound) {
		if !errors.Is(r.Err, unix.ENETUNREACH) || !strings.Contains(r.Err.Error(), "eth1") {
			t.Errorf("round %d: Err = %v, want ENETUNREACH naming eth1", r.Round, r.Err)
		}
	}

	// Taking the link down flushed the uplink table's route.
	bound = c.change(func() {
		l.ip(l.r, "link", "set", "eth1", "up")
		l.ip(l.r, "route", "replace", "198.18.0.0/15", "via", "198.51.100.1", "dev", "eth1", "table", "100")
	})
	c.waitFor(true, 3, bound+50) // the neighbour entry must be resolved again
}

func TestProberStartErrorNamesInterface(t *testing.T) {
	l := newLab(t)
	cfg := Config{
		Uplink: "isp1", Interface: "nope0", Source: source, Targets: ICMP(target1),
		Interval: time.Second, Timeout: time.Second, Window: 10,
	}
	_, err := startInErr(t, l.r, cfg, make(chan Result))
	if err == nil || !strings.Contains(err.Error(), "nope0") {
		t.Errorf("Start on a missing interface: err = %v, want one naming nope0", err)
	}

	// The source address must be ours (no IP_FREEBIND).
	cfg.Interface, cfg.Source = "eth1", netip.MustParseAddr("192.0.2.9")
	_, err = startInErr(t, l.r, cfg, make(chan Result))
	if !errors.Is(err, unix.EADDRNOTAVAIL) || !strings.Contains(err.Error(), "eth1") {
		t.Errorf("Start with a foreign source: err = %v, want EADDRNOTAVAIL naming eth1", err)
	}
}

func TestProberDuplicateAndLateReplies(t *testing.T) {
	l := newLab(t)
	l.sysctl(l.i, "net.ipv4.icmp_echo_ignore_all=1")
	out := make(chan Result, 16)
	cfg := Config{
		Uplink: "isp1", Interface: "eth1", Source: source, Targets: ICMP(target1),
		// The window reaches back past the rounds whose late replies
		// are still on their way.
		Interval: 25 * time.Millisecond, Timeout: 200 * time.Millisecond, Window: 30,
	}
	// Even rounds get three copies of the reply at once; odd rounds get one
	// copy, twice the timeout late.
	l.respond(t, target1, func(e echo) []time.Duration {
		_, n, _ := parsePayload(e.Payload)
		if n%2 == 0 {
			return []time.Duration{0, 0, 0}
		}
		return []time.Duration{2 * cfg.Timeout}
	})
	startIn(t, l.r, cfg, out)
	c := &collector{t: t, cfg: cfg, out: out}
	var last Result
	for range 60 {
		r := c.next()
		if want := r.Round%2 == 0; r.Good != want {
			t.Errorf("round %d: Good = %v, want %v", r.Round, r.Good, want)
		}
		if r.Good && r.Replies != 1 {
			t.Errorf("round %d: Replies = %d from one target answering three times", r.Round, r.Replies)
		}
		last = r
	}
	// Late replies stay lost and are tallied as late; the extra copies
	// are duplicates.
	s := last.Targets[0]
	if s.Target.Addr != target1 || s.Probes != cfg.Window || s.Lost == 0 || s.Late == 0 || s.Late > s.Lost || s.Duplicates == 0 {
		t.Errorf("statistics %+v: want a full window with lost probes, some of them late, and duplicates", s)
	}
	if s.RTT <= 0 || s.RTT >= cfg.Timeout {
		t.Errorf("RTT %v: late replies must not count", s.RTT)
	}
}

// With reliability 2, a round passes only when both targets answer; the
// statistics show which target loses probes.
func TestProberReliability(t *testing.T) {
	l := newLab(t)
	l.sysctl(l.i, "net.ipv4.icmp_echo_ignore_all=1")
	out := make(chan Result, 16)
	cfg := Config{
		Uplink: "isp1", Interface: "eth1", Source: source, Targets: ICMP(target1, target2),
		Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, Window: 10, Reliability: 2,
	}
	l.respond(t, target1, func(echo) []time.Duration { return []time.Duration{0} })
	l.respond(t, target2, func(e echo) []time.Duration {
		if _, n, _ := parsePayload(e.Payload); n%2 == 0 {
			return []time.Duration{0}
		}
		return nil
	})
	startIn(t, l.r, cfg, out)
	c := &collector{t: t, cfg: cfg, out: out}
	var last Result
	for range 30 {
		r := c.next()
		wantReplies := 1
		if r.Round%2 == 0 {
			wantReplies = 2
		}
		if r.Good != (wantReplies == 2) || r.Replies != wantReplies {
			t.Errorf("round %d: Good %v with %d replies, want %d replies", r.Round, r.Good, r.Replies, wantReplies)
		}
		last = r
	}
	t1, t2 := last.Targets[0], last.Targets[1]
	if t1.Target.Addr != target1 || t1.Lost != 0 || t2.Target.Addr != target2 || t2.Lost == 0 {
		t.Errorf("targets %+v: want target 1 without loss, target 2 with", last.Targets)
	}
	if last.Stats.Loss != t2.Loss {
		t.Errorf("uplink loss %v, want the second best target's, %v", last.Stats.Loss, t2.Loss)
	}
}

func TestTwoProbersKeepTheirReplies(t *testing.T) {
	l := newLab(t)
	l.sysctl(l.i, "net.ipv4.icmp_echo_ignore_all=1")
	cfg := Config{
		Uplink: "isp1", Interface: "eth1", Source: source, Targets: ICMP(target1),
		Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, Window: 10,
	}
	outA, outB := make(chan Result, 16), make(chan Result, 16)
	a := startIn(t, l.r, cfg, outA)
	cfgB := cfg
	cfgB.Uplink = "isp2"
	b := startIn(t, l.r, cfgB, outB)
	if a.id == b.id {
		t.Fatalf("both probers use identifier %d", a.id)
	}
	// Answer only A's echoes, and only once A and B are both running, so
	// every reply B could see is A's.
	l.respond(t, target1, func(e echo) []time.Duration {
		if e.ID == a.id {
			return []time.Duration{0}
		}
		return nil
	})
	ca := &collector{t: t, cfg: cfg, out: outA}
	cb := &collector{t: t, cfg: cfgB, out: outB}
	ca.waitFor(true, 10, 50)
	for range 10 {
		if r := cb.next(); r.Good || r.Replies != 0 {
			t.Errorf("prober B counted a reply meant for A: %+v", r)
		}
	}
}

func TestStopWithBlockedReader(t *testing.T) {
	l := newLab(t)
	out := make(chan Result) // unbuffered, and read only once
	cfg := Config{
		Uplink: "isp1", Interface: "eth1", Source: source, Targets: ICMP(target1),
		Interval: 5 * time.Millisecond, Timeout: 50 * time.Millisecond, Window: 10,
	}
	p := startIn(t, l.r, cfg, out)
	(&collector{t: t, cfg: cfg, out: out}).next()
	stopped := make(chan struct{})
	go func() {
		p.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop blocked on a result nobody reads")
	}
	select {
	case r := <-out:
		t.Errorf("result %+v sent after Stop returned", r)
	default:
	}
}
