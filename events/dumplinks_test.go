package events

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSnapshotMerge(t *testing.T) {
	a := func(i int, p string) Addr { return Addr{Index: i, Prefix: netip.MustParsePrefix(p)} }
	old := Snapshot{
		Links: []Link{{Index: 1, Name: "lo"}, {Index: 3, Name: "wan0"}, {Index: 4, Name: "wan1"}, {Index: 5, Name: "lan0"}},
		Addrs: []Addr{a(3, "198.51.100.2/24"), a(4, "203.0.113.2/24"), a(5, "192.0.2.1/24")},
	}
	// wan0 lost its address, wan1 was deleted, and a new link took the
	// name wan1 (lan0, renamed, reads as wan1).
	fresh := Snapshot{
		Links: []Link{{Index: 3, Name: "wan0", AdminUp: true}, {Index: 5, Name: "wan1"}},
		Addrs: []Addr{a(5, "192.0.2.1/24")},
	}
	got := old.Merge(fresh, []int{3, 4, 5})
	want := Snapshot{
		Links: []Link{{Index: 1, Name: "lo"}, {Index: 3, Name: "wan0", AdminUp: true}, {Index: 5, Name: "wan1"}},
		Addrs: []Addr{a(5, "192.0.2.1/24")},
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Merge (-want +got):\n%s", diff)
	}
	// A fresh link under an old one's name replaces it even if the old
	// one's index was not re-read.
	got = old.Merge(Snapshot{Links: []Link{{Index: 9, Name: "wan0"}}}, []int{9})
	if slices.ContainsFunc(got.Links, func(l Link) bool { return l.Index == 3 }) || slices.Contains(got.Addrs, a(3, "198.51.100.2/24")) {
		t.Errorf("Merge kept the old wan0: %+v", got)
	}
}
