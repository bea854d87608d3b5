package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/probe"
)

// dualUplinks: isp1 with a static link-local IPv6 gateway and a global
// address on its WAN, isp2 learning its IPv6 gateway from router
// advertisements with only a link-local WAN address (prefix-only), and
// lte without IPv6.
const dualUplinks = `[probe]
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
gateway = "203.0.113.1"
gateway6 = "auto"
lan_prefix6 = "2001:db8:200::/56"
table = 200
[[uplink]]
name = "lte"
interface = "wwan0"
gateway = "192.0.2.1"
table = 300
`

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func dualSnapshot() events.Snapshot {
	return events.Snapshot{
		Links: []events.Link{
			{Index: 2, Name: "eth0", AdminUp: true, Carrier: true},
			{Index: 3, Name: "eth1", AdminUp: true, Carrier: true},
			{Index: 4, Name: "eth2", AdminUp: true, Carrier: true},
		},
		Addrs: []events.Addr{
			{Index: 3, Prefix: pfx("198.51.100.2/24")},
			{Index: 4, Prefix: pfx("203.0.113.2/24")},
			{Index: 3, Prefix: pfx("fe80::2/64"), Scope: events.ScopeLink},
			// A temporary (privacy) address is never the source.
			{Index: 3, Prefix: pfx("2001:db8:1::1/64"), Flags: events.AddrTemporary},
			{Index: 3, Prefix: pfx("2001:db8:1::10/64")},
			{Index: 4, Prefix: pfx("fe80::3/64"), Scope: events.ScopeLink},
			// The delegated prefix's address is on the LAN interface.
			{Index: 2, Prefix: pfx("2001:db8:200:1::1/64")},
		},
	}
}

func dualDaemon(t *testing.T) *Daemon {
	t.Helper()
	d := quietDaemon(t, dualUplinks)
	d.sysctl = nil
	d.defaults = map[int][]events.DefaultRoute{4: nil}
	return d
}

func TestFamilies(t *testing.T) {
	d := dualDaemon(t)
	if len(d.entities()) != 5 || d.uplinks[0].v6 == nil || d.uplinks[1].v6 == nil || d.uplinks[2].v6 != nil {
		t.Fatalf("entities: %d; want isp1 and isp2 with IPv6, lte without", len(d.entities()))
	}
	isp1, isp2 := d.uplinks[0], d.uplinks[1]
	d.observe(dualSnapshot(), nil)
	for _, tt := range []struct {
		u      *uplink
		state  fsm.State
		addr   string
		reason string
	}{
		{isp1, fsm.Probing, "198.51.100.2/24", "eth1 up"},
		{isp1.v6, fsm.Probing, "2001:db8:1::10/64", "eth1 up"},
		{isp2.v6, fsm.Down, "2001:db8:200:1::1/128", `no IPv6 gateway known: no router advertisement's default route through eth2 (gateway6 = "auto")`},
	} {
		if tt.u.m.State() != tt.state || tt.u.addr.String() != tt.addr || !strings.Contains(tt.u.m.Reason(), tt.reason) {
			t.Errorf("%s: %s %s %q, want %s %s %q", tt.u.label(), tt.u.m.State(), tt.u.addr, tt.u.m.Reason(), tt.state, tt.addr, tt.reason)
		}
	}

	// The RA's default route gives isp2 its IPv6 gateway; an IPv4 route
	// through the same link does not.
	ra := events.DefaultRoute{Family: events.V6, Table: 254, Protocol: events.ProtoRA, Metric: 1024, Index: 4, Gateway: netip.MustParseAddr("fe80::1")}
	d.routeEvent(events.RouteEvent{Family: events.V6, Table: 254, Protocol: events.ProtoRA, Default: true, Route: ra})
	d.observe(d.snap, nil)
	if isp2.v6.m.State() != fsm.Probing || isp2.v6.gw != netip.MustParseAddr("fe80::1") {
		t.Fatalf("isp2/ipv6 after the RA: %s gateway %v", isp2.v6.m.State(), isp2.v6.gw)
	}
	if isp2.gw != isp2.cfg.Gateway {
		t.Fatalf("isp2's IPv4 gateway became %v", isp2.gw)
	}

	// Both IPv6 entities go active; the IPv6 balance holds them, with
	// their own addresses and gateways keyed by interface.
	for _, u := range []*uplink{isp1, isp1.v6, isp2.v6} {
		u.m.LinkUp("usable", time.Now())
		for range d.cfg.Probe.UpAfter {
			u.m.ProbeRound(true, fsm.Quality{}, time.Now())
		}
	}
	in6 := d.inputs6()
	if len(in6) != 2 || in6[0].Gateway != netip.MustParseAddr("fe80::1") || in6[0].Index != 3 || in6[1].Index != 4 ||
		in6[1].LANPrefix != pfx("2001:db8:200::/56") || in6[1].Addr != pfx("2001:db8:200:1::1/128") || !in6[0].InBalance {
		t.Fatalf("inputs6: %+v", in6)
	}
	s6 := d.settings()
	s6.Family = netops.V6
	if used := inUse(netops.Choose(s6, in6)); !used["isp1"] || !used["isp2"] {
		t.Fatalf("IPv6 balance: %v", used)
	}

	// NDP FAILED of fe80::1 on eth2 takes isp2's IPv6 out, not isp1's
	// (the same address on another link) nor isp2's IPv4.
	d.note(events.NeighEvent{Index: 4, Addr: netip.MustParseAddr("fe80::1"), State: events.NeighFailed})
	if isp2.v6.m.State() != fsm.Probing || !strings.Contains(isp2.v6.m.Reason(), "does not answer neighbour solicitations on eth2") {
		t.Fatalf("isp2/ipv6 after NDP FAILED: %s %q", isp2.v6.m.State(), isp2.v6.m.Reason())
	}
	if isp1.v6.m.State() != fsm.Active || isp2.m.State() == fsm.Down {
		t.Fatalf("isp1/ipv6 %s, isp2 %s: the failure of one gateway spread", isp1.v6.m.State(), isp2.m.State())
	}
	// The hooks of the IPv6 transition say so.
	last := d.fired[len(d.fired)-1]
	if last.Uplink != "isp2" || last.Family != "ipv6" || last.To != string(fsm.Probing) {
		t.Fatalf("last hook event %+v", last)
	}

	// An IPv6 probe result reaches the IPv6 entity only.
	isp1.v6.prober = &probe.Prober{}
	isp1.v6.gen = 77
	before := isp1.rounds
	d.probeResult(probe.Result{Uplink: "isp1", Gen: 77, Good: false})
	if isp1.v6.rounds != 1 || isp1.rounds != before {
		t.Fatalf("rounds: ipv6 %d, ipv4 %d (was %d)", isp1.v6.rounds, isp1.rounds, before)
	}

	// Carrier loss takes both families down on the event's dump.
	snap := dualSnapshot()
	snap.Links[1].Carrier = false
	d.observe(snap, nil)
	if isp1.m.State() != fsm.Down || isp1.v6.m.State() != fsm.Down {
		t.Fatalf("after carrier loss: isp1 %s, isp1/ipv6 %s", isp1.m.State(), isp1.v6.m.State())
	}

	// Status has an entry per family, and counts the active ones: isp2's
	// IPv6 back (its IPv4 still waits for probes).
	for range d.cfg.Probe.UpAfter {
		isp2.v6.m.ProbeRound(true, fsm.Quality{}, time.Now())
	}
	st := d.snapshot()
	if isp2.v6.m.State() != fsm.Active || isp2.m.State() == fsm.Active || st.Active != 1 {
		t.Errorf("status: %d active, want 1 (isp2/ipv6 %s, isp2 %s)", st.Active, isp2.v6.m.State(), isp2.m.State())
	}
	var fams []string
	for _, u := range st.Uplinks {
		fams = append(fams, u.Name+"/"+u.Family)
	}
	if got := strings.Join(fams, " "); got != "isp1/ipv4 isp1/ipv6 isp2/ipv4 isp2/ipv6 lte/ipv4" {
		t.Fatalf("status entries: %s", got)
	}
	if st.Uplinks[3].Gateway != "fe80::1 (auto)" || st.Uplinks[1].Gateway != "fe80::1" {
		t.Fatalf("status gateways: %q %q", st.Uplinks[3].Gateway, st.Uplinks[1].Gateway)
	}
}

