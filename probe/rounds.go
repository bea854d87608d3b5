package probe

import (
	"errors"
	"time"
)

// send is the outcome of sending one round's echo to one target.
type send struct {
	At  time.Time // when the echo was handed to the kernel; zero if it was not
	Err error     // why it was not
}

// echoState is what is known about one round's echo to one target.
type echoState uint8

const (
	scheduled echoState = iota // not sent yet: targets are probed one after another
	waiting                    // sent, no reply yet, deadline not passed
	unsent                     // the send failed
	answered                   // a reply came in time
	timedOut                   // the deadline passed first
)

// round is one started round that is not yet both delivered and closed
// (every echo answered or timed out).
type round struct {
	n         uint64
	sentAt    []time.Time // per target; zero: the echo was not sent (yet)
	state     []echoState // per target
	pending   int         // echoes not sent yet
	open      int         // echoes sent and still waiting
	sent      int         // echoes handed to the kernel
	sendErrs  []error
	sendErr   error // joined send errors, reported if the round fails
	decided   bool
	delivered bool
	res       Result
}

// deadline is when the echo to target must have been answered.
func (t *tracker) deadline(r *round, target int) time.Time {
	return r.sentAt[target].Add(t.timeout)
}

// tracker is the pure bookkeeping behind a Prober: it turns started rounds,
// replies and the passing of time into Results, delivered strictly in round
// order, and keeps each target's window of outcomes. It never reads a
// clock; every method takes the time it should act at, so tests drive it
// with a fake clock. It is not safe for concurrent use: one goroutine owns
// it.
//
// A round is decided good as soon as reliability targets have answered,
// and bad when its deadline passes first, or at once when fewer than
// reliability echoes could be sent. A round stays known after it is
// delivered until each of its echoes is answered or timed out, so that
// every target's outcome reaches its statistics.
type tracker struct {
	timeout     time.Duration
	reliability int
	freshAfter  int    // see trackerConfig.FreshAfter
	failed      int    // consecutive failed rounds delivered
	silent      bool   // one of them was decided by the silence rule
	floor       uint64 // first round in the statistics
	base        Result // Uplink and Gen, copied into every Result
	targets     []Target
	windows     []*window // per target
	// veto, if set, says why a round that has its answers must fail all
	// the same (a failing check); nil lets it pass.
	veto   func() error
	rounds []*round // ascending by number (and so by deadline)
}

// trackerConfig says how a tracker judges rounds.
type trackerConfig struct {
	Timeout     time.Duration
	Reliability int // targets that must answer for a good round; at least 1
	Window      int // probes per target in the statistics
	Targets     []Target
	// FreshAfter is the outage length, in consecutive failed rounds, after
	// which the statistics restart with the next good round, so that an
	// uplink back from an outage is judged on the probes sent since it
	// came back rather than on the outage's losses. A silence (see
	// engine) is an outage whatever its length. 0 never restarts them.
	FreshAfter int
}

func newTracker(c trackerConfig, base Result) *tracker {
	t := &tracker{
		timeout:     c.Timeout,
		reliability: max(c.Reliability, 1),
		freshAfter:  c.FreshAfter,
		base:        base,
		targets:     c.Targets,
	}
	for range c.Targets {
		t.windows = append(t.windows, newWindow(c.Window))
	}
	return t
}

// start records round n, started at now, with the outcome of the send to
// each target (sends is indexed by target): begin followed by sent for
// every target.
func (t *tracker) start(n uint64, now time.Time, sends []send) {
	t.begin(n)
	for i := range t.targets {
		var s send
		if i < len(sends) {
			s = sends[i]
		}
		t.sent(n, i, s)
	}
}

// begin records that round n has started; its echoes are sent one by one
// and reported with sent. Round numbers must increase from call to call.
func (t *tracker) begin(n uint64) {
	r := &round{
		n:       n,
		sentAt:  make([]time.Time, len(t.targets)),
		state:   make([]echoState, len(t.targets)),
		pending: len(t.targets),
	}
	t.rounds = append(t.rounds, r)
	if r.pending == 0 {
		t.sendsDone(r)
	}
}

