package probe

import (
	"testing"
	"time"
)

// onGrid reports whether at is a point of the grid epoch + m·gap.
func onGrid(at, epoch time.Time, gap time.Duration) bool {
	return at.Sub(epoch)%gap == 0
}

// checkSpacing fails the test when two echoes of s came less than a gap
// apart, or two echoes to one target less than an interval apart.
func checkSpacing(t *testing.T, name string, s *sim, gap time.Duration) {
	t.Helper()
	for i := 1; i < len(s.sends); i++ {
		if d := s.sends[i].Sub(s.sends[i-1]); d < gap {
			t.Errorf("%s: echo %d came %v after the one before, want at least %v", name, i, d, gap)
		}
	}
	for target, ts := range s.byTgt {
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d < defInterval {
				t.Errorf("%s: target %d got echoes %v apart, want at least %v", name, target, d, defInterval)
			}
		}
	}
}

// TestEngineGridSharedByLateStarters: probers of one process that start at
// different times (the daemon's start, a reload, a restarted prober) send
// their first echo at once and every later one on the shared grid, so all
// send on the same instants. Each target still gets one echo per interval,
// the uplink one per gap, and no round is skipped.
func TestEngineGridSharedByLateStarters(t *testing.T) {
	epoch := t0.Add(-123456789 * time.Nanosecond)
	end := t0.Add(20 * time.Second)
	var sims []*sim
	for i, start := range []time.Duration{0, 37 * time.Millisecond, 250 * time.Millisecond, 1303 * time.Millisecond, 7777 * time.Millisecond} {
		s := newSim(t, uint64(i), 2, fixed(20*time.Millisecond, 0, 0))
		s.e.cfg.Epoch = epoch
		s.now = t0.Add(start)
		s.run(end)
		sims = append(sims, s)
		gap := defInterval / 2
		if s.sends[0] != t0.Add(start) {
			t.Errorf("prober %d: first echo at %v, want at once (%v)", i, s.sends[0].Sub(t0), start)
		}
		for j, at := range s.sends[1:] {
			if !onGrid(at, epoch, gap) {
				t.Fatalf("prober %d: echo %d at %v, off the grid", i, j+1, at.Sub(t0))
			}
		}
		if d := s.sends[1].Sub(s.sends[0]); d >= 2*gap {
			t.Errorf("prober %d: second echo %v after the first, want less than two gaps", i, d)
		}
		checkSpacing(t, "prober", s, gap)
		// One round per interval from the second echo on, none skipped.
		for j, r := range s.results {
			if r.Round != uint64(j+1) || !r.Good {
				t.Fatalf("prober %d: result %d is %+v, want good round %d", i, j, r, j+1)
			}
		}
		if want := int(end.Sub(s.sends[1])/defInterval) + 1; len(s.results) < want-1 {
			t.Errorf("prober %d: %d rounds, want about %d", i, len(s.results), want)
		}
	}
	// From the last start on, every prober sends on the same instants.
	from := t0.Add(7777*time.Millisecond + defInterval)
	var ref []time.Time
	for i, s := range sims {
		var got []time.Time
		for _, at := range s.sends {
			if !at.Before(from) {
				got = append(got, at)
			}
		}
		if i == 0 {
			ref = got
			continue
		}
		if len(got) != len(ref) {
			t.Fatalf("prober %d sent %d echoes after %v, prober 0 %d", i, len(got), from.Sub(t0), len(ref))
		}
		for j := range got {
			if !got[j].Equal(ref[j]) {
				t.Fatalf("prober %d sent at %v, prober 0 at %v", i, got[j].Sub(t0), ref[j].Sub(t0))
			}
		}
	}
}

// TestEngineGridAfterStall: a prober stalled for longer than a gap sends
// the echo that is due when the stall ends and goes back to the grid
// without bringing two echoes closer than a gap, or two echoes to one
// target closer than an interval. (A shorter delay keeps the schedule: the
// late echo is followed by the next one at its time, as without a grid.)
func TestEngineGridAfterStall(t *testing.T) {
	epoch := t0.Add(-time.Duration(3e8 + 1))
	for _, stall := range []time.Duration{520 * time.Millisecond, 777 * time.Millisecond, 1370 * time.Millisecond} {
		s := newSim(t, 1, 2, fixed(20*time.Millisecond, 0, 0))
		s.e.cfg.Epoch = epoch
		s.run(t0.Add(5 * time.Second))
		held := s.replies
		s.replies = nil
		s.now = s.now.Add(stall)
		for _, r := range held {
			s.e.reply(r.id, r.target, r.at)
		}
		resumed := s.now
		s.run(t0.Add(10 * time.Second))
		checkSpacing(t, "stall "+stall.String(), s, defInterval/2)
		for _, at := range s.sends[1:] {
			if !at.Equal(resumed) && !onGrid(at, epoch, defInterval/2) {
				t.Fatalf("stall %v: echo at %v off the grid", stall, at.Sub(t0))
			}
		}
		for _, r := range s.results {
			if !r.Good || r.Silent {
				t.Fatalf("stall %v: round %+v failed", stall, r)
			}
		}
	}
}

func TestEngineAlign(t *testing.T) {
	e := newEngine(engineConfig{Interval: 3 * time.Second, Timeout: time.Second, Window: 1, Targets: someTargets(3)}, Result{})
	if got := e.align(t0.Add(5)); !got.Equal(t0.Add(5)) {
		t.Errorf("align without an epoch moved %v to %v", t0.Add(5), got)
	}
	e.cfg.Epoch = t0
	for _, c := range []struct{ in, want time.Duration }{
		{0, 0}, {1, time.Second}, {time.Second, time.Second}, {time.Second + 1, 2 * time.Second},
		{-1, 0}, {-time.Second, -time.Second}, {-time.Second - 1, -time.Second},
	} {
		if got := e.align(t0.Add(c.in)); !got.Equal(t0.Add(c.want)) {
			t.Errorf("align(epoch%+v) = epoch%+v, want epoch%+v", c.in, got.Sub(t0), c.want)
		}
	}
}
