package fsm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	lfsm "github.com/looplab/fsm"
)

// State is an uplink's health state.
type State string

// The uplink states. Only Active uplinks (and Degraded ones when no uplink is
// Active) carry balanced traffic.
const (
	Down     State = "down"
	Probing  State = "probing"
	Degraded State = "degraded"
	Active   State = "active"
)

// Event names of the underlying looplab machine.
const (
	evLinkDown          = "link_down"
	evLinkUp            = "link_up"
	evLinkUpBare        = "link_up_unprobed"
	evProbePass         = "probe_pass"
	evProbePassDegraded = "probe_pass_degraded"
	evProbeFail         = "probe_fail"
	evDegrade           = "degrade"
	evRecover           = "recover"
)

var transitions = lfsm.Events{
	{Name: evLinkDown, Src: []string{string(Probing), string(Degraded), string(Active)}, Dst: string(Down)},
	{Name: evLinkUp, Src: []string{string(Down)}, Dst: string(Probing)},
	{Name: evLinkUpBare, Src: []string{string(Down), string(Probing)}, Dst: string(Active)},
	{Name: evProbePass, Src: []string{string(Probing)}, Dst: string(Active)},
	{Name: evProbePassDegraded, Src: []string{string(Probing)}, Dst: string(Degraded)},
	{Name: evProbeFail, Src: []string{string(Active), string(Degraded)}, Dst: string(Probing)},
	{Name: evDegrade, Src: []string{string(Active)}, Dst: string(Degraded)},
	{Name: evRecover, Src: []string{string(Degraded)}, Dst: string(Active)},
}

// Params are the thresholds of one uplink's machine.
type Params struct {
	// Probed is false in carrier-only mode (no probe targets): a usable
	// link is active at once.
	Probed bool
	// UpAfter consecutive good rounds make a probing uplink active.
	UpAfter int
	// DownAfter consecutive failed rounds send an active or degraded
	// uplink to probing.
	DownAfter int

	// An active uplink whose measured loss reaches DegradedLoss (a
	// fraction, 0 to 1), or whose RTT reaches DegradedRTT, is degraded. It
	// becomes active again once its loss is at most RecoverLoss and its RTT
	// at most RecoverRTT. Zero DegradedLoss or DegradedRTT leaves that
	// figure out of both decisions.
	DegradedLoss, RecoverLoss float64
	DegradedRTT, RecoverRTT   time.Duration

	// Flap damping. A flap is a fall to down (from any state) or from the
	// balance (active, degraded) to probing. Flaps less than FlapWindow
	// apart form a series, time held not counting. From the FlapLimit-th
	// flap of a series on, the uplink is held out of the balance for
	// FlapHold, doubled for every further flap, at most FlapHoldMax: it
	// stays down or probing until the hold ends. FlapLimit 0 turns damping
	// off.
	FlapLimit             int
	FlapWindow            time.Duration
	FlapHold, FlapHoldMax time.Duration
}

// Quality is what an uplink's probes measured over their window.
type Quality struct {
	// Known is set once the window is full; until then loss and RTT are
	// too noisy to judge by, and the uplink is not degraded or recovered
	// on them.
	Known  bool
	Probes int // in the window, for reasons
	Loss   float64
	RTT    time.Duration
	// Failure says why the round failed, when the probes know more than
	// that no answer came (a failing HTTP check, a send error); it is
	// added to the reason of a fall.
	Failure string
}

// Transition is one state change, with why it happened.
type Transition struct {
	Uplink string
	From   State
	To     State
	Reason string
	At     time.Time
}

func (t Transition) String() string {
	return fmt.Sprintf("%s: %s -> %s (%s)", t.Uplink, t.From, t.To, t.Reason)
}

// Uplink is the state machine of one uplink. It is not safe for concurrent
// use; the daemon's event loop owns it. It starts no timers: the loop asks
// Deadline when it next needs the machine and calls Tick then.
type Uplink struct {
	name   string
	p      Params
	m      *lfsm.FSM
	reason string
	since  time.Time
	good   int // consecutive good rounds
	bad    int // consecutive failed rounds

	quality Quality // as last measured

	linkUp     bool   // the link is usable, as last told
	linkReason string // why, as last told

	flaps       int       // flaps in the current series
	lastFlap    time.Time // of the current series
	lastHoldEnd time.Time // end of the latest hold, kept after it ended
	holdUntil   time.Time // zero: not held
	holdReason  string    // "held for 30s after 3 flaps less than 60s apart"
}

