package netops

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// TestPolicyKernel: the rules of every selector are written as the kernel
// reads them back (a second reconcile changes nothing), a policy's table
// turns from its group to an unreachable route and back, and the kernel's
// own route lookup follows each rule.
func TestPolicyKernel(t *testing.T) {
	ns, h, nh := carrierNS(t)
	u1, u2 := inNS(t, h, pinned(isp1(true), 0x1000000, true), pinned(isp2(true), 0x2000000, true))
	s := withPolicies(hashThreshold, []PolicyRule{
		{To: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/32")}, IPProto: 17, Dport: &Range{5060, 5061}, Policy: "voip"},
		{From: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}, IifName: "eth0", Policy: "voip"},
		{Mark: 0x10, Mask: 0xff, Policy: "voip"},
		{UID: &Range{1000, 1999}, IPProto: 6, Sport: &Range{22, 22}, Policy: "voip"},
	},
		Policy{Name: "voip", Table: 251, Tiers: [][]string{{"isp2"}}, LastResort: ResortUnreachable},
	)
	r := &Reconciler{K: h, NH: nh, Protocol: 201}
	if _, err := r.Reconcile(Plan(s, []Uplink{u1, u2})); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Reconcile(Plan(s, []Uplink{u1, u2})); err != nil || res.Changes() != 0 {
		t.Fatalf("second reconcile: %v, err %v", res, err)
	}
	rules := ipOut(t, ns, "rule", "show")
	for _, want := range []string{
		"10010:\tfrom all to 198.18.0.2 ipproto udp dport 5060-5061 lookup 251 proto 201",
		"10011:\tfrom 192.0.2.128/25 iif eth0 [detached] lookup 251 proto 201",
		"10012:\tfrom all fwmark 0x10/0xff lookup 251 proto 201",
		"10013:\tfrom all iif lo uidrange 1000-1999 ipproto tcp sport 22 lookup 251 proto 201",
	} {
		if !strings.Contains(rules, want) {
			t.Fatalf("no %q in\n%s", want, rules)
		}
	}
	get := func(args ...string) string {
		return ipOut(t, ns, append([]string{"route", "get"}, args...)...)
	}
	if got := get("198.18.0.2", "ipproto", "udp", "dport", "5060"); !strings.Contains(got, "dev eth2") {
		t.Fatalf("voip lookup: %s", got)
	}
	if got := get("198.18.0.2", "mark", "0x10"); !strings.Contains(got, "dev eth2") {
		t.Fatalf("fwmark lookup: %s", got)
	}

	// isp2 fails: the voip table answers unreachable, in place.
	u2.InBalance, u2.Usable = false, false
	res, err := r.Reconcile(Plan(s, []Uplink{u1, u2}))
	if err != nil {
		t.Fatal(err)
	}
	if tbl := ipOut(t, ns, "route", "show", "table", "251"); !strings.HasPrefix(tbl, "unreachable default proto 201") {
		t.Fatalf("table 251 after isp2 left: %s (%v)", tbl, res)
	}
	if res, err := r.Reconcile(Plan(s, []Uplink{u1, u2})); err != nil || res.Changes() != 0 {
		t.Fatalf("reconcile with an unreachable route again: %v, err %v", res, err)
	}
	out, _ := ipCmd(ns, "route", "get", "198.18.0.2", "mark", "0x10")
	if !strings.Contains(out, "No route to host") {
		t.Fatalf("fwmark lookup with voip's last resort: %s", out)
	}
	u2.InBalance, u2.Usable = true, true
	if _, err := r.Reconcile(Plan(s, []Uplink{u1, u2})); err != nil {
		t.Fatal(err)
	}
	if tbl := ipOut(t, ns, "route", "show", "table", "251"); !strings.HasPrefix(tbl, "default nhid 2010000129") {
		t.Fatalf("table 251 after isp2 returned: %s", tbl)
	}
	if _, err := r.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := ipOut(t, ns, "route", "show", "table", "all", "proto", "201") + ipOut(t, ns, "nexthop", "show"); strings.TrimSpace(got) != "" {
		t.Fatalf("after cleanup: %s", got)
	}
	if rules := ipOut(t, ns, "rule"); strings.Contains(rules, "proto 201") {
		t.Fatalf("rules after cleanup:\n%s", rules)
	}
}

// ipCmd runs ip in ns and returns its output whether it fails or not.
func ipCmd(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	return string(out), err
}