// sent records the outcome of sending round n's echo to target. Once every
// echo of the round is accounted for, a round in which fewer than
// reliability echoes could be sent is decided bad at once, with the send
// errors in Err; an echo that could not be sent counts as lost in its
// target's statistics.
func (t *tracker) sent(n uint64, target int, s send) {
	r := t.find(n)
	if r == nil || target < 0 || target >= len(t.targets) || r.state[target] != scheduled {
		return
	}
	r.pending--
	if s.Err != nil || s.At.IsZero() {
		if s.Err != nil {
			r.sendErrs = append(r.sendErrs, s.Err)
		}
		r.state[target] = unsent
		t.windows[target].add(outcome{round: n, lost: true})
	} else {
		r.state[target] = waiting
		r.sentAt[target] = s.At
		r.open++
		r.sent++
	}
	if r.pending == 0 {
		t.sendsDone(r)
	}
}

// sendsDone decides a round whose echoes are all sent, or failed to be.
func (t *tracker) sendsDone(r *round) {
	r.sendErr = errors.Join(r.sendErrs...)
	if r.sent >= t.reliability || r.decided {
		return
	}
	err := r.sendErr
	if err == nil {
		err = errors.New("no echo sent")
	}
	if r.sent > 0 {
		// Some echoes left: the round cannot pass, but their
		// answers still belong in the statistics.
		err = errors.Join(err, errors.New("too few echoes sent for the reliability rule"))
	}
	t.decide(r, false, err)
}

// reply records that target answered round n at time at, and reports
// whether the reply counted as an answer. It does not count when the echo
// to that target was never sent, when the target's reply was already
// counted (a duplicate, tallied in Duplicates), or when it came at or after
// the round's deadline (late: the probe stays lost and is tallied in Late).
// Replies to rounds already forgotten are classified from the target's
// window the same way. Counted replies that arrive before the round is
// delivered raise Replies and may lower RTT; the reliability-th one decides
// the round good.
func (t *tracker) reply(n uint64, target int, at time.Time) bool {
	if target < 0 || target >= len(t.targets) {
		return false
	}
	r := t.find(n)
	if r == nil {
		t.stale(n, target)
		return false
	}
	switch r.state[target] {
	case unsent, scheduled:
		return false
	case answered:
		t.windows[target].duplicates++
		return false
	case timedOut:
		t.stale(n, target)
		return false
	}
	if !at.Before(t.deadline(r, target)) {
		t.timeOut(r, target, true)
		return false
	}
	r.state[target] = answered
	r.open--
	rtt := at.Sub(r.sentAt[target])
	t.windows[target].add(outcome{round: n, rtt: rtt})
	if r.delivered {
		return true
	}
	if r.res.Replies == 0 || rtt < r.res.RTT {
		r.res.RTT = rtt
	}
	r.res.Replies++
	if !r.decided && r.res.Replies >= t.reliability {
		t.decide(r, true, nil)
	}
	return true
}

// stale classifies a reply to an echo that is no longer waiting: the
// first reply to a lost probe is late, anything more is a duplicate.
// Replies to probes that have left the window are ignored.
func (t *tracker) stale(n uint64, target int) {
	w := t.windows[target]
	o := w.find(n)
	switch {
	case o == nil:
	case o.lost && !o.late:
		o.late = true
	default:
		w.duplicates++
	}
}

// timeOut closes target's echo of round r as lost.
func (t *tracker) timeOut(r *round, target int, late bool) {
	r.state[target] = timedOut
	r.open--
	t.windows[target].add(outcome{round: r.n, lost: true, late: late})
}

// expire times out every echo whose deadline is not after now and decides
// bad every round whose echoes are then all sent and closed without enough
// answers.
func (t *tracker) expire(now time.Time) {
	for _, r := range t.rounds {
		for i, s := range r.state {
			if s == waiting && !now.Before(t.deadline(r, i)) {
				t.timeOut(r, i, false)
			}
		}
		if !r.decided && r.pending == 0 && r.open == 0 {
			t.decide(r, false, r.sendErr)
		}
	}
	t.forget()
}

