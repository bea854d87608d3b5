package probe

import (
	"net/netip"
)

// The probe methods.
const (
	MethodICMP  = "icmp"  // echo requests over the prober's raw socket
	MethodTCP   = "tcp"   // a TCP connection to Port: SYN-ACK or reset
	MethodHTTP  = "http"  // a check: GET URL, expect a status (check.go)
	MethodHTTPS = "https" // the same over TLS
	MethodDNS   = "dns"   // a check: a query to a resolver, expect an answer
)

// Target is one probe target.
type Target struct {
	Method string
	Addr   netip.Addr // ICMP and TCP; DNS: the resolver. Of the source's family
	Port   uint16     // TCP and DNS
	URL    string     // HTTP and HTTPS; DNS: as configured, for display
	Name   string     // DNS: the name to ask for; "" for the root's servers
}

// check reports whether t is a check, run every CheckInterval and vetoing
// rounds while it fails, rather than a target probed in every round.
func (t Target) check() bool {
	return t.Method == MethodHTTP || t.Method == MethodHTTPS || t.Method == MethodDNS
}

// String writes t as the configuration does: a bare address for ICMP,
// tcp://address:port for TCP (tcp://[address]:port for IPv6).
func (t Target) String() string {
	if t.check() {
		return t.URL
	}
	if t.Method == MethodTCP {
		return "tcp://" + netip.AddrPortFrom(t.Addr, t.Port).String()
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