func TestSource6(t *testing.T) {
	d := dualDaemon(t)
	u := d.uplinks[0].v6
	addrs := dualSnapshot().Addrs
	for _, tt := range []struct {
		name  string
		src   string
		addrs []events.Addr
		want  string
	}{
		{"stable global on the interface", "", addrs, "2001:db8:1::10/64"},
		{"explicit on the interface", "2001:db8:1::1", addrs, "2001:db8:1::1/64"},
		{"explicit elsewhere", "2001:db8:200:1::1", addrs, "2001:db8:200:1::1/128"},
		{"explicit absent", "2001:db8:9::1", addrs, "invalid Prefix"},
		{"tentative is not yet a source", "", []events.Addr{{Index: 3, Prefix: pfx("2001:db8:1::10/64"), Flags: events.AddrTentative}}, "invalid Prefix"},
		{"deprecated is not a source", "", []events.Addr{{Index: 3, Prefix: pfx("2001:db8:1::10/64"), Flags: events.AddrDeprecated}}, "invalid Prefix"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u.cfg.Source6 = netip.Addr{}
			if tt.src != "" {
				u.cfg.Source6 = netip.MustParseAddr(tt.src)
			}
			if got := u.select6(tt.addrs, 3).String(); got != tt.want {
				t.Errorf("select6 = %s, want %s", got, tt.want)
			}
		})
	}
}

// A reload that removes gateway6 drops the IPv6 entity; one that adds it
// makes one, down.
func TestReloadFamilies(t *testing.T) {
	d := dualDaemon(t)
	cfg := parse(t, strings.Replace(dualUplinks, "gateway6 = \"fe80::1%eth1\"\n", "", 1))
	d.apply(cfg)
	if d.uplinks[0].v6 != nil || len(d.entities()) != 4 {
		t.Fatalf("after removing gateway6: %d entities", len(d.entities()))
	}
	d.apply(parse(t, dualUplinks))
	if d.uplinks[0].v6 == nil || d.uplinks[0].v6.m.State() != fsm.Down || len(d.entities()) != 5 {
		t.Fatalf("after adding it back: %d entities", len(d.entities()))
	}
}
