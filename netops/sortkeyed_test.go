package netops

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// sortKeyed orders by priority, then key, then position, moving the
// elements in place: checked against a stable sort of random slices.
func TestSortKeyed(t *testing.T) {
	type elem struct{ prio, key, pos int }
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		s := make([]elem, n)
		for i := range s {
			s[i] = elem{rng.IntN(3), rng.IntN(n/2 + 1), i}
		}
		want := slices.Clone(s)
		keyOf := func(e elem) string { return strconv.Itoa(e.key) }
		slices.SortStableFunc(want, func(a, b elem) int {
			if a.prio != b.prio {
				return a.prio - b.prio
			}
			switch ka, kb := keyOf(a), keyOf(b); {
			case ka < kb:
				return -1
			case ka > kb:
				return 1
			}
			return 0
		})
		sortKeyed(s, func(e elem) int { return e.prio }, func(e elem, b []byte) []byte { return append(b, keyOf(e)...) })
		if !slices.Equal(s, want) {
			t.Fatalf("n=%d: got %v, want %v", n, s, want)
		}
	}
}