// New returns the machine of uplink name, in state Down since now.
func New(name string, p Params, now time.Time) *Uplink {
	return &Uplink{
		name:   name,
		p:      normalize(p),
		m:      lfsm.NewFSM(string(Down), transitions, nil),
		reason: "starting",
		since:  now,
	}
}

func normalize(p Params) Params {
	p.UpAfter = max(p.UpAfter, 1)
	p.DownAfter = max(p.DownAfter, 1)
	p.FlapHoldMax = max(p.FlapHoldMax, p.FlapHold)
	return p
}

// Name is the uplink's configured name.
func (u *Uplink) Name() string { return u.name }

// State is the current state.
func (u *Uplink) State() State { return State(u.m.Current()) }

// Reason says why the uplink is in its current state.
func (u *Uplink) Reason() string { return u.reason }

// Since is when the uplink entered its current state.
func (u *Uplink) Since() time.Time { return u.since }

// SetParams changes the thresholds; counters and a running hold are kept.
func (u *Uplink) SetParams(p Params) { u.p = normalize(p) }

// Held reports until when the uplink is held out of the balance for
// flapping.
func (u *Uplink) Held() (time.Time, bool) { return u.holdUntil, !u.holdUntil.IsZero() }

// Deadline is when the machine next has something to do on its own: the
// end of a hold. The event loop calls Tick at (or after) that time.
func (u *Uplink) Deadline() (time.Time, bool) { return u.Held() }

// Tick lets time pass: a hold that has ended releases the uplink, which
// starts probing when its link is usable (or is active at once in
// carrier-only mode), or is active at once when its probes have passed
// meanwhile.
func (u *Uplink) Tick(now time.Time) (Transition, bool) {
	if u.holdUntil.IsZero() || now.Before(u.holdUntil) {
		return Transition{}, false
	}
	u.reason = strings.TrimSuffix(u.reason, "; "+u.holdReason)
	u.holdUntil, u.holdReason = time.Time{}, ""
	switch u.State() {
	case Down:
		if u.linkUp {
			return u.linkUpNow("hold ended; "+u.linkReason, now)
		}
	case Probing:
		if u.good >= u.p.UpAfter {
			return u.promote(fmt.Sprintf("hold ended; %d consecutive probe rounds passed", u.good), u.quality, now)
		}
	}
	return Transition{}, false
}

// LinkDown moves the uplink to Down at once: the interface is missing, down,
// without carrier or without address. reason says which.
func (u *Uplink) LinkDown(reason string, now time.Time) (Transition, bool) {
	u.good, u.bad = 0, 0
	u.linkUp, u.linkReason = false, ""
	u.quality = Quality{}
	if u.State() == Down {
		u.reason = u.held(reason) // keep the freshest explanation
		return Transition{}, false
	}
	return u.fall(evLinkDown, reason, now)
}

// LinkUp tells the machine the link is usable. A Down uplink starts probing,
// or becomes Active at once when it is not probed; while it is held for
// flapping it stays Down until the hold ends.
func (u *Uplink) LinkUp(reason string, now time.Time) (Transition, bool) {
	u.linkUp, u.linkReason = true, reason
	st := u.State()
	if st != Down && (u.p.Probed || st != Probing) {
		return Transition{}, false
	}
	if !u.holdUntil.IsZero() {
		u.reason = u.held(reason)
		return Transition{}, false
	}
	return u.linkUpNow(reason, now)
}

func (u *Uplink) linkUpNow(reason string, now time.Time) (Transition, bool) {
	if !u.p.Probed {
		return u.fire(evLinkUpBare, reason+" (carrier-only mode)", now)
	}
	u.good, u.bad = 0, 0
	return u.fire(evLinkUp, reason+", waiting for probes", now)
}

