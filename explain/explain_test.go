package explain

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/status"
	"golang.org/x/sys/unix"
)

const doc = `
[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
table = 100
[[uplink]]
name = "isp2"
interface = "eth2"
gateway = "203.0.113.1"
table = 200
[[policy]]
name = "voip"
tiers = [["isp2"], ["isp1"]]
last_resort = "unreachable"
[[rule]]
to = ["198.18.0.3/32"]
proto = "udp"
dport = "5060"
policy = "voip"
[[rule]]
uid = "1000-1999"
policy = "voip"
`

func state(voipTier int, voip ...string) *status.Snapshot {
	s := &status.Snapshot{Policies: []status.Policy{
		{Name: "default", Tier: 1, Members: []status.Member{{Name: "isp1", Share: 0.5}, {Name: "isp2", Share: 0.5}}},
		{Name: "voip", Tier: voipTier},
	}}
	for _, m := range voip {
		s.Policies[1].Members = append(s.Policies[1].Members, status.Member{Name: m, Share: 1})
	}
	return s
}

func TestExplain(t *testing.T) {
	cfg, err := config.Parse("t.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	links := map[int]string{1: "lo", 2: "eth0", 3: "eth1", 4: "eth2"}
	host := netip.MustParseAddr("192.0.2.10")
	voip := Packet{Dst: netip.MustParseAddr("198.18.0.3"), Src: host, Iif: "eth0", Proto: 17, Dport: 5060}
	other := Packet{Dst: netip.MustParseAddr("198.18.0.3"), Src: host, Iif: "eth0", Proto: 17, Dport: 5070}
	local := Packet{Dst: netip.MustParseAddr("198.18.0.1"), UID: 1500}
	tests := []struct {
		name     string
		p        Packet
		a        netops.Answer
		st       *status.Snapshot
		rule     int
		line     string // among the lines
		disagree string // substring; "" for agreement
	}{
		{"voip on its tier", voip, netops.Answer{Table: 251, Oif: 4}, state(1, "isp2"), 0, "uplink isp2", ""},
		{"voip on tier 2", voip, netops.Answer{Table: 251, Oif: 3}, state(2, "isp1"), 0, "uplink isp1", ""},
		{"voip unreachable", voip, netops.Answer{Table: 251, Type: netops.Unreachable}, state(0), 0, "last resort unreachable", ""},
		{"local unreachable refused", local, netops.Answer{Err: unix.EHOSTUNREACH}, state(0), 1, "last resort unreachable", ""},
		{"unmatched: default policy", other, netops.Answer{Table: 250, Oif: 3}, state(1, "isp2"), -1, "uplink isp1", ""},
		{"kernel elsewhere", voip, netops.Answer{Table: 250, Oif: 3}, state(1, "isp2"), 0, "uplink isp1", "policy voip should use table 251"},
		{"wrong member", voip, netops.Answer{Table: 251, Oif: 3}, state(1, "isp2"), 0, "uplink isp1", "not in policy voip's tier 1"},
		{"pinned by mark", Packet{Dst: voip.Dst, Src: host, Iif: "eth0", Mark: 0x1000000}, netops.Answer{Table: 100, Oif: 3}, state(1, "isp2"), -1, "uplink isp1", ""},
		{"no daemon", voip, netops.Answer{Table: 251, Oif: 4}, nil, 0, "uplink isp2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Explain(Input{Config: cfg, Packet: tt.p, Answer: tt.a, Links: links, Status: tt.st})
			out := strings.Join(res.Lines, "\n")
			if res.Rule != tt.rule || !slices.Contains(res.Lines, tt.line) {
				t.Errorf("rule %d, want %d; want the line %q in\n%s", res.Rule, tt.rule, tt.line, out)
			}
			if tt.disagree == "" && res.Disagree != "" || !strings.Contains(res.Disagree, tt.disagree) {
				t.Errorf("disagreement %q, want %q\n%s", res.Disagree, tt.disagree, out)
			}
		})
	}
}

const doc6 = `
[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
gateway6 = "fe80::1"
table = 100
[[uplink]]
name = "isp2"
interface = "eth2"
gateway6 = "fe80::1"
lan_prefix6 = "2001:db8:200::/56"
table = 200
`

// IPv6 flows: the policy's IPv6 state (not IPv4's) is the one in use, and
// a source in an uplink's lan_prefix6 goes to its table only, or is
// refused while that uplink cannot route.
func TestExplain6(t *testing.T) {
	cfg, err := config.Parse("t.toml", []byte(doc6))
	if err != nil {
		t.Fatal(err)
	}
	links := map[int]string{1: "lo", 2: "eth0", 3: "eth1", 4: "eth2"}
	st := &status.Snapshot{Policies: []status.Policy{
		{Name: "default", Family: status.FamilyIPv4, Tier: 1, Members: []status.Member{{Name: "isp1", Share: 1}}},
		{Name: "default", Family: status.FamilyIPv6, Tier: 1, Members: []status.Member{{Name: "isp2", Share: 1}}},
	}}
	dst := netip.MustParseAddr("2001:db8:ffff::1")
	balanced := Packet{Dst: dst, Src: netip.MustParseAddr("2001:db8:1:1::10"), Iif: "eth0"}
	isp2Src := Packet{Dst: dst, Src: netip.MustParseAddr("2001:db8:200:1::10"), Iif: "eth0"}
	gw := netip.MustParseAddr("fe80::1")
	tests := []struct {
		name     string
		p        Packet
		a        netops.Answer
		line     string
		disagree string
	}{
		{"balanced by IPv6's tier", balanced, netops.Answer{Table: 250, Oif: 4, Gateway: gw}, "uplink isp2", ""},
		{"IPv4's member is not IPv6's", balanced, netops.Answer{Table: 250, Oif: 3, Gateway: gw}, "uplink isp1", "not in policy default's tier 1 (isp2 100%)"},
		{"lan_prefix6 to its uplink", isp2Src, netops.Answer{Table: 200, Oif: 4, Gateway: gw}, "pinned   table 200 of uplink isp2: the source is in its lan_prefix6", ""},
		{"lan_prefix6 while its uplink is down", isp2Src, netops.Answer{Err: unix.ENETUNREACH},
			"unreachable: uplink isp2's IPv6 cannot carry its lan_prefix6 now, and those sources never leave through another ISP", ""},
		{"lan_prefix6 through another uplink", isp2Src, netops.Answer{Table: 100, Oif: 3, Gateway: gw}, "uplink isp1",
			"the source is in lan_prefix6 2001:db8:200::/56 of uplink isp2, but the kernel used table 100; it should use table 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Explain(Input{Config: cfg, Packet: tt.p, Answer: tt.a, Links: links, Status: st})
			out := strings.Join(res.Lines, "\n")
			if !slices.Contains(res.Lines, tt.line) {
				t.Errorf("want the line %q in\n%s", tt.line, out)
			}
			if tt.disagree == "" && res.Disagree != "" || !strings.Contains(res.Disagree, tt.disagree) {
				t.Errorf("disagreement %q, want %q\n%s", res.Disagree, tt.disagree, out)
			}
			if !strings.Contains(out, "policy   default (IPv6): tier 1 of 1 in use (isp2 100%)") {
				t.Errorf("policy line of IPv6 missing in\n%s", out)
			}
		})
	}
}
