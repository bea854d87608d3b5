package events

import "slices"

// Apply returns s as the link and address events evs leave it, applied in
// the order the kernel sent them: a link event carries the whole link
// (RTM_NEWLINK is sent with every change of its flags, carrier or name),
// an address event the whole address, so a consumer that holds a Dump and
// every later event of the links it watches knows their state without
// reading the kernel again; after lost events (ResyncEvent) it must Dump.
// Other events in evs are ignored. s itself is not changed.
//
//   - A new or changed link replaces the link with its index, and any other
//     link with its name (that one was deleted or renamed: its own event
//     says which), whose addresses go with it.
//   - A deleted link goes with its addresses.
//   - A new or changed address replaces the address with its link and
//     prefix (IPv6 flags change in place: tentative, deprecated); a
//     deleted one goes.
func (s Snapshot) Apply(evs []Event) Snapshot {
	out := Snapshot{Links: slices.Clone(s.Links), Addrs: slices.Clone(s.Addrs)}
	for _, ev := range evs {
		switch e := ev.(type) {
		case LinkEvent:
			out.applyLink(e)
		case AddrEvent:
			out.Addrs = slices.DeleteFunc(out.Addrs, func(a Addr) bool {
				return a.Index == e.Addr.Index && a.Prefix == e.Addr.Prefix
			})
			if !e.Deleted {
				out.Addrs = append(out.Addrs, e.Addr)
			}
		}
	}
	return out
}

// applyLink applies one link event to s in place.
func (s *Snapshot) applyLink(e LinkEvent) {
	var gone []int // indexes whose addresses go
	found := false
	i := 0
	for _, l := range s.Links {
		switch {
		case l.Index == e.Link.Index && !e.Deleted:
			l, found = e.Link, true // in its place
		case l.Index == e.Link.Index, !e.Deleted && l.Name == e.Link.Name:
			gone = append(gone, l.Index)
			continue
		}
		s.Links[i] = l
		i++
	}
	s.Links = s.Links[:i]
	if !e.Deleted && !found {
		s.Links = append(s.Links, e.Link)
	}
	if e.Deleted && !slices.Contains(gone, e.Link.Index) {
		gone = append(gone, e.Link.Index) // its addresses go even if the link was unknown
	}
	if len(gone) > 0 {
		s.Addrs = slices.DeleteFunc(s.Addrs, func(a Addr) bool { return slices.Contains(gone, a.Index) })
	}
}
