package test

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Acceptance 1: LAN traffic reaches both ISPs, ISP2 about three quarters.
func TestBalanceSplit(t *testing.T) { forBalancers(t, testBalanceSplit) }

func testBalanceSplit(t *testing.T, balancer string) {
	r := newRig(t, coreConfig(balancer))
	r.start()
	r.waitBoth()
	pol, err := r.lab.Exec(r.ctx, lab.Router, "cat", "/proc/sys/net/ipv4/fib_multipath_hash_policy")
	if err != nil || strings.TrimSpace(pol) != "1" {
		t.Fatalf("fib_multipath_hash_policy = %q (%v), want 1 (L4)", pol, err)
	}
	const n = 2000
	split, err := r.lab.Split(r.ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	share := float64(split["eth2"]) / n
	t.Logf("split over %d UDP source ports: %v (eth2 %.1f%%)", n, split, 100*share)
	if split["eth1"] == 0 || share < 0.70 || share > 0.80 || split["eth1"]+split["eth2"] != n {
		t.Fatalf("split %v: want eth2 75%% ± 5%% and the rest on eth1", split)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if pol, _ := r.lab.Exec(r.ctx, lab.Router, "cat", "/proc/sys/net/ipv4/fib_multipath_hash_policy"); strings.TrimSpace(pol) != "0" {
		t.Fatalf("hash policy not restored: %q", pol)
	}
}

// Acceptance 2: carrier loss removes ISP2 on the event; carrier back re-adds
// it after probes pass.
func TestCarrierLoss(t *testing.T) { forBalancers(t, testCarrierLoss) }

func testCarrierLoss(t *testing.T, balancer string) {
	r := newRig(t, coreConfig(balancer))
	r.start()
	r.waitBoth()

	mark := r.mark()
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	line := r.waitTransition(mark, "isp2", "down", 5*time.Second)
	if !strings.Contains(line, `reason="no carrier on eth2"`) {
		t.Fatalf("transition reason: %s", line)
	}
	r.waitOnly("eth1")

	mark = r.mark()
	if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "probing", 5*time.Second)
	if m, _ := r.members(); !slices.Equal(m, []string{"eth1/1"}) {
		t.Fatalf("balance %v: isp2 back before its probes passed", m)
	}
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitBoth()
}

// Acceptance 3: an upstream blackhole (gateway still answers ARP) removes
// ISP2 once its probes are silent; repair re-adds it.
// silentReason is the reason of an uplink that left the balance because
// its probes went silent.
var silentReason = regexp.MustCompile(`no reply for [\d.]+m?s to \d+ probes`)

func TestUpstreamBlackhole(t *testing.T) { forBalancers(t, testUpstreamBlackhole) }

func testUpstreamBlackhole(t *testing.T, balancer string) {
	r := newRig(t, coreConfig(balancer))
	r.start()
	r.waitBoth()

	mark := r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	line := r.waitTransition(mark, "isp2", "probing", 10*time.Second)
	if !silentReason.MatchString(line) {
		t.Fatalf("transition: %s", line)
	}
	r.waitOnly("eth1")
	// The uplink's own table stays, so its probes keep measuring it.
	if tbl := r.table("200"); !strings.Contains(tbl, "default via 203.0.113.1 dev eth2") {
		t.Fatalf("table 200 lost its default while probing:\n%s", tbl)
	}

	mark = r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitBoth()
}

// Acceptance 4: the interface is known by name: delete and re-create,
// rename away and back, re-address.
func TestInterfaceIdentity(t *testing.T) { forBalancers(t, testInterfaceIdentity) }

func testInterfaceIdentity(t *testing.T, balancer string) {
	r := newRig(t, coreConfig(balancer))
	r.start()
	r.waitBoth()
	index := func() string {
		return regexp.MustCompile(`^\d+`).FindString(r.ip(lab.Router, "-o", "link", "show", "eth2"))
	}
	oldIndex := index()

	mark := r.mark()
	if err := r.lab.DeleteRouterLink(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "down", 5*time.Second)
	r.waitOnly("eth1")
	r.waitFor("isp2's rule and table removed", 5*time.Second, func() bool {
		return !strings.Contains(r.ip(lab.Router, "rule"), "203.0.113.2") &&
			r.table("200") == ""
	})

	mark = r.mark()
	if err := r.lab.RecreateRouterLink(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitBoth()
	if newIndex := index(); newIndex == oldIndex {
		t.Fatalf("re-created eth2 kept ifindex %s", oldIndex)
	}

	mark = r.mark()
	if err := r.lab.RenameRouterLink(r.ctx, "eth2", "wan9"); err != nil {
		t.Fatal(err)
	}
	// Renaming takes the link down first; the daemon may see that on its
	// own before the new name, so the reason is checked once it settles.
	r.waitTransition(mark, "isp2", "down", 5*time.Second)
	r.waitFor("isp2 down as missing", 5*time.Second, func() bool {
		return uplinkOf(t, r.status(), lab.ISP2).Reason == "interface eth2 does not exist"
	})
	r.waitOnly("eth1")
	mark = r.mark()
	if err := r.lab.RenameRouterLink(r.ctx, "wan9", "eth2"); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitBoth()

	if err := r.lab.Readdress(r.ctx, lab.ISP2, netip.MustParsePrefix("203.0.113.3/24")); err != nil {
		t.Fatal(err)
	}
	r.waitFor("rules and table 200 follow the new address", 10*time.Second, func() bool {
		rules := r.ip(lab.Router, "rule")
		tbl := r.table("200")
		return strings.Contains(rules, "from 203.0.113.3 lookup 200 proto 201") &&
			!strings.Contains(rules, "from 203.0.113.2 ") &&
			strings.Contains(tbl, "default via 203.0.113.1 dev eth2 proto 201 src 203.0.113.3")
	})
	r.waitBoth()
}

// An uplink whose interface does not exist at startup is simply waited for.
func TestInterfaceMissingAtStartup(t *testing.T) { forBalancers(t, testInterfaceMissingAtStartup) }

func testInterfaceMissingAtStartup(t *testing.T, balancer string) {
	r := newRig(t, coreConfig(balancer))
	if err := r.lab.DeleteRouterLink(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	mark := r.mark()
	r.start()
	r.waitTransition(mark, "isp1", "active", 10*time.Second)
	r.waitOnly("eth1")
	mark = r.mark()
	if err := r.lab.RecreateRouterLink(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitBoth()
}

// Foreign changes to uplinkd's rules and routes are repaired on their event.
func TestForeignChangesRepaired(t *testing.T) { forBalancers(t, testForeignChangesRepaired) }

func testForeignChangesRepaired(t *testing.T, balancer string) {
	r := newRig(t, coreConfig(balancer))
	r.start()
	r.waitBoth()
	want := r.ours()
	r.ip(lab.Router, "rule", "del", "pref", "10099", "iif", "eth0")
	r.ip(lab.Router, "route", "del", "default", "table", "250")
	r.ip(lab.Router, "route", "del", "default", "table", "100")
	r.waitFor("repair", 5*time.Second, func() bool { return r.ours() == want })
	if balancer != "multipath" {
		// Deleting the group takes the route through it along.
		_, group := r.members() // a hash-threshold group may be at its other ID
		r.ip(lab.Router, "nexthop", "del", "id", strconv.Itoa(group))
		r.waitFor("repair of the group", 5*time.Second, func() bool { return atGroupIDs(r.ours()) == atGroupIDs(want) })
		r.ip(lab.Router, "nexthop", "del", "id", strconv.Itoa(r.nexthopOf("eth2")))
		r.waitFor("repair of isp2's nexthop", 5*time.Second, func() bool { return atGroupIDs(r.ours()) == atGroupIDs(want) })
	}
}

// Acceptance 5: SIGTERM removes everything and leaves main alone; kill -9
// then restart adopts the state without duplicates.
func TestStopAndRestart(t *testing.T) { forBalancers(t, testStopAndRestart) }

func testStopAndRestart(t *testing.T, balancer string) {
	r := newRig(t, coreConfig(balancer))
	mainBefore := r.ip(lab.Router, "route", "show", "table", "main")
	rulesBefore := r.ip(lab.Router, "rule")
	tables := func() string { return r.ip(lab.Router, "route", "show", "table", "all", "proto", "201") }

	r.start()
	r.waitBoth()
	converged := r.ours()
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	if left := tables(); left != "" {
		t.Fatalf("routes left after SIGTERM:\n%s", left)
	}
	if rules := r.ip(lab.Router, "rule"); rules != rulesBefore {
		t.Fatalf("rules after SIGTERM:\n%s\nbefore:\n%s", rules, rulesBefore)
	}
	if m := r.ip(lab.Router, "route", "show", "table", "main"); m != mainBefore {
		t.Fatalf("main table changed:\n%s\nbefore:\n%s", m, mainBefore)
	}

	r.start()
	r.waitBoth()
	if code := r.stop(syscall.SIGKILL); code != -1 && code != 137 {
		t.Logf("SIGKILL exit code %d", code)
	}
	// The balance group is at either of its IDs, as the uplinks' order of
	// coming up made it.
	if left := r.ours(); atGroupIDs(left) != atGroupIDs(converged) {
		t.Fatalf("state after kill -9 differs from the converged one:\n%s\nwant:\n%s", left, converged)
	}
	mark := r.mark()
	r.start()
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitBoth()
	got := r.ours()
	if atGroupIDs(got) != atGroupIDs(converged) {
		t.Fatalf("after restart:\n%s\nwant:\n%s", got, converged)
	}
	lines := strings.Split(got, "\n")
	sorted := slices.Clone(lines)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(lines) {
		t.Fatalf("duplicates after restart:\n%s", got)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if left := r.ours(); left != "" {
		t.Fatalf("left after final stop:\n%s", left)
	}
}
