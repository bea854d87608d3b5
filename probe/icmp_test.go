package probe

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenReply is an IPv4 echo reply from 198.18.0.1 to 198.51.100.2, id
// 0xbeef, seq 7, payload 00..0f, with checksums computed independently.
const goldenReply = "4500002c1c46000040016e42c6120001c6336402" +
	"000008c9beef0007000102030405060708090a0b0c0d0e0f"

func TestChecksum(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint16
	}{
		// RFC 1071 section 3's example sums to 0xddf2.
		{"rfc1071", "0001f203f4f5f6f7", ^uint16(0xddf2)},
		{"odd length pads with zero", "0001f203f4f5f6", ^uint16(0xddf2 - 0xf7)},
		{"empty", "", 0xffff},
		{"carry folds twice", "ffffffff0001", 0xfffe},
		{"valid message sums to zero", "080030631234010275706c696e6b6421", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checksum(mustHex(t, tt.in)); got != tt.want {
				t.Errorf("checksum(%s) = %#04x, want %#04x", tt.in, got, tt.want)
			}
		})
	}
}

func TestMarshalEcho(t *testing.T) {
	got := marshalEcho(icmpEchoRequest, 0x1234, 0x0102, []byte("uplinkd!"))
	want := mustHex(t, "080030631234010275706c696e6b6421")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marshalEcho (-want +got):\n%s", diff)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	b := marshalPayload(0x0102030405060708, 1<<40+3)
	tok, n, ok := parsePayload(b)
	if !ok || tok != 0x0102030405060708 || n != 1<<40+3 {
		t.Errorf("parsePayload = %#x, %d, %v", tok, n, ok)
	}
	if _, _, ok := parsePayload(b[:payloadLen-1]); ok {
		t.Error("short payload parsed")
	}
}

