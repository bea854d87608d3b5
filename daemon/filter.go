package daemon

import (
	"slices"

	"github.com/uplinkd/uplinkd/events"
)

// eventFilter is what matters to the loop: routes of uplinkd's protocol
// and tables, and the links of its uplinks (by name, and by the index they
// had in the last dump, so a rename away is seen).
func (d *Daemon) eventFilter() events.Filter {
	r := d.cfg.Routing
	f := events.Filter{Protocol: r.RouteProtocol, Tables: []int{r.BalanceTable}}
	for _, u := range d.uplinks {
		f.Tables = append(f.Tables, u.cfg.Table)
		f.Interfaces = append(f.Interfaces, u.cfg.Interface)
		if u.link != nil {
			f.Indexes = append(f.Indexes, u.link.Index)
		}
	}
	for _, p := range d.cfg.Policies {
		f.Tables = append(f.Tables, p.Table)
	}
	slices.Sort(f.Tables)
	f.Tables = slices.Compact(f.Tables)
	return f
}

// updateFilter gives the event subscription the current filter. It runs
// before every dump, so a link that starts to matter (a reload naming a
// new interface) is watched before it is read, and after it, with the
// indexes the dump found (neighbour events carry only the index). A
// failure only costs foreign events reaching the loop, where they are
// ignored.
func (d *Daemon) updateFilter() {
	if d.mon == nil {
		return
	}
	if d.filterSet != nil && d.filterCfg == d.cfg && d.sameIndexes(d.filterSet.Indexes) {
		return // made of the configuration and the links' indexes only
	}
	f := d.eventFilter()
	d.filterCfg = d.cfg
	if d.filterSet != nil && sameFilter(*d.filterSet, f) {
		return
	}
	if err := d.mon.SetFilter(f); err != nil {
		d.log.Warn("cannot filter netlink events in the kernel; foreign events are read and ignored", "err", err)
		return
	}
	d.filterSet = &f
}

// sameIndexes says whether the uplinks' links have the indexes idx, as
// eventFilter lists them: cheaper than making the filter again at every
// event of hundreds of uplinks.
func (d *Daemon) sameIndexes(idx []int) bool {
	i := 0
	for _, u := range d.uplinks {
		if u.link == nil {
			continue
		}
		if i >= len(idx) || idx[i] != u.link.Index {
			return false
		}
		i++
	}
	return i == len(idx)
}

func sameFilter(a, b events.Filter) bool {
	return a.Protocol == b.Protocol && slices.Equal(a.Tables, b.Tables) &&
		slices.Equal(a.Interfaces, b.Interfaces) && slices.Equal(a.Indexes, b.Indexes)
}
