package netops

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

// An IPv6 route of a strict dump decodes to the route Plan would want,
// and the dump request asks for IPv6.
func TestParseKernelRoute6(t *testing.T) {
	// -6 default via fe80::1 dev #3 table 200 proto 201 (rtm_table 200)
	b, _ := hex.DecodeString("0a000000" + "c8c90001" + "00000000" + "08000f00c8000000" +
		"14000500fe800000000000000000000000000001" + "0800040003000000")
	kr, ok, err := parseKernelRoute(b)
	if err != nil || !ok {
		t.Fatalf("parse: ok %v, err %v", ok, err)
	}
	rt, ok := fromKernelRoute(kr)
	want := Route{Family: V6, Table: 200, Dst: dflt6, Gateway: netip.MustParseAddr("fe80::1"), Index: 3, Protocol: 201}
	if !ok || rt.String() != want.String() || rt.Key() != want.Key() {
		t.Fatalf("got %s (%s), want %s", rt, rt.Key(), want)
	}
	if got := rt.String(); got != "-6 default via fe80::1 dev #3 table 200 proto 201" {
		t.Errorf("rendered %q", got)
	}
	if req := routeDumpRequest(V6, 300, 201); req[0] != 10 || req[5] != 201 || len(req) != 12+8 {
		t.Errorf("dump request %x", req)
	}
	// A prefix length longer than an IPv6 address is an error.
	b[1] = 129
	if _, _, err := parseKernelRoute(b); err == nil {
		t.Error("prefix length 129 accepted")
	}
}
