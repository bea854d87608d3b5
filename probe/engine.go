package probe

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Tuning of the schedule and of the silence rule. They are not
// configuration: docs/health.md derives the detection time and the false-alarm
// rate from them.
const (
	// rtoFloor is the shortest wait for a reply before the prober sends
	// a confirmation burst: srtt + 4·rttvar is far shorter on a LAN-like
	// path, and the burst only costs packets.
	rtoFloor = 30 * time.Millisecond
	// burstWaves confirmation echoes go to every target, burstSpacing
	// apart, once per silence.
	burstWaves   = 3
	burstSpacing = 25 * time.Millisecond
	// rttMargin is added to the silence when the RTT-tracking timeout
	// nears the configured one, so the answers to a burst sent after a
	// full RTO still come in time on a slow but working path.
	rttMargin = 100 * time.Millisecond
	// minSilentEchoes unanswered echoes at least make a silence: with
	// two targets, the one that went unanswered, the burst's four and the
	// next regular one. On an uplink that loses a fraction p of its
	// probes, as many more as make p^n at most falseSilence: random loss
	// must not pass for an outage, however lossy the uplink.
	minSilentEchoes = 6
	falseSilence    = 1e-7
	maxSilentEchoes = 64
	evidencePrior   = 10
	recentProbes    = 10
	// budget is the most probe packets an uplink sends in any second;
	// confirmation echoes that would exceed it are not sent.
	budget = 10
)

// burstBit marks the identifier of a confirmation echo, which belongs to
// no round; regular echoes carry their round number.
const burstBit = 1 << 63

// probeReq asks the caller to send one echo now.
type probeReq struct {
	id     uint64 // round number, or burstBit|n for a confirmation echo
	target int
}

// engineConfig says what an engine schedules and how it judges.
type engineConfig struct {
	Interval, Timeout time.Duration
	Reliability       int
	Window            int
	FreshAfter        int
	Targets           []Target
	// Checks veto every round while one fails or has not answered yet.
	Checks []Target
	// MaxPending rounds may wait for delivery; beyond that no new round
	// starts until the reader catches up. 0: no limit.
	MaxPending int
	// Epoch anchors the schedule's grid: after the first echo, which
	// goes at once, regular echoes are sent at Epoch + m·gap only, so
	// the probers of a process that share an Epoch (and a gap) send at
	// the same instants and one wake-up serves them all. Zero: the
	// grid is anchored at the first step.
	Epoch time.Time
}

// sentEcho is an echo sent since the last reply, regular or confirmation.
type sentEcho struct {
	at    time.Time
	due   time.Time // at + the RTT-tracking timeout when it was sent
	burst bool
}

// engine is the pure core of a Prober: it decides when to send which
// echo, turns replies and the passing of time into Results (through a
// tracker) and declares an uplink silent. It never reads a clock: every
// method takes the time it acts at, so tests drive it with a fake one.
//
// Schedule: every Interval a round starts and sends one echo to each
// target, the targets spread evenly over the interval (gap =
// Interval/len(Targets)), so each target gets one echo per Interval and
// the uplink one per gap. The first echo goes at once; every later one on
// the grid of Epoch + m·gap (see align), never less than a gap after the
// echo before, so two echoes to one target are always at least Interval
// apart, whenever the engine started.
//
// Silence: any reply of ours, late or duplicate included, proves the path
// alive. When an echo sent after the last reply is still unanswered after
// its RTT-tracking timeout (srtt + 4·rttvar of its target, at least
// rtoFloor, at most Timeout), a confirmation burst goes to every target.
// The uplink is declared silent once no reply came for the silence time
// (gap + Timeout, or more on a slow path; see silence), the burst is
// overdue too and at least minSilentEchoes echoes went unanswered: every
// undecided round is then decided bad with Silent set.
type engine struct {
	tr     *tracker
	cfg    engineConfig
	gap    time.Duration
	rtt    []rttEstimator // per target
	bursts map[uint64]burstEcho
	gates  []gate // per check

	started    bool
	nextSend   time.Time
	round      uint64 // last round begun
	k          int    // target of the next regular echo
	burstSeq   uint64
	burstTimes []time.Time // of the confirmations sent in the last second, for the budget
	sentTotal  uint64

	lastReply time.Time  // newest proof of life
	since     []sentEcho // echoes sent after lastReply
	need      int        // unanswered echoes that make a silence
	cut       int        // confirmation echoes of this silence the budget cut
	waves     []time.Time
	burstDone bool // this silence's burst was started
	declared  bool // this silence was declared
	// sampleFrom is when the last declared silence ended: only echoes
	// sent since are RTT samples (see alive).
	sampleFrom time.Time
}

