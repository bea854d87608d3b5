package netops

import (
	"fmt"
	"hash/fnv"
	"slices"
)

// Slots gives every named uplink a slot of the nexthop ID layout (see
// IDs), stable by name: a name in existing keeps its slot (adopted from the
// kernel at start, or kept by the daemon across reloads); a new name takes
// the slot its FNV-1a hash points at, or the next free one. So reordering,
// adding or removing uplinks never changes another uplink's slot, and with
// it the nexthop IDs its flows use. New names are placed in sorted order,
// so the result does not depend on the order of names either.
func Slots(names []string, existing map[string]int) (map[string]int, error) {
	if len(names) > MaxUplinks {
		return nil, fmt.Errorf("%d uplinks, the nexthop ID layout has room for %d", len(names), MaxUplinks)
	}
	out := make(map[string]int, len(names))
	taken := make(map[int]bool, len(names))
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	for _, n := range sorted {
		if s, ok := existing[n]; ok && s >= 0 && s < MaxUplinks && !taken[s] {
			out[n], taken[s] = s, true
		}
	}
	for _, n := range sorted {
		if _, ok := out[n]; ok {
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(n))
		// Among the first layout's 64 slots as long as one is free, so
		// that setups of up to 64 uplinks keep the slots (and nexthop
		// IDs) they always had; then the lowest free one.
		s := int(h.Sum32() % firstSlots)
		for i := 0; taken[s] && i < firstSlots; i++ {
			s = (s + 1) % firstSlots
		}
		if taken[s] {
			s = firstSlots
			for taken[s] {
				s++
			}
		}
		out[n], taken[s] = s, true
	}
	return out, nil
}

// AdoptSlots returns the slots of the uplink nexthop objects the kernel
// holds (ours: protocol and ID range) whose gateway and interface are those
// of an uplink, so that a restart keeps every uplink's IDs.
func AdoptSlots(objs []NexthopObject, ids IDs, protocol int, uplinks []Uplink) map[string]int {
	out := make(map[string]int)
	for _, n := range objs {
		s, ok := ids.SlotOf(n.ID)
		if !ok || n.Protocol != protocol || n.IsGroup() || n.Unknown {
			continue
		}
		for _, u := range uplinks {
			if u.Index > 0 && u.Index == n.Index && u.Gateway == n.Gateway {
				if _, dup := out[u.Name]; !dup {
					out[u.Name] = s
				}
			}
		}
	}
	return out
}
