package probe

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func msd(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func answer(round uint64, rtt int) outcome { return outcome{round: round, rtt: msd(rtt)} }
func loss(round uint64) outcome            { return outcome{round: round, lost: true} }

func TestWindow(t *testing.T) {
	tests := []struct {
		name string
		size int
		add  []outcome
		want Stats
	}{
		{"empty", 4, nil, Stats{}},
		{"one answer", 4, []outcome{answer(1, 10)}, Stats{Probes: 1, RTT: msd(10)}},
		{"mean RTT and jitter", 4, []outcome{answer(1, 10), answer(2, 30), answer(3, 20), answer(4, 20)},
			// |30-10| + |20-30| + |20-20| = 30 over 3 pairs
			Stats{Probes: 4, RTT: msd(20), Jitter: msd(10), Full: true}},
		{"loss, and jitter skips lost probes", 4, []outcome{answer(1, 10), loss(2), answer(3, 40), loss(4)},
			Stats{Probes: 4, Lost: 2, Loss: 0.5, RTT: msd(25), Jitter: msd(30), Full: true}},
		{"only the last size probes count", 3, []outcome{loss(1), loss(2), answer(3, 10), answer(4, 10), answer(5, 10)},
			Stats{Probes: 3, RTT: msd(10), Full: true}},
		{"out of order outcomes are kept in round order", 3, []outcome{answer(2, 10), answer(4, 50), loss(3), answer(5, 10)},
			// window holds rounds 3, 4, 5: jitter between 4 and 5 only
			Stats{Probes: 3, Lost: 1, Loss: 1.0 / 3, RTT: msd(30), Jitter: msd(40), Full: true}},
		{"an outcome older than a full window is dropped", 2, []outcome{answer(5, 10), answer(6, 10), loss(4)},
			Stats{Probes: 2, RTT: msd(10), Full: true}},
		{"a round is recorded once", 4, []outcome{answer(1, 10), loss(1)},
			Stats{Probes: 1, RTT: msd(10)}},
		{"all lost", 2, []outcome{loss(1), loss(2)}, Stats{Probes: 2, Lost: 2, Loss: 1, Full: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWindow(tt.size)
			for _, o := range tt.add {
				w.add(o)
			}
			if diff := cmp.Diff(tt.want, w.stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUplinkStats(t *testing.T) {
	a, b, c := someTargets(3)[0], someTargets(3)[1], someTargets(3)[2]
	good := TargetStats{Target: a, Stats: Stats{Probes: 10, Lost: 1, Loss: 0.1, RTT: msd(20), Jitter: msd(2), Full: true}}
	far := TargetStats{Target: b, Stats: Stats{Probes: 10, RTT: msd(300), Jitter: msd(1), Full: true}}
	dead := TargetStats{Target: c, Stats: Stats{Probes: 9, Lost: 9, Loss: 1}}
	tests := []struct {
		name        string
		targets     []TargetStats
		reliability int
		want        Stats
	}{
		{"none", nil, 1, Stats{}},
		{"one target is the uplink", []TargetStats{good}, 1, good.Stats},
		{"best of each figure", []TargetStats{good, far, dead}, 1,
			Stats{Probes: 9, Lost: 0, Loss: 0, RTT: msd(20), Jitter: msd(1)}},
		{"second best of each figure", []TargetStats{good, far, dead}, 2,
			Stats{Probes: 9, Lost: 1, Loss: 0.1, RTT: msd(300), Jitter: msd(2)}},
		{"a target that never answered has no RTT", []TargetStats{good, far, dead}, 3,
			Stats{Probes: 9, Lost: 9, Loss: 1}},
		{"full only when every target is", []TargetStats{good, far}, 1,
			Stats{Probes: 10, RTT: msd(20), Jitter: msd(1), Full: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, uplinkStats(tt.targets, tt.reliability)); diff != "" {
				t.Errorf("uplinkStats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTrackerStats drives a tracker with a fake clock through answers,
// losses, failed sends, late and duplicate replies, and checks the
// statistics each target ends up with.
func TestTrackerStats(t *testing.T) {
	targets := someTargets(2)
	tr := newTracker(trackerConfig{Timeout: msd(100), Reliability: 1, Window: 4, Targets: targets}, Result{Uplink: "isp1"})
	deliver := func() (last Result) {
		for {
			r, ok := tr.head()
			if !ok {
				return last
			}
			tr.pop()
			last = r
		}
	}
	// Round 1: both answer; target 1 twice more (duplicates).
	tr.start(1, ms(0), []send{sent(ms(0)), sent(ms(0))})
	tr.reply(1, 0, ms(10))
	tr.reply(1, 1, ms(30))
	tr.reply(1, 1, ms(31))
	deliver()
	tr.reply(1, 1, ms(32)) // after delivery: still a duplicate
	// Round 2: target 0 answers, target 1 is lost, then answers late twice.
	tr.start(2, ms(50), []send{sent(ms(50)), sent(ms(50))})
	tr.reply(2, 0, ms(70))
	tr.expire(ms(150))
	tr.reply(2, 1, ms(160)) // late
	tr.reply(2, 1, ms(161)) // a duplicate of the late one
	deliver()
	// Round 3: target 1's send fails; target 0's reply comes exactly at
	// the deadline, which is late.
	tr.start(3, ms(200), []send{sent(ms(200)), failed(errTest)})
	tr.reply(3, 0, ms(300))
	tr.expire(ms(300))
	// Round 4: both answer; a reply to a round that left the tracker and
	// the window long ago changes nothing.
	tr.start(4, ms(400), []send{sent(ms(400)), sent(ms(400))})
	tr.reply(4, 0, ms(440))
	tr.reply(4, 1, ms(410))
	tr.reply(0, 1, ms(411))
	res := deliver()

	want := []TargetStats{
		{Target: targets[0], Stats: Stats{Probes: 4, Lost: 1, Late: 1, Loss: 0.25, RTT: msd(70) / 3, Jitter: msd(15), Full: true}},
		{Target: targets[1], Stats: Stats{Probes: 4, Lost: 2, Late: 1, Loss: 0.5, RTT: msd(20), Jitter: msd(20), Full: true}, Duplicates: 3},
	}
	if diff := cmp.Diff(want, res.Targets, equateAddr); diff != "" {
		t.Errorf("target statistics (-want +got):\n%s", diff)
	}
	wantUplink := Stats{Probes: 4, Lost: 1, Late: 1, Loss: 0.25, RTT: msd(20), Jitter: msd(15), Full: true}
	if diff := cmp.Diff(wantUplink, res.Stats); diff != "" {
		t.Errorf("uplink statistics (-want +got):\n%s", diff)
	}
	if res.Round != 4 || !res.Good {
		t.Errorf("last result %+v, want good round 4", res)
	}
}

var errTest = errors.New("send failed")

var equateAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// TestTrackerFreshAfterOutage checks that an outage of FreshAfter failed
// rounds or more leaves no trace in the statistics of the rounds after it,
// while a shorter run of failures stays in them.
func TestTrackerFreshAfterOutage(t *testing.T) {
	const every = 200 // ms between rounds
	targets := someTargets(2)
	type phase struct {
		rounds int
		answer bool
	}
	run := func(freshAfter int, phases ...phase) []Result {
		tr := newTracker(trackerConfig{Timeout: msd(500), Reliability: 1, Window: 50, Targets: targets, FreshAfter: freshAfter}, Result{Uplink: "isp1"})
		var out []Result
		n := uint64(0)
		for _, ph := range phases {
			for range ph.rounds {
				n++
				at := int(n) * every
				tr.start(n, ms(at), []send{sent(ms(at)), sent(ms(at))})
				if ph.answer {
					tr.reply(n, 0, ms(at+10))
					tr.reply(n, 1, ms(at+20))
				}
				tr.expire(ms(at + every))
				for {
					r, ok := tr.head()
					if !ok {
						break
					}
					tr.pop()
					out = append(out, r)
				}
			}
		}
		return out
	}

	// A 10 s outage (50 rounds), then 4 good rounds: the uplink is judged
	// on the probes since it came back only (a round is delivered once the
	// outage rounds before it have timed out, so a later one may be in),
	// and its window is not full.
	res := run(4, phase{60, true}, phase{50, false}, phase{4, true})
	for i, r := range res[len(res)-4:] {
		s := r.Stats
		if !r.Good || s.Lost != 0 || s.Loss != 0 || s.Full || s.Probes < i+1 || s.Probes > i+3 || s.RTT != msd(10) {
			t.Errorf("round %d after the outage: %+v, want good, %d to %d probes, none lost, RTT 10ms, window not full", i+1, s, i+1, i+3)
		}
	}
	// The failed rounds of the outage itself still report the losses.
	if last := res[len(res)-5]; last.Good || last.Stats.Loss < 0.9 {
		t.Errorf("last round of the outage: %+v, want failed with loss over 90%%", last.Stats)
	}
	// Late replies to outage rounds do not creep back in: tested through
	// the window, which refuses rounds before its floor.
	w := newWindow(4)
	w.add(loss(1))
	w.add(answer(3, 10))
	w.restart(3)
	if w.add(loss(2)) {
		t.Error("window took an outcome from before its restart")
	}
	if got := w.stats(); got.Probes != 1 || got.Lost != 0 {
		t.Errorf("after restart(3): %+v, want only round 3", got)
	}

	// Three failed rounds (below FreshAfter) stay in the statistics.
	res = run(4, phase{60, true}, phase{3, false}, phase{4, true})
	if s := res[len(res)-1].Stats; s.Lost != 3 || !s.Full {
		t.Errorf("after a 3-round failure: %+v, want 3 lost in a full window", s)
	}
	// FreshAfter 0 keeps the outage in the window, as before.
	res = run(0, phase{60, true}, phase{50, false}, phase{4, true})
	if s := res[len(res)-1].Stats; s.Lost != 46 {
		t.Errorf("without FreshAfter: %+v, want 46 of 50 lost", s)
	}
}