// gate is what is known of one check.
type gate struct {
	known bool
	err   error // of the last run; nil: it passed
	seq   uint64
	win   *window
}

// burstEcho is a confirmation echo waiting for its reply.
type burstEcho struct {
	target int
	at     time.Time
}

func newEngine(c engineConfig, base Result) *engine {
	n := max(len(c.Targets), 1)
	e := &engine{
		tr: newTracker(trackerConfig{
			Timeout: c.Timeout, Reliability: c.Reliability, Window: c.Window,
			Targets: c.Targets, FreshAfter: c.FreshAfter,
		}, base),
		cfg:    c,
		need:   minSilentEchoes,
		gap:    c.Interval / time.Duration(n),
		rtt:    make([]rttEstimator, len(c.Targets)),
		bursts: make(map[uint64]burstEcho),
		gates:  make([]gate, len(c.Checks)),
	}
	for i := range e.gates {
		e.gates[i].win = newWindow(c.Window)
	}
	if len(e.gates) > 0 {
		e.tr.veto = e.veto
	}
	return e
}

// veto is why no round may pass now: a check that failed its last run, or
// has not answered yet.
func (e *engine) veto() error {
	for i, g := range e.gates {
		switch {
		case !g.known:
			return fmt.Errorf("check %s has not answered yet", e.cfg.Checks[i].URL)
		case g.err != nil:
			return fmt.Errorf("check %s failed: %w", e.cfg.Checks[i].URL, g.err)
		}
	}
	return nil
}

// check records a run of check i: passed when err is nil, in took.
func (e *engine) check(i int, err error, took time.Duration) {
	if i < 0 || i >= len(e.gates) {
		return
	}
	g := &e.gates[i]
	g.seq++
	g.win.add(outcome{round: g.seq, lost: err != nil, rtt: took})
	g.known, g.err = true, err
}

// rto is the RTT-tracking timeout of target.
func (e *engine) rto(target int) time.Duration {
	return e.rtt[target].rto(rtoFloor, e.cfg.Timeout)
}

// silence is how long no reply at all must have come before the uplink is
// declared silent: one gap (the next echo after the last reply) plus the
// timeout, and more when an RTT-tracking timeout comes within rttMargin
// of the timeout, so a burst sent after a full RTO is still answered in
// time on a working path.
func (e *engine) silence() time.Duration {
	wait := e.cfg.Timeout
	for i := range e.rtt {
		wait = max(wait, e.rto(i)+rttMargin)
	}
	return e.gap + wait
}

// next returns when the engine next has something to do: send, time out
// an echo, start or continue a burst, or declare silence.
func (e *engine) next() time.Time {
	if !e.started {
		return time.Time{}
	}
	t := e.nextSend
	early := func(c time.Time) {
		if !c.IsZero() && c.Before(t) {
			t = c
		}
	}
	if d, ok := e.tr.next(); ok {
		early(d)
	}
	if len(e.waves) > 0 {
		early(e.waves[0])
	}
	if !e.burstDone {
		for _, s := range e.since {
			early(s.due)
		}
	}
	if at, ok := e.silentAt(); ok {
		early(at)
	}
	return t
}

// silentAt is when the current silence will be declared if no reply comes
// meanwhile: the silence time after the last reply, once the burst is out
// and overdue and enough echoes are overdue.
func (e *engine) silentAt() (time.Time, bool) {
	// Confirmations the budget cut are replaced by as many more regular
	// echoes: the evidence does not shrink because probes were saved.
	need := min(e.need+e.cut, maxSilentEchoes)
	if e.declared || !e.burstDone || len(e.waves) > 0 || len(e.since) < need {
		return time.Time{}, false
	}
	at := e.lastReply.Add(e.silence())
	dues := make([]time.Time, 0, len(e.since))
	for _, s := range e.since {
		if s.burst && s.due.After(at) {
			at = s.due
		}
		dues = append(dues, s.due)
	}
	slices.SortFunc(dues, func(a, b time.Time) int { return a.Compare(b) })
	if d := dues[need-1]; d.After(at) {
		at = d
	}
	return at, true
}

