package netops

import (
	"fmt"
	"testing"
)

// Up to 64 uplinks keep the slots of the first ID layout; the 65th and
// later take the slots past it, and names keep their slots as more come.
func TestSlotsPastTheFirstLayout(t *testing.T) {
	names := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("isp%d", i)
		}
		return out
	}
	first, err := Slots(names(firstSlots), nil)
	if err != nil {
		t.Fatal(err)
	}
	for n, s := range first {
		if s >= firstSlots {
			t.Errorf("%s: slot %d with only %d uplinks", n, s, firstSlots)
		}
	}
	all, err := Slots(names(MaxUplinks), first)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[int]string)
	for n, s := range all {
		if o, dup := seen[s]; dup || s < 0 || s >= MaxUplinks {
			t.Fatalf("%s: slot %d (also %q)", n, s, o)
		}
		seen[s] = n
		if f, ok := first[n]; ok && f != s {
			t.Errorf("%s moved from slot %d to %d", n, f, s)
		}
	}
}
