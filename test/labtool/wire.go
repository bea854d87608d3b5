package main

import (
	"encoding/binary"
	"errors"
)

// The datagram udpsend sends and udpsink expects, big-endian:
//
//	magic  [4]byte "ULD1"
//	seq    uint64  0, 1, 2, ... per sender run
//	sentNS int64   send time, Unix nanoseconds
//
// followed by padding up to the configured size.
const (
	magic     = "ULD1"
	headerLen = len(magic) + 8 + 8
)

var errNotOurs = errors.New("not a labtool datagram")

type datagram struct {
	seq    uint64
	sentNS int64
}

// encode writes d at the start of b, which must hold headerLen bytes.
func (d datagram) encode(b []byte) {
	copy(b, magic)
	binary.BigEndian.PutUint64(b[4:], d.seq)
	binary.BigEndian.PutUint64(b[12:], uint64(d.sentNS))
}

func decode(b []byte) (datagram, error) {
	if len(b) < headerLen || string(b[:4]) != magic {
		return datagram{}, errNotOurs
	}
	return datagram{
		seq:    binary.BigEndian.Uint64(b[4:]),
		sentNS: int64(binary.BigEndian.Uint64(b[12:])),
	}, nil
}