// ProbeRound feeds the result of one probe round and the quality the
// probes measured over their window.
func (u *Uplink) ProbeRound(good bool, q Quality, now time.Time) (Transition, bool) {
	if !u.p.Probed || u.State() == Down {
		return Transition{}, false
	}
	u.quality = q
	if good {
		u.good++
		u.bad = 0
	} else {
		u.bad++
		u.good = 0
	}
	switch u.State() {
	case Probing:
		if u.good >= u.p.UpAfter {
			passed := fmt.Sprintf("%d consecutive probe rounds passed", u.good)
			if !u.holdUntil.IsZero() {
				u.reason = u.held(passed)
				return Transition{}, false
			}
			return u.promote(passed, q, now)
		}
		if !good && u.bad == 1 {
			u.reason = u.held("probes failing")
		}
	case Active:
		if u.bad >= u.p.DownAfter {
			return u.fall(evProbeFail, u.failed(q), now)
		}
		if why, ok := u.degraded(q); ok {
			return u.fire(evDegrade, why, now)
		}
	case Degraded:
		if u.bad >= u.p.DownAfter {
			return u.fall(evProbeFail, u.failed(q), now)
		}
		if why, ok := u.recovered(q); ok {
			return u.fire(evRecover, why, now)
		}
	}
	return Transition{}, false
}

// failed is the reason of a fall after DownAfter failed rounds.
func (u *Uplink) failed(q Quality) string {
	why := fmt.Sprintf("%d consecutive probe rounds failed", u.bad)
	if q.Failure != "" {
		why += ": " + q.Failure
	}
	return why
}

// GatewayFailed tells the machine that the kernel gave up resolving the
// uplink's gateway (its neighbour entry became FAILED): nothing sent through
// the uplink can arrive. An active or degraded uplink leaves the balance at
// once, without waiting for its probe rounds; it comes back when its probes
// pass again. Only probed uplinks heed it: in carrier-only mode nothing
// would bring the uplink back.
func (u *Uplink) GatewayFailed(reason string, now time.Time) (Transition, bool) {
	return u.outNow(reason, now)
}

// ProbesSilent tells the machine that its probes went silent: no reply at
// all came for longer than the probes allow, a confirmation burst
// included. Like GatewayFailed, an active or degraded uplink leaves the
// balance at once, without waiting for DownAfter failed rounds.
func (u *Uplink) ProbesSilent(reason string, now time.Time) (Transition, bool) {
	return u.outNow(reason, now)
}

func (u *Uplink) outNow(reason string, now time.Time) (Transition, bool) {
	if !u.p.Probed {
		return Transition{}, false
	}
	switch u.State() {
	case Active, Degraded:
		// A failure already: the failed round that usually follows
		// keeps this reason rather than "probes failing".
		u.good, u.bad = 0, max(u.bad, 1)
		return u.fall(evProbeFail, reason, now)
	case Probing:
		u.good = 0
		u.reason = u.held(reason)
	}
	return Transition{}, false
}

// promote moves a probing uplink whose probes passed into the balance:
// degraded when its measured quality says so, else active.
func (u *Uplink) promote(reason string, q Quality, now time.Time) (Transition, bool) {
	if why, ok := u.degraded(q); ok {
		return u.fire(evProbePassDegraded, reason+"; "+why, now)
	}
	return u.fire(evProbePass, reason, now)
}

// degraded says whether q is bad enough to degrade an active uplink, and
// why.
func (u *Uplink) degraded(q Quality) (string, bool) {
	if !q.Known {
		return "", false
	}
	switch {
	case u.p.DegradedLoss > 0 && q.Loss >= u.p.DegradedLoss:
		return fmt.Sprintf("loss %s over the last %d probes (degraded_loss %s)", percent(q.Loss), q.Probes, percent(u.p.DegradedLoss)), true
	case u.p.DegradedRTT > 0 && q.RTT >= u.p.DegradedRTT:
		return fmt.Sprintf("RTT %s over the last %d probes (degraded_rtt %v)", rtt(q.RTT), q.Probes, u.p.DegradedRTT), true
	}
	return "", false
}

// recovered says whether q is good enough for a degraded uplink to be
// active again, and why.
func (u *Uplink) recovered(q Quality) (string, bool) {
	if !q.Known {
		return "", false
	}
	if u.p.DegradedLoss > 0 && q.Loss > u.p.RecoverLoss || u.p.DegradedRTT > 0 && q.RTT > u.p.RecoverRTT {
		return "", false
	}
	return fmt.Sprintf("loss %s and RTT %s over the last %d probes (recover_loss %s, recover_rtt %v)",
		percent(q.Loss), rtt(q.RTT), q.Probes, percent(u.p.RecoverLoss), u.p.RecoverRTT), true
}

