package events

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Filter says which events matter to the consumer, so that foreign
// activity (a BGP feed rewriting main, containers starting, a busy LAN)
// neither fills the socket buffer nor wakes it.
type Filter struct {
	// Route events pass when their table is one of Tables or their
	// protocol is Protocol. Default routes (dst_len 0) of any table
	// always pass: a DHCP client's gateway arrives as one.
	Protocol int
	Tables   []int
	// Link, address and neighbour events pass for the links named in
	// Interfaces (their indexes are learnt from link events) and the
	// links with the indexes in Indexes (as the last dump found them).
	Interfaces []string
	Indexes    []int
}

// filterState is a Filter with the indexes learnt since it was set.
type filterState struct {
	mu      sync.Mutex
	f       *Filter // nil: every event passes
	names   map[string]bool
	tables  map[int]bool
	indexes map[int]bool
}

func (s *filterState) set(f Filter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f = &f
	s.names, s.tables, s.indexes = make(map[string]bool), make(map[int]bool), make(map[int]bool)
	for _, n := range f.Interfaces {
		s.names[n] = true
	}
	for _, t := range f.Tables {
		s.tables[t] = true
	}
	for _, i := range f.Indexes {
		s.indexes[i] = true
	}
}

// pass says whether ev matters. A link event under one of the names
// teaches the filter its index, so that a rename away, a deletion and the
// link's addresses and neighbours still pass.
func (s *filterState) pass(ev Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return true
	}
	switch e := ev.(type) {
	case RouteEvent:
		return e.Default || e.Protocol == s.f.Protocol || s.tables[e.Table]
	case LinkEvent:
		if s.names[e.Link.Name] {
			s.indexes[e.Link.Index] = true
			return true
		}
		return s.indexes[e.Link.Index]
	case AddrEvent:
		return s.indexes[e.Addr.Index]
	case NeighEvent:
		return s.indexes[e.Index]
	}
	return true
}

// Offsets into a route notification as the socket filter sees it: struct
// nlmsghdr (16 bytes), then struct rtmsg (12 bytes), then attributes.
const (
	offType     = 4                        // nlmsg_type, u16
	offDstLen   = unix.SizeofNlMsghdr + 1  // rtm_dst_len
	offProtocol = unix.SizeofNlMsghdr + 5  // rtm_protocol
	offAttrs    = unix.SizeofNlMsghdr + 12 // first attribute
	acceptAll   = 0xffffffff               // keep the whole message
	maxTables   = (4096 - 32) / 2          // BPF_MAXINSNS; two instructions per table
)

// routeFilter assembles the classic BPF program attached to the event
// socket: route notifications of foreign tables and protocols, other than
// default routes, are dropped by the kernel before they are queued, so a
// full-table churn elsewhere costs neither buffer space nor reads. Every
// other message passes. Netlink delivers one notification per buffer, and
// SKF_AD_NLATTR finds RTA_TABLE (tables above 255 exist only there).
func routeFilter(protocol int, tables []int) ([]bpf.RawInstruction, error) {
	if len(tables) > maxTables {
		return nil, fmt.Errorf("socket filter: %d tables, at most %d", len(tables), maxTables)
	}
	tables = slices.Sorted(slices.Values(tables))
	tables = slices.Compact(tables)
	accept := bpf.RetConstant{Val: acceptAll}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offType, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(be16(unix.RTM_NEWROUTE)), SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(be16(unix.RTM_DELROUTE)), SkipTrue: 1},
		accept,
		// A route: a default route passes, so does one of protocol.
		bpf.LoadAbsolute{Off: offDstLen, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 1},
		accept,
		bpf.LoadAbsolute{Off: offProtocol, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(protocol), SkipFalse: 1},
		accept,
		// A = offset of the RTA_TABLE attribute, 0 if there is none
		// (then the consumer decides).
		bpf.LoadConstant{Dst: bpf.RegA, Val: offAttrs},
		bpf.LoadConstant{Dst: bpf.RegX, Val: unix.RTA_TABLE},
		bpf.LoadExtension{Num: bpf.ExtNetlinkAttr},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 1},
		accept,
		bpf.TAX{},
		bpf.LoadIndirect{Off: 4, Size: 4}, // the attribute's u32 value
	}
	for _, t := range tables {
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: be32(uint32(t)), SkipFalse: 1}, accept)
	}
	prog = append(prog, bpf.RetConstant{Val: 0})
	return bpf.Assemble(prog)
}

// be16 and be32 turn a value in the host's byte order into the number a
// BPF load, which reads network byte order, finds in its place.
func be16(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

func be32(v uint32) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return binary.BigEndian.Uint32(b[:])
}
