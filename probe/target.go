package probe

import (
	"net/netip"
	"strconv"
)

// The probe methods.
const (
	MethodICMP = "icmp" // echo requests over the prober's raw socket
	MethodTCP  = "tcp"  // a TCP connection to Port: SYN-ACK or reset
)

// Target is one probe target.
type Target struct {
	Method string // MethodICMP or MethodTCP
	Addr   netip.Addr
	Port   uint16 // MethodTCP only
}

// String writes t as the configuration does: a bare address for ICMP,
// tcp://address:port for TCP.
func (t Target) String() string {
	if t.Method == MethodTCP {
		return "tcp://" + t.Addr.String() + ":" + strconv.Itoa(int(t.Port))
	}
	return t.Addr.String()
}

// ICMP returns the ICMP targets at addrs.
func ICMP(addrs ...netip.Addr) []Target {
	out := make([]Target, len(addrs))
	for i, a := range addrs {
		out[i] = Target{Method: MethodICMP, Addr: a}
	}
	return out
}
