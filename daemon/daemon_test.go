package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
)

func TestPickAddr(t *testing.T) {
	gw := netip.MustParseAddr("203.0.113.1")
	a := func(i int, p string) events.Addr { return events.Addr{Index: i, Prefix: netip.MustParsePrefix(p)} }
	tests := []struct {
		name  string
		addrs []events.Addr
		want  string
	}{
		{"none", nil, "invalid Prefix"},
		{"other interface only", []events.Addr{a(5, "203.0.113.2/24")}, "invalid Prefix"},
		{"the gateway's subnet wins", []events.Addr{a(4, "192.0.2.9/24"), a(4, "203.0.113.7/24")}, "203.0.113.7/24"},
		{"lowest of the gateway's subnet", []events.Addr{a(4, "203.0.113.9/24"), a(4, "203.0.113.3/24"), a(4, "192.0.2.1/24")}, "203.0.113.3/24"},
		{"lowest when none holds the gateway", []events.Addr{a(4, "192.0.2.9/24"), a(4, "192.0.2.5/24")}, "192.0.2.5/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickAddr(tt.addrs, 4, gw).String(); got != tt.want {
				t.Fatalf("pickAddr = %s, want %s", got, tt.want)
			}
		})
	}
}

// testDaemon has no probe targets (carrier-only mode), so it never opens a
// socket: unit tests run in the host namespace.
func testDaemon(t *testing.T) *Daemon {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(`
[routing]
lan_interfaces = ["eth0"]
[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
table = 100
[[uplink]]
name = "isp2"
interface = "eth2"
gateway = "203.0.113.1"
weight = 3
table = 200
`))
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
}

// TestObserveReasons feeds snapshots through the state machines, without probes
// (syncProber starts none while the machines are down or lack targets).
func TestObserveReasons(t *testing.T) {
	d := testDaemon(t)
	snap := events.Snapshot{
		Links: []events.Link{{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}, {Index: 4, Name: "eth2", AdminUp: true}},
		Addrs: []events.Addr{{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")}, {Index: 4, Prefix: netip.MustParsePrefix("203.0.113.2/24")}},
	}
	if !d.observe(snap) {
		t.Fatal("first snapshot reported no change")
	}
	got := map[string]string{}
	for _, u := range d.uplinks {
		got[u.cfg.Name] = string(u.m.State()) + ": " + u.m.Reason()
	}
	want := map[string]string{
		"isp1": "active: eth1 up with carrier and address 198.51.100.2/24 (carrier-only mode)",
		"isp2": "down: no carrier on eth2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if d.observe(snap) {
		t.Fatal("an identical snapshot reported a change")
	}

	// eth2 gets its carrier; eth1 is renamed away.
	snap.Links = []events.Link{{Index: 3, Name: "wan9", AdminUp: true, Carrier: true}, {Index: 4, Name: "eth2", AdminUp: true, Carrier: true}}
	d.observe(snap)
	if s, r := d.uplinks[0].m.State(), d.uplinks[0].m.Reason(); s != fsm.Down || r != "interface eth1 does not exist" {
		t.Fatalf("isp1: %s %q", s, r)
	}
	if d.uplinks[1].m.State() != fsm.Active {
		t.Fatalf("isp2: %s", d.uplinks[1].m.State())
	}
	in := d.inputs()
	if in[0].Index != 0 || in[0].InBalance || in[1].Index != 4 || !in[1].InBalance {
		t.Fatalf("plan inputs: %+v", in)
	}
}

func TestDegradedCarriesTrafficOnlyWithoutActive(t *testing.T) {
	d := testDaemon(t)
	now := time.Now()
	for _, u := range d.uplinks {
		u.link = &events.Link{Index: 3, Name: u.cfg.Interface, AdminUp: true, Carrier: true}
		u.m.LinkUp("test", now)
	}
	d.uplinks[1].m.Degrade("loss", now)
	inBalance := func() []bool {
		var b []bool
		for _, in := range d.inputs() {
			b = append(b, in.InBalance)
		}
		return b
	}
	if diff := cmp.Diff([]bool{true, false}, inBalance()); diff != "" {
		t.Fatalf("active + degraded: %s", diff)
	}
	d.uplinks[0].m.LinkDown("gone", now)
	if diff := cmp.Diff([]bool{false, true}, inBalance()); diff != "" {
		t.Fatalf("down + degraded: %s", diff)
	}
}

func TestNoteNexthopAndLinkEvents(t *testing.T) {
	tests := []struct {
		name            string
		ev              events.Event
		dump, reconcile bool
	}{
		{"link change: nexthops may be gone silently", events.LinkEvent{Link: events.Link{Index: 9, Name: "eth9"}}, true, true},
		{"address change", events.AddrEvent{}, true, false},
		{"our nexthop", events.NexthopEvent{ID: 7, Protocol: 201}, false, true},
		{"a nexthop in our range, deleted (no protocol)", events.NexthopEvent{ID: 2010000066, Deleted: true}, false, true},
		{"someone else's nexthop", events.NexthopEvent{ID: 42, Protocol: 4}, false, false},
		{"just past our range", events.NexthopEvent{ID: 2010000256}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDaemon(t)
			d.note(tt.ev)
			if d.needDump != tt.dump || d.needReconcile != tt.reconcile {
				t.Fatalf("dump %v reconcile %v, want %v %v", d.needDump, d.needReconcile, tt.dump, tt.reconcile)
			}
		})
	}
}

func TestLeft(t *testing.T) {
	a1, a2, a3 := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.3")
	prev := map[string]netip.Addr{"isp1": a1, "isp2": a2}
	tests := []struct {
		name string
		now  map[string]netip.Addr
		want map[string]netip.Addr
	}{
		{"nothing changed", prev, map[string]netip.Addr{}},
		{"isp2 left", map[string]netip.Addr{"isp1": a1}, map[string]netip.Addr{"isp2": a2}},
		{"isp2 re-addressed: entries of the old address go", map[string]netip.Addr{"isp1": a1, "isp2": a3}, map[string]netip.Addr{"isp2": a2}},
		{"all left", nil, prev},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, left(prev, tt.now), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestChooseBalancerWithoutNexthops(t *testing.T) {
	for _, tt := range []struct {
		balancer string
		want     netops.Balancer
		fails    bool
	}{
		{"multipath", netops.Multipath, false},
		{"auto", netops.Multipath, false},
		{"resilient", 0, true},
	} {
		d := testDaemon(t)
		d.cfg.Routing.Balancer = tt.balancer
		d.rec = &netops.Reconciler{} // a kernel without nexthop objects
		got, err := d.chooseBalancer()
		if (err != nil) != tt.fails || got != tt.want {
			t.Errorf("balancer %q: %v, %v; want %v (error %v)", tt.balancer, got, err, tt.want, tt.fails)
		}
	}
}

func TestInputsCarrier(t *testing.T) {
	d := testDaemon(t)
	d.uplinks[0].link = &events.Link{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}
	d.uplinks[1].link = &events.Link{Index: 4, Name: "eth2", AdminUp: true}
	in := d.inputs()
	if !in[0].Carrier || in[1].Carrier || in[1].Index != 4 {
		t.Fatalf("inputs: %+v", in)
	}
}
