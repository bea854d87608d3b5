package events

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/test/testutil"
)

func TestSnapshotApply(t *testing.T) {
	a := func(i int, p string) Addr { return Addr{Index: i, Prefix: netip.MustParsePrefix(p)} }
	old := Snapshot{
		Links: []Link{{Index: 1, Name: "lo"}, {Index: 3, Name: "wan0"}, {Index: 4, Name: "wan1"}, {Index: 5, Name: "lan0"}},
		Addrs: []Addr{a(3, "198.51.100.2/24"), a(4, "203.0.113.2/24"), a(5, "192.0.2.1/24"), a(5, "2001:db8::1/64")},
	}
	orig := Snapshot{Links: slices.Clone(old.Links), Addrs: slices.Clone(old.Addrs)}
	tentative := a(5, "2001:db8::1/64")
	tentative.Flags = AddrTentative
	for _, tt := range []struct {
		name string
		evs  []Event
		want Snapshot
	}{
		{"carrier, in place", []Event{LinkEvent{Link: Link{Index: 3, Name: "wan0", AdminUp: true, Carrier: true}}},
			Snapshot{
				Links: []Link{{Index: 1, Name: "lo"}, {Index: 3, Name: "wan0", AdminUp: true, Carrier: true}, {Index: 4, Name: "wan1"}, {Index: 5, Name: "lan0"}},
				Addrs: old.Addrs,
			}},
		{"address removed, another added", []Event{
			AddrEvent{Addr: a(3, "198.51.100.2/24"), Deleted: true}, AddrEvent{Addr: a(3, "198.51.100.9/24")},
		}, Snapshot{Links: old.Links, Addrs: []Addr{a(4, "203.0.113.2/24"), a(5, "192.0.2.1/24"), a(5, "2001:db8::1/64"), a(3, "198.51.100.9/24")}}},
		{"flags change in place of the address", []Event{AddrEvent{Addr: tentative}},
			Snapshot{Links: old.Links, Addrs: []Addr{a(3, "198.51.100.2/24"), a(4, "203.0.113.2/24"), a(5, "192.0.2.1/24"), tentative}}},
		{"deleted with its addresses", []Event{LinkEvent{Link: Link{Index: 4, Name: "wan1"}, Deleted: true}},
			Snapshot{
				Links: []Link{{Index: 1, Name: "lo"}, {Index: 3, Name: "wan0"}, {Index: 5, Name: "lan0"}},
				Addrs: []Addr{a(3, "198.51.100.2/24"), a(5, "192.0.2.1/24"), a(5, "2001:db8::1/64")},
			}},
		{"renamed onto a stale name", []Event{LinkEvent{Link: Link{Index: 5, Name: "wan1"}}},
			Snapshot{
				Links: []Link{{Index: 1, Name: "lo"}, {Index: 3, Name: "wan0"}, {Index: 5, Name: "wan1"}},
				Addrs: []Addr{a(3, "198.51.100.2/24"), a(5, "192.0.2.1/24"), a(5, "2001:db8::1/64")},
			}},
		{"a new link", []Event{LinkEvent{Link: Link{Index: 9, Name: "wan9", AdminUp: true}}, AddrEvent{Addr: a(9, "192.0.2.9/24")}},
			Snapshot{Links: append(slices.Clone(old.Links), Link{Index: 9, Name: "wan9", AdminUp: true}), Addrs: append(slices.Clone(old.Addrs), a(9, "192.0.2.9/24"))}},
		{"deleted and made again", []Event{
			LinkEvent{Link: Link{Index: 3, Name: "wan0"}, Deleted: true}, LinkEvent{Link: Link{Index: 11, Name: "wan0"}},
		}, Snapshot{
			Links: []Link{{Index: 1, Name: "lo"}, {Index: 4, Name: "wan1"}, {Index: 5, Name: "lan0"}, {Index: 11, Name: "wan0"}},
			Addrs: []Addr{a(4, "203.0.113.2/24"), a(5, "192.0.2.1/24"), a(5, "2001:db8::1/64")},
		}},
		{"other events ignored", []Event{RouteEvent{Table: 3}, ResyncEvent{}}, old},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := old.Clone()
			got.Apply(tt.evs)
			if diff := gocmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("Apply (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(orig, old, cmpOpts); diff != "" {
				t.Fatalf("Apply of a clone changed the original (-before +after):\n%s", diff)
			}
		})
	}
}

