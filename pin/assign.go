package pin

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"slices"
)

// DefaultMask is the default set of packet and conntrack mark bits that
// uplinkd uses ([routing] mark_mask). It stays clear of the bits that
// well-known software on routers uses: tailscale 0xff0000, kube-proxy and
// docker 0x4000 and 0x8000, wg-quick 0xca6c, and firewalld's low bits.
const DefaultMask uint32 = 0xff000000

// Capacity is how many uplinks mask can tell apart: the values
// 1..2^popcount(mask)-1 deposited into its bits (0 means "not pinned").
func Capacity(mask uint32) int {
	n := bits.OnesCount32(mask)
	if n >= 31 {
		return 1<<31 - 1
	}
	return 1<<n - 1
}

// Assign gives each uplink of names a mark inside mask, stable by name and
// never by position: a name in existing (the marks found in the installed
// table, see Table.Current) keeps its mark when that mark is still valid
// for mask; a new name gets a value derived from an FNV hash of the name,
// probing upwards to the next free value. Marks that existing gives to
// names no longer configured are handed out again only when nothing else
// is free, so connections still pinned to a removed uplink are not
// restored onto a new one. Reordering or removing names changes nobody
// else's mark. Non-contiguous masks work: the value's bits are deposited
// into the mask's bits, lowest first.
func Assign(names []string, mask uint32, existing map[string]uint32) (map[string]uint32, error) {
	if mask == 0 {
		return nil, errors.New("mark mask is 0: no bits to pin connections with")
	}
	capacity := Capacity(mask)
	if len(names) > capacity {
		return nil, fmt.Errorf("mark mask %#x holds %d uplinks, %d are configured", mask, capacity, len(names))
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	for i, n := range sorted {
		if n == "" {
			return nil, errors.New("uplink with an empty name")
		}
		if i > 0 && sorted[i-1] == n {
			return nil, fmt.Errorf("uplink %q is named twice", n)
		}
	}

	out := make(map[string]uint32, len(names))
	used := make(map[uint32]bool, len(names))
	// Kept marks first, in name order so that two names that claim the
	// same mark in existing always resolve the same way.
	for _, n := range sorted {
		m, ok := existing[n]
		if !ok || !validMark(m, mask) || used[m] {
			continue
		}
		out[n] = m
		used[m] = true
	}
	stale := make(map[uint32]bool)
	for n, m := range existing {
		if _, configured := out[n]; !configured && validMark(m, mask) && !slices.Contains(sorted, n) {
			stale[m] = true
		}
	}
	for _, n := range sorted {
		if _, ok := out[n]; ok {
			continue
		}
		m, ok := probe(n, mask, capacity, func(m uint32) bool { return !used[m] && !stale[m] })
		if !ok {
			m, ok = probe(n, mask, capacity, func(m uint32) bool { return !used[m] })
		}
		if !ok { // cannot happen: len(names) <= capacity
			return nil, fmt.Errorf("no free mark in mask %#x for uplink %q", mask, n)
		}
		out[n] = m
		used[m] = true
	}
	return out, nil
}

// probe returns the first mark, starting at name's hash, that free accepts.
func probe(name string, mask uint32, capacity int, free func(uint32) bool) (uint32, bool) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	start := uint64(h.Sum32()) % uint64(capacity)
	for i := range uint64(capacity) {
		v := uint32((start+i)%uint64(capacity)) + 1
		if m := deposit(v, mask); free(m) {
			return m, true
		}
	}
	return 0, false
}

// deposit spreads the low bits of v over the set bits of mask, lowest
// first (the PDEP instruction).
func deposit(v, mask uint32) uint32 {
	var out uint32
	for m := mask; m != 0 && v != 0; m &= m - 1 {
		low := m & -m
		if v&1 != 0 {
			out |= low
		}
		v >>= 1
	}
	return out
}

// validMark reports whether m can be an uplink's mark under mask: nonzero
// and with no bit outside it.
func validMark(m, mask uint32) bool {
	return m != 0 && m&^mask == 0
}

// MarksOf returns the marks of ups by name: Current's answer in the form
// Assign takes as existing.
func MarksOf(ups []Uplink) map[string]uint32 {
	out := make(map[string]uint32, len(ups))
	for _, u := range ups {
		out[u.Name] = u.Mark
	}
	return out
}
