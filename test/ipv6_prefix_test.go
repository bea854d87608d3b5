package test

import (
	"context"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// Issue 12: per-ISP LAN prefixes (lan_prefix6), gateways from router
// advertisements, prefix-only WAN links.

// sendFlows6 sends n datagrams on each of flows UDP flows (source ports
// 20000...) from src in the LAN host to Target6_1:dport, from sockets the
// test opens in the host's namespace.
func (r *rig) sendFlows6(src netip.Addr, dport uint16, flows, n int) {
	r.t.Helper()
	var conns []*net.UDPConn
	err := r.lab.InNS(lab.Host, func() error {
		for f := range flows {
			c, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(20000+f))))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		r.t.Fatalf("UDP sockets from %s: %v", src, err)
	}
	dst := netip.AddrPortFrom(lab.Target6_1, dport)
	for range n {
		for _, c := range conns {
			// Errors (unreachable) are expected while a prefix's ISP is down.
			_, _ = c.WriteToUDPAddrPort([]byte("uplinkd ipv6 test"), dst)
		}
	}
}

// counts reads the lab's packet counters.
func (r *rig) counts() map[string]map[string]uint64 {
	r.t.Helper()
	c, err := r.lab.Counts()
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// waitCountsEqual waits until every counter of want has exactly its value
// (name -> namespace -> packets), and fails with what the counters say.
func (r *rig) waitCountsEqual(what string, want map[string]map[string]uint64) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := r.counts()
		ok := true
		for name, per := range want {
			for ns, n := range per {
				ok = ok && got[name][ns] == n
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: counters %v, want %v\nIPv6 rules and routes:\n%s", what, got, want, r.ours6())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Source prefixes: a LAN host with an address from each ISP's delegated
// prefix keeps each source on its own ISP throughout, measured with real
// packets at the ISPs (which drop sources that are not theirs, BCP 38):
// while both are up; while isp2 has no carrier (its table holds
// unreachable default); while isp2's IPv6 is blackholed (its sources go
// nowhere, never through isp1); and after each recovery.
func TestIPv6SourcePrefixes(t *testing.T) {
	r := newRig6(t, withLANPrefixes(health6Config()), lab.Options{}, 3*time.Minute)
	if err := r.lab.EnableIngressFilter6(); err != nil {
		t.Fatal(err)
	}
	const dport = 7001
	if err := r.lab.AddCounts(
		lab.Count{Name: "p1", Src: lab.ISP1LANPrefix6, DPort: dport},
		lab.Count{Name: "p2", Src: lab.ISP2LANPrefix6, DPort: dport},
	); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.waitBoth()
	r.waitBoth6()
	rules := strings.Join(r.rules6(), "\n")
	for _, want := range []string{"from 2001:db8:1100::/64 lookup 100", "from 2001:db8:2200::/64 lookup 200"} {
		if !strings.Contains(rules, want) {
			t.Fatalf("no rule %q:\n%s", want, rules)
		}
	}

	const flows, n = 8, 10
	total := map[string]map[string]uint64{
		"p1": {lab.ISP1: 0, lab.ISP2: 0, lab.Inet: 0},
		"p2": {lab.ISP1: 0, lab.ISP2: 0, lab.Inet: 0},
	}
	// phase sends isp2's prefix's flows, then isp1's, and checks where
	// they went. p2Out says whether isp2's sources reach isp2 (and the
	// Internet) now; they never reach isp1.
	phase := func(what string, p2Out bool) {
		t.Helper()
		r.sendFlows6(lab.HostAddr6ISP2, dport, flows, n)
		r.sendFlows6(lab.HostAddr6ISP1, dport, flows, n)
		total["p1"][lab.ISP1] += flows * n
		total["p1"][lab.Inet] += flows * n
		if p2Out {
			total["p2"][lab.ISP2] += flows * n
			total["p2"][lab.Inet] += flows * n
		}
		r.waitCountsEqual(what, total)
		t.Logf("%s: counters %v", what, r.counts())
	}
	phase("both ISPs up", true)

	mark := r.mark()
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "down", 30*time.Second)
	r.waitFor("unreachable default in isp2's IPv6 table", 30*time.Second, func() bool {
		return strings.Contains(r.table6("200"), "unreachable default")
	})
	if !strings.Contains(strings.Join(r.rules6(), "\n"), "from 2001:db8:2200::/64 lookup 200") {
		t.Fatalf("isp2's prefix rule went with its carrier:\n%s", r.ours6())
	}
	phase("isp2 without carrier", false)

	mark = r.mark()
	if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitBoth6()
	phase("carrier back", true)

	mark = r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "probing", 30*time.Second)
	r.waitOnly6("eth1")
	// Probing isp2 still routes its own sources to isp2 (where they are
	// dropped upstream): count them at isp2, not at the Internet.
	before := r.counts()["p2"][lab.ISP2]
	r.sendFlows6(lab.HostAddr6ISP2, dport, flows, n)
	r.sendFlows6(lab.HostAddr6ISP1, dport, flows, n)
	total["p1"][lab.ISP1] += flows * n
	total["p1"][lab.Inet] += flows * n
	// Unreachable (none counted) or to isp2 (every one of them): both
	// fine. The first one counted says which; then all must come, however
	// late the kernel forwards them on a busy machine.
	deadline := time.Now().Add(10 * time.Second)
	for r.counts()["p2"][lab.ISP2] == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if r.counts()["p2"][lab.ISP2] != before {
		total["p2"][lab.ISP2] = before + flows*n
	}
	r.waitCountsEqual("isp2's IPv6 blackholed", total)

	mark = r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitBoth6()
	phase("blackhole repaired", true)
	r.stopClean()
}

// Gateway from RA: gateway6 = "auto" on isp2 learns the default route radvd
// (real software, in isp2's namespace) makes the router install, with
// accept_ra = 2 on the uplink (no warning then); a zero-lifetime RA takes
// isp2's IPv6 out, a new RA brings it back; uplinkd never touches the RA
// route in main.
func TestIPv6GatewayFromRA(t *testing.T) {
	testutil.RequireTool(t, "radvd")
	config := strings.Replace(health6Config(), "interface = \"eth2\"\ngateway = \"203.0.113.1\"\ngateway6 = \"fe80::1\"",
		"interface = \"eth2\"\ngateway = \"203.0.113.1\"\ngateway6 = \"auto\"", 1)
	if !strings.Contains(config, `gateway6 = "auto"`) {
		t.Fatalf("configuration:\n%s", config)
	}
	r := newRig6(t, config, lab.Options{}, 3*time.Minute)
	mark := r.mark()
	r.start()
	r.waitBoth()
	r.waitOnly6("eth1")
	if u := uplinkFam(t, r.status(), lab.ISP2, "ipv6"); u.State != "down" || !strings.Contains(u.Reason, "router advertisement") {
		t.Fatalf("isp2's IPv6 without RAs: %s: %s", u.State, u.Reason)
	}

	ra, err := r.lab.StartRADVD(r.ctx, lab.ISP2, r.dir, lab.DefaultRA)
	if err != nil {
		t.Fatal(err)
	}
	// radvd advertises at once, then every 3 to 4 seconds.
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitBoth6()
	if tbl := r.table6("200"); !strings.Contains(tbl, "default via fe80::1 dev eth2") {
		t.Fatalf("IPv6 table 200 with the RA's gateway:\n%s", tbl)
	}
	if u := uplinkFam(t, r.status(), lab.ISP2, "ipv6"); !strings.HasPrefix(u.Gateway, "fe80::1") {
		t.Fatalf("isp2's IPv6 gateway %q, want fe80::1", u.Gateway)
	}
	if b := r.logSince(mark); strings.Contains(b, "accept_ra") {
		t.Fatalf("accept_ra warning with accept_ra = 2:\n%s", b)
	}

	mark = r.mark()
	if err := ra.Set(lab.RA{}); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "down", 30*time.Second)
	r.waitOnly6("eth1")
	r.waitBoth()

	mark = r.mark()
	if err := ra.Set(lab.DefaultRA); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitBoth6()
	r.stopClean()
	if m := r.ip(lab.Router, "-6", "route", "show", "default", "proto", "ra"); !strings.Contains(m, "via fe80::1 dev eth2") {
		t.Fatalf("the RA's route in main after uplinkd stopped: %q", m)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	if err := ra.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// The warning when the kernel would ignore the RAs gateway6 = "auto"
// waits for (forwarding on, accept_ra below 2).
func TestIPv6AcceptRAWarning(t *testing.T) {
	config := strings.Replace(health6Config(), "gateway6 = \"fe80::1\"\nweight = 3", "gateway6 = \"auto\"\nweight = 3", 1)
	r := newRig6(t, config, lab.Options{}, time.Minute)
	if _, err := r.lab.Exec(r.ctx, lab.Router, "sysctl", "-q", "-w", "net.ipv6.conf.eth2.accept_ra=1"); err != nil {
		t.Fatal(err)
	}
	mark := r.mark()
	r.start()
	r.waitLog(mark, regexp.MustCompile(`level=WARN .*accept_ra.*eth2|level=WARN .*eth2.*accept_ra`), 30*time.Second)
	r.stopClean()
}

// Prefix-only WAN: isp2's interface has only its link-local address; the
// uplink probes and routes from the router's address of its lan_prefix6
// (source6 auto), counted at isp2.
func TestIPv6PrefixOnlyWAN(t *testing.T) {
	r := newRig6(t, withLANPrefixes(health6Config()), lab.Options{PrefixOnlyISP2: true}, 3*time.Minute)
	const dport = 7002
	if err := r.lab.AddCounts(
		lab.Count{Name: "router", Src: netip.PrefixFrom(lab.RouterLANAddr6ISP2, 128)}, // its probes
		lab.Count{Name: "host", Src: lab.ISP2LANPrefix6, DPort: dport},
	); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.waitBoth()
	r.waitBoth6()
	u := uplinkFam(t, r.status(), lab.ISP2, "ipv6")
	if u.Address != prefixAddr(lab.RouterLANAddr6ISP2) || u.State != "active" {
		t.Fatalf("isp2's IPv6: address %q state %s (%s), want %s active", u.Address, u.State, u.Reason, prefixAddr(lab.RouterLANAddr6ISP2))
	}
	if tbl := r.table6("200"); !strings.Contains(tbl, "default via fe80::1 dev eth2") || !strings.Contains(tbl, "src 2001:db8:2200::1") {
		t.Fatalf("IPv6 table 200 of a prefix-only uplink:\n%s", tbl)
	}
	c := r.counts()
	if c["router"][lab.ISP2] == 0 || c["router"][lab.ISP1] != 0 {
		t.Fatalf("packets from 2001:db8:2200::1 (the probes) per ISP: %v", c["router"])
	}
	r.sendFlows6(lab.HostAddr6ISP2, dport, 4, 10)
	r.waitCountsEqual("the host's isp2 prefix", map[string]map[string]uint64{"host": {lab.ISP2: 40, lab.ISP1: 0, lab.Inet: 40}})

	// A blackhole is seen by probes from that source.
	mark := r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "probing", 30*time.Second)
	r.waitOnly6("eth1")
	mark = r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	r.waitBoth6()
	r.stopClean()
}
