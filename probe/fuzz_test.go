package probe

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzParseEcho feeds arbitrary bytes to the decoder of what the raw socket
// delivers. It must never panic, and whatever it accepts must be exactly an
// echo message with a valid checksum: marshalling the parsed fields again
// gives back the ICMP bytes it was parsed from.
func FuzzParseEcho(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		e, err := parseEcho(pkt)
		if err != nil {
			return
		}
		if e.Type != icmpEchoReply && e.Type != icmpEchoRequest {
			t.Fatalf("accepted ICMP type %d", e.Type)
		}
		if !e.Src.Is4() || !e.Dst.Is4() {
			t.Fatalf("accepted addresses %v -> %v", e.Src, e.Dst)
		}
		ihl := int(pkt[0]&0x0f) * 4
		msg := marshalEcho(e.Type, e.ID, e.Seq, e.Payload)
		if !bytes.Equal(msg, pkt[ihl:ihl+len(msg)]) {
			t.Fatalf("parsed %+v does not re-marshal to the message it came from", e)
		}
	})
}

// FuzzMatch checks that no packet counts as a reply to one of the prober's
// echoes unless it is one: an echo reply from a target to the prober's
// source address, with its identifier, token, and a sequence number that
// agrees with the round in the payload.
func FuzzMatch(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	p := &Prober{
		cfg:     Config{Source: source},
		ifindex: 3,
		id:      0x4242,
		token:   0xfeedface,
		index:   map[netip.Addr]int{target1: 0, target2: 1},
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r, ok := p.match(pkt, ms(1), 3)
		if !ok {
			return
		}
		e, err := parseEcho(pkt)
		if err != nil {
			t.Fatalf("matched a packet the decoder rejects: %v", err)
		}
		tok, n, okp := parsePayload(e.Payload)
		switch {
		case e.Type != icmpEchoReply:
			t.Fatalf("matched ICMP type %d", e.Type)
		case e.ID != p.id:
			t.Fatalf("matched identifier %#x", e.ID)
		case e.Dst != source:
			t.Fatalf("matched a reply to %v", e.Dst)
		case !okp || tok != p.token || n != r.id || uint16(n) != e.Seq:
			t.Fatalf("matched payload %x as round %d", e.Payload, r.id)
		case r.target < 0 || r.target > 1 || []netip.Addr{target1, target2}[r.target] != e.Src:
			t.Fatalf("matched %v as target %d", e.Src, r.target)
		}
	})
}

// fuzzSeeds are well-formed replies and near misses, so the fuzzer starts
// from packets that get deep into the decoder.
func fuzzSeeds() [][]byte {
	ours := marshalPayload(0xfeedface, 70000)
	seq := uint16(70000 % 65536)
	reply := func(src, dst string, typ uint8, id uint16, payload []byte, options int) []byte {
		return ipv4(src, dst, 1, options, marshalEcho(typ, id, seq, payload))
	}
	return [][]byte{
		reply("198.18.0.1", "198.51.100.2", icmpEchoReply, 0x4242, ours, 0),
		reply("198.18.0.2", "198.51.100.2", icmpEchoReply, 0x4242, ours, 8),
		reply("198.18.0.1", "198.51.100.3", icmpEchoReply, 0x4242, ours, 0),
		reply("198.18.0.1", "198.51.100.2", icmpEchoRequest, 0x4242, ours, 0),
		reply("198.18.0.1", "198.51.100.2", icmpEchoReply, 0x4243, ours[:8], 0),
		reply("198.18.0.1", "198.51.100.2", 3, 0, nil, 0),
		{0x45, 0},
		nil,
	}
}

