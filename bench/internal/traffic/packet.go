package traffic

import (
	"encoding/binary"
	"errors"
)

// Kind tells the datagrams of the LAN flows, the control flow and the
// new-connection probes apart.
type Kind uint8

const (
	LAN     Kind = iota // one of the LAN flows
	Control             // the control flow, the noise floor
	NewConn             // one datagram from a fresh source port
)

const (
	magic   = 0x55504c4b // "UPLK"
	pktSize = 20
)

// header is the payload of every datagram.
type header struct {
	kind Kind
	flow uint16 // LAN flow index, 0 for the others
	seq  uint32
	sent int64 // UnixNano at sending
}

func (h header) marshal(b []byte) []byte {
	b = b[:pktSize]
	binary.BigEndian.PutUint32(b[0:], magic)
	b[4] = byte(h.kind)
	b[5] = 0
	binary.BigEndian.PutUint16(b[6:], h.flow)
	binary.BigEndian.PutUint32(b[8:], h.seq)
	binary.BigEndian.PutUint64(b[12:], uint64(h.sent))
	return b
}

var errNotOurs = errors.New("traffic: not a bench datagram")

func parse(b []byte) (header, error) {
	if len(b) < pktSize || binary.BigEndian.Uint32(b) != magic {
		return header{}, errNotOurs
	}
	return header{
		kind: Kind(b[4]),
		flow: binary.BigEndian.Uint16(b[6:]),
		seq:  binary.BigEndian.Uint32(b[8:]),
		sent: int64(binary.BigEndian.Uint64(b[12:])),
	}, nil
}
