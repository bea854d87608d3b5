package netops

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// readCounter counts the reconciler's reads of the kernel.
type readCounter struct {
	Kernel
	NexthopKernel
	routeLists, ruleLists, nhLists, nhGets int
}

func (c *readCounter) RouteListFiltered(family int, f *netlink.Route, mask uint64) ([]netlink.Route, error) {
	c.routeLists++
	return c.Kernel.RouteListFiltered(family, f, mask)
}

func (c *readCounter) RuleList(family int) ([]netlink.Rule, error) {
	c.ruleLists++
	return c.Kernel.RuleList(family)
}

func (c *readCounter) NexthopList() ([]NexthopObject, error) {
	c.nhLists++
	return c.NexthopKernel.NexthopList()
}

func (c *readCounter) NexthopGet(id uint32) (NexthopObject, bool, error) {
	c.nhGets++
	return c.NexthopKernel.NexthopGet(id)
}

func (c *readCounter) reads() string {
	s := fmt.Sprintf("%d table listings, %d rule listings, %d nexthop listings, %d nexthop gets",
		c.routeLists, c.ruleLists, c.nhLists, c.nhGets)
	c.routeLists, c.ruleLists, c.nhLists, c.nhGets = 0, 0, 0, 0
	return s
}

// With the cache, a reconcile reads only what was reported changed, and
// still repairs what the kernel or someone else changed: foreign
// deletions reported by their events, and the nexthop objects the kernel
// deletes without a notification when their link loses carrier, reported
// by the link's event.
func TestReconcileCache(t *testing.T) {
	ns, h, nh := carrierNS(t)
	u1, u2 := inNS(t, h, withCarrier(isp1(true)), withCarrier(isp2(true)))
	s := resilient
	s.Balancer = HashThreshold
	k := &readCounter{Kernel: h, NexthopKernel: nh}
	r := &Reconciler{K: k, NH: k, Protocol: 201}
	r.EnableCache()
	plan := Plan(s, []Uplink{u1, u2})

	reconcile := func(what string, changes int, reads string) {
		t.Helper()
		res, err := r.Reconcile(plan)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if changes >= 0 && res.Changes() != changes {
			t.Errorf("%s: %d changes, want %d: %v", what, res.Changes(), changes, res)
		}
		if got := k.reads(); reads != "" && got != reads {
			t.Errorf("%s: %s, want %s", what, got, reads)
		}
	}
	reconcile("first", len(plan.Nexthops)+len(plan.Routes)+len(plan.Rules), "")
	reconcile("unchanged", 0, "0 table listings, 0 rule listings, 0 nexthop listings, 0 nexthop gets")

	// Echoes of the reconciler's own writes cost a listing of what they
	// name, and change nothing.
	r.InvalidateTable(unix.AF_INET, u1.Table)
	r.InvalidateRules(unix.AF_INET)
	reconcile("echoes", 0, "1 table listings, 1 rule listings, 0 nexthop listings, 0 nexthop gets")

	// Foreign deletions, reported.
	ipOut(t, ns, "route", "del", "default", "table", fmt.Sprint(u1.Table), "proto", "201")
	ipOut(t, ns, "rule", "del", "from", u2.Addr.Addr().String(), "lookup", fmt.Sprint(u2.Table))
	r.InvalidateTable(unix.AF_INET, u1.Table)
	r.InvalidateRules(unix.AF_INET)
	reconcile("foreign deletions", 2, "1 table listings, 1 rule listings, 0 nexthop listings, 0 nexthop gets")

	// Carrier loss and return on eth1: the kernel deleted isp1's nexthop
	// objects, took them out of the group and said nothing. The link's
	// event makes them, the groups and the tables through them dirty.
	// flap takes eth1's carrier away and back (the far side's link down
	// and up), waiting for the router to see each.
	flap := func() {
		t.Helper()
		ipOut(t, ns+"-p", "link", "set", "up1", "down")
		waitUntil(t, "no carrier on eth1", 5*time.Second, func() bool {
			return strings.Contains(ipOut(t, ns, "link", "show", "eth1"), "NO-CARRIER")
		})
		ipOut(t, ns+"-p", "link", "set", "up1", "up")
		waitUntil(t, "carrier on eth1", 5*time.Second, func() bool {
			return !strings.Contains(ipOut(t, ns, "link", "show", "eth1"), "NO-CARRIER")
		})
	}
	flap()
	if out := ipOut(t, ns, "nexthop", "show", "dev", "eth1"); out != "" {
		t.Fatalf("the kernel kept nexthops on eth1 through a carrier loss:\n%s", out)
	}
	r.InvalidateLink(u1.Index)
	reconcile("after a carrier loss", 4, "") // isp1's object; the group made anew at its other ID, the route moved, the old copy
	if out := ipOut(t, ns, "nexthop", "show", "dev", "eth1"); !strings.Contains(out, "proto 201") {
		t.Fatalf("isp1's nexthop objects were not restored:\n%s", out)
	}
	if out := ipOut(t, ns, "route", "show", "table", "250"); !strings.Contains(out, "nhid") {
		t.Fatalf("balance route missing:\n%s", out)
	}
	reconcile("converged", 0, "0 table listings, 0 rule listings, 0 nexthop listings, 0 nexthop gets")

	// With isp1 alone in the balance, its carrier loss empties the group:
	// the kernel deletes the group and the balance route through it too.
	standby := u2
	standby.InBalance = false
	plan = Plan(s, []Uplink{u1, standby})
	reconcile("isp1 alone", 3, "") // the group made anew at its alternate ID, the balance route, the old group
	flap()
	if out := ipOut(t, ns, "route", "show", "table", "250"); out != "" {
		t.Fatalf("the kernel kept the balance route through an empty group:\n%s", out)
	}
	r.InvalidateLink(u1.Index)
	reconcile("after the group went", 3, "") // isp1's object, the group, the balance route
	if out := ipOut(t, ns, "route", "show", "table", "250"); !strings.Contains(out, "nhid") {
		t.Fatalf("balance route not restored:\n%s", out)
	}
	plan = Plan(s, []Uplink{u1, u2})
	reconcile("both again", -1, "")
	reconcile("converged again", 0, "0 table listings, 0 rule listings, 0 nexthop listings, 0 nexthop gets")

	// Events lost: everything is read again, nothing changes.
	r.Invalidate()
	reconcile("after a resync", 0, "")

	// Cleanup reads what it removes, whatever the cache says.
	ipOut(t, ns, "route", "add", "192.0.2.0/24", "dev", "eth2", "table", "77", "proto", "201")
	r.InvalidateTable(unix.AF_INET, 77)
	if _, err := r.Cleanup(); err != nil {
		t.Fatal(err)
	}
	for _, what := range [][]string{{"route", "show", "table", "all"}, {"rule", "show"}, {"nexthop", "show"}} {
		if out := ipOut(t, ns, what...); strings.Contains(out, "proto 201") {
			t.Errorf("left after Cleanup (ip %s):\n%s", strings.Join(what, " "), out)
		}
	}
}

// What the cache enters for a nexthop object it wrote is the form a
// listing gives; for every object Plan makes, of both families and every
// group balancer, it must read as the desired object does, or every
// reconcile would write it again.
func TestCachedNexthopReadsAsWritten(t *testing.T) {
	var objs []NexthopObject
	for _, bal := range []Balancer{HashThreshold, Resilient} {
		s := resilient
		s.Balancer = bal
		objs = append(objs, Plan(s, []Uplink{withCarrier(isp1(true)), withCarrier(isp2(true))}).Nexthops...)
		s6 := s
		s6.Family = V6
		objs = append(objs, Plan(s6, []Uplink{isp6a(true), isp6b(true)}).Nexthops...)
	}
	if len(objs) < 8 {
		t.Fatalf("only %d nexthop objects planned", len(objs))
	}
	c := ownCache{on: true}
	c.reset()
	for _, n := range objs {
		c.wroteNexthop(n)
		if got := c.nexthops[n.ID]; got.String() != n.String() {
			t.Errorf("cached as %s, written %s", got, n)
		}
	}
}
