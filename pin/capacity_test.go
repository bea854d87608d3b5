package pin

import (
	"fmt"
	"testing"
)

// A table for as many uplinks as the default mask holds is written and
// read back in one piece: the batch's acknowledgements once overran the
// socket's receive buffer at 64 uplinks (ENOBUFS), and the daemon could
// then never apply its table.
func TestApplyFullCapacity(t *testing.T) {
	ns := newNS(t, "pin-cap")
	tb := openTable(t, ns)
	names := make([]string, Capacity(DefaultMask))
	for i := range names {
		names[i] = fmt.Sprintf("isp%d", i)
	}
	marks, err := Assign(names, DefaultMask, nil)
	if err != nil {
		t.Fatal(err)
	}
	ups := make([]Uplink, len(names))
	for i, n := range names {
		ups[i] = Uplink{Name: n, Ifname: fmt.Sprintf("wan%d", i), Mark: marks[n]}
	}
	if changed, err := tb.Apply(ups); err != nil || !changed {
		t.Fatalf("Apply of %d uplinks = %v, %v; want changed", len(ups), changed, err)
	}
	if changed, err := tb.Apply(ups); err != nil || changed {
		t.Fatalf("second Apply of %d uplinks = %v, %v; want unchanged", len(ups), changed, err)
	}
	cur, err := tb.Current()
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != len(ups) {
		t.Fatalf("Current holds %d uplinks, want %d", len(cur), len(ups))
	}
}
