package test

import (
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 12 acceptance (test/ipv6*_test.go): the dual-stack lab, the real
// binary.

// stopClean stops uplinkd with SIGTERM and fails when anything of its own
// is left in either family (routes, rules, nexthop objects).
func (r *rig) stopClean() {
	r.t.Helper()
	if code := r.stop(syscall.SIGTERM); code != 0 {
		r.t.Fatalf("SIGTERM: exit code %d", code)
	}
	if left := r.ours(); left != "" {
		r.t.Fatalf("left after SIGTERM:\n%s", left)
	}
}

// Failover and recovery: an IPv6 blackhole on isp2 while its IPv4 works
// takes isp2 out of the IPv6 balance only, within IPv4's detection time
// (measured in the same run); the repair brings it back the same way.
func TestIPv6BlackholeOneFamily(t *testing.T) {
	r := newRig6(t, core6Config(""), lab.Options{}, 3*time.Minute)
	r.start()
	r.waitBoth()
	r.waitBoth6()

	// IPv4's detection time, for comparison; IPv6 stays balanced.
	mark := r.mark()
	start := time.Now()
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	d4 := logTime(t, r.waitTransition(mark, "isp2", "probing", 10*time.Second)).Sub(start)
	r.waitOnly("eth1")
	if m, _ := r.members6(); len(m) != 2 {
		t.Fatalf("IPv6 balance %v during an IPv4-only blackhole", m)
	}
	if tr := r.transitions(mark, v6("isp2")); len(tr) != 0 {
		t.Fatalf("IPv6 entity moved on an IPv4-only blackhole: %+v", tr)
	}
	mark = r.mark()
	start = time.Now()
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	b4 := logTime(t, r.waitTransition(mark, "isp2", "active", 15*time.Second)).Sub(start)
	r.waitBoth()

	mark = r.mark()
	start = time.Now()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	line := r.waitTransition(mark, v6("isp2"), "probing", 10*time.Second)
	d6 := logTime(t, line).Sub(start)
	if !silentReason.MatchString(line) {
		t.Fatalf("transition: %s", line)
	}
	r.waitOnly6("eth1")
	if m, _ := r.members(); len(m) != 2 {
		t.Fatalf("IPv4 balance %v during an IPv6-only blackhole", m)
	}
	if tr := r.transitions(mark, "isp2"); len(tr) != 0 {
		t.Fatalf("IPv4 entity moved on an IPv6-only blackhole: %+v", tr)
	}
	// isp2's IPv6 table keeps its default, so its probes keep measuring.
	if tbl := r.table6("200"); !containsAll(tbl, "default via fe80::1 dev eth2") {
		t.Fatalf("IPv6 table 200 while probing:\n%s", tbl)
	}
	u := uplinkFam(t, r.status(), lab.ISP2, "ipv6")
	if u.InBalance || u.State == "active" {
		t.Fatalf("status of isp2's IPv6: %+v", u)
	}
	if u4 := uplinkFam(t, r.status(), lab.ISP2, "ipv4"); u4.State != "active" || !u4.InBalance {
		t.Fatalf("status of isp2's IPv4: %+v", u4)
	}

	mark = r.mark()
	start = time.Now()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	b6 := logTime(t, r.waitTransition(mark, v6("isp2"), "active", 15*time.Second)).Sub(start)
	r.waitBoth6()
	r.waitBoth()
	t.Logf("figure: blackhole detection IPv4 %v, IPv6 %v; recovery IPv4 %v, IPv6 %v (race detector on)",
		d4.Round(time.Millisecond), d6.Round(time.Millisecond), b4.Round(time.Millisecond), b6.Round(time.Millisecond))
	// Same probe settings, same detection: the family adds nothing but
	// the noise of a busy machine.
	if d6 > d4+time.Second {
		t.Errorf("IPv6 detection %v, IPv4 %v: want the same", d6, d4)
	}
	if b6 > b4+2*time.Second {
		t.Errorf("IPv6 recovery %v, IPv4 %v: want the same", b6, b4)
	}
	r.stopClean()
}