// ipv4 wraps an ICMP message in an IPv4 header with the given number of
// option bytes (a multiple of 4).
func ipv4(src, dst string, proto byte, options int, msg []byte) []byte {
	ihl := 20 + options
	b := make([]byte, ihl+len(msg))
	b[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	for i := 20; i < ihl; i++ {
		b[i] = 1 // NOP options
	}
	binary.BigEndian.PutUint16(b[10:], checksum(b[:ihl]))
	copy(b[ihl:], msg)
	return b
}

func TestParseEcho(t *testing.T) {
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.51.100.2")
	payload := []byte("0123456789abcdef")
	reply := marshalEcho(icmpEchoReply, 0xbeef, 7, payload)
	golden := mustHex(t, goldenReply)

	badSum := append([]byte(nil), reply...)
	badSum[len(badSum)-1] ^= 0xff
	unreach := marshalEcho(3, 0, 0, nil) // echo layout, type 3: destination unreachable
	withCode := marshalEcho(icmpEchoReply, 1, 1, nil)
	withCode[1] = 1
	binary.BigEndian.PutUint16(withCode[2:], 0)
	binary.BigEndian.PutUint16(withCode[2:], checksum(withCode))
	frag := ipv4("198.18.0.1", "198.51.100.2", 1, 0, reply)
	frag[6] = 0x20 // more fragments
	v6 := ipv4("198.18.0.1", "198.51.100.2", 1, 0, reply)
	v6[0] = 0x65
	badIHL := ipv4("198.18.0.1", "198.51.100.2", 1, 0, reply)
	badIHL[0] = 0x44
	padded := append(ipv4("198.18.0.1", "198.51.100.2", 1, 0, reply), 0, 0, 0, 0)

	tests := []struct {
		name    string
		pkt     []byte
		want    echo
		wantErr bool
		notEcho bool
	}{
		{name: "golden reply", pkt: golden,
			want: echo{Src: src, Dst: dst, Type: icmpEchoReply, ID: 0xbeef, Seq: 7,
				Payload: mustHex(t, "000102030405060708090a0b0c0d0e0f")}},
		{name: "reply", pkt: ipv4("198.18.0.1", "198.51.100.2", 1, 0, reply),
			want: echo{Src: src, Dst: dst, Type: icmpEchoReply, ID: 0xbeef, Seq: 7, Payload: payload}},
		{name: "header with options", pkt: ipv4("198.18.0.1", "198.51.100.2", 1, 8, reply),
			want: echo{Src: src, Dst: dst, Type: icmpEchoReply, ID: 0xbeef, Seq: 7, Payload: payload}},
		{name: "link padding trimmed by total length", pkt: padded,
			want: echo{Src: src, Dst: dst, Type: icmpEchoReply, ID: 0xbeef, Seq: 7, Payload: payload}},
		{name: "request", pkt: ipv4("198.51.100.2", "198.18.0.1", 1, 0, marshalEcho(icmpEchoRequest, 1, 2, nil)),
			want: echo{Src: dst, Dst: src, Type: icmpEchoRequest, ID: 1, Seq: 2, Payload: []byte{}}},
		{name: "unreachable", pkt: ipv4("198.18.0.1", "198.51.100.2", 1, 0, unreach), wantErr: true, notEcho: true},
		{name: "nonzero code", pkt: ipv4("198.18.0.1", "198.51.100.2", 1, 0, withCode), wantErr: true, notEcho: true},
		{name: "bad checksum", pkt: ipv4("198.18.0.1", "198.51.100.2", 1, 0, badSum), wantErr: true},
		{name: "not ICMP", pkt: ipv4("198.18.0.1", "198.51.100.2", 17, 0, reply), wantErr: true},
		{name: "fragment", pkt: frag, wantErr: true},
		{name: "IPv6", pkt: v6, wantErr: true},
		{name: "IHL below minimum", pkt: badIHL, wantErr: true},
		{name: "short IP header", pkt: golden[:19], wantErr: true},
		{name: "short ICMP", pkt: golden[:27], wantErr: true},
		{name: "empty", pkt: nil, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEcho(tt.pkt)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseEcho error = %v, want error %v", err, tt.wantErr)
			}
			if errors.Is(err, errNotEcho) != tt.notEcho {
				t.Errorf("parseEcho error = %v, want errNotEcho %v", err, tt.notEcho)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("parseEcho (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseEcho6(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:db8:1::2")
	payload := []byte("0123456789abcdef")
	reply := marshalEcho6(src, dst, icmp6EchoReply, 0xbeef, 7, payload)
	if checksum6(src, dst, reply) != 0 || reply[2]|reply[3] == 0 {
		t.Fatalf("marshalEcho6 %x: want a checksum that makes the message sum to zero", reply)
	}
	withCode := marshalEcho6(src, dst, icmp6EchoReply, 1, 1, nil)
	withCode[1] = 1
	binary.BigEndian.PutUint16(withCode[2:], 0)
	binary.BigEndian.PutUint16(withCode[2:], checksum6(src, dst, withCode))
	tests := []struct {
		name     string
		src, dst netip.Addr
		msg      []byte
		want     echo
		wantErr  bool
		notEcho  bool
	}{
		{name: "reply", src: src, dst: dst, msg: reply,
			want: echo{Src: src, Dst: dst, Type: icmp6EchoReply, ID: 0xbeef, Seq: 7, Payload: payload}},
		{name: "zone dropped", src: src.WithZone("eth1"), dst: dst, msg: reply,
			want: echo{Src: src, Dst: dst, Type: icmp6EchoReply, ID: 0xbeef, Seq: 7, Payload: payload}},
		{name: "request", src: dst, dst: src, msg: marshalEcho6(dst, src, icmp6EchoRequest, 1, 2, nil),
			want: echo{Src: dst, Dst: src, Type: icmp6EchoRequest, ID: 1, Seq: 2, Payload: []byte{}}},
		{name: "checksum over other addresses", src: src, dst: netip.MustParseAddr("2001:db8:1::3"), msg: reply, wantErr: true},
		{name: "checksum without pseudo-header", src: src, dst: dst, msg: marshalEcho(icmp6EchoReply, 0xbeef, 7, payload), wantErr: true},
		{name: "neighbour advertisement", src: src, dst: dst, msg: marshalEcho6(src, dst, 136, 0, 0, nil), wantErr: true, notEcho: true},
		{name: "nonzero code", src: src, dst: dst, msg: withCode, wantErr: true, notEcho: true},
		{name: "IPv4 addresses", src: target1, dst: source, msg: reply, wantErr: true},
		{name: "no destination", src: src, msg: reply, wantErr: true},
		{name: "short", src: src, dst: dst, msg: reply[:7], wantErr: true},
		{name: "empty", src: src, dst: dst, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEcho6(tt.src, tt.dst, tt.msg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseEcho6 error = %v, want error %v", err, tt.wantErr)
			}
			if errors.Is(err, errNotEcho) != tt.notEcho {
				t.Errorf("parseEcho6 error = %v, want errNotEcho %v", err, tt.notEcho)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("parseEcho6 (-want +got):\n%s", diff)
			}
		})
	}
}

// RFC 8200's pseudo-header, checked against a checksum computed by hand:
// an echo request from 2001:db8::1 to 2001:db8::2, id 1, seq 1, no data.
func TestChecksum6Golden(t *testing.T) {
	msg := []byte{128, 0, 0, 0, 0, 1, 0, 1}
	// Sum of 16-bit words: 2001+0db8+0001 (src) + 2001+0db8+0002 (dst)
	// + 0008 (length) + 003a (next header) + 8000+0001+0001 (message)
	// = 0xdbb9; its complement is 0x2446.
	if got := checksum6(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), msg); got != 0x2446 {
		t.Errorf("checksum6 = %#04x, want 0x2446", got)
	}
}