// step returns the echoes to send at now: the next regular one when it is
// due, and confirmation echoes. The caller sends them and reports each
// with sent, then calls expire.
func (e *engine) step(now time.Time) []probeReq {
	if !e.started {
		e.started = true
		e.nextSend = now
		e.lastReply = now // the prober starts from a clean slate
	}
	var reqs []probeReq
	if !now.Before(e.nextSend) && len(e.cfg.Targets) > 0 {
		if e.k == 0 && e.cfg.MaxPending > 0 && e.tr.pending() >= e.cfg.MaxPending {
			// The reader is behind: wait for it rather than pile up.
		} else {
			if e.k == 0 {
				e.round++
				e.tr.begin(e.round)
			}
			reqs = append(reqs, probeReq{id: e.round, target: e.k})
			e.k = (e.k + 1) % len(e.cfg.Targets)
		}
		next := e.nextSend.Add(e.gap)
		if !next.After(now) {
			// Stalled past a whole gap: go on from now rather than
			// catch up with a burst.
			next = now.Add(e.gap)
		}
		e.nextSend = e.align(next)
	}
	if !e.burstDone && !e.declared {
		for _, s := range e.since {
			if !now.Before(s.due) {
				e.burstDone = true
				for i := range burstWaves {
					e.waves = append(e.waves, now.Add(time.Duration(i)*burstSpacing))
				}
				break
			}
		}
	}
	queued := 0
	for len(e.waves) > 0 && !now.Before(e.waves[0]) {
		e.waves = e.waves[1:]
		for target, t := range e.cfg.Targets {
			if t.Method != MethodICMP {
				continue // confirmations are echoes: cheap, and answered by the kernel
			}
			if !e.allowed(now, queued) {
				e.cut++
				continue
			}
			e.burstSeq++
			reqs = append(reqs, probeReq{id: burstBit | e.burstSeq, target: target})
			queued++
		}
	}
	return reqs
}

// align returns the first point of the schedule's grid, Epoch + m·gap,
// at or after t; t itself without an Epoch. On the grid, the first echo
// (sent at once) is followed by the next one between one and two gaps
// later, and an echo sent late (a stall) likewise: the grid never brings
// two echoes closer than a gap.
func (e *engine) align(t time.Time) time.Time {
	if e.cfg.Epoch.IsZero() || e.gap <= 0 {
		return t
	}
	d := t.Sub(e.cfg.Epoch)
	m := d / e.gap
	if d%e.gap > 0 {
		m++
	} // negative d (t before Epoch): truncation already rounds up
	return e.cfg.Epoch.Add(m * e.gap)
}

// allowed reports whether one more confirmation echo fits the budget, with
// queued more of this step not yet reported as sent. Any second holds at
// most ceil(1s/gap) regular echoes, one more as timers and the network
// jitter, so confirmations get what is left of the budget, counted over
// the last second.
func (e *engine) allowed(now time.Time, queued int) bool {
	cut := now.Add(-time.Second)
	i := 0
	for i < len(e.burstTimes) && !e.burstTimes[i].After(cut) {
		i++
	}
	e.burstTimes = e.burstTimes[i:]
	regular := int((time.Second+e.gap-1)/e.gap) + 1
	return len(e.burstTimes)+queued < budget-regular
}

// sent records the outcome of sending req.
func (e *engine) sent(req probeReq, s send) {
	ok := s.Err == nil && !s.At.IsZero()
	if ok {
		e.sentTotal++
		if req.id&burstBit != 0 {
			e.burstTimes = append(e.burstTimes, s.At)
		}
	}
	// Once a silence is declared, the echoes sent since matter no more:
	// the next reply ends it and they are older. Not keeping them bounds
	// the memory of a long outage.
	track := ok && !e.declared
	if req.id&burstBit != 0 {
		if ok {
			e.bursts[req.id] = burstEcho{target: req.target, at: s.At}
		}
		if track {
			e.since = append(e.since, sentEcho{at: s.At, due: s.At.Add(e.rto(req.target)), burst: true})
		}
		return
	}
	e.tr.sent(req.id, req.target, s)
	if track {
		e.since = append(e.since, sentEcho{at: s.At, due: s.At.Add(e.rto(req.target))})
	}
}

// reply records a reply of ours from target to echo id, received at at,
// and reports whether it counted as a round's answer (see tracker.reply).
// Every reply, late or duplicate included, proves the path alive.
func (e *engine) reply(id uint64, target int, at time.Time) bool {
	if target < 0 || target >= len(e.cfg.Targets) {
		return false
	}
	if id&burstBit != 0 {
		b, ok := e.bursts[id]
		if !ok || b.target != target {
			return false
		}
		delete(e.bursts, id)
		e.sample(target, b.at, at)
		e.alive(at)
		return false
	}
	if sentAt, ok := e.tr.sentAt(id, target); ok {
		e.sample(target, sentAt, at)
	}
	counted := e.tr.reply(id, target, at)
	e.alive(at)
	return counted
}