// TestSnapshotFollowsEvents: a Dump with every later event applied is what
// a new Dump reads, through carrier flaps, address changes (IPv6 DAD
// flags included), renames, deletion and re-creation, with the kernel's
// real notifications.
func TestSnapshotFollowsEvents(t *testing.T) {
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")
	b, _ := newNS(t, id, "b")
	m := subscribeIn(t, ha)
	dump := func() Snapshot {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		snap, err := DumpAt(ctx, ha)
		if err != nil {
			t.Fatalf("DumpAt: %v", err)
		}
		return snap
	}
	// Subscribed first, then read, as the daemon does: events already
	// queued are applied on top of the dump.
	ip(t, "-n", a, "link", "add", "wan0", "type", "veth", "peer", "name", "up0", "netns", b)
	start := dump()
	w := watch(t, m)

	ip(t, "-n", a, "link", "add", "wan1", "type", "veth", "peer", "name", "up1", "netns", b)
	for _, cmd := range [][]string{
		{"-n", b, "link", "set", "up0", "up"}, {"-n", b, "link", "set", "up1", "up"},
		{"-n", a, "link", "set", "wan0", "up"}, {"-n", a, "link", "set", "wan1", "up"},
		{"-n", a, "addr", "add", "198.51.100.2/24", "dev", "wan0"},
		{"-n", a, "addr", "add", "203.0.113.2/24", "dev", "wan1"},
		{"-n", a, "addr", "add", "2001:db8:2::2/64", "dev", "wan1", "nodad"},
		{"-n", b, "link", "set", "up0", "down"}, {"-n", b, "link", "set", "up0", "up"},
		{"-n", a, "addr", "del", "203.0.113.2/24", "dev", "wan1"},
		{"-n", a, "addr", "add", "203.0.113.3/24", "dev", "wan1"},
		{"-n", a, "link", "set", "wan1", "down"},
		{"-n", a, "link", "set", "wan1", "name", "wan9"},
		{"-n", a, "link", "del", "wan0"},
		{"-n", a, "link", "add", "wan0", "type", "veth", "peer", "name", "up2", "netns", b},
		{"-n", a, "link", "set", "wan0", "up"},
		{"-n", a, "addr", "add", "198.51.100.7/24", "dev", "wan0"},
		{"-n", b, "link", "set", "up2", "up"},
		{"-n", a, "addr", "add", "2001:db8:1::2/64", "dev", "wan0"}, // tentative, then not
	} {
		ip(t, cmd...)
	}
	// The kernel's own changes (DAD, carrier) come late: compare until
	// both agree, with every event read so far applied.
	stable := func(x Addr) bool { return x.Prefix.Addr() == netip.MustParseAddr("2001:db8:1::2") && x.Stable() }
	var evs []Event
	var got, want Snapshot
	deadline := time.Now().Add(waitLimit)
	for {
		drained := false
		for !drained {
			select {
			case ev := <-w.events:
				evs = append(evs, ev)
			case <-time.After(50 * time.Millisecond):
				drained = true
			}
		}
		want, got = dump(), start.Clone()
		got.Apply(evs)
		if sameSnapshot(want, got) && slices.ContainsFunc(want.Addrs, stable) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wan0's IPv6 address not stable, or a dump with the %d events applied differs from a new dump (-new +applied):\n%s",
				len(evs), gocmp.Diff(sorted(want), sorted(got), cmpOpts))
		}
	}
	if !slices.ContainsFunc(got.Links, func(l Link) bool { return l.Name == "wan9" }) {
		t.Errorf("no wan9 after the rename: %+v", got.Links)
	}
}

// sameSnapshot compares two snapshots whatever their order.
func sameSnapshot(a, b Snapshot) bool {
	return gocmp.Equal(sorted(a), sorted(b), cmpOpts)
}

func sorted(s Snapshot) Snapshot {
	out := Snapshot{Links: slices.Clone(s.Links), Addrs: slices.Clone(s.Addrs)}
	slices.SortFunc(out.Links, func(x, y Link) int { return cmp.Compare(x.Index, y.Index) })
	slices.SortFunc(out.Addrs, func(x, y Addr) int {
		return cmp.Or(cmp.Compare(x.Index, y.Index), cmp.Compare(fmt.Sprint(x.Prefix), fmt.Sprint(y.Prefix)))
	})
	return out
}
