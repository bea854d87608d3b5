package test

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 12 acceptance (test/ipv6*_test.go): the dual-stack lab, the real
// binary.

// stopClean stops uplinkd with SIGTERM and fails when anything of its own
// is left in either family (routes, rules, nexthop objects) or a multipath
// hash policy was not restored (the lab's are 0).
func (r *rig) stopClean() {
	r.t.Helper()
	if code := r.stop(syscall.SIGTERM); code != 0 {
		r.t.Fatalf("SIGTERM: exit code %d", code)
	}
	if left := r.ours(); left != "" {
		r.t.Fatalf("left after SIGTERM:\n%s", left)
	}
	for _, f := range []string{"ipv4", "ipv6"} {
		if p := r.hashPolicyOf(f); p != "0" {
			r.t.Fatalf("net.%s.fib_multipath_hash_policy %s after SIGTERM, want 0 back", f, p)
		}
	}
}

// hashPolicyOf reads net.<family>.fib_multipath_hash_policy in the router.
func (r *rig) hashPolicyOf(family string) string {
	r.t.Helper()
	out, err := r.lab.Exec(r.ctx, lab.Router, "cat", "/proc/sys/net/"+family+"/fib_multipath_hash_policy")
	if err != nil {
		r.t.Fatalf("%v: %s", err, out)
	}
	return strings.TrimSpace(out)
}

// Failover and recovery: an IPv6 blackhole on isp2 while its IPv4 works
// takes isp2 out of the IPv6 balance only, within IPv4's detection time
// (measured in the same run); the repair brings it back the same way.
func TestIPv6BlackholeOneFamily(t *testing.T) {
	r := newRig6(t, core6Config(""), lab.Options{}, 3*time.Minute)
	r.start()
	r.waitBoth()
	r.waitBoth6()
	// IPv6 hashes with policy 3 and explicit fields, never 0 (the flow
	// label, which Linux changes on a TCP retransmission timeout).
	if p := r.hashPolicyOf("ipv6"); p != "3" {
		t.Fatalf("net.ipv6.fib_multipath_hash_policy %s while running, want 3", p)
	}
	if out, _ := r.lab.Exec(r.ctx, lab.Router, "cat", "/proc/sys/net/ipv6/fib_multipath_hash_fields"); strings.TrimSpace(out) == "0x0000" || strings.TrimSpace(out) == "0" {
		t.Fatalf("net.ipv6.fib_multipath_hash_fields %q", out)
	}

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
	// the noise of a busy machine. Recovery takes whole rounds, and the
	// two families' rounds need not be in step: one interval (500ms) more.
	if d6 > d4+300*time.Millisecond {
		t.Errorf("IPv6 detection %v, IPv4 %v: want the same", d6, d4)
	}
	if b6 > b4+500*time.Millisecond {
		t.Errorf("IPv6 recovery %v, IPv4 %v: want the same", b6, b4)
	}
	r.stopClean()
}

// Independent families: an IPv6-only failure of isp2 flushes isp2's IPv6
// pins only. The IPv4 connections (TCP and UDP under masquerade) keep
// their uplink and are neither reset nor moved, isp2's IPv4 fwmark rule
// stays; the IPv6 flows pinned to isp2 (under NAT66) restart on isp1.
func TestIPv6FailureKeepsIPv4Pinned(t *testing.T) {
	r := newRig6(t, core6Config(""), lab.Options{}, 3*time.Minute)
	if err := r.lab.EnableNAT(r.ctx, lab.Masquerade); err != nil {
		t.Fatal(err)
	}
	if err := r.lab.EnableNAT66(); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.waitBoth()
	r.waitBoth6()
	flows4, err := r.lab.StartFlows(r.ctx, lab.FlowOptions{TCP: 16, UDP: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer flows4.Close()
	flows6, err := r.lab.StartFlows(r.ctx, lab.FlowOptions{UDP: 16, TCP: 0, Target: lab.Target6_1})
	if err != nil {
		t.Fatal(err)
	}
	defer flows6.Close()
	before4 := r.waitFlows(flows4, 32).Uplinks("")
	before6 := r.waitFlows(flows6, 16).Uplinks("udp")
	if before4[lab.ISP2] == 0 || before6[lab.ISP2] == 0 {
		t.Fatalf("flows by uplink: IPv4 %v, IPv6 %v: want some on isp2 in both", before4, before6)
	}
	isp2Mark6 := regexp.MustCompile(`fwmark .* lookup 200 `)
	if rules := strings.Join(r.rules6(), "\n"); !isp2Mark6.MatchString(rules) {
		t.Fatalf("no IPv6 fwmark rule of isp2:\n%s", rules)
	}

	mark := r.mark()
	down := time.Now()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "probing", 10*time.Second)
	r.waitLog(mark, regexp.MustCompile(`msg="conntrack entries flushed" uplink=isp2 family=ipv6 `), 5*time.Second)
	r.waitOnly6("eth1")
	r.waitFor("every IPv6 flow on isp1", 15*time.Second, func() bool {
		return flows6.Snapshot().Uplinks("udp")[lab.ISP1] == 16
	})
	if strings.Contains(r.logSince(mark), "uplink=isp2 family=ipv4") {
		t.Fatalf("isp2's IPv4 connections were flushed:\n%s", r.logSince(mark))
	}
	if got := r.fwmarkRules(); len(got) != 2 {
		t.Fatalf("IPv4 fwmark rules during an IPv6-only failure: %v", got)
	}
	if rules := strings.Join(r.rules6(), "\n"); isp2Mark6.MatchString(rules) {
		t.Fatalf("isp2's IPv6 fwmark rule stayed while its IPv6 is down:\n%s", rules)
	}
	s := flows4.Snapshot()
	if moved := s.MovedAfter(down); len(moved) > 0 {
		t.Errorf("%d IPv4 flows moved on an IPv6-only failure, first %+v", len(moved), moved[0])
	}
	for _, f := range s.Flows {
		if f.Resets > 0 || f.Reconnects > 0 || f.Hung() {
			t.Errorf("IPv4 flow %d (%s on %s): %d resets, %d reconnects, hung %v", f.Flow, f.Proto, f.Uplink, f.Resets, f.Reconnects, f.Hung())
		}
	}
	if after := s.Uplinks(""); after[lab.ISP1] != before4[lab.ISP1] || after[lab.ISP2] != before4[lab.ISP2] {
		t.Errorf("IPv4 flows by uplink %v, before %v", after, before4)
	}
	t.Logf("IPv4 flows by uplink before and after isp2's IPv6 failed: %v; IPv6 flows %v -> %v",
		before4, before6, flows6.Snapshot().Uplinks("udp"))

	mark = r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 15*time.Second)
	r.waitBoth6()
	flows4.Close()
	flows6.Close()
	r.stopClean()
}
