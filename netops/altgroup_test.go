package netops

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// failingNH fails the creation of one nexthop ID while failID is set, and
// the writes of routes through nexthop objects while failRoutes is.
type failingNH struct {
	NexthopKernel
	failID     uint32
	failRoutes bool
}

func (k *failingNH) NHIDRouteReplace(rt Route) error {
	if k.failRoutes {
		return errors.New("injected failure")
	}
	return k.NexthopKernel.NHIDRouteReplace(rt)
}

func (k *failingNH) NexthopAdd(n NexthopObject, replace bool) error {
	if k.failID != 0 && n.ID == k.failID {
		return errors.New("injected failure")
	}
	return k.NexthopKernel.NexthopAdd(n, replace)
}

// groupAt checks that the balance group is at id, with members, that the
// balance route goes through it, and that its other ID is free.
func groupAt(t *testing.T, ns, what string, id, other uint32, members string) {
	t.Helper()
	if out := ipOut(t, ns, "nexthop", "show", "id", fmt.Sprint(id)); !strings.Contains(out, "group "+members+" ") {
		t.Errorf("%s: nexthop %d is not group %s:\n%s", what, id, members, out)
	}
	if out := ipOut(t, ns, "route", "show", "table", "250"); !strings.Contains(out, fmt.Sprintf("default nhid %d ", id)) {
		t.Errorf("%s: the balance route is not through %d:\n%s", what, id, out)
	}
	if out := ipOut(t, ns, "nexthop", "show"); strings.Contains(out, fmt.Sprintf("id %d ", other)) {
		t.Errorf("%s: nexthop %d left:\n%s", what, other, out)
	}
}

// A hash-threshold group whose members change is made anew at its other
// ID, and the balance route moved to it, never replaced in place; back
// and forth.
func TestAltGroupMoves(t *testing.T) {
	ns, r, _, u1, u2 := lastPlanNS(t)
	const g, alt = 2010000000, 2010000640
	d := Plan(hashThreshold, []Uplink{u1, u2})
	reconcileWant(t, r, "first", d, len(d.Routes)+len(d.Rules)+len(d.Nexthops))
	groupAt(t, ns, "first", g, alt, "2010000001/2010000002,3")

	u2.Weight = 5
	res := reconcileWant(t, r, "weight changed", Plan(hashThreshold, []Uplink{u1, u2}), 3)
	want := fmt.Sprintf("[nexthop id %d group 2010000001/2010000002,5 proto 201 route default nhid %d table 250 proto 201] [nexthop id %d group 2010000001/2010000002,3 proto 201]", alt, alt, g)
	if got := fmt.Sprint(res.Added, " ", res.Removed); got != want {
		t.Errorf("weight changed:\n got %s\nwant %s", got, want)
	}
	groupAt(t, ns, "weight changed", alt, g, "2010000001/2010000002,5")
	reconcileWant(t, r, "unchanged", Plan(hashThreshold, []Uplink{u1, u2}), 0)

	u1.InBalance = false
	reconcileWant(t, r, "isp1 out", Plan(hashThreshold, []Uplink{u1, u2}), 3)
	groupAt(t, ns, "isp1 out", g, alt, "2010000002,5")

	// Changed behind the reconciler's back and named by an event, the
	// group is read again, and moves too.
	ipOut(t, ns, "nexthop", "replace", "id", fmt.Sprint(g), "group", "2010000002,7", "proto", "201")
	r.InvalidateNexthop(g)
	reconcileWant(t, r, "named", Plan(hashThreshold, []Uplink{u1, u2}), 3)
	groupAt(t, ns, "named", alt, g, "2010000002,5")

	// Named but unchanged (as when the kernel took a member out with its
	// carrier, and the plan did too): nothing to do.
	r.InvalidateNexthop(alt)
	reconcileWant(t, r, "named, unchanged", Plan(hashThreshold, []Uplink{u1, u2}), 0)
	groupAt(t, ns, "named, unchanged", alt, g, "2010000002,5")
}

// A restart adopts the group where it is, at either ID; after a crash
// between the two steps of a move, the copy the route does not use goes.
func TestAltGroupAdopted(t *testing.T) {
	ns, r, _, u1, u2 := lastPlanNS(t)
	const g, alt = 2010000000, 2010000640
	d := Plan(hashThreshold, []Uplink{u1, u2})
	reconcileWant(t, r, "first", d, -1)
	u2.Weight = 5
	d = Plan(hashThreshold, []Uplink{u1, u2})
	reconcileWant(t, r, "moved", d, 3)

	fresh := &Reconciler{K: r.K, NH: r.NH, Protocol: 201}
	fresh.EnableCache()
	reconcileWant(t, fresh, "restarted", d, 0)
	groupAt(t, ns, "restarted", alt, g, "2010000001/2010000002,5")

	// A crash after the new copy was made and the route moved.
	ipOut(t, ns, "nexthop", "add", "id", fmt.Sprint(g), "group", "2010000001/2010000002,3", "proto", "201")
	fresh = &Reconciler{K: r.K, NH: r.NH, Protocol: 201}
	fresh.EnableCache()
	// The copy at the group's own ID is taken for where it is; it has the
	// old weights, so the group moves to the other, which has the new
	// ones already: the old copy is deleted, and that is all.
	res := reconcileWant(t, fresh, "half moved", d, 1)
	if want := fmt.Sprintf("[nexthop id %d group 2010000001/2010000002,3 proto 201]", g); fmt.Sprint(res.Removed) != want {
		t.Errorf("half moved: removed %v, want %s", res.Removed, want)
	}
	groupAt(t, ns, "half moved", alt, g, "2010000001/2010000002,5")
	reconcileWant(t, fresh, "converged", d, 0)
}

