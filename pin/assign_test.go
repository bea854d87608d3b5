package pin

import (
	"fmt"
	"maps"
	"testing"
)

func TestDeposit(t *testing.T) {
	for _, c := range []struct{ v, mask, want uint32 }{
		{1, 0xff000000, 0x01000000},
		{0xff, 0xff000000, 0xff000000},
		{0b101, 0b1010_1000, 0b1000_1000},
		{0b11, 0x80000001, 0x80000001},
		{0b100, 0b11, 0}, // bits beyond the mask are dropped
	} {
		if got := deposit(c.v, c.mask); got != c.want {
			t.Errorf("deposit(%#b, %#x) = %#x, want %#x", c.v, c.mask, got, c.want)
		}
	}
}

func TestAssignStableByName(t *testing.T) {
	a, err := Assign([]string{"isp1", "isp2", "lte"}, DefaultMask, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]string{}
	for n, m := range a {
		if !validMark(m, DefaultMask) {
			t.Errorf("%s: mark %#x outside mask", n, m)
		}
		if o, dup := seen[m]; dup {
			t.Errorf("%s and %s share mark %#x", n, o, m)
		}
		seen[m] = n
	}
	// Reordered: the same marks, without any existing state.
	b, err := Assign([]string{"lte", "isp2", "isp1"}, DefaultMask, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(a, b) {
		t.Fatalf("reordering changed marks: %v vs %v", a, b)
	}
	// isp2 removed, a new uplink added: isp1 and lte keep theirs.
	c, err := Assign([]string{"lte", "isp1", "isp3"}, DefaultMask, a)
	if err != nil {
		t.Fatal(err)
	}
	if c["isp1"] != a["isp1"] || c["lte"] != a["lte"] {
		t.Fatalf("removing isp2 moved others: %v -> %v", a, c)
	}
	if c["isp3"] == a["isp2"] {
		t.Fatalf("isp3 got removed isp2's mark %#x while others were free", a["isp2"])
	}
}

func TestAssignKeepsExisting(t *testing.T) {
	existing := map[string]uint32{"isp1": 0x07000000, "isp2": 0x01000000, "gone": 0x02000000}
	got, err := Assign([]string{"isp2", "isp1"}, DefaultMask, existing)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"isp1": 0x07000000, "isp2": 0x01000000}
	if !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// A mark no longer inside a new mask is reassigned.
	got, err = Assign([]string{"isp1"}, 0x00f00000, existing)
	if err != nil {
		t.Fatal(err)
	}
	if !validMark(got["isp1"], 0x00f00000) {
		t.Fatalf("isp1 kept %#x outside the new mask", got["isp1"])
	}
}

func TestAssignCollisionsProbe(t *testing.T) {
	// A one-bit mask holds one uplink; two bits hold three, whatever the
	// hashes of their names.
	if _, err := Assign([]string{"a"}, 0x100, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Assign([]string{"a", "b"}, 0x100, nil); err == nil {
		t.Fatal("two uplinks in a one-bit mask: no error")
	}
	got, err := Assign([]string{"a", "b", "c"}, 0x80000001, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for _, m := range got {
		if seen[m] || !validMark(m, 0x80000001) {
			t.Fatalf("bad assignment %v", got)
		}
		seen[m] = true
	}
	// Full 8-bit mask: 255 uplinks fit, 256 do not.
	var names []string
	for i := range 255 {
		names = append(names, fmt.Sprintf("u%d", i))
	}
	if _, err := Assign(names, DefaultMask, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Assign(append(names, "one-more"), DefaultMask, nil); err == nil {
		t.Fatal("256 uplinks in 8 bits: no error")
	}
}

func TestAssignErrors(t *testing.T) {
	for _, c := range []struct {
		names []string
		mask  uint32
	}{
		{[]string{"a"}, 0},
		{[]string{"a", "a"}, DefaultMask},
		{[]string{""}, DefaultMask},
	} {
		if _, err := Assign(c.names, c.mask, nil); err == nil {
			t.Errorf("Assign(%q, %#x): no error", c.names, c.mask)
		}
	}
}

func TestMarksOf(t *testing.T) {
	got := MarksOf([]Uplink{{Name: "a", Mark: 1}, {Name: "b", Ifname: "eth2", Mark: 2}})
	if !maps.Equal(got, map[string]uint32{"a": 1, "b": 2}) {
		t.Fatalf("MarksOf = %v", got)
	}
}
