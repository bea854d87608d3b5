package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
)

// v6onlyUplinks: isp1 dual-stack, isp2 with IPv6 only (gateway6, no
// gateway).
const v6onlyUplinks = `[probe]
targets = ["198.18.0.1"]
targets6 = ["2001:db8:ffff::1"]
[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
gateway6 = "fe80::1%eth1"
table = 100
[[uplink]]
name = "isp2"
interface = "eth2"
gateway6 = "fe80::1"
source6 = "2001:db8:2::10"
table = 200
`

// An uplink with IPv6 only has no IPv4 side: no IPv4 entity, state,
// routes, rules or status entry; its IPv6 side is planned like any other.
func TestIPv6OnlyUplink(t *testing.T) {
	d := quietDaemon(t, v6onlyUplinks)
	d.sysctl = nil
	isp1, isp2 := d.uplinks[0], d.uplinks[1]
	var labels []string
	for _, u := range d.entities() {
		labels = append(labels, u.label())
	}
	if got := strings.Join(labels, " "); got != "isp1 isp1/ipv6 isp2/ipv6" {
		t.Fatalf("entities: %s", got)
	}
	if n := len(d.familyEntities(ipv4)); n != 1 {
		t.Fatalf("IPv4 entities: %d, want isp1 alone", n)
	}

	snap := dualSnapshot()
	snap.Addrs = append(snap.Addrs, events.Addr{Index: 4, Prefix: pfx("2001:db8:2::10/64")})
	d.observe(snap, nil)
	if isp2.m.State() != fsm.Down || isp2.addr.IsValid() || isp2.prober != nil {
		t.Fatalf("isp2's IPv4 side moved: %s %v", isp2.m.State(), isp2.addr)
	}
	// Pinning and the event filter know isp2's link all the same.
	if isp2.link == nil || isp2.link.Index != 4 || !slices.Contains(d.eventFilter().Indexes, 4) {
		t.Fatalf("isp2's link %+v, event filter %+v", isp2.link, d.eventFilter())
	}
	if isp2.v6.m.State() != fsm.Probing || isp2.v6.addr != pfx("2001:db8:2::10/64") {
		t.Fatalf("isp2/ipv6: %s %v (%s)", isp2.v6.m.State(), isp2.v6.addr, isp2.v6.m.Reason())
	}
	for _, u := range []*uplink{isp1, isp1.v6, isp2.v6} {
		u.m.LinkUp("usable", time.Now())
		for range d.cfg.Probe.UpAfter {
			u.m.ProbeRound(true, fsm.Quality{}, time.Now())
		}
	}

	// Pinning marks every uplink's connections; the plan has no IPv4
	// route or rule for isp2, and an IPv6 default in its table.
	all := d.inputs()
	in := d.only4(all)
	if len(all) != 2 || len(in) != 1 || in[0].Name != "isp1" {
		t.Fatalf("inputs: %d for pinning, IPv4 %+v", len(all), in)
	}
	plan := netops.PlanAll(d.settings(), in, d.inputs6())
	for _, r := range plan.Routes {
		if r.Family != netops.V6 && r.Table == 200 {
			t.Errorf("IPv4 route in isp2's table: %+v", r)
		}
	}
	for _, r := range plan.Rules {
		if r.Family != netops.V6 && r.Table == 200 {
			t.Errorf("IPv4 rule to isp2's table: %+v", r)
		}
	}
	if !slices.ContainsFunc(plan.Routes, func(r netops.Route) bool {
		return r.Family == netops.V6 && r.Table == 200 && r.Dst.Bits() == 0 && r.Gateway == netip.MustParseAddr("fe80::1") && r.Index == 4
	}) {
		t.Errorf("no IPv6 default via fe80::1 dev eth2 in table 200: %+v", plan.Routes)
	}
	s6 := d.settings()
	s6.Family = netops.V6
	if used := inUse(netops.Choose(s6, d.inputs6())); !used["isp1"] || !used["isp2"] {
		t.Fatalf("IPv6 balance: %v", used)
	}

	// Status: no IPv4 entry for isp2; it counts as an active uplink.
	st := d.snapshot()
	var fams []string
	for _, u := range st.Uplinks {
		fams = append(fams, u.Name+"/"+u.Family)
	}
	if got := strings.Join(fams, " "); got != "isp1/ipv4 isp1/ipv6 isp2/ipv6" {
		t.Fatalf("status entries: %s", got)
	}
	if st.Active != 3 || d.summary() != "2 of 2 uplinks active" {
		t.Fatalf("status: %d active, summary %q", st.Active, d.summary())
	}

	// A reload giving isp2 a gateway gives it an IPv4 side, down; one
	// taking it away again leaves its IPv6 side alone.
	d.apply(parse(t, strings.Replace(v6onlyUplinks, "interface = \"eth2\"\n", "interface = \"eth2\"\ngateway = \"203.0.113.1\"\n", 1)))
	if isp2 = d.uplinks[1]; len(d.entities()) != 4 || isp2.m.State() != fsm.Down || isp2.v6 == nil {
		t.Fatalf("after adding gateway: %d entities", len(d.entities()))
	}
	d.apply(parse(t, v6onlyUplinks))
	if isp2 = d.uplinks[1]; len(d.entities()) != 3 || isp2.cfg.HasIPv4() || isp2.v6 == nil {
		t.Fatalf("after removing gateway: %d entities", len(d.entities()))
	}
}

