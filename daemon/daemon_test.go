package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	return daemonWith(t, "")
}

// testUplinks are the lab's two uplinks, for the daemon's tests.
const testUplinks = `[[uplink]]
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
`

// daemonWith returns a daemon for two lab-like uplinks with the given
// [probe] table, without running it. Nothing opens a socket until Run.
func daemonWith(t *testing.T, probe string) *Daemon {
	t.Helper()
	return quietDaemon(t, "\n[routing]\nlan_interfaces = [\"eth0\"]\n"+probe+"\n"+testUplinks)
}

// quietDaemon returns a daemon for the configuration doc that logs
// nowhere, without running it.
func quietDaemon(t *testing.T, doc string) *Daemon {
	t.Helper()
	return New(parse(t, doc), slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
}

// TestObserveReasons feeds snapshots through the state machines, without probes
// (syncProber starts none while the machines are down or lack targets).
func TestObserveReasons(t *testing.T) {
	d := testDaemon(t)
	snap := events.Snapshot{
		Links: []events.Link{{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}, {Index: 4, Name: "eth2", AdminUp: true}},
		Addrs: []events.Addr{{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")}, {Index: 4, Prefix: netip.MustParsePrefix("203.0.113.2/24")}},
	}
	if !d.observe(snap, nil) {
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
	if d.observe(snap, nil) {
		t.Fatal("an identical snapshot reported a change")
	}

	// eth2 gets its carrier; eth1 is renamed away.
	snap.Links = []events.Link{{Index: 3, Name: "wan9", AdminUp: true, Carrier: true}, {Index: 4, Name: "eth2", AdminUp: true, Carrier: true}}
	d.observe(snap, nil)
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

// newTestDaemon returns a probed daemon whose uplinks' links are up with
// their addresses.
func newTestDaemon(t *testing.T, policy string) *Daemon {
	t.Helper()
	d := daemonWith(t, fmt.Sprintf("[probe]\ntargets = [\"198.18.0.1\", \"198.18.0.2\"]\ndegraded_policy = %q\n", policy))
	for i, u := range d.uplinks {
		u.link = &events.Link{Index: i + 2, Name: u.cfg.Interface, AdminUp: true, Carrier: true}
		u.addr = netip.PrefixFrom(u.cfg.Gateway.Next(), 24)
		u.gw = u.cfg.Gateway
	}
	return d
}

// drive takes u's machine to state (down, active or degraded) the way
// link events and probes do.
func drive(t *testing.T, d *Daemon, name string, state fsm.State) {
	t.Helper()
	u := d.uplinks[0]
	if name != u.cfg.Name {
		u = d.uplinks[1]
	}
	if state == fsm.Down {
		return
	}
	now := time.Now()
	u.m.LinkUp("usable", now)
	for range d.cfg.Probe.UpAfter {
		u.m.ProbeRound(true, fsm.Quality{}, now)
	}
	if state == fsm.Degraded {
		u.m.ProbeRound(true, fsm.Quality{Known: true, Probes: 50, Loss: 0.5}, now)
	}
	if u.m.State() != state {
		t.Fatalf("%s is %s, want %s", name, u.m.State(), state)
	}
}

func inBalance(d *Daemon) map[string]bool {
	out := make(map[string]bool)
	used := inUse(netops.Choose(d.settings(), d.inputs()))
	for _, u := range d.uplinks {
		out[u.cfg.Name] = used[u.cfg.Name]
	}
	return out
}

func TestDegradedPolicy(t *testing.T) {
	tests := []struct {
		policy     string
		isp1, isp2 fsm.State
		want       map[string]bool
	}{
		{"standby", fsm.Active, fsm.Degraded, map[string]bool{"isp1": true, "isp2": false}},
		{"standby", fsm.Degraded, fsm.Degraded, map[string]bool{"isp1": true, "isp2": true}},
		{"standby", fsm.Down, fsm.Degraded, map[string]bool{"isp1": false, "isp2": true}},
		{"keep", fsm.Active, fsm.Degraded, map[string]bool{"isp1": true, "isp2": true}},
		{"keep", fsm.Degraded, fsm.Degraded, map[string]bool{"isp1": true, "isp2": true}},
	}
	for _, tt := range tests {
		d := newTestDaemon(t, tt.policy)
		drive(t, d, "isp1", tt.isp1)
		drive(t, d, "isp2", tt.isp2)
		if diff := cmp.Diff(tt.want, inBalance(d)); diff != "" {
			t.Errorf("policy %s, isp1 %s, isp2 %s: in balance (-want +got):\n%s", tt.policy, tt.isp1, tt.isp2, diff)
		}
	}
}

func TestGatewayNeighbourFailed(t *testing.T) {
	gw2 := netip.MustParseAddr("203.0.113.1")
	ignored := []events.NeighEvent{
		{Index: 3, Addr: gw2, State: events.NeighStale},                                 // not failed
		{Index: 3, Addr: gw2, State: events.NeighFailed, Deleted: true},                 // entry removed
		{Index: 2, Addr: gw2, State: events.NeighFailed},                                // another link
		{Index: 3, Addr: netip.MustParseAddr("203.0.113.9"), State: events.NeighFailed}, // not the gateway
	}
	d := newTestDaemon(t, "standby")
	drive(t, d, "isp1", fsm.Active)
	drive(t, d, "isp2", fsm.Active)
	for _, e := range ignored {
		d.note(e)
		if d.needReconcile || d.needDump || d.uplinks[1].m.State() != fsm.Active {
			t.Fatalf("%+v: isp2 %s, reconcile %v, dump %v", e, d.uplinks[1].m.State(), d.needReconcile, d.needDump)
		}
	}
	d.note(events.NeighEvent{Index: 3, Addr: gw2, State: events.NeighFailed})
	u := d.uplinks[1]
	if u.m.State() != fsm.Probing || u.m.Reason() != "gateway 203.0.113.1 does not answer ARP on eth2" || !d.needReconcile {
		t.Fatalf("after FAILED: isp2 %s (%q), reconcile %v", u.m.State(), u.m.Reason(), d.needReconcile)
	}
	if d.needDump {
		t.Error("a neighbour event made the loop re-read links and addresses")
	}
	if d.uplinks[0].m.State() != fsm.Active {
		t.Errorf("isp1 is %s", d.uplinks[0].m.State())
	}
}

func TestNoteNexthopAndLinkEvents(t *testing.T) {
	tests := []struct {
		name      string
		ev        events.Event
		links     bool // the links and addresses change (no dump: the event says how)
		reconcile bool
	}{
		{"link change: nexthops may be gone silently", events.LinkEvent{Link: events.Link{Index: 9, Name: "eth9"}}, true, true},
		{"address change", events.AddrEvent{}, true, false},
		{"our nexthop", events.NexthopEvent{ID: 7, Protocol: 201}, false, true},
		{"a nexthop in our range, deleted (no protocol)", events.NexthopEvent{ID: 2010000066, Deleted: true}, false, true},
		{"someone else's nexthop", events.NexthopEvent{ID: 42, Protocol: 4}, false, false},
		{"an IPv6 nexthop in our range", events.NexthopEvent{ID: 2010001024, Deleted: true}, false, true},
		{"just past our range", events.NexthopEvent{ID: 2010002048}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDaemon(t)
			d.note(tt.ev)
			if d.needDump || d.needLinks() != tt.links || d.needReconcile != tt.reconcile {
				t.Fatalf("dump %v, links %v, reconcile %v; want false %v %v", d.needDump, d.needLinks(), d.needReconcile, tt.links, tt.reconcile)
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
		d.rec = reconciler{&netops.Reconciler{}} // a kernel without nexthop objects
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

func TestProbeTraffic(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var p probeTraffic
	if got := p.perSecond(); got != 0 {
		t.Errorf("rate before any sample = %v", got)
	}
	// Prober 1 sends 4 a second for 20 s: the rate covers the last 10 s.
	for i := range 41 {
		added := p.observe(1, uint64(2*i), t0.Add(time.Duration(i)*500*time.Millisecond))
		if i > 0 && added != 2 {
			t.Fatalf("sample %d: %d packets added, want 2", i, added)
		}
	}
	if got := p.perSecond(); got != 4 {
		t.Errorf("rate = %v, want 4", got)
	}
	if n := len(p.samples); n > 22 {
		t.Errorf("%d samples kept, want about 10s worth", n)
	}
	// A new prober starts its count from zero.
	if added := p.observe(2, 3, t0.Add(30*time.Second)); added != 3 {
		t.Errorf("first result of a new prober added %d, want 3", added)
	}
	if got := p.perSecond(); got != 0 {
		t.Errorf("rate after one sample of a new prober = %v, want 0", got)
	}
}
