package config

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var lte = []string{
	`[[uplink]]`,
	`name = "lte"`,
	`interface = "wwan0"`,
	`gateway = "192.0.2.1"`,
	`table = 300`,
}

func TestPolicies(t *testing.T) {
	cfg := mustParse(t, file(isp1, isp2, lte,
		`[[policy]]`,
		`name = "default"`,
		`tiers = [["isp1", "isp2"], ["lte"]]`,
		`last_resort = "unreachable"`,
		`failback = "all"`,
		`[[policy]]`,
		`name = "voip"`,
		`tiers = [["isp2"], ["isp1"]]`,
		`degraded_policy = "keep"`,
		`[[policy]]`,
		`name = "bulk"`,
		`tiers = [["lte"]]`,
		`table = 400`,
		`last_resort = "default"`,
		`[[rule]]`,
		`to = ["198.18.0.2/32", "198.18.1.1"]`,
		`proto = "udp"`,
		`dport = "5060-5061"`,
		`policy = "voip"`,
		`[[rule]]`,
		`from = ["192.0.2.128/25"]`,
		`iif = "eth0"`,
		`fwmark = "0x10/0xff"`,
		`proto = 6`,
		`sport = 22`,
		`policy = "bulk"`,
		`[[rule]]`,
		`uid = "1000-1999"`,
		`policy = "default"`,
	))
	want := []Policy{
		{Name: "default", Table: 250, Tiers: [][]string{{"isp1", "isp2"}, {"lte"}}, LastResort: "unreachable", DegradedPolicy: "standby", Failback: "all"},
		{Name: "voip", Table: 251, Tiers: [][]string{{"isp2"}, {"isp1"}}, LastResort: "main", DegradedPolicy: "keep", Failback: "new"},
		{Name: "bulk", Table: 400, Tiers: [][]string{{"lte"}}, LastResort: "default", DegradedPolicy: "standby", Failback: "new"},
	}
	if diff := cmp.Diff(want, cfg.Policies); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	p := netip.MustParsePrefix
	wantRules := []Rule{
		{To: []netip.Prefix{p("198.18.0.2/32"), p("198.18.1.1/32")}, Proto: 17, Dport: &Range{5060, 5061}, Policy: "voip", Line: 30},
		{From: []netip.Prefix{p("192.0.2.128/25")}, Iif: "eth0", Mark: 0x10, Mask: 0xff, Proto: 6, Sport: &Range{22, 22}, Policy: "bulk", Line: 35},
		{UID: &Range{1000, 1999}, Policy: "default", Line: 42},
	}
	if diff := cmp.Diff(wantRules, cfg.Rules, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if got, ok := cfg.PolicyNamed("default"); !ok || got.LastResort != "unreachable" {
		t.Errorf("PolicyNamed(default) = %+v, %t", got, ok)
	}

	// Default tables skip the kernel's reserved ones.
	four := file(isp1, `[[policy]]`, `name = "a"`, `tiers = [["isp1"]]`, `[[policy]]`, `name = "b"`, `tiers = [["isp1"]]`,
		`[[policy]]`, `name = "c"`, `tiers = [["isp1"]]`, `[[policy]]`, `name = "d"`, `tiers = [["isp1"]]`)
	var got []int
	for _, p := range mustParse(t, four).Policies {
		got = append(got, p.Table)
	}
	if !cmp.Equal(got, []int{251, 252, 256, 257}) {
		t.Errorf("default policy tables %v, want [251 252 256 257]", got)
	}

	// Without policies the default one is built in: every uplink, one tier.
	plain := mustParse(t, file(isp1, isp2))
	if got, _ := plain.PolicyNamed("default"); !cmp.Equal(got.Tiers, [][]string{{"isp1", "isp2"}}) || got.Table != 250 || got.LastResort != "main" {
		t.Errorf("built-in default policy: %+v", got)
	}
}

func TestPolicyProblems(t *testing.T) {
	pol := func(lines ...string) []string { return append([]string{`[[policy]]`}, lines...) }
	rule := func(lines ...string) []string { return append([]string{`[[rule]]`}, lines...) }
	tests := []struct {
		name string
		doc  string
		want []problem
	}{
		{"unknown uplink", file(isp1, pol(`name = "p"`, `tiers = [["isp1"], ["isp9"]]`)),
			[]problem{{8, "policy[0].tiers[1][0]", `unknown uplink "isp9"`}}},
		{"empty tier", file(isp1, pol(`name = "p"`, `tiers = [["isp1"], []]`)),
			[]problem{{8, "policy[0].tiers[1]", "empty tier 2"}}},
		{"no tiers", file(isp1, pol(`name = "p"`, `tiers = []`)),
			[]problem{{8, "policy[0].tiers", "no tiers"}}},
		{"missing tiers", file(isp1, pol(`name = "p"`)),
			[]problem{{6, "policy[0].tiers", "missing"}}},
		{"uplink twice", file(isp1, pol(`name = "p"`, `tiers = [["isp1"], ["isp1"]]`)),
			[]problem{{8, "policy[0].tiers[1][0]", "already in tier 1"}}},
		{"tiers of the wrong type", file(isp1, pol(`name = "p"`, `tiers = ["isp1"]`)),
			[]problem{{8, "policy[0].tiers", "expected an array of arrays"}}},
		{"duplicate policy", file(isp1, pol(`name = "p"`, `tiers = [["isp1"]]`), pol(`name = "p"`, `tiers = [["isp1"]]`)),
			[]problem{{10, "policy[1].name", `duplicate policy "p"`}}},
		{"default falls back to itself", file(isp1, pol(`name = "default"`, `tiers = [["isp1"]]`, `last_resort = "default"`)),
			[]problem{{9, "policy[0].last_resort", "cannot fall back to itself"}}},
		{"bad last resort", file(isp1, pol(`name = "p"`, `tiers = [["isp1"]]`, `last_resort = "drop"`)),
			[]problem{{9, "policy[0].last_resort", `must be "main"`}}},
		{"table of an uplink", file(isp1, pol(`name = "p"`, `tiers = [["isp1"]]`, `table = 100`)),
			[]problem{{9, "policy[0].table", "table of uplink isp1"}}},
		{"default table of an uplink", file(`[routing]`, `balance_table = 99`, isp1, pol(`name = "p"`, `tiers = [["isp1"]]`)),
			[]problem{{9, "policy[0].name", "the default for policy 1 after the default one); set table"}}},
		{"default policy with a table", file(isp1, pol(`name = "default"`, `tiers = [["isp1"]]`, `table = 7`)),
			[]problem{{9, "policy[0].table", "uses routing.balance_table"}}},
		{"rule naming an unknown policy", file(isp1, rule(`to = ["198.18.0.0/15"]`, `policy = "voip"`)),
			[]problem{{8, "rule[0].policy", `unknown policy "voip"`}}},
		{"rule without policy", file(isp1, rule(`to = ["198.18.0.0/15"]`)),
			[]problem{{6, "rule[0].policy", "missing"}}},
		{"port without protocol", file(isp1, rule(`dport = "5060"`, `policy = "default"`)),
			[]problem{{7, "rule[0].dport", "needs proto"}}},
		{"port of icmp", file(isp1, rule(`proto = "icmp"`, `sport = "1"`, `policy = "default"`)),
			[]problem{{8, "rule[0].sport", "no ports"}}},
		{"bad port range", file(isp1, rule(`proto = "tcp"`, `dport = "90-80"`, `policy = "default"`)),
			[]problem{{8, "rule[0].dport", "ends before it starts"}}},
		{"bad proto", file(isp1, rule(`proto = "gre2"`, `policy = "default"`)),
			[]problem{{7, "rule[0].proto", "protocol number"}}},
		{"fwmark overlapping mark_mask", file(isp1, rule(`fwmark = "0x1000000/0x1000000"`, `policy = "default"`)),
			[]problem{{7, "rule[0].fwmark", "overlaps uplinkd's own mark bits"}}},
		{"fwmark without mask is all bits", file(isp1, rule(`fwmark = "0x10"`, `policy = "default"`)),
			[]problem{{7, "rule[0].fwmark", "overlaps"}}},
		{"fwmark bits outside the mask", file(isp1, rule(`fwmark = "0x110/0xff"`, `policy = "default"`)),
			[]problem{{7, "rule[0].fwmark", "outside the mask"}}},
		{"uid with another iif", file(isp1, rule(`uid = "1000"`, `iif = "eth0"`, `policy = "default"`)),
			[]problem{{7, "rule[0].uid", "router's own traffic"}}},
		{"prefix with host bits", file(isp1, rule(`from = ["192.0.2.1/24"]`, `policy = "default"`)),
			[]problem{{7, "rule[0].from[0]", "host bits"}}},
		{"shadowed by a wider prefix", file(isp1,
			rule(`to = ["198.18.0.0/15"]`, `policy = "default"`),
			rule(`to = ["198.18.0.2/32"]`, `proto = "udp"`, `policy = "default"`)),
			[]problem{{9, "rule[1]", "rule[0] (line 6) matches everything"}}},
		{"shadowed by a wider port range", file(isp1,
			rule(`proto = "udp"`, `dport = "5000-6000"`, `policy = "default"`),
			rule(`proto = "udp"`, `dport = "5060"`, `iif = "eth0"`, `policy = "default"`)),
			[]problem{{10, "rule[1]", "rule[0] (line 6)"}}},
		{"shadowed by a shorter mask", file(isp1,
			rule(`fwmark = "0x10/0xf0"`, `policy = "default"`),
			rule(`fwmark = "0x12/0xff"`, `policy = "default"`)),
			[]problem{{9, "rule[1]", "rule[0] (line 6)"}}},
		{"unknown rule key", file(isp1, rule(`dst = ["198.18.0.0/15"]`, `policy = "default"`)),
			[]problem{{7, "rule[0].dst", "[[rule]] accepts from, to"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.toml", []byte(tt.doc))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want problems %v", err, tt.want)
			}
			if diff := cmp.Diff(tt.want, project(errs, tt.want)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nfull error:\n%v", diff, err)
			}
		})
	}
}

// Narrower rules first are fine: nothing is shadowed.
func TestRulesNotShadowed(t *testing.T) {
	mustParse(t, file(isp1,
		`[[rule]]`, `to = ["198.18.0.2/32"]`, `proto = "udp"`, `policy = "default"`,
		`[[rule]]`, `to = ["198.18.0.0/15"]`, `policy = "default"`,
		`[[rule]]`, `uid = "0-999"`, `policy = "default"`,
		`[[rule]]`, `uid = "1000"`, `iif = "lo"`, `policy = "default"`,
	))
}
