package probe

import (
	"slices"
	"time"
)

// Stats summarises the last Window probes to one target or, in
// Result.Stats, an uplink. Probes count once their outcome is known: when
// the reply arrives or the timeout passes, so the newest probes are missing
// for up to Timeout. Stats are plain values, safe to keep and compare.
type Stats struct {
	Probes int     // probes in the window whose outcome is known
	Lost   int     // of those, not answered within the timeout, or not sent
	Late   int     // of the lost, answered after the timeout after all
	Loss   float64 // Lost/Probes, from 0 to 1; 0 without probes
	// RTT is the mean round-trip time of the answered probes; Jitter the
	// mean absolute difference between the RTTs of consecutive answered
	// probes (in round order; lost probes are skipped). Both are 0 without
	// answers, Jitter with fewer than two.
	RTT    time.Duration
	Jitter time.Duration
	// Full is set once the window holds Window probes: only then are the
	// figures steady enough to judge the uplink's quality by.
	Full bool
}

// TargetStats are the statistics of one probe target.
type TargetStats struct {
	Target Target
	Stats
	// Duplicates counts replies that arrived again for a probe already
	// answered, since the prober started. They count nowhere else.
	Duplicates uint64
}

// outcome is what became of one probe.
type outcome struct {
	round uint64
	lost  bool
	late  bool // lost, then answered after the timeout
	rtt   time.Duration
}

// window holds the outcomes of the last size probes to one target, in
// round order. Outcomes are known out of order (a reply to round 5 can
// arrive before round 4 times out), so add inserts rather than appends.
// It is pure and not safe for concurrent use.
type window struct {
	size       int
	probes     []outcome // ascending by round, at most size
	floor      uint64    // rounds before it are no longer recorded
	duplicates uint64
}

func newWindow(size int) *window {
	return &window{size: max(size, 1)}
}

// add records round's outcome. An outcome older than every probe of a full
// window, or for a round already recorded, is dropped and reported false.
func (w *window) add(o outcome) bool {
	i, found := slices.BinarySearchFunc(w.probes, o.round, func(p outcome, r uint64) int {
		switch {
		case p.round < r:
			return -1
		case p.round > r:
			return 1
		}
		return 0
	})
	if found || o.round < w.floor || (i == 0 && len(w.probes) == w.size) {
		return false
	}
	w.probes = slices.Insert(w.probes, i, o)
	if len(w.probes) > w.size {
		w.probes = slices.Delete(w.probes, 0, len(w.probes)-w.size)
	}
	return true
}

// restart forgets the outcomes of the rounds before floor and refuses
// them from now on: the statistics start afresh at round floor.
func (w *window) restart(floor uint64) {
	w.floor = max(w.floor, floor)
	i := 0
	for i < len(w.probes) && w.probes[i].round < w.floor {
		i++
	}
	w.probes = slices.Delete(w.probes, 0, i)
}

// find returns the recorded outcome of round, if it is in the window.
func (w *window) find(round uint64) *outcome {
	for i := len(w.probes) - 1; i >= 0; i-- {
		if w.probes[i].round == round {
			return &w.probes[i]
		}
		if w.probes[i].round < round {
			break
		}
	}
	return nil
}

// stats computes the window's figures.
func (w *window) stats() Stats { return w.statsFrom(0) }

// statsFrom computes the figures of the probes from round floor on, as
// they would be after restart(floor).
func (w *window) statsFrom(floor uint64) Stats {
	probes := w.probes
	for len(probes) > 0 && probes[0].round < floor {
		probes = probes[1:]
	}
	s := Stats{Probes: len(probes), Full: len(probes) == w.size}
	var sum, diffs time.Duration
	answered := 0
	var prev time.Duration
	for _, p := range probes {
		if p.lost {
			s.Lost++
			if p.late {
				s.Late++
			}
			continue
		}
		if answered > 0 {
			diffs += (p.rtt - prev).Abs()
		}
		sum += p.rtt
		prev = p.rtt
		answered++
	}
	if s.Probes > 0 {
		s.Loss = float64(s.Lost) / float64(s.Probes)
	}
	if answered > 0 {
		s.RTT = sum / time.Duration(answered)
	}
	if answered > 1 {
		s.Jitter = diffs / time.Duration(answered-1)
	}
	return s
}

// uplinkStats rates an uplink by its targets: it is as good as its
// reliability-th best target, taken separately for loss, RTT and jitter.
// With reliability 1 a single dead or distant target does not make the
// uplink look bad, just as it does not fail a round. Probes and Full are
// those of the target with the fewest probes; Lost and Late are those of
// the target whose loss was taken.
func uplinkStats(targets []TargetStats, reliability int) Stats {
	if len(targets) == 0 {
		return Stats{}
	}
	k := min(max(reliability, 1), len(targets)) - 1
	byLoss := slices.Clone(targets)
	slices.SortStableFunc(byLoss, func(a, b TargetStats) int {
		switch {
		case a.Loss < b.Loss:
			return -1
		case a.Loss > b.Loss:
			return 1
		}
		return 0
	})
	s := Stats{
		Probes: targets[0].Probes,
		Full:   true,
		Lost:   byLoss[k].Lost,
		Late:   byLoss[k].Late,
		Loss:   byLoss[k].Loss,
	}
	var rtts, jitters []time.Duration
	for _, t := range targets {
		s.Probes = min(s.Probes, t.Probes)
		s.Full = s.Full && t.Full
		// A target that never answered has no RTT: it is worse than any.
		if t.Probes > t.Lost {
			rtts = append(rtts, t.RTT)
			jitters = append(jitters, t.Jitter)
		}
	}
	slices.Sort(rtts)
	slices.Sort(jitters)
	if k < len(rtts) {
		s.RTT, s.Jitter = rtts[k], jitters[k]
	}
	return s
}
