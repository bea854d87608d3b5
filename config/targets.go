package config

import (
	"net/netip"
	"strconv"
	"strings"
)

// Method says how a probe target is probed.
type Method string

// The probe methods.
const (
	// MethodICMP sends ICMP echo requests; the target must answer them.
	MethodICMP Method = "icmp"
	// MethodTCP opens a TCP connection to a port of the target: its
	// SYN-ACK, or its reset (the port is closed), proves the path.
	MethodTCP Method = "tcp"
)

// Target is one probe target: an address, and a port for TCP. In the file
// it is written "198.18.0.1" (or "icmp://198.18.0.1") and
// "tcp://198.18.0.1:443".
type Target struct {
	Method Method
	Addr   netip.Addr
	Port   uint16 // TCP only
}

// String writes t as in the file; an ICMP target is its bare address.
func (t Target) String() string {
	if t.Method == MethodTCP {
		return "tcp://" + netip.AddrPortFrom(t.Addr, t.Port).String()
	}
	return t.Addr.String()
}

// target parses one entry of a targets list; it returns false after
// reporting a problem.
func (v *validator) target(path, s string) (Target, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		a := v.ipv4(path, s)
		return Target{Method: MethodICMP, Addr: a}, a.IsValid()
	}
	switch Method(scheme) {
	case MethodICMP:
		a := v.ipv4(path, rest)
		return Target{Method: MethodICMP, Addr: a}, a.IsValid()
	case MethodTCP:
		host, port, ok := strings.Cut(rest, ":")
		if !ok || strings.ContainsAny(port, "/?#") {
			v.errorf(path, "%q: write a TCP target as tcp://ADDRESS:PORT, such as tcp://192.0.2.1:443", s)
			return Target{}, false
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			v.errorf(path, "%q: port %q is not a number from 1 to 65535", s, port)
			return Target{}, false
		}
		a := v.ipv4(path, host)
		return Target{Method: MethodTCP, Addr: a, Port: uint16(n)}, a.IsValid()
	}
	v.errorf(path, "%q: unknown probe method %q (want icmp, the default, or tcp)", s, scheme)
	return Target{}, false
}
