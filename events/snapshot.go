package events

import "slices"

// Apply changes s as the link and address events evs change the kernel's
// state, applied in the order the kernel sent them: a link event carries
// the whole link (RTM_NEWLINK is sent with every change of its flags,
// carrier or name), an address event the whole address, so a consumer
// that holds a Dump and every later event of the links it watches knows
// their state without reading the kernel again; after lost events
// (ResyncEvent) it must Dump. Other events in evs are ignored. Apply
// works in place, in s's own slices: Clone first to keep s as it was.
//
//   - A new or changed link replaces the link with its index, in its
//     place, and any other link with its name (that one was deleted or
//     renamed: its own event says which), whose addresses go with it.
//   - A deleted link goes with its addresses.
//   - A new or changed address replaces the address with its link and
//     prefix (IPv6 flags change in place: tentative, deprecated); a
//     deleted one goes.
func (s *Snapshot) Apply(evs []Event) {
	for _, ev := range evs {
		switch e := ev.(type) {
		case LinkEvent:
			s.applyLink(e)
		case AddrEvent:
			s.applyAddr(e)
		}
	}
}

// Clone returns a copy of s that shares nothing with it.
func (s Snapshot) Clone() Snapshot {
	return Snapshot{Links: slices.Clone(s.Links), Addrs: slices.Clone(s.Addrs)}
}

// applyAddr applies one address event to s in place.
func (s *Snapshot) applyAddr(e AddrEvent) {
	for i, a := range s.Addrs {
		if a.Index == e.Addr.Index && a.Prefix == e.Addr.Prefix {
			if e.Deleted {
				s.Addrs = slices.Delete(s.Addrs, i, i+1)
			} else {
				s.Addrs[i] = e.Addr
			}
			return
		}
	}
	if !e.Deleted {
		s.Addrs = append(s.Addrs, e.Addr)
	}
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
