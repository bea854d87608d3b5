package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ICMPv4 message types used by the prober (RFC 792).
const (
	icmpEchoReply   = 0
	icmpEchoRequest = 8
)

const (
	icmpHeaderLen = 8
	ipv4MinHeader = 20
	protoICMP     = 1
)

// errNotEcho marks a well-formed ICMP message that is not an echo request or
// reply (unreachable, time exceeded, ...). Raw ICMP sockets see every ICMP
// message for the host, so this is ordinary noise, not a fault.
var errNotEcho = errors.New("not an ICMP echo message")

// echo is a parsed ICMPv4 echo request or reply together with the addresses
// of the IPv4 header that carried it.
type echo struct {
	Src, Dst netip.Addr
	Type     uint8
	ID, Seq  uint16
	Payload  []byte // aliases the parsed buffer
}

// checksum is the Internet checksum (RFC 1071) of b. Computing it over a
// message that carries its own correct checksum yields 0.
func checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// marshalEcho returns an ICMPv4 echo message (no IP header; the kernel adds
// it) of the given type with a valid checksum.
func marshalEcho(typ uint8, id, seq uint16, payload []byte) []byte {
	b := make([]byte, icmpHeaderLen+len(payload))
	b[0] = typ
	b[1] = 0 // code
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[icmpHeaderLen:], payload)
	binary.BigEndian.PutUint16(b[2:], checksum(b))
	return b
}

// putEcho writes into b (icmpHeaderLen+payloadLen bytes) an ICMPv4 echo
// message of the given type carrying token and round as its payload, with
// a valid checksum: marshalEcho and marshalPayload without allocating.
func putEcho(b []byte, typ uint8, id, seq uint16, token, round uint64) {
	b[0], b[1] = typ, 0
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint64(b[icmpHeaderLen:], token)
	binary.BigEndian.PutUint64(b[icmpHeaderLen+8:], round)
	binary.BigEndian.PutUint16(b[2:], checksum(b))
}

// parseEcho parses what a raw IPPROTO_ICMP socket delivers on Linux: an IPv4
// header followed by the ICMP message. It returns errNotEcho for other ICMP
// types and a descriptive error for anything malformed.
func parseEcho(pkt []byte) (echo, error) {
	if len(pkt) < ipv4MinHeader {
		return echo{}, fmt.Errorf("short IPv4 packet: %d bytes", len(pkt))
	}
	if v := pkt[0] >> 4; v != 4 {
		return echo{}, fmt.Errorf("IP version %d, want 4", v)
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4MinHeader || ihl > len(pkt) {
		return echo{}, fmt.Errorf("bad IPv4 header length %d in %d-byte packet", ihl, len(pkt))
	}
	// Linux hands raw sockets the header as it was on the wire; trust the
	// total length only when it is consistent, to drop link-layer padding.
	if tot := int(binary.BigEndian.Uint16(pkt[2:])); tot >= ihl && tot <= len(pkt) {
		pkt = pkt[:tot]
	}
	if p := pkt[9]; p != protoICMP {
		return echo{}, fmt.Errorf("IP protocol %d, want ICMP", p)
	}
	if frag := binary.BigEndian.Uint16(pkt[6:]) & 0x3fff; frag != 0 {
		return echo{}, errors.New("IPv4 fragment")
	}
	e := echo{
		Src: netip.AddrFrom4([4]byte(pkt[12:16])),
		Dst: netip.AddrFrom4([4]byte(pkt[16:20])),
	}
	m := pkt[ihl:]
	if len(m) < icmpHeaderLen {
		return echo{}, fmt.Errorf("short ICMP message: %d bytes", len(m))
	}
	if checksum(m) != 0 {
		return echo{}, errors.New("bad ICMP checksum")
	}
	e.Type = m[0]
	if (e.Type != icmpEchoReply && e.Type != icmpEchoRequest) || m[1] != 0 {
		return echo{}, errNotEcho
	}
	e.ID = binary.BigEndian.Uint16(m[4:])
	e.Seq = binary.BigEndian.Uint16(m[6:])
	e.Payload = m[icmpHeaderLen:]
	return e, nil
}

// payloadLen is the size of the echo payload the prober sends: an 8-byte
// per-prober token and the 8-byte round number. The token tells our replies
// apart from those of other programs that happen to use the same 16-bit
// identifier; the full round number keeps a reply from matching a round
// whose 16-bit sequence number merely wrapped around.
const payloadLen = 16

func marshalPayload(token, round uint64) []byte {
	b := make([]byte, payloadLen)
	binary.BigEndian.PutUint64(b, token)
	binary.BigEndian.PutUint64(b[8:], round)
	return b
}

func parsePayload(b []byte) (token, round uint64, ok bool) {
	if len(b) < payloadLen {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), true
}
