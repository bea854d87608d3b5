package config

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
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
	// MethodHTTP and MethodHTTPS GET a URL and expect a status: checks
	// that the uplink forwards real traffic (a captive portal answers
	// pings but redirects the web). They run every check_interval, not in
	// every round, and fail every round while they fail.
	MethodHTTP  Method = "http"
	MethodHTTPS Method = "https"
	// MethodDNS asks a resolver for a name (the root's name servers by
	// default) and expects an answer; a check like HTTP.
	MethodDNS Method = "dns"
)

// Check reports whether t is a check (http, https) rather than a target
// probed in every round (icmp, tcp).
func (t Target) Check() bool {
	return t.Method == MethodHTTP || t.Method == MethodHTTPS || t.Method == MethodDNS
}

// Target is one probe target: an address, and a port for TCP. In the file
// it is written "198.18.0.1" (or "icmp://198.18.0.1") and
// "tcp://198.18.0.1:443"; in probe.targets6 "2001:db8::1" and
// "tcp://[2001:db8::1]:443".
type Target struct {
	Method Method
	Addr   netip.Addr // ICMP and TCP
	Port   uint16     // TCP and DNS
	URL    string     // HTTP and HTTPS; DNS: as written
	Name   string     // DNS: the name to ask for; "" for the root
}

// String writes t as in the file; an ICMP target is its bare address.
func (t Target) String() string {
	if t.Check() {
		return t.URL
	}
	if t.Method == MethodTCP {
		return "tcp://" + netip.AddrPortFrom(t.Addr, t.Port).String()
	}
	return t.Addr.String()
}

// target parses one entry of a targets list of family fam (4 or 6); it
// returns false after reporting a problem.
func (v *validator) target(path, s string, fam int) (Target, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		a := v.targetAddr(path, s, fam)
		return Target{Method: MethodICMP, Addr: a}, a.IsValid()
	}
	switch Method(scheme) {
	case MethodICMP:
		a := v.targetAddr(path, rest, fam)
		return Target{Method: MethodICMP, Addr: a}, a.IsValid()
	case MethodTCP:
		host, port, ok := splitHostPort(rest)
		if !ok || strings.ContainsAny(port, "/?#") || fam == 6 && !strings.HasPrefix(rest, "[") {
			example := "tcp://192.0.2.1:443"
			if fam == 6 {
				example = "tcp://[2001:db8::1]:443"
			}
			v.errorf(path, "%q: write a TCP target as tcp://ADDRESS:PORT, such as %s", s, example)
			return Target{}, false
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			v.errorf(path, "%q: port %q is not a number from 1 to 65535", s, port)
			return Target{}, false
		}
		a := v.targetAddr(path, host, fam)
		return Target{Method: MethodTCP, Addr: a, Port: uint16(n)}, a.IsValid()
	case MethodHTTP, MethodHTTPS:
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
			v.errorf(path, "%q: write an HTTP check as http://HOST/PATH or https://HOST/PATH", s)
			return Target{}, false
		}
		return Target{Method: Method(scheme), URL: s}, true
	case MethodDNS:
		return v.dnsTarget(path, s, rest, fam)
	}
	v.errorf(path, "%q: unknown probe method %q (want icmp, the default, tcp, http, https or dns)", s, scheme)
	return Target{}, false
}

// splitHostPort splits "ADDRESS:PORT" or "[ADDRESS]:PORT"; ok is false
// when there is no port.
func splitHostPort(s string) (host, port string, ok bool) {
	if rest, found := strings.CutPrefix(s, "["); found {
		host, after, found := strings.Cut(rest, "]")
		if !found {
			return "", "", false
		}
		port, ok = strings.CutPrefix(after, ":")
		return host, port, ok
	}
	return strings.Cut(s, ":")
}

// targetAddr parses the address of a target of family fam.
func (v *validator) targetAddr(path, s string, fam int) netip.Addr {
	if fam == 6 {
		return v.ipv6Target(path, s)
	}
	return v.ipv4(path, s, "IPv6 targets go in probe.targets6")
}

// dnsTarget parses "dns://ADDRESS[:PORT][/NAME]" (an IPv6 ADDRESS in
// brackets), rest being what follows the scheme.
func (v *validator) dnsTarget(path, s, rest string, fam int) (Target, bool) {
	host, name, _ := strings.Cut(rest, "/")
	port := uint64(53)
	var p string
	var hasPort bool
	if inner, ok := strings.CutPrefix(host, "["); ok {
		a, after, closed := strings.Cut(inner, "]")
		if !closed || after != "" && !strings.HasPrefix(after, ":") {
			v.errorf(path, "%q: write a DNS check as dns://[ADDRESS]:PORT/NAME, such as dns://[2001:db8::53]/example.net", s)
			return Target{}, false
		}
		host = a
		p, hasPort = strings.CutPrefix(after, ":")
	} else {
		host, p, hasPort = strings.Cut(host, ":")
	}
	if hasPort {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			v.errorf(path, "%q: port %q is not a number from 1 to 65535", s, p)
			return Target{}, false
		}
		port = n
	}
	if len(name) > 253 || strings.ContainsAny(name, "/?# ") || strings.Contains(name, "..") {
		v.errorf(path, "%q: write a DNS check as dns://ADDRESS[:PORT][/NAME], such as dns://192.0.2.53/example.net", s)
		return Target{}, false
	}
	a := v.targetAddr(path, host, fam)
	return Target{Method: MethodDNS, Addr: a, Port: uint16(port), URL: s, Name: name}, a.IsValid()
}

// checks validates the keys of HTTP, HTTPS and DNS checks.
func (v *validator) checks(p *rawProbe, out *Probe) {
	if d, ok := v.duration("probe.check_interval", p.CheckInterval, defaultCheckInterval); ok {
		if d < time.Second {
			v.errorf("probe.check_interval", "%q is shorter than 1s", p.CheckInterval.val)
		}
		out.CheckInterval = d
	}
	if d, ok := v.duration("probe.check_timeout", p.CheckTimeout, defaultCheckTimeout); ok {
		if out.CheckInterval > 0 && d > out.CheckInterval {
			v.errorf(setOr("probe.check_timeout", p.CheckTimeout.set, "probe.check_interval"),
				"check_timeout %v%s is longer than check_interval (%v)", d, defaultNote(p.CheckTimeout.set), out.CheckInterval)
		}
		out.CheckTimeout = d
	}
	if n, ok := v.integer("probe.http_expect", p.HTTPExpect, defaultHTTPExpect); ok {
		if n < 100 || n > 599 {
			v.errorf("probe.http_expect", "%d is not an HTTP status (100 to 599)", n)
		}
		out.HTTPExpect = int(n)
	}
}

// roundTargets counts the targets probed in every round.
func roundTargets(targets []Target) int {
	rounds, _ := Probed(targets)
	return len(rounds)
}

// Probed splits targets into those probed in every round (icmp, tcp) and
// checks (http, https).
func Probed(targets []Target) (rounds, checks []Target) {
	for _, t := range targets {
		if t.Check() {
			checks = append(checks, t)
		} else {
			rounds = append(rounds, t)
		}
	}
	return rounds, checks
}
