package test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// An uplink with IPv6 only (gateway6, no gateway): isp2 of the dual-stack
// lab without its IPv4 side. uplinkd installs nothing of isp2 in IPv4 and
// shows no IPv4 entry for it; an IPv6 blackhole on isp2 takes it out of
// the IPv6 balance (as `uplinkd explain` of an IPv6 flow says) and the
// repair brings it back; kill -9 and a restart adopt the state unchanged;
// a reload adds an IPv4 side and removes it again; SIGTERM leaves nothing
// in either family and restores both hash policies.
func TestIPv6OnlyUplink(t *testing.T) {
	config := strings.Replace(health6Config(), "gateway = \"203.0.113.1\"\n", "", 1)
	if strings.Contains(config, "203.0.113.1") {
		t.Fatal("isp2 still has its IPv4 gateway in the configuration")
	}
	r := newRig6(t, config, lab.Options{}, 3*time.Minute)
	r.start()
	r.waitOnly("eth1")
	r.waitBoth6()

	s := r.status()
	var entries []string
	for _, u := range s.Uplinks {
		entries = append(entries, u.Name+"/"+u.Family)
	}
	if got := strings.Join(entries, " "); got != "isp1/ipv4 isp1/ipv6 isp2/ipv6" {
		t.Fatalf("status entries: %s", got)
	}
	if tbl := r.table("200"); tbl != "" {
		t.Fatalf("IPv4 table 200 of an IPv6-only uplink:\n%s", tbl)
	}
	if tbl := r.table6("200"); !containsAll(tbl, "default via fe80::1 dev eth2") {
		t.Fatalf("IPv6 table 200:\n%s", tbl)
	}
	for _, l := range strings.Split(r.ip(lab.Router, "rule"), "\n") {
		if strings.Contains(l, "proto 201") && (strings.Contains(l, "lookup 200") || strings.Contains(l, "203.0.113.")) {
			t.Fatalf("IPv4 rule for isp2: %s", l)
		}
	}

	mark := r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	if line := r.waitTransition(mark, v6("isp2"), "probing", 10*time.Second); !silentReason.MatchString(line) {
		t.Fatalf("transition: %s", line)
	}
	r.waitOnly6("eth1")
	if m, _ := r.members(); len(m) != 1 || m[0] != "eth1/1" {
		t.Fatalf("IPv4 balance %v during isp2's IPv6 blackhole", m)
	}
	// uplinkd explain follows IPv6 flows with the policy's IPv6 state.
	if via, out := r.explain("2001:db8:ffff::1"); via != "uplink isp1" || !strings.Contains(out, "policy   default (IPv6): tier 1 of 1 in use (isp1 100%)") {
		t.Fatalf("explain of an IPv6 flow while isp2's IPv6 is down: %q\n%s", via, out)
	}
	mark = r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 15*time.Second)
	r.waitBoth6()
	if tr := r.transitions(0, "isp2"); len(tr) != 0 {
		t.Fatalf("transitions of an IPv4 side isp2 does not have: %+v", tr)
	}

	// kill -9 leaves the state; the restart adopts it without a change.
	converged := r.ours()
	r.stop(syscall.SIGKILL)
	mark = r.mark()
	r.start()
	r.waitTransition(mark, v6("isp2"), "active", 15*time.Second)
	r.waitOnly("eth1")
	r.waitBoth6()
	if got := r.ours(); atGroupIDs(got) != atGroupIDs(converged) {
		t.Fatalf("after kill -9 and restart:\n%s\nwant:\n%s", got, converged)
	}

	// A reload giving isp2 its gateway gives it an IPv4 side; taking it
	// away again removes that side's objects, and IPv6 stays balanced.
	r.writeConfig(health6Config())
	if out, stderr, code := r.uplinkd("reload", "--socket", r.socket); code != 0 {
		t.Fatalf("reload adding isp2's gateway: exit %d\n%s%s", code, out, stderr)
	}
	r.waitBoth()
	r.waitBoth6()
	r.writeConfig(config)
	if out, stderr, code := r.uplinkd("reload", "--socket", r.socket); code != 0 {
		t.Fatalf("reload removing isp2's gateway: exit %d\n%s%s", code, out, stderr)
	}
	r.waitOnly("eth1")
	r.waitBoth6()
	r.waitFor("isp2's IPv4 table gone", 5*time.Second, func() bool { return r.table("200") == "" })
	r.stopClean()
}
