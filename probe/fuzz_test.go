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