// FuzzParseEcho6 is FuzzParseEcho for ICMPv6: arbitrary messages between
// arbitrary addresses. What it accepts is an echo message whose checksum
// is valid for exactly those addresses: re-marshalled, it gives back the
// bytes it was parsed from.
func FuzzParseEcho6(f *testing.F) {
	for _, seed := range fuzzSeeds6() {
		f.Add(seed.src[:], seed.dst[:], seed.msg)
	}
	f.Fuzz(func(t *testing.T, src, dst, msg []byte) {
		s, _ := netip.AddrFromSlice(src)
		d, _ := netip.AddrFromSlice(dst)
		e, err := parseEcho6(s, d, msg)
		if err != nil {
			return
		}
		if e.Type != icmp6EchoReply && e.Type != icmp6EchoRequest {
			t.Fatalf("accepted ICMPv6 type %d", e.Type)
		}
		if !e.Src.Is6() || e.Src.Is4In6() || e.Dst != d {
			t.Fatalf("accepted addresses %v -> %v", e.Src, e.Dst)
		}
		if !bytes.Equal(marshalEcho6(s, d, e.Type, e.ID, e.Seq, e.Payload), msg) {
			t.Fatalf("parsed %+v does not re-marshal to the message it came from", e)
		}
	})
}

// FuzzMatch6 is FuzzMatch for an IPv6 prober: whatever the message and
// its addresses, it counts only as a reply from a target to the source on
// the prober's interface, with its identifier, token and round.
func FuzzMatch6(f *testing.F) {
	for _, seed := range fuzzSeeds6() {
		f.Add(seed.src[:], seed.dst[:], seed.msg, uint8(3))
	}
	src := netip.MustParseAddr("2001:db8:1::2")
	targets := []netip.Addr{netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:db8:ff::2")}
	p := &Prober{
		cfg:     Config{Source: src},
		v6:      true,
		ifindex: 3,
		id:      0x4242,
		token:   0xfeedface,
		index:   map[netip.Addr]int{targets[0]: 0, targets[1]: 1},
	}
	f.Fuzz(func(t *testing.T, from, to, msg []byte, ifindex uint8) {
		s, _ := netip.AddrFromSlice(from)
		d, _ := netip.AddrFromSlice(to)
		r, ok := p.match6(s, d, msg, ms(1), int(ifindex))
		if !ok {
			return
		}
		e, err := parseEcho6(s, d, msg)
		if err != nil {
			t.Fatalf("matched a message the decoder rejects: %v", err)
		}
		tok, n, okp := parsePayload(e.Payload)
		switch {
		case ifindex != 3:
			t.Fatalf("matched a reply received on interface %d", ifindex)
		case e.Type != icmp6EchoReply:
			t.Fatalf("matched ICMPv6 type %d", e.Type)
		case e.ID != p.id:
			t.Fatalf("matched identifier %#x", e.ID)
		case d != src:
			t.Fatalf("matched a reply to %v", d)
		case !okp || tok != p.token || n != r.id || uint16(n) != e.Seq:
			t.Fatalf("matched payload %x as round %d", e.Payload, r.id)
		case r.target < 0 || r.target > 1 || targets[r.target] != s.WithZone(""):
			t.Fatalf("matched %v as target %d", s, r.target)
		}
	})
}

type seed6 struct {
	src, dst [16]byte
	msg      []byte
}

// fuzzSeeds6 are well-formed ICMPv6 replies and near misses.
func fuzzSeeds6() []seed6 {
	ours := marshalPayload(0xfeedface, 70000)
	seq := uint16(70000 % 65536)
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	mk := func(src, dst string, typ uint8, id uint16, payload []byte) seed6 {
		return seed6{a(src).As16(), a(dst).As16(), marshalEcho6(a(src), a(dst), typ, id, seq, payload)}
	}
	return []seed6{
		mk("2001:db8:ff::1", "2001:db8:1::2", icmp6EchoReply, 0x4242, ours),
		mk("2001:db8:ff::2", "2001:db8:1::2", icmp6EchoReply, 0x4242, ours),
		mk("2001:db8:ff::1", "2001:db8:1::3", icmp6EchoReply, 0x4242, ours),
		mk("fe80::1", "2001:db8:1::2", icmp6EchoReply, 0x4242, ours),
		mk("2001:db8:ff::1", "2001:db8:1::2", icmp6EchoRequest, 0x4242, ours),
		mk("2001:db8:ff::1", "2001:db8:1::2", icmp6EchoReply, 0x4243, ours[:8]),
		mk("2001:db8:ff::1", "2001:db8:1::2", 1, 0, nil),
		{msg: []byte{129, 0}},
	}
}
