package lab

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// A flow record, sent by the flow client and echoed by the flow sink, the
// same 64 bytes over UDP (one per datagram) and TCP (back to back),
// big-endian:
//
//	magic   [4]byte "UPF1"
//	flow    uint32  the client's flow number
//	seq     uint64  0, 1, 2, ... per flow (across TCP reconnects)
//	sentNS  int64   send time, Unix nanoseconds
//	srcLen  uint8   0 from the client; in the echo, the length of
//	src     [39]byte the source address the sink saw (with NAT: which
//	                uplink the flow took), as text
const (
	flowMagic     = "UPF1"
	flowRecordLen = 64
	flowSrcMax    = flowRecordLen - 25
)

var errNotFlowRecord = errors.New("not a flow record")

type flowRecord struct {
	flow   uint32
	seq    uint64
	sentNS int64
	src    netip.Addr // zero in the client's records
}

func (r flowRecord) encode(b []byte) {
	clear(b[:flowRecordLen])
	copy(b, flowMagic)
	binary.BigEndian.PutUint32(b[4:], r.flow)
	binary.BigEndian.PutUint64(b[8:], r.seq)
	binary.BigEndian.PutUint64(b[16:], uint64(r.sentNS))
	if r.src.IsValid() {
		s := r.src.Unmap().String()
		b[24] = byte(copy(b[25:flowRecordLen], s))
	}
}

func decodeFlowRecord(b []byte) (flowRecord, error) {
	if len(b) < flowRecordLen || string(b[:4]) != flowMagic || int(b[24]) > flowSrcMax {
		return flowRecord{}, errNotFlowRecord
	}
	r := flowRecord{
		flow:   binary.BigEndian.Uint32(b[4:]),
		seq:    binary.BigEndian.Uint64(b[8:]),
		sentNS: int64(binary.BigEndian.Uint64(b[16:])),
	}
	if n := int(b[24]); n > 0 {
		a, err := netip.ParseAddr(string(b[25 : 25+n]))
		if err != nil {
			return flowRecord{}, errNotFlowRecord
		}
		r.src = a
	}
	return r, nil
}
