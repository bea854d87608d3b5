package netops

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// failingKernel fails rule listings while failRules is set.
type failingKernel struct {
	Kernel
	failRules bool
}

func (k *failingKernel) RuleList(family int) ([]netlink.Rule, error) {
	if k.failRules {
		return nil, errors.New("injected failure")
	}
	return k.Kernel.RuleList(family)
}

// lastPlanNS returns a namespace with two uplinks with carrier, pinned, a
// cached reconciler (its kernel failable) and the plan maker.
func lastPlanNS(t *testing.T) (ns string, r *Reconciler, k *failingKernel, u1, u2 Uplink) {
	t.Helper()
	ns, h, nh := carrierNS(t)
	u1, u2 = inNS(t, h, pinned(isp1(true), 0x1000000, true), pinned(isp2(true), 0x2000000, true))
	k = &failingKernel{Kernel: handleIn(t, ns, h)}
	r = &Reconciler{K: k, NH: nh, Protocol: 201}
	r.EnableCache()
	return ns, r, k, u1, u2
}

// reconcileWant reconciles d and checks the number of changes (-1: any).
func reconcileWant(t *testing.T, r *Reconciler, what string, d Desired, changes int) Result {
	t.Helper()
	res, err := r.Reconcile(d)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if changes >= 0 && res.Changes() != changes {
		t.Fatalf("%s: %d changes, want %d: %v", what, res.Changes(), changes, res)
	}
	return res
}

// An object unchanged in the plan costs nothing while its cache entry is
// clean, but once an event invalidates the entry it is read and repaired.
func TestLastPlanInvalidatedRepaired(t *testing.T) {
	ns, r, _, u1, u2 := lastPlanNS(t)
	d := Plan(hashThreshold, []Uplink{u1, u2})
	reconcileWant(t, r, "first", d, len(d.Routes)+len(d.Rules)+len(d.Nexthops))
	reconcileWant(t, r, "unchanged", d, 0)

	// A route, a rule and the group deleted behind the reconciler's back,
	// not reported: the cache is trusted, nothing is read or written.
	ipOut(t, ns, "route", "del", "default", "table", fmt.Sprint(u1.Table), "proto", "201")
	ipOut(t, ns, "rule", "del", "fwmark", "0x2000000/0xff000000", "lookup", fmt.Sprint(u2.Table))
	ipOut(t, ns, "nexthop", "del", "id", "2010000000") // the group, and the balance route with it
	reconcileWant(t, r, "unreported", d, 0)

	// Reported, each is read again and repaired, though the plan did not
	// change.
	r.InvalidateTable(unix.AF_INET, u1.Table)
	reconcileWant(t, r, "route reported", d, 1)
	r.InvalidateRules(unix.AF_INET)
	reconcileWant(t, r, "rule reported", d, 1)
	r.InvalidateNexthop(2010000000)
	reconcileWant(t, r, "group reported", d, 2) // the group and the balance route
	for what, want := range map[string][]string{
		"route show table " + fmt.Sprint(u1.Table): {"default via 198.51.100.1"},
		"rule show":                  {"fwmark 0x2000000/0xff000000 lookup 200 proto 201"},
		"route show table 250":       {"default nhid 2010000000 proto 201"},
		"nexthop show id 2010000000": {"group 2010000001/2010000002"},
	} {
		out := ipOut(t, ns, strings.Fields(what)...)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("ip %s lacks %q:\n%s", what, w, out)
			}
		}
	}
	reconcileWant(t, r, "converged", d, 0)
}

// An object the plan no longer has is deleted from a clean cache entry,
// whatever moved around it in the plan.
func TestLastPlanRemovedDeleted(t *testing.T) {
	ns, r, _, u1, u2 := lastPlanNS(t)
	d := Plan(hashThreshold, []Uplink{u1, u2})
	reconcileWant(t, r, "first", d, len(d.Routes)+len(d.Rules)+len(d.Nexthops))

	// isp1 unusable: its fwmark rule goes, and only that (isp2's moves
	// up in the plan).
	u1.Usable = false
	res := reconcileWant(t, r, "isp1 unusable", Plan(hashThreshold, []Uplink{u1, u2}), 1)
	if !strings.Contains(res.Removed[0], "fwmark 0x1000000") {
		t.Fatalf("removed %v", res.Removed)
	}
	// isp1 leaves the plan: its routes, source rule and nexthop object
	// go, and the group moves to its alternate ID (made anew there, the
	// balance route replaced, the old copy deleted).
	reconcileWant(t, r, "isp1 gone", Plan(hashThreshold, []Uplink{u2}), 7)
	if out := ipOut(t, ns, "route", "show", "table", fmt.Sprint(u1.Table)); out != "" {
		t.Errorf("isp1's table left:\n%s", out)
	}
	if out := ipOut(t, ns, "rule", "show"); strings.Contains(out, "lookup 100") {
		t.Errorf("isp1's rules left:\n%s", out)
	}
	if out := ipOut(t, ns, "nexthop", "show"); strings.Contains(out, "2010000001") {
		t.Errorf("isp1's nexthop left:\n%s", out)
	}
	reconcileWant(t, r, "converged", Plan(hashThreshold, []Uplink{u2}), 0)
}