// fall fires ev, which takes the uplink out of the balance or out of
// probing, and counts it as a flap: any fall to down, and a fall from the
// balance to probing. Enough flaps start a hold, which the transition's
// reason tells.
func (u *Uplink) fall(ev, reason string, now time.Time) (Transition, bool) {
	if !u.m.Can(ev) {
		return Transition{}, false
	}
	u.flap(now)
	return u.fire(ev, u.held(reason), now)
}

// flap records a flap at now and starts or lengthens the hold. Flaps
// less than FlapWindow apart form a series; time spent held does not count
// as apart, so a hold longer than the window does not forgive the flaps
// that caused it.
func (u *Uplink) flap(now time.Time) {
	if u.p.FlapLimit < 1 {
		return
	}
	last := u.lastFlap
	if u.lastHoldEnd.After(last) {
		last = u.lastHoldEnd
	}
	if u.flaps > 0 && now.Sub(last) >= u.p.FlapWindow {
		u.flaps = 0
	}
	u.flaps++
	u.lastFlap = now
	if u.flaps < u.p.FlapLimit {
		return
	}
	hold := u.p.FlapHold
	for i := u.p.FlapLimit; i < u.flaps && hold < u.p.FlapHoldMax; i++ {
		hold *= 2
	}
	hold = min(hold, u.p.FlapHoldMax)
	if until := now.Add(hold); until.After(u.holdUntil) {
		u.holdUntil = until
		u.lastHoldEnd = until
	}
	u.holdReason = fmt.Sprintf("held for %s after %d flaps less than %s apart", seconds(hold), u.flaps, seconds(u.p.FlapWindow))
}

// held appends the hold, if any, to reason.
func (u *Uplink) held(reason string) string {
	if u.holdUntil.IsZero() {
		return reason
	}
	return reason + "; " + u.holdReason
}

// percent formats a fraction as a percentage to a tenth: "5%", "2.5%".
func percent(f float64) string {
	return strconv.FormatFloat(math.Round(1000*f)/10, 'f', -1, 64) + "%"
}

// rtt formats a round-trip time: to the millisecond, or to a tenth of one
// when it is shorter than 10ms.
func rtt(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// seconds formats d in seconds, "60s" rather than "1m0s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// fire runs event ev if the current state allows it. looplab/fsm reports a
// same-state event as NoTransitionError and an impossible one as
// InvalidEventError; neither is a failure here, so fire checks Can first and
// treats both as "no transition".
func (u *Uplink) fire(ev, reason string, now time.Time) (Transition, bool) {
	if !u.m.Can(ev) {
		return Transition{}, false
	}
	from := u.State()
	if err := u.m.Event(context.Background(), ev); err != nil {
		var noTr lfsm.NoTransitionError
		if errors.As(err, &noTr) {
			return Transition{}, false
		}
		// Can() said yes and no callbacks are registered: anything else
		// is a programming error in the transition table.
		panic(fmt.Sprintf("fsm %s: event %s from %s: %v", u.name, ev, from, err))
	}
	u.reason = reason
	u.since = now
	return Transition{Uplink: u.name, From: from, To: u.State(), Reason: reason, At: now}, true
}

// Renumbered tells the machine that the uplink's address changed while its
// link stayed usable (a DHCP renewal with a new lease): what its probes
// proved was about the old path. A probed active or degraded uplink goes
// back to probing, without counting a flap; a probing one starts counting
// good rounds again. In carrier-only mode nothing would bring it back, so
// only the reason changes.
func (u *Uplink) Renumbered(reason string, now time.Time) (Transition, bool) {
	if u.State() == Down {
		return Transition{}, false
	}
	u.linkReason = reason
	if !u.p.Probed {
		u.reason = u.held(reason)
		return Transition{}, false
	}
	u.good, u.bad = 0, 0
	u.quality = Quality{}
	if st := u.State(); st == Active || st == Degraded {
		return u.fire(evProbeFail, reason+", waiting for probes", now)
	}
	u.reason = u.held(reason + ", waiting for probes")
	return Transition{}, false
}

// Explain replaces the reason of an uplink that stays in its state while
// what it rests on changed (a DHCP renewal with a new gateway): status
// then says why it is where it is now. A down uplink keeps its reason.
func (u *Uplink) Explain(reason string) {
	if u.State() == Down {
		return
	}
	u.linkReason = reason
	u.reason = u.held(reason)
}
