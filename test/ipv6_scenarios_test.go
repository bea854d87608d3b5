package test

import (
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 12, every existing scenario with IPv6: carrier loss, blackhole,
// re-creation, rename, kill -9 and restart, reload, each in a dual-stack
// lab where both uplinks have both families. Every case ends with both
// families of both uplinks balanced again and nothing of uplinkd left in
// either family after SIGTERM.
func TestIPv6Scenarios(t *testing.T) {
	for _, sc := range []struct {
		name string
		run  func(t *testing.T, r *rig)
	}{
		{"carrier loss", ipv6CarrierLoss},
		{"blackhole", ipv6Blackhole},
		{"re-creation", ipv6Recreate},
		{"rename", ipv6Rename},
		{"kill -9 and restart", ipv6Restart},
		{"reload", ipv6Reload},
	} {
		t.Run(sc.name, func(t *testing.T) {
			r := newRig6(t, core6Config(""), lab.Options{}, 3*time.Minute)
			r.start()
			r.waitBoth()
			r.waitBoth6()
			sc.run(t, r)
			r.waitBoth()
			r.waitBoth6()
			r.stopClean()
		})
	}
}

// Carrier loss: both families of isp2 leave the balance on the event
// itself, with the carrier as their reason; carrier back brings both back
// once their probes pass.
func ipv6CarrierLoss(t *testing.T, r *rig) {
	mark := r.mark()
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"isp2", v6("isp2")} {
		line := r.waitTransition(mark, e, "down", 30*time.Second)
		if !strings.Contains(line, `reason="no carrier on eth2"`) {
			t.Fatalf("%s: %s", e, line)
		}
	}
	r.waitOnly("eth1")
	r.waitOnly6("eth1")
	mark = r.mark()
	if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitTransition(mark, "isp2", "active", 30*time.Second)
}

// Blackhole of both families: each leaves its own balance because its own
// probes go silent; repair brings both back.
func ipv6Blackhole(t *testing.T, r *rig) {
	mark := r.mark()
	if err := r.lab.BlackholeFamilies(r.ctx, lab.ISP2, true, true, true); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"isp2", v6("isp2")} {
		if line := r.waitTransition(mark, e, "probing", 30*time.Second); !silentReason.MatchString(line) {
			t.Fatalf("%s: %s", e, line)
		}
	}
	r.waitOnly("eth1")
	r.waitOnly6("eth1")
	mark = r.mark()
	if err := r.lab.BlackholeFamilies(r.ctx, lab.ISP2, true, true, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "active", 30*time.Second)
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
}

// isp2Objects6 says whether the router has any IPv6 rule or route of
// uplinkd for isp2 (its address, table 200).
func (r *rig) isp2Objects6() bool {
	o := r.ours6()
	return strings.Contains(o, "2001:db8:a2::2") || strings.Contains(o, "table 200")
}

// Re-creation: deleting eth2 takes both families down and removes isp2's
// IPv6 rules and table; the re-created interface (new ifindex) brings
// them back.
func ipv6Recreate(t *testing.T, r *rig) {
	mark := r.mark()
	if err := r.lab.DeleteRouterLink(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "down", 30*time.Second)
	r.waitTransition(mark, v6("isp2"), "down", 30*time.Second)
	r.waitOnly6("eth1")
	r.waitFor("isp2's IPv6 rules and table removed", 30*time.Second, func() bool {
		return !r.isp2Objects6() && r.table6("200") == ""
	})
	mark = r.mark()
	if err := r.lab.RecreateRouterLink(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitBoth6()
	if tbl := r.table6("200"); !strings.Contains(tbl, "default via fe80::1 dev eth2") {
		t.Fatalf("IPv6 table 200 after re-creation:\n%s", tbl)
	}
}

// Rename: eth2 renamed away takes both families down (the interface is
// missing), renamed back brings them back.
func ipv6Rename(t *testing.T, r *rig) {
	mark := r.mark()
	if err := r.lab.RenameRouterLink(r.ctx, "eth2", "wan9"); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "down", 30*time.Second)
	r.waitFor("isp2's IPv6 down as missing", 30*time.Second, func() bool {
		return uplinkFam(t, r.status(), lab.ISP2, "ipv6").Reason == "interface eth2 does not exist"
	})
	r.waitOnly6("eth1")
	r.waitOnly("eth1")
	mark = r.mark()
	if err := r.lab.RenameRouterLink(r.ctx, "wan9", "eth2"); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitTransition(mark, "isp2", "active", 30*time.Second)
}

// kill -9 leaves both families' state as it was; the restart adopts it
// without a change or a duplicate.
func ipv6Restart(t *testing.T, r *rig) {
	converged := r.ours()
	if !strings.Contains(converged, "2001:db8:a2::2") || !strings.Contains(converged, "fe80::1") {
		t.Fatalf("no IPv6 state of uplinkd:\n%s", converged)
	}
	r.stop(syscall.SIGKILL)
	if left := r.ours(); atGroupIDs(left) != atGroupIDs(converged) {
		t.Fatalf("state after kill -9 differs from the converged one:\n%s\nwant:\n%s", left, converged)
	}
	mark := r.mark()
	r.start()
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitBoth()
	r.waitBoth6()
	got := r.ours()
	if atGroupIDs(got) != atGroupIDs(converged) {
		t.Fatalf("after restart:\n%s\nwant:\n%s", got, converged)
	}
	lines := strings.Split(got, "\n")
	if sorted := slices.Compact(slices.Sorted(slices.Values(lines))); len(sorted) != len(lines) {
		t.Fatalf("duplicates after restart:\n%s", got)
	}
}

// Reload: a weight applies to both families; removing isp2's gateway6
// removes its IPv6 entity and objects and leaves its IPv4 alone; putting
// it back restores them.
func ipv6Reload(t *testing.T, r *rig) {
	reload := func(config, what string) {
		t.Helper()
		r.writeConfig(config)
		out, stderr, code := r.uplinkd("reload", "--socket", r.socket)
		if code != 0 || !strings.HasPrefix(out, "reloaded:") {
			t.Fatalf("uplinkd reload (%s): exit %d\n%s%s", what, code, out, stderr)
		}
	}
	reload(strings.Replace(core6Config(""), "weight = 3", "weight = 1", 1), "weight 3 -> 1")
	r.waitMembers("eth1/1", "eth2/1")
	r.waitMembers6("eth1/1", "eth2/1")

	before := uplinkFam(t, r.status(), lab.ISP2, "ipv4")
	noV6 := regexp.MustCompile(`(interface = "eth2"\n(?:.*\n)*?)gateway6 = "fe80::1"\n`).ReplaceAllString(core6Config(""), "$1")
	if strings.Count(noV6, "gateway6") != 1 {
		t.Fatalf("configuration without isp2's gateway6:\n%s", noV6)
	}
	reload(noV6, "isp2 without gateway6")
	r.waitOnly6("eth1")
	r.waitFor("isp2's IPv6 objects removed", 30*time.Second, func() bool { return !r.isp2Objects6() })
	for _, u := range r.status().Uplinks {
		if u.Name == lab.ISP2 && u.Family == "ipv6" {
			t.Fatalf("isp2 still has an IPv6 entry: %+v", u)
		}
	}
	if after := uplinkFam(t, r.status(), lab.ISP2, "ipv4"); after.State != "active" || !after.Since.Equal(before.Since) {
		t.Fatalf("isp2's IPv4 changed on the reload: %+v -> %+v", before, after)
	}
	r.waitBoth()

	mark := r.mark()
	reload(core6Config(""), "back to the start")
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
}
