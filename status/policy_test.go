package status

import (
	"bytes"
	"regexp"
	"testing"
)

// The policies section lists each policy's tier in use and members, or
// its last resort; only the built-in default policy is not shown.
func TestRenderPolicies(t *testing.T) {
	s := sample()
	s.Policies = []Policy{{Name: "default", Builtin: true, Table: 250, Tiers: [][]string{{"isp1", "isp2"}}, Tier: 1}}
	var b bytes.Buffer
	_ = Render(&b, s, false, now)
	if regexp.MustCompile(`(?m)^POLICY`).Match(b.Bytes()) {
		t.Fatalf("the built-in default policy is shown:\n%s", b.String())
	}
	s.Policies = []Policy{
		{Name: "default", Table: 250, Tiers: [][]string{{"isp1", "isp2"}, {"lte"}}, Tier: 2, Members: []Member{{Name: "lte", Weight: 1, Share: 1}}},
		{Name: "guest", Table: 252, Tiers: [][]string{{"lte"}}, LastResort: "unreachable", InEffect: true},
	}
	b.Reset()
	_ = Render(&b, s, false, now)
	for _, re := range []string{
		`(?m)^POLICY\s+TABLE\s+TIERS\s+IN USE\s+UPLINKS$`,
		`(?m)^default\s+250\s+isp1\+isp2 > lte\s+tier 2\s+lte 100%$`,
		`(?m)^guest\s+252\s+lte\s+last resort unreachable\s+-$`,
	} {
		if !regexp.MustCompile(re).Match(b.Bytes()) {
			t.Errorf("no %s in\n%s", re, b.String())
		}
	}
}

// With IPv6, each policy has a row per family, with a FAMILY column.
func TestRenderPoliciesPerFamily(t *testing.T) {
	s := sample()
	s.Policies = []Policy{
		{Name: "default", Family: FamilyIPv4, Builtin: true, Table: 250, Tiers: [][]string{{"isp1", "isp2"}}, Tier: 1},
		{Name: "default", Family: FamilyIPv6, Builtin: true, Table: 250, Tiers: [][]string{{"isp1", "isp2"}}, Tier: 1},
	}
	var b bytes.Buffer
	_ = Render(&b, s, false, now)
	if regexp.MustCompile(`(?m)^POLICY`).Match(b.Bytes()) {
		t.Fatalf("the built-in default policy is shown:\n%s", b.String())
	}
	tiers := [][]string{{"isp1"}, {"isp2"}}
	s.Policies = []Policy{
		{Name: "default", Family: FamilyIPv4, Table: 250, Tiers: tiers, Tier: 1, Members: []Member{{Name: "isp1", Weight: 1, Share: 1}}},
		{Name: "default", Family: FamilyIPv6, Table: 250, Tiers: tiers, Tier: 2, Members: []Member{{Name: "isp2", Weight: 3, Share: 1}}},
	}
	b.Reset()
	_ = Render(&b, s, false, now)
	for _, re := range []string{
		`(?m)^POLICY\s+FAMILY\s+TABLE\s+TIERS\s+IN USE\s+UPLINKS$`,
		`(?m)^default\s+IPv4\s+250\s+isp1 > isp2\s+tier 1\s+isp1 100%$`,
		`(?m)^default\s+IPv6\s+250\s+isp1 > isp2\s+tier 2\s+isp2 100%$`,
	} {
		if !regexp.MustCompile(re).Match(b.Bytes()) {
			t.Errorf("no %s in\n%s", re, b.String())
		}
	}
}
