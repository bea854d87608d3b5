package config

import (
	"net/netip"
	"time"
)

// GatewayMode says where an uplink's next hop comes from.
type GatewayMode int

// Gateway modes.
const (
	// GatewayStatic: the address in the file.
	GatewayStatic GatewayMode = iota
	// GatewayAuto: learned from the default routes through the uplink's
	// interface that others (a DHCP client) install, in any table but
	// uplinkd's own.
	GatewayAuto
	// GatewayNone: a point-to-point link; routes are `default dev IF`.
	GatewayNone
)

func (m GatewayMode) String() string {
	switch m {
	case GatewayAuto:
		return "auto"
	case GatewayNone:
		return "none"
	}
	return "static"
}

// DefaultGatewayHold is how long a learned gateway outlives its route.
const DefaultGatewayHold = 3 * time.Second

// dynamic validates the keys of an uplink whose address or gateway may
// come from the kernel: gateway ("auto", "none" or an address),
// gateway_hold and address. Without gateway the uplink has IPv6 only
// (gateway6 is then required, and IPv4's keys are refused).
func (v *validator) dynamic(path string, r *rawUplink, out *Uplink) {
	if !r.Gateway.set {
		if !r.Gateway6.set {
			v.errorf(path+".gateway", `missing, and so is gateway6: an uplink needs gateway (IPv4), gateway6 (IPv6) or both; `+
				`write each as "auto" or the ISP router's address`)
			return
		}
		out.IPv6Only = true
		for _, k := range []struct {
			key string
			set bool
		}{{"address", r.Address.set}, {"probe_targets", r.ProbeTargets.set}, {"probe_gateway", r.ProbeGateway.set}} {
			if k.set {
				v.errorf(path+"."+k.key, "only an uplink with gateway has IPv4; this one has gateway6 only (add gateway for IPv4, or remove %s)", k.key)
			}
		}
	} else if s, ok := v.required(path+".gateway", r.Gateway); ok {
		switch s {
		case "auto":
			out.GatewayMode = GatewayAuto
		case "none":
			out.GatewayMode = GatewayNone
		default:
			out.Gateway = v.ipv4(path+".gateway", s, "an IPv6 gateway goes in gateway6")
		}
	}
	if d, ok := v.durationOrZero(path+".gateway_hold", r.GatewayHold, DefaultGatewayHold); ok {
		switch {
		case out.GatewayMode == GatewayAuto || r.Gateway6.val == "auto":
			out.GatewayHold = d
		case r.GatewayHold.set:
			v.errorf(path+".gateway_hold", `only an uplink with gateway = "auto" or gateway6 = "auto" learns its gateway and can hold it`)
		}
	}
	if r.Address.set && !out.IPv6Only {
		s, ok := v.str(path+".address", r.Address, "")
		if !ok {
			return
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				v.errorf(path+".address", `%q is neither an IPv4 address nor a prefix; write "192.0.2.10" or "192.0.2.0/24"`, s)
				return
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.Addr().Is4() {
			v.errorf(path+".address", "%q is not IPv4; the IPv6 source is source6", s)
			return
		}
		if p != p.Masked() {
			v.errorf(path+".address", "%q has host bits set; write the prefix %s or the address %s", s, p.Masked(), p.Addr())
			return
		}
		out.Address = p
	}
}