// sample feeds target's RTT tracking with the reply at at to an echo sent
// at sent, unless the echo is from before the end of the last silence.
func (e *engine) sample(target int, sent, at time.Time) {
	if !sent.Before(e.sampleFrom) && !at.Before(sent) {
		e.rtt[target].sample(at.Sub(sent))
	}
}

// alive records a proof of life at at: the silence, if any, is over.
//
// When the silence was declared, the RTT tracking restarts, and only
// echoes sent from now on are samples. The replies that end a silence
// often come all at once, for echoes sent over the whole silence, which
// had waited behind it (neighbour discovery on a link that has just come
// up, a queue that empties when the path comes back): their round trips
// are the silence's, not the path's. Taken in, a first sample of a second
// (rttvar starts at half of it) would hold the RTT-tracking timeout at its
// ceiling for some twenty samples, ten seconds, and the next silence would
// be declared up to half a second late.
func (e *engine) alive(at time.Time) {
	if !at.After(e.lastReply) {
		return
	}
	if e.declared {
		clear(e.rtt)
		e.sampleFrom = at
	}
	e.lastReply = at
	e.need = e.evidence()
	e.since = slices.DeleteFunc(e.since, func(s sentEcho) bool { return !s.at.After(at) })
	e.waves = nil
	e.burstDone, e.declared, e.cut = false, false, 0
}

// evidence returns how many unanswered echoes make a silence on this
// uplink: minSilentEchoes, or more when its probes' loss over the window,
// all targets together, is so high that fewer would often go unanswered by
// chance. The loss is estimated as if evidencePrior more probes had been
// answered, so that a window with few probes yet (a new prober, or
// statistics restarted after an outage) neither trusts its first losses
// nor ignores them. It is taken when a reply comes, so the silence that
// may follow does not count against itself.
//
// The loss is the higher of two estimates: over the whole window, and over
// the last recentProbes probes of each target, which follows a sudden
// rise of the loss within seconds.
func (e *engine) evidence() int {
	lost, probes, rlost, recent := 0, 0, 0, 0
	for _, w := range e.tr.windows {
		s := w.statsFrom(e.tr.floor)
		lost += s.Lost
		probes += s.Probes
		for _, o := range w.probes[max(len(w.probes)-min(recentProbes, s.Probes), 0):] {
			recent++
			if o.lost {
				rlost++
			}
		}
	}
	if lost == 0 {
		return minSilentEchoes
	}
	p := max(float64(lost)/float64(probes+evidencePrior), float64(rlost)/float64(recent+evidencePrior))
	n := int(math.Ceil(math.Log(falseSilence) / math.Log(p)))
	return min(max(n, minSilentEchoes), maxSilentEchoes)
}

// expire lets time pass to now: echoes past their deadline time out, and
// a silence is declared when it is due.
func (e *engine) expire(now time.Time) {
	e.tr.expire(now)
	for id, b := range e.bursts {
		if now.Sub(b.at) > 2*e.cfg.Timeout {
			delete(e.bursts, id) // lost; it has done its job
		}
	}
	if at, ok := e.silentAt(); ok && !now.Before(at) {
		e.declared = true
		defer func() { e.since = e.since[:0] }() // unused until the next reply
		e.tr.silence(now.Sub(e.lastReply), len(e.since))
	}
}

// head returns the result due for delivery (see tracker.head), with the
// packets sent so far.
func (e *engine) head() (Result, bool) {
	r, ok := e.tr.head()
	if !ok {
		return r, false
	}
	r.Sent = e.sentTotal
	for i, g := range e.gates {
		r.Targets = append(r.Targets, TargetStats{Target: e.cfg.Checks[i], Stats: g.win.stats()})
	}
	return r, true
}

// pop marks the result head returned as delivered.
func (e *engine) pop() { e.tr.pop() }

// rttEstimator is RFC 6298's smoothed round-trip time and its variation.
type rttEstimator struct {
	srtt, rttvar time.Duration
	ok           bool
}

func (r *rttEstimator) sample(rtt time.Duration) {
	if !r.ok {
		r.srtt, r.rttvar, r.ok = rtt, rtt/2, true
		return
	}
	r.rttvar += ((r.srtt - rtt).Abs() - r.rttvar) / 4
	r.srtt += (rtt - r.srtt) / 8
}

// rto is srtt + 4·rttvar between floor and ceil; ceil before any sample.
func (r *rttEstimator) rto(floor, ceil time.Duration) time.Duration {
	if !r.ok {
		return ceil
	}
	return min(max(r.srtt+4*r.rttvar, floor), ceil)
}