// failedMove reconciles two uplinks, then changes isp2's weight with the
// kernel failing as fail makes it, and checks that the reconcile says so.
// It returns what the test needs to go on, the failure still on.
func failedMove(t *testing.T, fail func(*failingNH, bool)) (ns string, r *Reconciler, nh *failingNH, d Desired) {
	t.Helper()
	ns, r, _, u1, u2 := lastPlanNS(t)
	nh = &failingNH{NexthopKernel: r.NH}
	r.NH = nh
	reconcileWant(t, r, "first", Plan(hashThreshold, []Uplink{u1, u2}), -1)
	fail(nh, true)
	u2.Weight = 5
	d = Plan(hashThreshold, []Uplink{u1, u2})
	if _, err := r.Reconcile(d); err == nil {
		t.Fatal("no error from the failed write")
	}
	return ns, r, nh, d
}

// A group whose new copy cannot be made stays where it was, routes and
// all, and the next reconcile moves it.
func TestAltGroupCreateFails(t *testing.T) {
	const g, alt = 2010000000, 2010000640
	failCreate := func(nh *failingNH, on bool) {
		nh.failID = 0
		if on {
			nh.failID = alt
		}
	}
	ns, r, nh, d := failedMove(t, failCreate)
	groupAt(t, ns, "failed", g, alt, "2010000001/2010000002,3")
	failCreate(nh, false)
	reconcileWant(t, r, "repaired", d, -1)
	if out := ipOut(t, ns, "route", "show", "table", "250"); !strings.Contains(out, "default nhid") {
		t.Fatalf("no balance route:\n%s", out)
	}
	reconcileWant(t, r, "converged", d, 0)
	out := ipOut(t, ns, "nexthop", "show")
	if strings.Contains(out, "group 2010000001/2010000002,3 ") || strings.Count(out, "group ") != 1 {
		t.Errorf("want one group, with the new weights:\n%s", out)
	}
}

// When the route cannot be moved to the new copy, the old one stays, with
// the route through it; the next reconcile finishes the move.
func TestAltGroupRouteFails(t *testing.T) {
	const g, alt = 2010000000, 2010000640
	failRoutes := func(nh *failingNH, on bool) { nh.failRoutes = on }
	ns, r, nh, d := failedMove(t, failRoutes)
	if out := ipOut(t, ns, "route", "show", "table", "250"); !strings.Contains(out, fmt.Sprintf("default nhid %d ", g)) {
		t.Fatalf("the balance route went with the old copy:\n%s", out)
	}
	failRoutes(nh, false)
	reconcileWant(t, r, "repaired", d, 2) // the route moved, the old copy deleted
	groupAt(t, ns, "repaired", alt, g, "2010000001/2010000002,5")
	reconcileWant(t, r, "converged", d, 0)
}

// A resilient group is replaced in place: its buckets are the flows'
// next hops.
func TestAltGroupNotResilient(t *testing.T) {
	ns, r, _, u1, u2 := lastPlanNS(t)
	s := resilient
	s.LANInterfaces, s.BalanceTable, s.RulePriority, s.RouteProtocol = hashThreshold.LANInterfaces, 250, 10000, 201
	reconcileWant(t, r, "first", Plan(s, []Uplink{u1, u2}), -1)
	u1.InBalance = false
	reconcileWant(t, r, "isp1 out", Plan(s, []Uplink{u1, u2}), 1)
	if out := ipOut(t, ns, "route", "show", "table", "250"); !strings.Contains(out, "default nhid 2010000000 ") {
		t.Errorf("the resilient group moved:\n%s", out)
	}
}

// A foreign object at the alternate ID keeps the group where it is.
func TestAltGroupForeignAlt(t *testing.T) {
	ns, r, _, u1, u2 := lastPlanNS(t)
	const g, alt = 2010000000, 2010000640
	ipOut(t, ns, "nexthop", "add", "id", fmt.Sprint(alt), "blackhole", "proto", "77")
	reconcileWant(t, r, "first", Plan(hashThreshold, []Uplink{u1, u2}), -1)
	u2.Weight = 5
	reconcileWant(t, r, "weight changed", Plan(hashThreshold, []Uplink{u1, u2}), 1)
	if out := ipOut(t, ns, "route", "show", "table", "250"); !strings.Contains(out, fmt.Sprintf("default nhid %d ", g)) {
		t.Errorf("the group moved onto a foreign object's ID:\n%s", out)
	}
	if out := ipOut(t, ns, "nexthop", "show", "id", fmt.Sprint(alt)); !strings.Contains(out, "blackhole") {
		t.Errorf("the foreign object changed:\n%s", out)
	}
}
