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