// installedByFamily describes what the fake kernel has in table, by
// family: "v4 route dev I" or "v6 route dev I" for each unicast route,
// "v4 rule" or "v6 rule" when rules look it up; sorted, without
// duplicates.
func (k *fakeNet) installedByFamily(table int) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	fam := func(f netops.Family) string {
		if f == netops.V6 {
			return "v6"
		}
		return "v4"
	}
	for _, r := range k.installed.Routes {
		if r.Table == table && r.Type == netops.Unicast {
			out = append(out, fmt.Sprintf("%s route dev %d", fam(r.Family), r.Index))
		}
	}
	for _, r := range k.installed.Rules {
		if r.Table == table {
			out = append(out, fam(r.Family)+" rule")
		}
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ", ")
}

// The whole loop with an IPv6-only uplink: it is probed over IPv6 only,
// installed in IPv6 only, and leaves and rejoins the IPv6 balance on its
// probes, without any IPv4 state, route or rule.
func TestLoopIPv6Only(t *testing.T) {
	k := newFakeNet(labBalance)
	k.snap = labSnapshot()
	k.snap.Addrs = append(k.snap.Addrs,
		events.Addr{Index: eth2, Prefix: prefix("fe80::2/64"), Scope: events.ScopeLink},
		events.Addr{Index: eth2, Prefix: prefix("2001:db8:2::10/64")})
	l := startLoopWith(t, k, probed+"targets6 = [\"2001:db8:ffff::1\"]\n", `[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
table = 100
[[uplink]]
name = "isp2"
interface = "eth2"
gateway6 = "fe80::1"
table = 200
`)
	p2 := l.p.prober(t, "isp2")
	if !p2.cfg.Source.Is6() {
		t.Fatalf("isp2's prober: source %v, want its IPv6 address", p2.cfg.Source)
	}
	l.p.prober(t, "isp1").rounds(t, 2, true)
	p2.rounds(t, 2, true)
	waitFor(t, "both active", func() bool {
		s := l.status()
		return s.Active == 2 && len(s.Uplinks) == 2
	})
	for _, u := range l.status().Uplinks {
		if u.Name == "isp2" && u.Family != "ipv6" {
			t.Fatalf("status entry of isp2: %+v", u)
		}
	}
	if got := k.installedByFamily(200); got != "v6 route dev 4, v6 rule" {
		t.Fatalf("isp2's table: %q, want IPv6 only", got)
	}
	if got := k.installedByFamily(labBalance); got != "v4 route dev 3, v4 rule, v6 route dev 4, v6 rule" {
		t.Fatalf("balance: %q", got)
	}

	// A blackhole of isp2's IPv6 takes it out of the IPv6 balance; its
	// repair brings it back.
	p2.rounds(t, l.d.cfg.Probe.DownAfter, false)
	waitFor(t, "isp2 out of the balance", func() bool { return k.installedByFamily(labBalance) == "v4 route dev 3, v4 rule, v6 rule" })
	p2.rounds(t, l.d.cfg.Probe.UpAfter, true)
	waitFor(t, "isp2 back in the balance", func() bool {
		return k.installedByFamily(labBalance) == "v4 route dev 3, v4 rule, v6 route dev 4, v6 rule"
	})
}
