package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/fsm"
)

const policyDoc = `
[[policy]]
name = "default"
tiers = [["isp1"], ["isp2"]]
last_resort = "unreachable"

[[policy]]
name = "voip"
tiers = [["isp2"], ["isp1"]]

[[rule]]
to = ["198.18.0.2/32"]
proto = "udp"
policy = "voip"
`

// TestPolicyTiers: each policy follows its own tiers as uplinks come and
// go; status shows the tier in use, its members and the last resort.
func TestPolicyTiers(t *testing.T) {
	d := newTestDaemon(t, "standby")
	d.cfg = parse(t, "[probe]\ntargets = [\"198.18.0.1\", \"198.18.0.2\"]\n"+testUplinks+policyDoc)
	type row struct {
		Tier    int
		Members string
	}
	check := func(step string, want map[string]row) {
		t.Helper()
		d.notePolicies(d.choose(d.settings(), d.inputs(), ipv4))
		got := make(map[string]row)
		for _, p := range d.policyStatus() {
			var ms []string
			for _, m := range p.Members {
				ms = append(ms, m.Name)
			}
			got[p.Name] = row{p.Tier, strings.Join(ms, ",")}
			if p.InEffect != (p.Tier == 0) {
				t.Errorf("%s: policy %s: last resort in effect %t at tier %d", step, p.Name, p.InEffect, p.Tier)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", step, diff)
		}
	}
	drive(t, d, "isp1", fsm.Active)
	drive(t, d, "isp2", fsm.Active)
	check("both active", map[string]row{"default": {1, "isp1"}, "voip": {1, "isp2"}})
	takeDown(d, "isp1")
	check("isp1 down", map[string]row{"default": {2, "isp2"}, "voip": {1, "isp2"}})
	if st := d.policies["default"]; st == nil || st.choice.Tier != 2 {
		t.Fatalf("the daemon did not record the default policy's tier change: %+v", st)
	}
	takeDown(d, "isp2")
	check("both down", map[string]row{"default": {0, ""}, "voip": {0, ""}})
}

func TestDescribePolicies(t *testing.T) {
	old := parse(t, base+policyDoc)
	next := parse(t, strings.Replace(base+policyDoc, `tiers = [["isp2"], ["isp1"]]`, `tiers = [["isp2"]]`, 1)+
		"[[policy]]\nname = \"bulk\"\ntiers = [[\"isp1\"]]\n[[rule]]\nfrom = [\"192.0.2.0/24\"]\npolicy = \"bulk\"\n")
	got := describe(old, next)
	want := []string{"policy voip: tiers: [[isp2] [isp1]] -> [[isp2]]", "policy bulk: added", "rule[1]: added (policy bulk)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("describe (-want +got):\n%s", diff)
	}
	if got := describe(old, parse(t, base+policyDoc)); len(got) != 0 {
		t.Fatalf("unchanged policies described as %q", got)
	}
}

func takeDown(d *Daemon, name string) {
	for _, u := range d.uplinks {
		if u.cfg.Name == name {
			u.m.LinkDown("no carrier", time.Now())
		}
	}
}

// A backup stands by (probed at standby_interval) while its policy uses a
// better tier, and is probed at probe.interval again as soon as its tier
// is in use.
func TestStandbyInterval(t *testing.T) {
	d := newTestDaemon(t, "standby")
	d.cfg = parse(t, "[probe]\ntargets = [\"198.18.0.1\", \"198.18.0.2\"]\n"+testUplinks+`
[[policy]]
name = "default"
tiers = [["isp1"], ["isp2"]]
standby_interval = "2s"
`)
	interval := func(name string) time.Duration {
		for _, u := range d.uplinks {
			if u.cfg.Name == name {
				return d.probeInterval(u)
			}
		}
		t.Fatalf("no uplink %s", name)
		return 0
	}
	drive(t, d, "isp1", fsm.Active)
	drive(t, d, "isp2", fsm.Active)
	d.notePolicies(d.choose(d.settings(), d.inputs(), ipv4))
	normal := d.cfg.Probe.Interval
	if got1, got2 := interval("isp1"), interval("isp2"); got1 != normal || got2 != 2*time.Second {
		t.Fatalf("intervals with tier 1 in use: isp1 %v, isp2 %v; want %v and 2s", got1, got2, normal)
	}
	takeDown(d, "isp1")
	d.notePolicies(d.choose(d.settings(), d.inputs(), ipv4))
	if got := interval("isp2"); got != normal {
		t.Fatalf("isp2's interval with its tier in use: %v, want %v", got, normal)
	}
	// Another policy that uses isp2 keeps it at the normal interval.
	d.cfg = parse(t, "[probe]\ntargets = [\"198.18.0.1\", \"198.18.0.2\"]\n"+testUplinks+`
[[policy]]
name = "default"
tiers = [["isp1"], ["isp2"]]
standby_interval = "2s"
[[policy]]
name = "voip"
tiers = [["isp2"]]
`)
	drive(t, d, "isp1", fsm.Active)
	d.notePolicies(d.choose(d.settings(), d.inputs(), ipv4))
	if got := interval("isp2"); got != normal {
		t.Fatalf("isp2 used by voip: interval %v, want %v", got, normal)
	}
}
