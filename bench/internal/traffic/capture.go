package traffic

import (
	"cmp"
	"slices"
	"time"
)

// Capture is what a sink recorded over a period.
type Capture struct {
	Ifaces   []string // interface names of the sink's namespace, by Arrival.If
	Arrivals []Arrival
}

func (c Capture) iface(a Arrival) string {
	if int(a.If) < len(c.Ifaces) {
		return c.Ifaces[a.If]
	}
	return "?"
}

// times returns the arrival times of one flow within [from, to), in order.
func (c Capture) times(kind Kind, flow uint16, from, to time.Time) []int64 {
	var ts []int64
	f, t := from.UnixNano(), to.UnixNano()
	for _, a := range c.Arrivals {
		if a.Kind == kind && a.Flow == flow && a.At >= f && a.At < t {
			ts = append(ts, a.At)
		}
	}
	slices.Sort(ts)
	return ts
}

// MaxGap is the longest time within [from, to) without an arrival of the
// flow, counting the edges of the period: a flow that stopped and never
// came back has a gap up to to.
func (c Capture) MaxGap(kind Kind, flow uint16, from, to time.Time) time.Duration {
	ts := c.times(kind, flow, from, to)
	prev, gap := from.UnixNano(), int64(0)
	for _, t := range ts {
		gap = max(gap, t-prev)
		prev = t
	}
	gap = max(gap, to.UnixNano()-prev)
	return time.Duration(gap)
}

// Path is the interface that carried most of the last n datagrams of the
// flow that arrived within [from, to), or "" if none arrived.
func (c Capture) Path(kind Kind, flow uint16, from, to time.Time, n int) string {
	var last []Arrival
	f, t := from.UnixNano(), to.UnixNano()
	for _, a := range c.Arrivals {
		if a.Kind == kind && a.Flow == flow && a.At >= f && a.At < t {
			last = append(last, a)
		}
	}
	slices.SortFunc(last, func(a, b Arrival) int { return cmp.Compare(a.At, b.At) })
	if len(last) > n {
		last = last[len(last)-n:]
	}
	count := make(map[string]int)
	for _, a := range last {
		count[c.iface(a)]++
	}
	best := ""
	for name, k := range count {
		if k > count[best] || (k == count[best] && name < best) {
			best = name
		}
	}
	return best
}

// Bins counts the LAN datagrams per incoming interface in the whole bins
// of width that fit between from and to.
func (c Capture) Bins(from, to time.Time, width time.Duration) map[string][]int {
	n := int(to.Sub(from) / width)
	out := make(map[string][]int)
	f := from.UnixNano()
	for _, a := range c.Arrivals {
		if a.Kind != LAN {
			continue
		}
		i := int((a.At - f) / int64(width))
		if a.At < f || i >= n {
			continue
		}
		name := c.iface(a)
		if out[name] == nil {
			out[name] = make([]int, n)
		}
		out[name][i]++
	}
	return out
}

// FirstNewConn is the time from since to the sending of the first
// new-connection probe sent after since that arrived through iface.
func (c Capture) FirstNewConn(iface string, since time.Time) (time.Duration, bool) {
	s := since.UnixNano()
	best, ok := int64(0), false
	for _, a := range c.Arrivals {
		if a.Kind == NewConn && a.Sent >= s && c.iface(a) == iface && (!ok || a.Sent-s < best) {
			best, ok = a.Sent-s, true
		}
	}
	return time.Duration(best), ok
}