// next returns the time at which expire has work to do: the earliest
// deadline of an echo still waiting.
func (t *tracker) next() (time.Time, bool) {
	var first time.Time
	for _, r := range t.rounds {
		for i, s := range r.state {
			if s == waiting {
				if d := t.deadline(r, i); first.IsZero() || d.Before(first) {
					first = d
				}
			}
		}
	}
	return first, !first.IsZero()
}

// silence decides bad, as Silent, every round not decided yet: no reply at
// all has come for so long that the uplink is taken for dead. Their echoes
// still reach the statistics when they are answered or time out.
func (t *tracker) silence(quiet time.Duration, unanswered int) {
	for _, r := range t.rounds {
		if !r.decided {
			t.decide(r, false, r.sendErr)
			r.res.Silent, r.res.Silence, r.res.Unanswered = true, quiet, unanswered
		}
	}
}

// sentAt returns when round n's echo to target was sent, if it was and
// the round is still known.
func (t *tracker) sentAt(n uint64, target int) (time.Time, bool) {
	r := t.find(n)
	if r == nil || target < 0 || target >= len(r.sentAt) || r.sentAt[target].IsZero() {
		return time.Time{}, false
	}
	return r.sentAt[target], true
}

// head returns the result that is due for delivery: that of the oldest
// undelivered round, once it is decided, with the statistics as they are
// now. A decided round behind an undecided one waits, so results leave in
// round order.
func (t *tracker) head() (Result, bool) {
	for _, r := range t.rounds {
		if r.delivered {
			continue
		}
		if !r.decided {
			return Result{}, false
		}
		res := r.res
		res.Targets = t.targetStats(t.floorFor(r))
		res.Stats = uplinkStats(res.Targets, t.reliability)
		return res, true
	}
	return Result{}, false
}

// pop marks the round head returned as delivered. Its replies still reach
// the statistics, but no longer its Result.
func (t *tracker) pop() {
	for _, r := range t.rounds {
		if r.delivered {
			continue
		}
		if r.decided {
			if f := t.floorFor(r); f != t.floor {
				t.floor = f
				for _, w := range t.windows {
					w.restart(f)
				}
			}
			if r.res.Good {
				t.failed, t.silent = 0, false
			} else {
				t.failed++
				t.silent = t.silent || r.res.Silent
			}
			r.delivered = true
			t.forget()
		}
		return
	}
}

// pending is the number of started rounds not yet delivered.
func (t *tracker) pending() int {
	n := 0
	for _, r := range t.rounds {
		if !r.delivered {
			n++
		}
	}
	return n
}

// floorFor is the first round of the statistics once r, the next round
// to deliver, is delivered: r itself when it is the first good round
// after an outage of at least freshAfter failed rounds.
func (t *tracker) floorFor(r *round) uint64 {
	if t.freshAfter > 0 && r.res.Good && (t.failed >= t.freshAfter || t.silent) {
		return r.n
	}
	return t.floor
}

// targetStats returns every target's statistics from round floor on, in
// target order.
func (t *tracker) targetStats(floor uint64) []TargetStats {
	out := make([]TargetStats, len(t.targets))
	for i, w := range t.windows {
		out[i] = TargetStats{Target: t.targets[i], Stats: w.statsFrom(floor), Duplicates: w.duplicates}
	}
	return out
}

// forget drops the rounds that are delivered and closed.
func (t *tracker) forget() {
	keep := t.rounds[:0]
	for _, r := range t.rounds {
		if !r.delivered || r.open > 0 || r.pending > 0 {
			keep = append(keep, r)
		}
	}
	clear(t.rounds[len(keep):])
	t.rounds = keep
}

func (t *tracker) find(n uint64) *round {
	for _, r := range t.rounds {
		if r.n == n {
			return r
		}
	}
	return nil
}

func (t *tracker) decide(r *round, good bool, err error) {
	if good && t.veto != nil {
		if verr := t.veto(); verr != nil {
			good, err = false, verr
		}
	}
	replies, rtt := r.res.Replies, r.res.RTT
	r.decided = true
	r.res = t.base
	r.res.Round = r.n
	r.res.Good = good
	r.res.Err = err
	r.res.Replies, r.res.RTT = replies, rtt
}