// A reconcile that fails leaves the next one with nothing to trust: it
// diffs every entry whole, and so deletes what the failed one left.
func TestLastPlanAfterFailure(t *testing.T) {
	ns, r, k, u1, u2 := lastPlanNS(t)
	d := Plan(hashThreshold, []Uplink{u1, u2})
	reconcileWant(t, r, "first", d, len(d.Routes)+len(d.Rules)+len(d.Nexthops))

	// isp1 leaves the plan, but the reconcile fails before it deletes
	// rules and routes (a rule listing fails; the cache of rules is
	// dirty so that it is listed).
	r.InvalidateRules(unix.AF_INET)
	k.failRules = true
	if _, err := r.Reconcile(Plan(hashThreshold, []Uplink{u2})); err == nil {
		t.Fatal("no error from a failed rule listing")
	}
	k.failRules = false
	// The same plan again: nothing was removed from it since the last
	// one, but isp1's routes, rules and nexthop object are still there,
	// and so is the group's old copy (the failed reconcile made it anew
	// at its alternate ID).
	reconcileWant(t, r, "after the failure", Plan(hashThreshold, []Uplink{u2}), 6)
	if out := ipOut(t, ns, "route", "show", "table", fmt.Sprint(u1.Table)); out != "" {
		t.Errorf("isp1's table left:\n%s", out)
	}
	reconcileWant(t, r, "converged", Plan(hashThreshold, []Uplink{u2}), 0)
}

// align finds the objects a plan added, changed and removed, whatever
// moved.
func TestAlign(t *testing.T) {
	eq := func(a, b *string) bool { return *a == *b }
	for _, c := range []struct {
		old, cur []string
		same     string // per object of cur: 1 same, 0 not
		removed  []string
	}{
		{nil, []string{"a"}, "0", nil},
		{[]string{"a"}, nil, "", []string{"a"}},
		{[]string{"a", "b", "c"}, []string{"a", "b", "c"}, "111", nil},
		{[]string{"a", "b", "c"}, []string{"a", "c"}, "11", []string{"b"}},
		{[]string{"a", "c"}, []string{"a", "b", "c"}, "101", nil},
		{[]string{"a", "b", "c"}, []string{"a", "x", "c"}, "101", []string{"b"}},
		// d found ahead: a, b and c look removed, and are then new
		// (the removed are checked against the plan before deletion).
		{[]string{"a", "b", "c", "d"}, []string{"d", "a", "b", "c"}, "1000", []string{"a", "b", "c"}},
		{[]string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, []string{"j", "a", "b", "c", "d", "e", "f", "g", "h", "i"}, "0111111111", []string{"j"}},
		{[]string{"a", "b"}, []string{"x", "y"}, "00", []string{"a", "b"}},
	} {
		same, removed := align(c.old, c.cur, eq, nil, nil)
		var got strings.Builder
		for _, s := range same {
			got.WriteByte("01"[btoi(s)])
		}
		if got.String() != c.same || fmt.Sprint(removed) != fmt.Sprint(c.removed) {
			t.Errorf("align(%v, %v) = %s, %v; want %s, %v", c.old, c.cur, got.String(), removed, c.same, c.removed)
		}
	}
}

// callLog records the kernel calls of a reconcile, in order.
type callLog struct {
	Kernel
	NexthopKernel
	calls []string
}

func (c *callLog) RouteListFiltered(family int, f *netlink.Route, mask uint64) ([]netlink.Route, error) {
	c.calls = append(c.calls, "list routes")
	return c.Kernel.RouteListFiltered(family, f, mask)
}

func (c *callLog) RuleDel(ru *netlink.Rule) error {
	c.calls = append(c.calls, fmt.Sprintf("delete rule %d", ru.Priority))
	return c.Kernel.RuleDel(ru)
}

func (c *callLog) RuleAdd(ru *netlink.Rule) error {
	c.calls = append(c.calls, fmt.Sprintf("add rule %d", ru.Priority))
	return c.Kernel.RuleAdd(ru)
}

func (c *callLog) NexthopGet(id uint32) (NexthopObject, bool, error) {
	c.calls = append(c.calls, "get nexthop")
	return c.NexthopKernel.NexthopGet(id)
}

func (c *callLog) NexthopAdd(n NexthopObject, replace bool) error {
	c.calls = append(c.calls, fmt.Sprintf("add nexthop %d", n.ID))
	return c.NexthopKernel.NexthopAdd(n, replace)
}

// A plan that only removes rules (a failover: the fwmark rule of an
// uplink whose probes failed) removes them before anything is read or
// written; one that also adds rules removes them last, make before
// break.
func TestLastPlanRemovesFirst(t *testing.T) {
	_, r, k, u1, u2 := lastPlanNS(t)
	log := &callLog{Kernel: k, NexthopKernel: r.NH}
	r.K, r.NH = log, log
	d := Plan(hashThreshold, []Uplink{u1, u2})
	reconcileWant(t, r, "first", d, len(d.Routes)+len(d.Rules)+len(d.Nexthops))

	// isp2's probes fail: its fwmark rule goes, the group loses it.
	failed := u2
	failed.InBalance, failed.Usable = false, false
	r.InvalidateNexthop(2010000000) // an event about the group, read again
	log.calls = nil
	// The group is made anew at its other ID, the balance route moved to
	// it, and the old copy deleted (altgroup.go).
	reconcileWant(t, r, "failover", Plan(hashThreshold, []Uplink{u1, failed}), 4)
	if len(log.calls) < 3 || log.calls[0] != "delete rule 10002" || !slices.Contains(log.calls, "add nexthop 2010000640") {
		t.Fatalf("failover calls %q, want the rule deleted first, then the group read and made anew", log.calls)
	}

	// Back, and a rule changes at the same time (isp1's connection
	// mark): the old fwmark rule is deleted after the new ones are in.
	moved := pinned(u1, 0x3000000, true)
	log.calls = nil
	reconcileWant(t, r, "mark changed", Plan(hashThreshold, []Uplink{moved, u2}), -1)
	if !slices.Equal(log.calls[len(log.calls)-3:], []string{"add rule 10002", "add rule 10002", "delete rule 10002"}) {
		t.Fatalf("calls %q, want the old fwmark rule deleted after the new ones are added", log.calls)
	}
}
