package config

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDynamicUplinks(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want Uplink
	}{
		{"auto", file(uplink("gateway", `"auto"`)),
			Uplink{GatewayMode: GatewayAuto, GatewayHold: DefaultGatewayHold}},
		{"auto with hold", file(uplink("gateway", `"auto"`), `gateway_hold = "500ms"`),
			Uplink{GatewayMode: GatewayAuto, GatewayHold: 500 * time.Millisecond}},
		{"auto without hold", file(uplink("gateway", `"auto"`), `gateway_hold = "0s"`),
			Uplink{GatewayMode: GatewayAuto}},
		{"none", file(uplink("gateway", `"none"`)), Uplink{GatewayMode: GatewayNone}},
		{"static", file(isp1), Uplink{Gateway: netip.MustParseAddr("198.51.100.1")}},
		{"address", file(uplink("gateway", `"auto"`), `address = "192.0.2.7"`),
			Uplink{GatewayMode: GatewayAuto, GatewayHold: DefaultGatewayHold, Address: netip.MustParsePrefix("192.0.2.7/32")}},
		{"address prefix", file(isp1, `address = "198.51.100.0/24"`),
			Uplink{Gateway: netip.MustParseAddr("198.51.100.1"), Address: netip.MustParsePrefix("198.51.100.0/24")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("test.toml", []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			u := c.Uplinks[0]
			got := Uplink{Gateway: u.Gateway, GatewayMode: u.GatewayMode, GatewayHold: u.GatewayHold, Address: u.Address}
			if diff := cmp.Diff(tt.want, got, addrComparer, prefixComparer); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDynamicUplinkProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []problem
	}{
		{"gateway word", file(uplink("gateway", `"dhcp"`)), []problem{{4, "uplink[0].gateway", "is not an IPv4 address"}}},
		{"hold on static", file(isp1, `gateway_hold = "1s"`), []problem{{6, "uplink[0].gateway_hold", `only an uplink with gateway = "auto"`}}},
		{"hold negative", file(uplink("gateway", `"auto"`), `gateway_hold = "-1s"`), []problem{{6, "uplink[0].gateway_hold", "must not be negative"}}},
		{"address garbage", file(isp1, `address = "eth1"`), []problem{{6, "uplink[0].address", "neither an IPv4 address nor a prefix"}}},
		{"address v6", file(isp1, `address = "2001:db8::1"`), []problem{{6, "uplink[0].address", "not IPv4"}}},
		{"address host bits", file(isp1, `address = "198.51.100.7/24"`), []problem{{6, "uplink[0].address", "host bits"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.toml", []byte(tt.doc))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v is not config.Errors", err)
			}
			if diff := cmp.Diff(tt.want, project(errs, tt.want)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nfull error:\n%v", diff, err)
			}
		})
	}
}

func TestTargetsWithLearnedGateway(t *testing.T) {
	on := true
	c := &Config{}
	u := Uplink{GatewayMode: GatewayAuto, ProbeGateway: &on}
	if got := c.TargetsWith(u, netip.Addr{}); len(got) != 0 {
		t.Errorf("no gateway known: targets %v, want none", got)
	}
	gw := netip.MustParseAddr("192.0.2.1")
	if got := c.TargetsWith(u, gw); len(got) != 1 || got[0].Addr != gw || got[0].Method != MethodICMP {
		t.Errorf("targets %v, want [%v]", got, gw)
	}
	u.GatewayMode = GatewayNone
	if c.ProbesGateway(u) {
		t.Errorf("a point-to-point uplink is probed at a gateway")
	}
}
