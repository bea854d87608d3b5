package config

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIPv6Keys(t *testing.T) {
	doc := file(
		`[probe]`,
		`targets6 = ["2001:db8:ffff::1", "icmp://2001:db8:ffff::2", "tcp://[2001:db8:ffff::3]:443", "http://[2001:db8:ffff::4]/generate_204", "dns://[2001:db8:ffff::53]:5353/example.net", "dns://[2001:db8:ffff::54]"]`,
		isp1,
		`gateway6 = "fe80::1%eth1"`,
		`lan_prefix6 = "2001:db8:100::/56"`,
		isp2,
		`gateway6 = "auto"`,
		`source6 = "2001:db8:2::10"`,
		`[[uplink]]`,
		`name = "isp3"`,
		`interface = "eth3"`,
		`gateway = "192.0.2.1"`,
		`table = 300`,
		`gateway6 = "2001:db8:3::1"`,
		`source6 = "auto"`,
		`[[uplink]]`,
		`name = "isp4"`,
		`interface = "eth4"`,
		`gateway = "192.0.2.129"`,
		`table = 400`,
	)
	c := mustParse(t, doc)
	wantTargets := []Target{
		icmp("2001:db8:ffff::1"), icmp("2001:db8:ffff::2"),
		{Method: MethodTCP, Addr: addr("2001:db8:ffff::3"), Port: 443},
		{Method: MethodHTTP, URL: "http://[2001:db8:ffff::4]/generate_204"},
		{Method: MethodDNS, Addr: addr("2001:db8:ffff::53"), Port: 5353, URL: "dns://[2001:db8:ffff::53]:5353/example.net", Name: "example.net"},
		{Method: MethodDNS, Addr: addr("2001:db8:ffff::54"), Port: 53, URL: "dns://[2001:db8:ffff::54]"},
	}
	if diff := cmp.Diff(wantTargets, c.Probe.Targets6, addrComparer); diff != "" {
		t.Errorf("targets6 (-want +got):\n%s", diff)
	}
	if got := c.Probe.Targets6[2].String(); got != "tcp://[2001:db8:ffff::3]:443" {
		t.Errorf("TCP target written back as %s", got)
	}
	type v6 struct {
		IPv6     bool
		Gateway6 netip.Addr
		Mode     GatewayMode
		Source6  netip.Addr
		Prefix6  netip.Prefix
		Targets  int
	}
	want := []v6{
		{true, addr("fe80::1"), GatewayStatic, netip.Addr{}, netip.MustParsePrefix("2001:db8:100::/56"), 6},
		{true, netip.Addr{}, GatewayAuto, addr("2001:db8:2::10"), netip.Prefix{}, 6},
		{true, addr("2001:db8:3::1"), GatewayStatic, netip.Addr{}, netip.Prefix{}, 6},
		{false, netip.Addr{}, GatewayStatic, netip.Addr{}, netip.Prefix{}, 0},
	}
	for i, u := range c.Uplinks {
		got := v6{u.IPv6, u.Gateway6, u.Gateway6Mode, u.Source6, u.LANPrefix6, len(c.Targets6For(u))}
		if diff := cmp.Diff(want[i], got, addrComparer, prefixComparer); diff != "" {
			t.Errorf("uplink %s (-want +got):\n%s", u.Name, diff)
		}
	}
	// gateway6 = "auto" makes gateway_hold meaningful.
	if c.Uplinks[1].GatewayHold != DefaultGatewayHold {
		t.Errorf("gateway_hold of a gateway6 = \"auto\" uplink: %v", c.Uplinks[1].GatewayHold)
	}
	// Defaults, and [] for no IPv6 probing.
	c = mustParse(t, file(isp1, `gateway6 = "fe80::1"`))
	if diff := cmp.Diff(DefaultTargets6, c.Targets6For(c.Uplinks[0]), addrComparer); diff != "" {
		t.Errorf("default targets6 (-want +got):\n%s", diff)
	}
	c = mustParse(t, file(`[probe]`, `targets6 = []`, isp1, `gateway6 = "fe80::1"`))
	if got := c.Targets6For(c.Uplinks[0]); got == nil || len(got) != 0 {
		t.Errorf("targets6 = []: %#v, want empty and not nil", got)
	}
}

