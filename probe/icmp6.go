package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ICMPv6 message types used by the prober (RFC 4443).
const (
	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
	protoICMPv6      = 58
)

// checksum6 is the ICMPv6 checksum of msg sent from src to dst: the
// Internet checksum over the IPv6 pseudo-header (RFC 8200 section 8.1)
// and the message. Over a message that carries its own correct checksum
// it yields 0.
func checksum6(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var lenNext [8]byte
	binary.BigEndian.PutUint32(lenNext[:], uint32(len(msg)))
	lenNext[7] = protoICMPv6
	add(lenNext[:])
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// marshalEcho6 returns an ICMPv6 echo message of the given type from src
// to dst with a valid checksum. The prober's own echoes leave with a zero
// checksum that the kernel fills in (it always does on raw ICMPv6
// sockets); tests and responders use this.
func marshalEcho6(src, dst netip.Addr, typ uint8, id, seq uint16, payload []byte) []byte {
	b := marshalEcho(typ, id, seq, payload)
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[2:], checksum6(src, dst, b))
	return b
}

// parseEcho6 parses what a raw IPPROTO_ICMPV6 socket delivers on Linux: the
// ICMPv6 message alone, its addresses coming from recvmsg (the source) and
// IPV6_PKTINFO (the destination). It checks the checksum, though the
// kernel did already, and returns errNotEcho for other ICMPv6 types.
func parseEcho6(src, dst netip.Addr, msg []byte) (echo, error) {
	if !src.Is6() || src.Is4In6() || !dst.Is6() || dst.Is4In6() {
		return echo{}, fmt.Errorf("addresses %v -> %v are not IPv6", src, dst)
	}
	if len(msg) < icmpHeaderLen {
		return echo{}, fmt.Errorf("short ICMPv6 message: %d bytes", len(msg))
	}
	if checksum6(src, dst, msg) != 0 {
		return echo{}, errors.New("bad ICMPv6 checksum")
	}
	e := echo{Src: src.WithZone(""), Dst: dst.WithZone(""), Type: msg[0]}
	if (e.Type != icmp6EchoReply && e.Type != icmp6EchoRequest) || msg[1] != 0 {
		return echo{}, errNotEcho
	}
	e.ID = binary.BigEndian.Uint16(msg[4:])
	e.Seq = binary.BigEndian.Uint16(msg[6:])
	e.Payload = msg[icmpHeaderLen:]
	return e, nil
}
