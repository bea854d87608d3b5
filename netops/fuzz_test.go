package netops

import (
	"encoding/hex"
	"testing"
)

// Seeds: the messages the unit tests use, captured from the kernel or
// built like iproute2's.
func seeds(f *testing.F, hexes ...string) {
	for _, h := range hexes {
		b, err := hex.DecodeString(h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// Any nexthop message decodes or fails cleanly; an object of a kind
// uplinkd creates survives encoding and decoding unchanged.
func FuzzParseNexthop(f *testing.F) {
	seeds(f, reqNexthopAdd, reqNexthopOnlink, reqGroup, reqGroupWeight256, reqBlackhole,
		dumpStatic, dumpMpath, dumpBlackhole, dumpResilient, dumpGroup, dumpOnlink, dumpIPv6)
	// An IPv6 next hop uplinkd creates.
	if b, err := marshalNexthop(NexthopObject{ID: 2010001025, Family: V6, Gateway: llgw, Index: 3, Protocol: 201}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseNexthop(b)
		if err != nil {
			return
		}
		s := n.String()
		if n.Unknown {
			return
		}
		enc, err := marshalNexthop(n)
		if err != nil {
			return // a decoded object uplinkd would not create
		}
		again, err := parseNexthop(enc)
		if err != nil {
			t.Fatalf("%s encodes to %x, which does not decode: %v", s, enc, err)
		}
		if again.String() != s {
			t.Fatalf("%s encodes to %x, which decodes to %s", s, enc, again)
		}
	})
}

// Any route message decodes or fails cleanly; a route through a nexthop
// object survives encoding and decoding.
func FuzzParseNHIDRoute(f *testing.F) {
	seeds(f, dumpNHIDRoute, reqNHIDRoute, "02000000fac9000100000000"+"08000f00fa000000")
	if b, err := marshalNHIDRoute(Route{Family: V6, Table: 250, Dst: dflt6, NHID: 2010001024, Protocol: 201}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rt, ok, err := parseNHIDRoute(b)
		if err != nil || !ok {
			return
		}
		enc, err := marshalNHIDRoute(rt)
		if err != nil {
			return
		}
		again, ok, err := parseNHIDRoute(enc)
		if err != nil || !ok || again.String() != rt.String() || again.Key() != rt.Key() {
			t.Fatalf("%s encodes to %x, which decodes to %s (ok %v, err %v)", rt, enc, again, ok, err)
		}
	})
}

// Any route message from a strict dump decodes or fails cleanly, and what
// decodes can be compared and described as the reconciler does.
func FuzzParseKernelRoute(f *testing.F) {
	seeds(f, dumpNHIDRoute, reqNHIDRoute,
		// default via 198.51.100.1 dev #2 table 100 proto 201
		"02000000"+"64c90001"+"00000000"+"08000f0064000000"+"08000500c6336401"+"0800040002000000",
		// multipath: two next hops with gateways, weights 1 and 4
		"02000000"+"fac90001"+"00000000"+"08000f00fa000000"+
			"24000900"+"1000000002000000"+"08000500c6336401"+"1000020303000000"+"08000500cb007101",
		// -6 default via fe80::1 dev #3 table 200 proto 201
		"0a000000"+"c8c90001"+"00000000"+"08000f00c8000000"+"14000500fe800000000000000000000000000001"+"0800040003000000")
	f.Fuzz(func(t *testing.T, b []byte) {
		kr, ok, err := parseKernelRoute(b)
		if err != nil || !ok {
			return
		}
		if rt, ok := fromKernelRoute(kr); ok {
			_ = rt.String()
			_ = rt.Key()
		}
	})
}