// An uplink with gateway6 and no gateway has IPv6 only: no IPv4 targets,
// names or reliability check apply to it.
func TestIPv6Only(t *testing.T) {
	c := mustParse(t, file(`[probe]`, `targets = ["198.18.0.1", "198.18.0.2", "probe.example.net"]`, `reliability = 2`,
		isp1, `[[uplink]]`, `name = "isp2"`, `interface = "eth2"`, `table = 200`, `gateway6 = "fe80::1"`, `source6 = "auto"`))
	u := c.Uplinks[1]
	if !u.IPv6Only || u.HasIPv4() || !u.IPv6 || u.Gateway6 != addr("fe80::1") {
		t.Fatalf("IPv6-only uplink: %+v", u)
	}
	if c.Uplinks[0].IPv6Only || !c.Uplinks[0].HasIPv4() {
		t.Fatalf("IPv4 uplink: %+v", c.Uplinks[0])
	}
	if ts, names := c.TargetsFor(u), c.NamesFor(u); ts != nil || names != nil {
		t.Errorf("IPv4 targets of an IPv6-only uplink: %v, names %v", ts, names)
	}
	if n := len(c.Targets6For(u)); n != len(DefaultTargets6) {
		t.Errorf("IPv6 targets: %d", n)
	}
	if !c.HasIPv6() {
		t.Error("HasIPv6 false with an IPv6-only uplink")
	}
	if c := mustParse(t, file(isp1)); c.HasIPv6() {
		t.Error("HasIPv6 true without gateway6")
	}
	// gateway6 = "auto" alone: gateway_hold applies to it.
	c = mustParse(t, file(uplink("gateway", ""), `gateway6 = "auto"`, `gateway_hold = "2s"`))
	if u := c.Uplinks[0]; !u.IPv6Only || u.GatewayHold != 2*time.Second {
		t.Errorf("IPv6-only auto uplink: %+v", u)
	}
}

