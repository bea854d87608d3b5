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

// round is one started, not yet delivered round.
type round struct {
	n        uint64
	deadline time.Time   // replies must arrive before it
	sentAt   []time.Time // per target; zero: the echo was not sent
	replied  []bool      // per target: its reply has been counted
	sendErr  error       // joined send errors, reported if the round fails
	decided  bool
	res      Result
}

// tracker is the pure bookkeeping behind a Prober: it turns started rounds,
// replies and the passing of time into Results, delivered strictly in round
// order. It never reads a clock; every method takes the time it should act
// at, so tests drive it with a fake clock. It is not safe for concurrent use:
// one goroutine owns it.
type tracker struct {
	timeout time.Duration
	base    Result   // Uplink and Gen, copied into every Result
	rounds  []*round // undelivered rounds, ascending by number
}

func newTracker(timeout time.Duration, base Result) *tracker {
	return &tracker{timeout: timeout, base: base}
}

// start records round n, started at now, with the outcome of the send to
// each target (sends is indexed by target). Round numbers must increase from
// call to call. A round in which no echo could be sent is decided bad at
// once, with the send errors in Err.
func (t *tracker) start(n uint64, now time.Time, sends []send) {
	r := &round{
		n:        n,
		deadline: now.Add(t.timeout),
		sentAt:   make([]time.Time, len(sends)),
		replied:  make([]bool, len(sends)),
	}
	var errs []error
	sent := 0
	for i, s := range sends {
		if s.Err != nil || s.At.IsZero() {
			if s.Err != nil {
				errs = append(errs, s.Err)
			}
			continue
		}
		r.sentAt[i] = s.At
		sent++
	}
	r.sendErr = errors.Join(errs...)
	if sent == 0 {
		err := r.sendErr
		if err == nil {
			err = errors.New("no echo sent")
		}
		t.decide(r, false, err)
	}
	t.rounds = append(t.rounds, r)
}

// reply records that target answered round n at time at, and reports
// whether the reply counted. It does not count when the round is unknown or
// already delivered, the echo to that target was never sent, the target's
// reply was already counted (a duplicate), or the reply came at or after the
// round's deadline (late). The first counted reply decides the round good;
// replies counted after that, while the round still waits for an earlier
// one to be delivered, raise Replies and may lower RTT.
func (t *tracker) reply(n uint64, target int, at time.Time) bool {
	r := t.find(n)
	if r == nil || target < 0 || target >= len(r.sentAt) {
		return false
	}
	if r.sentAt[target].IsZero() || r.replied[target] || !at.Before(r.deadline) {
		return false
	}
	if r.decided && !r.res.Good {
		return false
	}
	r.replied[target] = true
	rtt := at.Sub(r.sentAt[target])
	if !r.decided {
		t.decide(r, true, nil)
		r.res.RTT = rtt
	} else if rtt < r.res.RTT {
		r.res.RTT = rtt
	}
	r.res.Replies++
	return true
}

// expire decides bad every undecided round whose deadline is not after now.
func (t *tracker) expire(now time.Time) {
	for _, r := range t.rounds {
		if !r.decided && !now.Before(r.deadline) {
			t.decide(r, false, r.sendErr)
		}
	}
}

// next returns the time at which expire has work to do: the deadline of the
// oldest undecided round. Deadlines grow with round numbers, so it is also
// the earliest one.
func (t *tracker) next() (time.Time, bool) {
	for _, r := range t.rounds {
		if !r.decided {
			return r.deadline, true
		}
	}
	return time.Time{}, false
}

// head returns the result that is due for delivery: that of the oldest
// undelivered round, once it is decided. A decided round behind an undecided
// one waits, so results leave in round order.
func (t *tracker) head() (Result, bool) {
	if len(t.rounds) == 0 || !t.rounds[0].decided {
		return Result{}, false
	}
	return t.rounds[0].res, true
}

// pop forgets the round head returned, after it has been delivered. Replies
// for it no longer count.
func (t *tracker) pop() {
	if len(t.rounds) == 0 || !t.rounds[0].decided {
		return
	}
	t.rounds[0] = nil
	t.rounds = t.rounds[1:]
}

// pending is the number of started rounds not yet delivered.
func (t *tracker) pending() int { return len(t.rounds) }

func (t *tracker) find(n uint64) *round {
	for _, r := range t.rounds {
		if r.n == n {
			return r
		}
	}
	return nil
}

func (t *tracker) decide(r *round, good bool, err error) {
	r.decided = true
	r.res = t.base
	r.res.Round = r.n
	r.res.Good = good
	r.res.Err = err
}
