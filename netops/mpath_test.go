package netops

import (
	"strings"
	"testing"
)

// TestHashThresholdKernel: the hash-threshold group is created behind the
// balance route and replaced in place on weight and membership changes;
// the route through it is written once.
func TestHashThresholdKernel(t *testing.T) {
	ns, h, nh := carrierNS(t)
	u1, u2 := inNS(t, h, pinned(isp1(true), 0x1000000, true), pinned(isp2(true), 0x2000000, true))
	r := &Reconciler{K: h, NH: nh, Protocol: 201}
	if _, err := r.Reconcile(Plan(hashThreshold, []Uplink{u1, u2})); err != nil {
		t.Fatal(err)
	}
	if got := ipOut(t, ns, "nexthop", "show", "id", "2010000000"); !strings.Contains(got, "group 2010000001/2010000002,3 proto 201") {
		t.Fatalf("group: %s", got)
	}
	if got := ipOut(t, ns, "route", "show", "table", "250"); !strings.Contains(got, "default nhid 2010000000") {
		t.Fatalf("balance table: %s", got)
	}
	rules := ipOut(t, ns, "rule", "show")
	for _, want := range []string{
		"10000:\tfrom all lookup main suppress_prefixlength 0 proto 201",
		"10002:\tfrom all fwmark 0x1000000/0xff000000 lookup 100 proto 201",
		"10002:\tfrom all fwmark 0x2000000/0xff000000 lookup 200 proto 201",
	} {
		if !strings.Contains(rules, want) {
			t.Fatalf("no %q in\n%s", want, rules)
		}
	}
	if res, err := r.Reconcile(Plan(hashThreshold, []Uplink{u1, u2})); err != nil || res.Changes() != 0 {
		t.Fatalf("second reconcile: %v, err %v", res, err)
	}

	for _, step := range []struct {
		name   string
		u1, u2 Uplink
		group  string
	}{
		{"weight change", u1, func() Uplink { u := u2; u.Weight = 1; return u }(), "group 2010000001/2010000002 proto 201"},
		{"isp1 leaves the balance", func() Uplink { u := u1; u.InBalance = false; return u }(), u2, "group 2010000002,3 proto 201"},
	} {
		res, err := r.Reconcile(Plan(hashThreshold, []Uplink{step.u1, step.u2}))
		if err != nil || res.Changes() != 1 || len(res.Removed) != 0 || !strings.HasPrefix(res.Added[0], "nexthop id 2010000000 group") {
			t.Fatalf("%s: want the group replaced in place and nothing else, got %v (err %v)", step.name, res, err)
		}
		if got := ipOut(t, ns, "nexthop", "show", "id", "2010000000"); !strings.Contains(got, step.group) {
			t.Fatalf("%s: group %s, want %s", step.name, got, step.group)
		}
	}
	if _, err := r.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := ipOut(t, ns, "nexthop", "show"); strings.TrimSpace(got) != "" {
		t.Fatalf("after cleanup: %s", got)
	}
}