func TestIPv6Problems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []problem
	}{
		{"gateway6 IPv4", file(isp1, `gateway6 = "198.51.100.1"`), []problem{{6, "uplink[0].gateway6", "is an IPv4 address, not IPv6; the IPv4 gateway is gateway"}}},
		{"gateway6 mapped IPv4", file(isp1, `gateway6 = "::ffff:198.51.100.1"`), []problem{{6, "uplink[0].gateway6", "is an IPv4 address"}}},
		{"gateway6 garbage", file(isp1, `gateway6 = "router"`), []problem{{6, "uplink[0].gateway6", "not an IPv6 address"}}},
		{"gateway6 wrong zone", file(isp1, `gateway6 = "fe80::1%eth2"`), []problem{{6, "uplink[0].gateway6", `the zone "eth2" is not the uplink's interface eth1`}}},
		{"gateway6 zone on a global address", file(isp1, `gateway6 = "2001:db8::1%eth1"`), []problem{{6, "uplink[0].gateway6", "only a link-local address has a zone"}}},
		{"gateway6 multicast", file(isp1, `gateway6 = "ff02::1"`), []problem{{6, "uplink[0].gateway6", "multicast"}}},
		{"gateway6 loopback", file(isp1, `gateway6 = "::1"`), []problem{{6, "uplink[0].gateway6", "loopback"}}},
		{"gateway6 unspecified", file(isp1, `gateway6 = "::"`), []problem{{6, "uplink[0].gateway6", "unspecified"}}},
		{"gateway6 none", file(isp1, `gateway6 = "none"`), []problem{{6, "uplink[0].gateway6", "leave gateway6 out"}}},
		{"gateway6 integer", file(isp1, `gateway6 = 6`), []problem{{6, "uplink[0].gateway6", "expected a string"}}},
		{"gateway IPv6", file(uplink("gateway", `"2001:db8::1"`)), []problem{{4, "uplink[0].gateway", "an IPv6 gateway goes in gateway6"}}},
		{"source6 link-local", file(isp1, `gateway6 = "auto"`, `source6 = "fe80::2"`), []problem{{7, "uplink[0].source6", "link-local"}}},
		{"source6 IPv4", file(isp1, `gateway6 = "auto"`, `source6 = "198.51.100.2"`), []problem{{7, "uplink[0].source6", "IPv4"}}},
		{"source6 multicast", file(isp1, `gateway6 = "auto"`, `source6 = "ff05::2"`), []problem{{7, "uplink[0].source6", "multicast"}}},
		{"source6 without gateway6", file(isp1, `source6 = "2001:db8::2"`), []problem{{6, "uplink[0].source6", "only an uplink with gateway6 has IPv6"}}},
		{"lan_prefix6 without gateway6", file(isp1, `lan_prefix6 = "2001:db8:1::/48"`), []problem{{6, "uplink[0].lan_prefix6", "only an uplink with gateway6"}}},
		{"lan_prefix6 IPv4", file(isp1, `gateway6 = "auto"`, `lan_prefix6 = "192.0.2.0/24"`), []problem{{7, "uplink[0].lan_prefix6", "is IPv4"}}},
		{"lan_prefix6 host bits", file(isp1, `gateway6 = "auto"`, `lan_prefix6 = "2001:db8:1::1/48"`), []problem{{7, "uplink[0].lan_prefix6", "host bits set; write the prefix 2001:db8:1::/48"}}},
		{"lan_prefix6 link-local", file(isp1, `gateway6 = "auto"`, `lan_prefix6 = "fe80::/64"`), []problem{{7, "uplink[0].lan_prefix6", "not a prefix of global unicast"}}},
		{"lan_prefix6 everything", file(isp1, `gateway6 = "auto"`, `lan_prefix6 = "::/0"`), []problem{{7, "uplink[0].lan_prefix6", "every IPv6 address"}}},
		{"lan_prefix6 overlap", file(isp1, `gateway6 = "auto"`, `lan_prefix6 = "2001:db8:100::/56"`, isp2, `gateway6 = "auto"`, `lan_prefix6 = "2001:db8:100:10::/64"`),
			[]problem{{14, "uplink[1].lan_prefix6", "2001:db8:100:10::/64 overlaps 2001:db8:100::/56 of uplink isp1 (uplink[0], line 7)"}}},
		{"targets6 IPv4", file(`[probe]`, `targets6 = ["2001:db8::1", "198.18.0.1"]`, isp1), []problem{{2, "probe.targets6[1]", "IPv4 targets go in probe.targets"}}},
		{"targets6 link-local", file(`[probe]`, `targets6 = ["fe80::1"]`, isp1), []problem{{2, "probe.targets6[0]", "link-local"}}},
		{"targets6 host name", file(`[probe]`, `targets6 = ["one.one.one.one"]`, isp1), []problem{{2, "probe.targets6[0]", "not an IPv6 address"}}},
		{"targets6 TCP without brackets", file(`[probe]`, `targets6 = ["tcp://2001:db8::1:443"]`, isp1), []problem{{2, "probe.targets6[0]", "tcp://[2001:db8::1]:443"}}},
		{"targets6 TCP without port", file(`[probe]`, `targets6 = ["tcp://[2001:db8::1]"]`, isp1), []problem{{2, "probe.targets6[0]", "tcp://[2001:db8::1]:443"}}},
		{"targets6 duplicate", file(`[probe]`, `targets6 = ["2001:db8::1", "icmp://2001:db8::1"]`, isp1), []problem{{2, "probe.targets6[1]", "duplicate target"}}},
		{"targets IPv6", file(`[probe]`, `targets = ["2001:db8::1"]`, isp1), []problem{{2, "probe.targets[0]", "IPv6 targets go in probe.targets6"}}},
		{"reliability above targets6", file(`[probe]`, `targets = ["198.18.0.1", "198.18.0.2", "198.18.0.3"]`, `targets6 = ["2001:db8::1"]`, `reliability = 2`, isp1, `gateway6 = "auto"`),
			[]problem{{3, "probe.targets6", "2 targets must answer (probe.reliability), but probe.targets6 has 1 target"}}},
		{"IPv6-only with address", file(uplink("gateway", ""), `gateway6 = "fe80::1"`, `address = "192.0.2.7"`),
			[]problem{{6, "uplink[0].address", "only an uplink with gateway has IPv4; this one has gateway6 only"}}},
		{"IPv6-only with probe_targets", file(uplink("gateway", ""), `gateway6 = "fe80::1"`, `probe_targets = ["198.18.0.1"]`),
			[]problem{{6, "uplink[0].probe_targets", "only an uplink with gateway has IPv4"}}},
		{"IPv6-only with probe_gateway", file(uplink("gateway", ""), `gateway6 = "fe80::1"`, `probe_gateway = true`),
			[]problem{{6, "uplink[0].probe_gateway", "only an uplink with gateway has IPv4"}}},
		{"IPv6-only bad gateway6", file(uplink("gateway", ""), `gateway6 = "198.51.100.1"`),
			[]problem{{5, "uplink[0].gateway6", "is an IPv4 address"}}},
		{"gateway_hold static both", file(isp1, `gateway6 = "fe80::1"`, `gateway_hold = "1s"`), []problem{{7, "uplink[0].gateway_hold", `gateway6 = "auto"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("test.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want problems %v", c, tt.want)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T (%v) is not config.Errors", err, err)
			}
			if diff := cmp.Diff(tt.want, project(errs, tt.want)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nfull error:\n%v", diff, err)
			}
		})
	}
}

// The configuration contract of issue 12, verbatim (its comments
// included), after the keys every uplink needs; then with its commented
// keys written out. Absent gateway6 means no IPv6; source6 defaults to
// auto.
func TestIPv6ContractExample(t *testing.T) {
	contract := []string{
		`[probe]`,
		`targets6 = ["2606:4700:4700::1111", "2001:4860:4860::8888"]   # IPv6 probe targets; [] = no IPv6 probing`,
		``,
		`[[uplink]]`,
		`name = "isp1"`,
		`interface = "eth1"`,
		`gateway = "198.51.100.1"`,
		`table = 100`,
		`gateway6 = "fe80::1"        # or "auto" (the RA-installed default route); absent: no IPv6 on this uplink`,
		`# source6 = "auto"          # or an address; auto: the interface's stable global address, else one of lan_prefix6`,
		`# lan_prefix6 = "2001:db8:100::/64"`,
	}
	targets := []Target{icmp("2606:4700:4700::1111"), icmp("2001:4860:4860::8888")}
	for _, tc := range []struct {
		name   string
		doc    string
		prefix netip.Prefix
	}{
		{"verbatim", file(contract, isp2), netip.Prefix{}},
		{"commented keys set", file(contract[:9], `source6 = "auto"`, `lan_prefix6 = "2001:db8:100::/64"`, isp2),
			netip.MustParsePrefix("2001:db8:100::/64")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.doc)
			if diff := cmp.Diff(targets, c.Probe.Targets6, addrComparer); diff != "" {
				t.Errorf("targets6 (-want +got):\n%s", diff)
			}
			u := c.Uplinks[0]
			if !u.IPv6 || u.Gateway6 != addr("fe80::1") || u.Gateway6Mode != GatewayStatic {
				t.Errorf("isp1: IPv6 %v gateway6 %v mode %v, want fe80::1 static", u.IPv6, u.Gateway6, u.Gateway6Mode)
			}
			if u.Source6.IsValid() || u.LANPrefix6 != tc.prefix {
				t.Errorf("isp1: source6 %v (want auto), lan_prefix6 %v (want %v)", u.Source6, u.LANPrefix6, tc.prefix)
			}
			if c.Uplinks[1].IPv6 {
				t.Error("isp2 without gateway6 has IPv6")
			}
		})
	}
}
