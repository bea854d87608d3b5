package daemon

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/pin"
	"github.com/uplinkd/uplinkd/probe"
)

func TestDefaultMarkMaskIsPins(t *testing.T) {
	if config.DefaultMarkMask != pin.DefaultMask {
		t.Fatalf("config.DefaultMarkMask %#x, pin.DefaultMask %#x", config.DefaultMarkMask, pin.DefaultMask)
	}
}

// heldDaemon is a probed daemon whose two uplinks are probing (links up,
// no verdict yet) and that adopted a kernel where the balance held isp2 and
// both uplinks had their fwmark rule.
func heldDaemon(t *testing.T) *Daemon {
	t.Helper()
	d := newTestDaemon(t, "standby")
	snap := events.Snapshot{}
	for _, u := range d.uplinks {
		snap.Links = append(snap.Links, *u.link)
		snap.Addrs = append(snap.Addrs, events.Addr{Index: u.link.Index, Prefix: u.addr})
	}
	d.held = &netops.Held{
		Balance: []netops.Nexthop{{Gateway: d.uplinks[1].cfg.Gateway, Index: d.uplinks[1].link.Index, Weight: 3}},
		Pinned:  []int{100, 200},
		Nexthops: []netops.NexthopObject{
			{ID: 2010000042, Gateway: d.uplinks[1].cfg.Gateway, Index: d.uplinks[1].link.Index, Protocol: 201},
		},
	}
	d.observe(snap, nil)
	d.adopt()
	for _, u := range d.uplinks {
		if u.m.State() != fsm.Probing {
			t.Fatalf("%s: %s", u.cfg.Name, u.m.State())
		}
	}
	return d
}

func TestAdoptHoldsUntilVerdict(t *testing.T) {
	d := heldDaemon(t)
	in := d.inputs()
	if in[0].InBalance || !in[0].Usable || !in[1].InBalance || !in[1].Usable {
		t.Fatalf("adopted inputs: %+v", in)
	}
	// isp2 keeps the slot the kernel's nexthop object has.
	if in[1].Slot != 41 {
		t.Fatalf("isp2 slot %d, want the adopted 41", in[1].Slot)
	}

	// isp2's first verdict: active. The hold ends; it stays in.
	for range 4 {
		d.probeResult(result(d, 1, true))
	}
	if d.uplinks[1].m.State() != fsm.Active || d.uplinks[1].hold.any() {
		t.Fatalf("isp2: %s, hold %+v", d.uplinks[1].m.State(), d.uplinks[1].hold)
	}
	// isp1's probes fail: down_after failed rounds end its hold (it stays
	// probing).
	for range 3 {
		d.probeResult(result(d, 0, false))
	}
	if !d.inputs()[0].Usable {
		t.Fatal("isp1 lost its hold before down_after failed rounds")
	}
	d.probeResult(result(d, 0, false))
	in = d.inputs()
	if in[0].Usable || in[0].InBalance || d.uplinks[0].m.State() != fsm.Probing {
		t.Fatalf("isp1 after 4 failed rounds: %+v (%s)", in[0], d.uplinks[0].m.State())
	}
}

func TestAdoptCarrierLossEndsHold(t *testing.T) {
	d := heldDaemon(t)
	l := *d.uplinks[1].link
	l.Carrier = false
	snap := events.Snapshot{Links: []events.Link{*d.uplinks[0].link, l}}
	for _, u := range d.uplinks {
		snap.Addrs = append(snap.Addrs, events.Addr{Index: u.link.Index, Prefix: u.addr})
	}
	d.observe(snap, nil)
	if in := d.inputs(); in[1].InBalance || in[1].Usable || d.uplinks[1].hold.any() {
		t.Fatalf("isp2 without carrier: %+v", in[1])
	}
}

func TestUnpinned(t *testing.T) {
	prev := map[string]uint32{"isp1": 0x1000000, "isp2": 0x2000000, "isp3": 0x3000000}
	now := map[string]uint32{"isp1": 0x1000000, "isp3": 0x4000000}
	want := map[string]uint32{"isp2": 0x2000000, "isp3": 0x3000000}
	if diff := cmp.Diff(want, unpinned(prev, now)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if got := unpinned(nil, now); len(got) != 0 {
		t.Fatalf("first reconcile: %v", got)
	}
}

// result is a probe round of the i-th uplink's prober. The uplink gets a
// placeholder prober (never started or stopped here): probeResult takes
// results only while one runs.
func result(d *Daemon, i int, good bool) probe.Result {
	u := d.uplinks[i]
	u.prober = &probe.Prober{}
	return probe.Result{Uplink: u.cfg.Name, Gen: u.gen, Good: good, RTT: time.Millisecond,
		Stats: probe.Stats{Probes: 4, RTT: time.Millisecond}}
}
